-- The catalogue of the embedded default. Append-only: never edit a shipped migration.
-- Times of generations, images and events are RFC 3339 text (UTC); job times are Unix
-- milliseconds because the queue compares them in SQL.

CREATE TABLE generations (
    id              TEXT PRIMARY KEY NOT NULL,
    owner           TEXT,
    provider        TEXT NOT NULL,
    account         TEXT,
    kind            TEXT NOT NULL,
    parent_id       TEXT REFERENCES generations (id),
    prompt          TEXT NOT NULL,
    negative_prompt TEXT,
    parameters      TEXT NOT NULL DEFAULT '{}',
    category        TEXT,
    subject         TEXT,
    version         INTEGER NOT NULL DEFAULT 1,
    status          TEXT NOT NULL,
    phase           TEXT,
    progress        REAL NOT NULL DEFAULT 0,
    error_code      TEXT,
    error_message   TEXT,
    provider_refs   TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    completed_at    TEXT
) STRICT;

CREATE INDEX generations_lineage ON generations (category, subject, version);
CREATE INDEX generations_status ON generations (status);

CREATE TABLE images (
    id             TEXT PRIMARY KEY NOT NULL,
    generation_id  TEXT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    owner          TEXT,
    role           TEXT NOT NULL,
    storage_key    TEXT NOT NULL UNIQUE,
    public_url     TEXT,
    thumbnail_key  TEXT,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    format         TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    dominant_color TEXT,
    palette        TEXT NOT NULL DEFAULT '[]',
    category       TEXT,
    subject        TEXT,
    version        INTEGER NOT NULL DEFAULT 1,
    status         TEXT NOT NULL DEFAULT 'draft',
    favourite      INTEGER NOT NULL DEFAULT 0,
    public         INTEGER NOT NULL DEFAULT 0,
    tags           TEXT NOT NULL DEFAULT '[]',
    synthetic      INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    UNIQUE (generation_id, role)
) STRICT;

CREATE INDEX images_status ON images (status, category);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    generation_id    TEXT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    slot             TEXT NOT NULL,
    concurrency      INTEGER NOT NULL DEFAULT 1,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_slot ON jobs (slot, status);
CREATE UNIQUE INDEX jobs_generation ON jobs (generation_id);

CREATE TABLE events (
    generation_id TEXT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    phase         TEXT,
    progress      REAL NOT NULL,
    idx           INTEGER,
    image_id      TEXT,
    error_code    TEXT,
    error_message TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (generation_id, seq)
) STRICT;

-- An event is the record of a life-cycle step: writing it applies the step to its generation,
-- so one statement does both, atomically. The step's values (status, phase, progress) are
-- computed by the INSERT that writes the event (see catalogue/sqlite.rs, `advance`).
CREATE TRIGGER events_apply_to_generation AFTER INSERT ON events
BEGIN
    UPDATE generations SET
        status = NEW.status,
        phase = NEW.phase,
        progress = NEW.progress,
        error_code = COALESCE(NEW.error_code, error_code),
        error_message = COALESCE(NEW.error_message, error_message),
        started_at = CASE WHEN started_at IS NULL AND NEW.status = 'running'
                          THEN NEW.created_at ELSE started_at END,
        completed_at = CASE WHEN NEW.status IN ('succeeded', 'failed', 'canceled')
                            THEN NEW.created_at ELSE completed_at END
    WHERE id = NEW.generation_id;
END;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
