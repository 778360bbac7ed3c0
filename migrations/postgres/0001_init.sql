-- 0001_init (PostgreSQL): the port of migrations/0001_init.sql. Same tables, columns, names,
-- constraints and meaning; only the SQL differs. Applied by registry_open() inside one
-- transaction together with its schema_migrations row, under pg_advisory_lock. Never edit
-- once shipped: add 0002_*.sql instead (and its SQLite twin).
--
-- Why a separate set (not portable SQL): SQLite's STRICT tables, GLOB checks, json_valid() and
-- strftime() have no common spelling with PostgreSQL's types, regular expressions, json and
-- to_char(); one file per backend keeps each schema idiomatic and readable, and the build
-- refuses sets whose NNNN_name.sql files differ, so the two cannot drift apart silently.
--
-- Timestamps stay ISO-8601 UTC text ("2026-11-23T03:20:08Z"), as in SQLite, so both backends
-- return and compare the same strings. Names and times use COLLATE "C": ORDER BY sorts by
-- bytes as SQLite does, whatever the database's locale.

-- The current time as the registry stores it.
CREATE FUNCTION ds_now() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- SQLite's CASE WHEN json_valid(x) THEN json_type(x) = 'object' ELSE 0 END: never raises.
CREATE FUNCTION ds_json_is_object(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN json_typeof(t::json) = 'object';
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$$;

-- [A-Za-z0-9_.-]{1,64}, not "." or "..": registry_name_valid() as a type.
CREATE DOMAIN ds_name AS text COLLATE "C"
    CHECK (VALUE ~ '^[A-Za-z0-9_.-]{1,64}$' AND VALUE NOT IN ('.', '..'));
CREATE DOMAIN ds_time AS text COLLATE "C";
CREATE DOMAIN ds_sha256 AS text COLLATE "C" CHECK (VALUE ~ '^[0-9a-f]{64}$');
CREATE DOMAIN ds_json_object AS text CHECK (ds_json_is_object(VALUE));

CREATE TABLE models (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       ds_name NOT NULL UNIQUE,
    created_at ds_time NOT NULL DEFAULT ds_now()
);

-- Identity columns never hand a deleted row's id out again (SQLite's AUTOINCREMENT).
CREATE TABLE model_versions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name    ds_name NOT NULL REFERENCES models (name),
    version       ds_name NOT NULL,
    plugin_path   text NOT NULL CHECK (length(plugin_path) BETWEEN 1 AND 4095),
    -- NULL when the plugin's digest is unknown; otherwise lowercase hex.
    plugin_sha256 ds_sha256,
    config_json   ds_json_object NOT NULL DEFAULT '{}',
    created_at    ds_time NOT NULL DEFAULT ds_now(),
    UNIQUE (model_name, version)
);

-- A deployment keeps model name and version as text so its history survives deleting the
-- version; version_id links to the live version and becomes NULL on delete.
CREATE TABLE deployments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name    ds_name NOT NULL,
    version       ds_name NOT NULL,
    version_id    bigint REFERENCES model_versions (id) ON DELETE SET NULL,
    endpoint_name ds_name,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'failed', 'undeployed')),
    status_reason text,
    deployed_at   ds_time NOT NULL DEFAULT ds_now(),
    undeployed_at ds_time,
    -- Only an ended deployment has an end time.
    CHECK ((status = 'undeployed') = (undeployed_at IS NOT NULL)),
    -- A live (active or failed) deployment is restored at startup, so its version must exist;
    -- this also refuses ON DELETE SET NULL for a version that is still live.
    CHECK (status = 'undeployed' OR version_id IS NOT NULL)
);

-- At most one live deployment per version: a redeploy closes the failed one first.
CREATE UNIQUE INDEX deployments_one_live_per_version
    ON deployments (model_name, version) WHERE status IN ('active', 'failed');
-- An endpoint name routes to exactly one active deployment.
CREATE UNIQUE INDEX deployments_one_active_per_endpoint
    ON deployments (endpoint_name) WHERE status = 'active' AND endpoint_name IS NOT NULL;
-- Deleting a version looks up its deployments (foreign key action).
CREATE INDEX deployments_by_version_id ON deployments (version_id);

-- Append-only audit log. No foreign keys: events outlive the models they describe.
CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          ds_time NOT NULL DEFAULT ds_now(),
    kind        text NOT NULL CHECK (kind ~ '^[A-Za-z0-9_.-]{1,31}$'),
    model_name  ds_name NOT NULL,
    -- NULL when the event is not about one version.
    version     ds_name,
    detail_json ds_json_object
);

CREATE INDEX events_by_model ON events (model_name, id);

-- Canary splits, append-only per model. Exactly one row per model is 'current'; a new split
-- marks the old one 'superseded' (rollback target), a rollback marks the current one
-- 'rolled_back' (never restored again), a clear marks it 'cleared'.
CREATE TABLE traffic_splits (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name   ds_name NOT NULL,
    weights_json ds_json_object NOT NULL,
    guard_json   ds_json_object,
    reason       text,
    state        text NOT NULL DEFAULT 'current'
                 CHECK (state IN ('current', 'superseded', 'rolled_back', 'cleared')),
    created_at   ds_time NOT NULL DEFAULT ds_now()
);

CREATE UNIQUE INDEX traffic_splits_one_current_per_model
    ON traffic_splits (model_name) WHERE state = 'current';
CREATE INDEX traffic_splits_by_model ON traffic_splits (model_name, id);

-- Lifetime totals per deployment, overwritten by the stats module (upsert).
CREATE TABLE deployment_stats (
    deployment_id  bigint PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    request_count  bigint NOT NULL DEFAULT 0 CHECK (request_count >= 0),
    error_4xx      bigint NOT NULL DEFAULT 0 CHECK (error_4xx >= 0),
    error_5xx      bigint NOT NULL DEFAULT 0 CHECK (error_5xx >= 0),
    latency_sum_ms double precision NOT NULL DEFAULT 0 CHECK (latency_sum_ms >= 0),
    updated_at     ds_time NOT NULL DEFAULT ds_now()
);
