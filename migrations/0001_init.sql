-- 0001_init: the first registry schema (models, versions, deployments, events, traffic
-- splits, lifetime stats). Applied by registry_open() inside one transaction together with its
-- schema_migrations row; the runner owns schema_migrations. Never edit once shipped: add
-- 0002_*.sql instead.
--
-- Names (model, version, endpoint) repeat registry_name_valid() as a CHECK:
-- [A-Za-z0-9_.-]{1,64} and not "." or "..". Timestamps are ISO-8601 UTC text with seconds.
-- JSON columns must hold an object; CASE keeps json_type() from raising on invalid text.
-- Tables are STRICT so a wrong type is an error instead of a silent conversion.

CREATE TABLE models (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE
               CHECK (length(name) BETWEEN 1 AND 64
                      AND name NOT GLOB '*[^A-Za-z0-9_.-]*' AND name NOT IN ('.', '..')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;

-- AUTOINCREMENT here and below: ids are shown to users and kept in logs, so a deleted row's
-- id is never handed out again.
CREATE TABLE model_versions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name    TEXT NOT NULL REFERENCES models (name),
    version       TEXT NOT NULL
                  CHECK (length(version) BETWEEN 1 AND 64
                         AND version NOT GLOB '*[^A-Za-z0-9_.-]*'
                         AND version NOT IN ('.', '..')),
    plugin_path   TEXT NOT NULL CHECK (length(plugin_path) BETWEEN 1 AND 4095),
    -- NULL when the plugin's digest is unknown; otherwise lowercase hex.
    plugin_sha256 TEXT CHECK (plugin_sha256 IS NULL
                              OR (length(plugin_sha256) = 64
                                  AND plugin_sha256 NOT GLOB '*[^0-9a-f]*')),
    config_json   TEXT NOT NULL DEFAULT '{}'
                  CHECK (CASE WHEN json_valid(config_json)
                              THEN json_type(config_json) = 'object' ELSE 0 END),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (model_name, version)
) STRICT;

-- A deployment keeps model name and version as text so its history survives deleting the
-- version; version_id links to the live version and becomes NULL on delete.
CREATE TABLE deployments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name    TEXT NOT NULL
                  CHECK (length(model_name) BETWEEN 1 AND 64
                         AND model_name NOT GLOB '*[^A-Za-z0-9_.-]*'
                         AND model_name NOT IN ('.', '..')),
    version       TEXT NOT NULL
                  CHECK (length(version) BETWEEN 1 AND 64
                         AND version NOT GLOB '*[^A-Za-z0-9_.-]*'
                         AND version NOT IN ('.', '..')),
    version_id    INTEGER REFERENCES model_versions (id) ON DELETE SET NULL,
    endpoint_name TEXT
                  CHECK (endpoint_name IS NULL
                         OR (length(endpoint_name) BETWEEN 1 AND 64
                             AND endpoint_name NOT GLOB '*[^A-Za-z0-9_.-]*'
                             AND endpoint_name NOT IN ('.', '..'))),
    status        TEXT NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'failed', 'undeployed')),
    status_reason TEXT,
    deployed_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    undeployed_at TEXT,
    -- Only an ended deployment has an end time.
    CHECK ((status = 'undeployed') = (undeployed_at IS NOT NULL)),
    -- A live (active or failed) deployment is restored at startup, so its version must exist;
    -- this also refuses ON DELETE SET NULL for a version that is still live.
    CHECK (status = 'undeployed' OR version_id IS NOT NULL)
) STRICT;

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
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    kind        TEXT NOT NULL
                CHECK (length(kind) BETWEEN 1 AND 31 AND kind NOT GLOB '*[^A-Za-z0-9_.-]*'),
    model_name  TEXT NOT NULL
                CHECK (length(model_name) BETWEEN 1 AND 64
                       AND model_name NOT GLOB '*[^A-Za-z0-9_.-]*'
                       AND model_name NOT IN ('.', '..')),
    -- NULL when the event is not about one version.
    version     TEXT
                CHECK (version IS NULL
                       OR (length(version) BETWEEN 1 AND 64
                           AND version NOT GLOB '*[^A-Za-z0-9_.-]*'
                           AND version NOT IN ('.', '..'))),
    detail_json TEXT
                CHECK (detail_json IS NULL
                       OR CASE WHEN json_valid(detail_json)
                               THEN json_type(detail_json) = 'object' ELSE 0 END)
) STRICT;

CREATE INDEX events_by_model ON events (model_name, id);

-- Canary splits, append-only per model. Exactly one row per model is 'current'; a new split
-- marks the old one 'superseded' (rollback target), a rollback marks the current one
-- 'rolled_back' (never restored again), a clear marks it 'cleared'.
CREATE TABLE traffic_splits (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name   TEXT NOT NULL
                 CHECK (length(model_name) BETWEEN 1 AND 64
                        AND model_name NOT GLOB '*[^A-Za-z0-9_.-]*'
                        AND model_name NOT IN ('.', '..')),
    weights_json TEXT NOT NULL
                 CHECK (CASE WHEN json_valid(weights_json)
                             THEN json_type(weights_json) = 'object' ELSE 0 END),
    guard_json   TEXT
                 CHECK (guard_json IS NULL
                        OR CASE WHEN json_valid(guard_json)
                                THEN json_type(guard_json) = 'object' ELSE 0 END),
    reason       TEXT,
    state        TEXT NOT NULL DEFAULT 'current'
                 CHECK (state IN ('current', 'superseded', 'rolled_back', 'cleared')),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;

CREATE UNIQUE INDEX traffic_splits_one_current_per_model
    ON traffic_splits (model_name) WHERE state = 'current';
CREATE INDEX traffic_splits_by_model ON traffic_splits (model_name, id);

-- Lifetime totals per deployment, overwritten by the stats module (upsert).
CREATE TABLE deployment_stats (
    deployment_id  INTEGER PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    request_count  INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
    error_4xx      INTEGER NOT NULL DEFAULT 0 CHECK (error_4xx >= 0),
    error_5xx      INTEGER NOT NULL DEFAULT 0 CHECK (error_5xx >= 0),
    latency_sum_ms REAL NOT NULL DEFAULT 0 CHECK (latency_sum_ms >= 0),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;
