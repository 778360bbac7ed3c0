-- 0002_auth: API tokens, and who did what in the event log.
--
-- api_tokens keeps every token ever issued: a revoked one stays (revoked_at set) so that the
-- actor names in events keep meaning something, and so that revoking the last token leaves
-- authentication on. The secret itself is never stored: token_hash is HMAC-SHA-256 keyed with
-- the per-token random salt over the token's text (see src/auth/auth_token.c); both are
-- lowercase hex. id is the public part of the token ("dsk_<id>_<secret>"), so a lookup is by
-- primary key.

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY
                 CHECK (length(id) = 16 AND id NOT GLOB '*[^0-9a-f]*'),
    name         TEXT NOT NULL
                 CHECK (length(name) BETWEEN 1 AND 64
                        AND name NOT GLOB '*[^A-Za-z0-9_.-]*' AND name NOT IN ('.', '..')),
    role         TEXT NOT NULL CHECK (role IN ('inference', 'viewer', 'deployer', 'admin')),
    salt         TEXT NOT NULL CHECK (length(salt) = 32 AND salt NOT GLOB '*[^0-9a-f]*'),
    token_hash   TEXT NOT NULL
                 CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    expires_at   TEXT, -- NULL: never
    last_used_at TEXT, -- NULL: never used
    revoked_at   TEXT  -- NULL: valid
) STRICT;

-- A name picks one valid token (revoke by name); revoked ones may share it.
CREATE UNIQUE INDEX api_tokens_one_active_per_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- actor: the token name, "jwt:<subject>", "anonymous" (auth off) or NULL (the server itself:
-- restore, canary guard). client_addr: the peer address of the request, NULL when none.
ALTER TABLE events ADD COLUMN actor TEXT CHECK (actor IS NULL OR length(actor) BETWEEN 1 AND 128);
ALTER TABLE events ADD COLUMN client_addr TEXT
    CHECK (client_addr IS NULL OR length(client_addr) BETWEEN 1 AND 64);
