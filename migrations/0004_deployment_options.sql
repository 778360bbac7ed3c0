-- Per-deployment options (isolation, deadlines, limits; see src/deploy/deploy_options.h) kept
-- with the deployment so a restart restores it as deployed, and the in-process crash journal's
-- strike count: how many times this deployment was executing when the server died of a signal
-- (restore quarantines repeat offenders as failed instead of loading them again).
ALTER TABLE deployments ADD COLUMN options TEXT NOT NULL DEFAULT '{}'
    CHECK (CASE WHEN json_valid(options) THEN json_type(options) = 'object' ELSE 0 END);
ALTER TABLE deployments ADD COLUMN server_crashes INTEGER NOT NULL DEFAULT 0
    CHECK (server_crashes >= 0);
-- The last request a deployment served (unix ms, 0 = none), so last_request_at survives a
-- restart like the counts do.
ALTER TABLE deployment_stats ADD COLUMN last_request_ms INTEGER NOT NULL DEFAULT 0
    CHECK (last_request_ms >= 0);
