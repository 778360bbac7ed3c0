-- 0004_deployment_options (PostgreSQL): the port of migrations/0004_deployment_options.sql —
-- per-deployment options kept with the deployment, the crash journal's strike count, and the
-- last request a deployment served (unix ms, 0 = none).
ALTER TABLE deployments ADD COLUMN options ds_json_object NOT NULL DEFAULT '{}';
ALTER TABLE deployments ADD COLUMN server_crashes bigint NOT NULL DEFAULT 0
    CHECK (server_crashes >= 0);
ALTER TABLE deployment_stats ADD COLUMN last_request_ms bigint NOT NULL DEFAULT 0
    CHECK (last_request_ms >= 0);
