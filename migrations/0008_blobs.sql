-- 0008_blobs: content-addressed blobs, so that every replica of a shared (PostgreSQL) registry can
-- fetch the code and files of a version it did not register itself (README "Artifacts on every
-- replica"). The server writes and reads them only when the registry is shared; on SQLite the data
-- dir already holds the files and the table stays empty (it exists so both backends have the same
-- schema and the same tests).
--
-- sha256 is the SHA-256 of data, always: a reader recomputes it before using the bytes. kind is
-- what the blob was first stored as: 'plugin' (a plugin .so), 'artifact' (the manifest of a model
-- directory: for each file, sorted by name, name NUL size NUL sha256 LF, whose SHA-256 is the
-- directory's digest, migration 0003) or 'file' (one file of a model directory).
CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY
               CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    kind       TEXT NOT NULL CHECK (kind IN ('plugin', 'artifact', 'file')),
    size       INTEGER NOT NULL CHECK (size >= 0),
    data       BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    CHECK (length(data) = size)
) STRICT;
