-- 0007_replicas: scale-out (README "Scale-out"). The deployments and traffic_splits tables are
-- the cluster's desired state; these tables are what each replica reports about itself:
--   replicas             one row per replica, refreshed by its heartbeat (last_seen_ms is the
--                        database's clock, so the replicas' clocks need not agree);
--   replica_deployments  the deployments a replica actually serves (its actual state), for
--                        GET /deployments "replicas";
--   replica_stats        a replica's live counters and latency histogram per deployment, for
--                        GET /models/stats?scope=cluster.
-- No foreign key to deployments: a replica may still report a deployment another replica has
-- just ended, until its reconciler catches up. A replica's rows go with it (ON DELETE CASCADE)
-- when it stops cleanly; a crashed one ages out (readers ask for replicas seen recently).

CREATE TABLE replicas (
    id           TEXT PRIMARY KEY
                 CHECK (length(id) BETWEEN 1 AND 128 AND id NOT GLOB '*[^A-Za-z0-9_.:-]*'),
    address      TEXT NOT NULL CHECK (length(address) <= 256),
    version      TEXT NOT NULL CHECK (length(version) <= 31),
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_seen_ms INTEGER NOT NULL CHECK (last_seen_ms >= 0)
) STRICT;

CREATE TABLE replica_deployments (
    replica_id    TEXT NOT NULL REFERENCES replicas (id) ON DELETE CASCADE,
    deployment_id INTEGER NOT NULL CHECK (deployment_id > 0),
    PRIMARY KEY (replica_id, deployment_id)
) STRICT;

CREATE TABLE replica_stats (
    replica_id     TEXT NOT NULL REFERENCES replicas (id) ON DELETE CASCADE,
    deployment_id  INTEGER NOT NULL CHECK (deployment_id > 0),
    model_name     TEXT NOT NULL CHECK (length(model_name) BETWEEN 1 AND 64),
    version        TEXT NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    request_count  INTEGER NOT NULL CHECK (request_count >= 0),
    error_4xx      INTEGER NOT NULL CHECK (error_4xx >= 0),
    error_5xx      INTEGER NOT NULL CHECK (error_5xx >= 0),
    latency_sum_ms REAL NOT NULL CHECK (latency_sum_ms >= 0),
    in_flight      INTEGER NOT NULL,
    -- the latency histogram, sparse: "index:count,..." over deploy/stats.h's buckets
    buckets        TEXT NOT NULL CHECK (length(buckets) <= 65536),
    PRIMARY KEY (replica_id, deployment_id)
) STRICT;
