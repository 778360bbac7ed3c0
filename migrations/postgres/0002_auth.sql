-- 0002_auth (PostgreSQL): the port of migrations/0002_auth.sql — API tokens, and who did what
-- in the event log. See that file for the meaning of every column.
--
-- seq stands in for SQLite's rowid: tokens created in the same second list in insertion order.

CREATE TABLE api_tokens (
    id           text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name         ds_name NOT NULL,
    role         text NOT NULL CHECK (role IN ('inference', 'viewer', 'deployer', 'admin')),
    salt         text NOT NULL CHECK (salt ~ '^[0-9a-f]{32}$'),
    token_hash   text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at   ds_time NOT NULL DEFAULT ds_now(),
    expires_at   ds_time, -- NULL: never
    last_used_at ds_time, -- NULL: never used
    revoked_at   ds_time, -- NULL: valid
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);

-- A name picks one valid token (revoke by name); revoked ones may share it.
CREATE UNIQUE INDEX api_tokens_one_active_per_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- actor: the token name, "jwt:<subject>", "anonymous" (auth off) or NULL (the server itself).
-- client_addr: the peer address of the request, NULL when none.
ALTER TABLE events ADD COLUMN actor text CHECK (actor IS NULL OR length(actor) BETWEEN 1 AND 128);
ALTER TABLE events ADD COLUMN client_addr text
    CHECK (client_addr IS NULL OR length(client_addr) BETWEEN 1 AND 64);
