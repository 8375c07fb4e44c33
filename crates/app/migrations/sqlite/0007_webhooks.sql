-- Webhooks (catalogue/webhooks.rs): each user's signing secret, the webhook a generation was
-- created with, the outbox of deliveries derived from the event feed after a cursor, and the
-- attempts of each delivery. Due times and leases are Unix milliseconds of the database's
-- clock, like the jobs'; other times RFC 3339 UTC.

-- Kept as they are (HMAC needs the key itself, not a hash of it).
CREATE TABLE webhook_secrets (
    owner      TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret     TEXT NOT NULL,
    previous   TEXT,
    rotated_at TEXT
) STRICT;

-- No foreign key: a generation's webhook is written just before the generation.
CREATE TABLE webhook_subscriptions (
    generation_id TEXT PRIMARY KEY NOT NULL,
    owner         TEXT,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL
) STRICT;

-- How far the feed (events by rowid) has been turned into deliveries. It starts at the end
-- of the feed as it is: no generation before this migration has a webhook.
CREATE TABLE webhook_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
) STRICT;

INSERT INTO webhook_cursor (id, position) SELECT 1, COALESCE(MAX(rowid), 0) FROM events;

CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY NOT NULL,
    generation_id TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    owner         TEXT,
    event         TEXT NOT NULL,
    url           TEXT NOT NULL,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'gone')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    due_ms        INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_ms      INTEGER,
    UNIQUE (generation_id, seq)
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_ms) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n           INTEGER NOT NULL,
    at          TEXT NOT NULL,
    http_status INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    response    TEXT,
    PRIMARY KEY (delivery_id, n)
) STRICT;
