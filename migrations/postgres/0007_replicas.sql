-- 0007_replicas (PostgreSQL): the port of migrations/0007_replicas.sql — what each replica
-- reports about itself (heartbeat, the deployments it actually serves, its live stats). See the
-- SQLite twin for the meaning; no foreign key to deployments, a replica's rows go with it.

CREATE TABLE replicas (
    id           text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    address      text NOT NULL CHECK (length(address) <= 256),
    version      text NOT NULL CHECK (length(version) <= 31),
    started_at   ds_time NOT NULL DEFAULT ds_now(),
    last_seen_ms bigint NOT NULL CHECK (last_seen_ms >= 0)
);

CREATE TABLE replica_deployments (
    replica_id    text COLLATE "C" NOT NULL REFERENCES replicas (id) ON DELETE CASCADE,
    deployment_id bigint NOT NULL CHECK (deployment_id > 0),
    PRIMARY KEY (replica_id, deployment_id)
);

CREATE TABLE replica_stats (
    replica_id     text COLLATE "C" NOT NULL REFERENCES replicas (id) ON DELETE CASCADE,
    deployment_id  bigint NOT NULL CHECK (deployment_id > 0),
    model_name     ds_name NOT NULL,
    version        ds_name NOT NULL,
    request_count  bigint NOT NULL CHECK (request_count >= 0),
    error_4xx      bigint NOT NULL CHECK (error_4xx >= 0),
    error_5xx      bigint NOT NULL CHECK (error_5xx >= 0),
    latency_sum_ms double precision NOT NULL CHECK (latency_sum_ms >= 0),
    in_flight      bigint NOT NULL,
    buckets        text NOT NULL CHECK (length(buckets) <= 65536),
    PRIMARY KEY (replica_id, deployment_id)
);
