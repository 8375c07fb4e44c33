-- Users of a server, their API keys and password sessions, their credits, the audit log and
-- the answers kept for idempotent requests (catalogue/directory.rs); the tables are SQLite's
-- (migrations/sqlite/0006_users.sql) in native types. Secrets are kept only as SHA-256 hex
-- (keys, session tokens) or argon2 PHC strings (passwords). A user's id is Supabase's
-- `auth.uid()` when the user comes from Supabase.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    role          text NOT NULL CHECK (role IN ('user', 'admin')),
    disabled      boolean NOT NULL DEFAULT false,
    password_hash text,
    created_at    timestamptz NOT NULL
);

-- One user per address however it is typed (citext is an extension a server may not have).
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash         text NOT NULL UNIQUE,
    prefix       text NOT NULL,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX api_keys_of_user ON api_keys (user_id, created_at);

CREATE TABLE sessions (
    hash       text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX sessions_of_user ON sessions (user_id);

-- A user's balance (the sum of their ledger) and how much of what they spent is held by
-- generations still running. The checks are the last word on "never negative".
CREATE TABLE credit_accounts (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance bigint NOT NULL CHECK (balance BETWEEN 0 AND 1000000000000),
    held    bigint NOT NULL DEFAULT 0 CHECK (held >= 0)
);

CREATE TABLE credit_ledger (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('purchase', 'usage', 'refund', 'bonus')),
    amount        bigint NOT NULL,
    balance_after bigint NOT NULL,
    generation_id uuid,
    note          text
);

CREATE INDEX credit_ledger_of_user ON credit_ledger (user_id, id);

-- What a generation took at submit, until it ends (no foreign key: the hold is written just
-- before its generation).
CREATE TABLE credit_holds (
    generation_id uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount        bigint NOT NULL CHECK (amount > 0),
    created_at    timestamptz NOT NULL,
    settled_at    timestamptz,
    settlement    text CHECK (settlement IN ('used', 'refunded'))
);

CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL,
    -- NULL: the operator.
    actor_id uuid,
    action   text NOT NULL,
    target   text NOT NULL,
    details  jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE idempotency_keys (
    user_id     uuid NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    -- NULL while the first request is in flight.
    status      integer,
    body        bytea,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Row-level security where the database is Supabase's (see 0002): client keys read only a
-- user's own balance and ledger; secrets, sessions, holds, the audit log and idempotency keys
-- are closed to them (RLS without a policy lets nobody in). Atelier connects as the owner,
-- which RLS does not bind.
DO $$
BEGIN
    IF to_regnamespace('auth') IS NULL THEN
        RETURN;
    END IF;
    ALTER TABLE users ENABLE ROW LEVEL SECURITY;
    ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
    ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
    ALTER TABLE credit_accounts ENABLE ROW LEVEL SECURITY;
    ALTER TABLE credit_ledger ENABLE ROW LEVEL SECURITY;
    ALTER TABLE credit_holds ENABLE ROW LEVEL SECURITY;
    ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
    ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
    CREATE POLICY credit_accounts_of_their_user ON credit_accounts FOR SELECT
        USING (user_id = auth.uid());
    CREATE POLICY credit_ledger_of_their_user ON credit_ledger FOR SELECT
        USING (user_id = auth.uid());
END
$$;
