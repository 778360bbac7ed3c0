-- 0003_artifacts: a model version is either a plugin .so (as before) or {backend, artifact
-- directory, config} (Triton's <model>/<version>/ directory with config.json). For the latter:
--   backend          the backend plugin's name ([a-z0-9_]{1,32}, e.g. "xgboost", "onnx"); the
--                    server finds <backend-dir>/<backend>/libdynserve_<backend>.so at deploy time,
--                    while plugin_path keeps the file it resolved to at registration;
--   artifact_dir     the version's directory in the content-addressed artifact store,
--                    <data-dir>/artifacts/<artifact_sha256>;
--   artifact_sha256  digest of the directory's files (see src/plugin/artifact.h);
--   config_json      (existing column) holds the version's config.json object.
-- All three are NULL for a plugin version. Existing rows are plugin versions.
ALTER TABLE model_versions ADD COLUMN backend TEXT
    CHECK (backend IS NULL
           OR (length(backend) BETWEEN 1 AND 32 AND backend NOT GLOB '*[^a-z0-9_]*'));
ALTER TABLE model_versions ADD COLUMN artifact_dir TEXT
    CHECK (artifact_dir IS NULL OR length(artifact_dir) BETWEEN 1 AND 4095);
ALTER TABLE model_versions ADD COLUMN artifact_sha256 TEXT
    CHECK (artifact_sha256 IS NULL
           OR (length(artifact_sha256) = 64 AND artifact_sha256 NOT GLOB '*[^0-9a-f]*'));
