-- 0003_artifacts (PostgreSQL): the port of migrations/0003_artifacts.sql — a model version made
-- of {backend, artifact directory, config}. All three are NULL for a plugin version.
ALTER TABLE model_versions ADD COLUMN backend text
    CHECK (backend IS NULL OR backend ~ '^[a-z0-9_]{1,32}$');
ALTER TABLE model_versions ADD COLUMN artifact_dir text
    CHECK (artifact_dir IS NULL OR length(artifact_dir) BETWEEN 1 AND 4095);
ALTER TABLE model_versions ADD COLUMN artifact_sha256 ds_sha256;
