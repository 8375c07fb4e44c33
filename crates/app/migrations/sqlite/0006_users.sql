-- Users of a server, their API keys and password sessions, their credits, the audit log and
-- the answers kept for idempotent requests (catalogue/directory.rs). Secrets are kept only as
-- SHA-256 hex (keys, session tokens) or argon2 PHC strings (passwords). Expiry times are Unix
-- milliseconds of the database's clock, like the jobs'; other times RFC 3339 UTC.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    -- Stored lower-cased by the domain; the check keeps it so.
    email         TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;

CREATE INDEX api_keys_of_user ON api_keys (user_id, created_at);

CREATE TABLE sessions (
    hash       TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_of_user ON sessions (user_id);

-- A user's balance (the sum of their ledger) and how much of what they spent is held by
-- generations still running. The checks are the last word on "never negative".
CREATE TABLE credit_accounts (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    balance INTEGER NOT NULL CHECK (balance BETWEEN 0 AND 1000000000000),
    held    INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0)
) STRICT;

CREATE TABLE credit_ledger (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at            TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('purchase', 'usage', 'refund', 'bonus')),
    amount        INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    generation_id TEXT,
    note          TEXT
) STRICT;

CREATE INDEX credit_ledger_of_user ON credit_ledger (user_id, id);

-- What a generation took at submit, until it ends (no foreign key: the hold is written just
-- before its generation).
CREATE TABLE credit_holds (
    generation_id TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount        INTEGER NOT NULL CHECK (amount > 0),
    created_at    TEXT NOT NULL,
    settled_at    TEXT,
    settlement    TEXT CHECK (settlement IN ('used', 'refunded'))
) STRICT;

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    -- NULL: the operator.
    actor_id TEXT,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    -- NULL while the first request is in flight.
    status      INTEGER,
    body        BLOB,
    created_at  TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_ms);
