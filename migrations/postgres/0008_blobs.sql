-- 0008_blobs (PostgreSQL): the port of migrations/0008_blobs.sql — content-addressed blobs that
-- every replica fetches (and checks against sha256) before it loads a version it did not
-- register. See that file for the meaning of every column.
--
-- bytea in a table, not large objects: a blob is written and read with the same prepared
-- statements and transactions as every other row (a version row is added only after its blobs
-- are committed), it is deleted with its row (large objects outlive their references until
-- vacuumlo), and no separate lo_* permissions are needed. A bytea value holds up to 1 GB, above
-- --max-upload-bytes' default of 256 MiB.
CREATE TABLE blobs (
    sha256     ds_sha256 PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('plugin', 'artifact', 'file')),
    size       bigint NOT NULL CHECK (size >= 0),
    data       bytea NOT NULL,
    created_at ds_time NOT NULL DEFAULT ds_now(),
    CHECK (octet_length(data) = size)
);
