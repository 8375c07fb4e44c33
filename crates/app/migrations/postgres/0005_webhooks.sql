-- Webhooks (catalogue/webhooks.rs): SQLite's tables (migrations/sqlite/0007_webhooks.sql) in
-- native types. Due times and leases are timestamptz compared with the database's now(), like
-- the jobs'.

-- Kept as they are (HMAC needs the key itself, not a hash of it).
CREATE TABLE webhook_secrets (
    owner      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret     text NOT NULL,
    previous   text,
    rotated_at timestamptz
);

-- No foreign key: a generation's webhook is written just before the generation.
CREATE TABLE webhook_subscriptions (
    generation_id uuid PRIMARY KEY,
    owner         uuid,
    url           text NOT NULL,
    events        text NOT NULL
);

-- How far the feed (events by position) has been turned into deliveries. It starts at the end
-- of the feed as it is: no generation before this migration has a webhook.
CREATE TABLE webhook_cursor (
    id       integer PRIMARY KEY CHECK (id = 1),
    position bigint NOT NULL
);

INSERT INTO webhook_cursor (id, position) SELECT 1, COALESCE(MAX(position), 0) FROM events;

CREATE TABLE webhook_deliveries (
    id            text PRIMARY KEY,
    generation_id uuid NOT NULL,
    seq           integer NOT NULL,
    owner         uuid,
    event         text NOT NULL,
    url           text NOT NULL,
    payload       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'gone')),
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    lease_owner   text,
    lease_until   timestamptz,
    UNIQUE (generation_id, seq)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n           integer NOT NULL,
    at          timestamptz NOT NULL,
    http_status integer,
    error       text,
    duration_ms bigint NOT NULL,
    response    text,
    PRIMARY KEY (delivery_id, n)
);

-- Closed to every role but the owner (Atelier), whatever the server: RLS without a policy lets
-- nobody else in, and the secrets must never reach a client key (Supabase's REST API).
ALTER TABLE webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_cursor ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY;
