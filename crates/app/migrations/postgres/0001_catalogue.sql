-- The catalogue on PostgreSQL (Supabase and others). Append-only: never edit a shipped
-- migration. The tables and their meaning are SQLite's (migrations/sqlite), in native types so
-- that Supabase's dashboard and client libraries read them as they are: uuid ids, timestamptz
-- times (jobs' too: the queue compares them with the database's clock), jsonb documents,
-- text[] tags, boolean flags. The life cycle's rules are the domain's (`Stage::apply`): no
-- trigger here repeats them.

CREATE TABLE generations (
    id              uuid PRIMARY KEY,
    -- The signed-in user (Supabase's `auth.uid()`) the generation belongs to, if any.
    owner           uuid,
    provider        text NOT NULL,
    account         text,
    kind            text NOT NULL,
    parent_id       uuid REFERENCES generations (id),
    prompt          text NOT NULL,
    negative_prompt text,
    parameters      jsonb NOT NULL DEFAULT '{}',
    category        text,
    subject         text,
    version         integer NOT NULL DEFAULT 1,
    status          text NOT NULL,
    phase           text,
    progress        double precision NOT NULL DEFAULT 0,
    error_code      text,
    error_message   text,
    provider_refs   jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    completed_at    timestamptz
);

CREATE INDEX generations_lineage ON generations (category, subject, version);
CREATE INDEX generations_status ON generations (status);
CREATE INDEX generations_owner ON generations (owner);

CREATE TABLE images (
    id             uuid PRIMARY KEY,
    generation_id  uuid NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    owner          uuid,
    role           text NOT NULL,
    storage_key    text NOT NULL UNIQUE,
    public_url     text,
    thumbnail_key  text,
    width          integer NOT NULL,
    height         integer NOT NULL,
    format         text NOT NULL,
    size_bytes     bigint NOT NULL,
    sha256         text NOT NULL,
    dominant_color text,
    -- `#rrggbb` strings, most frequent first.
    palette        jsonb NOT NULL DEFAULT '[]',
    category       text,
    subject        text,
    version        integer NOT NULL DEFAULT 1,
    status         text NOT NULL DEFAULT 'draft',
    favourite      boolean NOT NULL DEFAULT false,
    public         boolean NOT NULL DEFAULT false,
    tags           text[] NOT NULL DEFAULT '{}',
    synthetic      boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    UNIQUE (generation_id, role)
);

CREATE INDEX images_status ON images (status, category);
CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_tags ON images USING gin (tags);

-- Leases and due times are the database's clock (`statement_timestamp()`), never a node's.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    generation_id    uuid NOT NULL UNIQUE REFERENCES generations (id) ON DELETE CASCADE,
    kind             text NOT NULL,
    slot             text NOT NULL,
    concurrency      integer NOT NULL DEFAULT 1,
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    -- Claims after the worker stopped without a word (its lease ran out): not attempts.
    takeovers        integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    run_at           timestamptz NOT NULL,
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT statement_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT statement_timestamp()
);

CREATE INDEX jobs_due ON jobs (status, run_at, id);
-- The live leases of a slot, counted by every claim.
CREATE INDEX jobs_leases ON jobs (slot, lease_expires_at) WHERE status = 'running';

CREATE TABLE events (
    generation_id uuid NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    -- The event's place in the feed of all events: writers of events take one advisory lock
    -- (see catalogue/postgres.rs), so positions are committed in the order they are given.
    position      bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind          text NOT NULL,
    status        text NOT NULL,
    phase         text,
    progress      double precision NOT NULL,
    idx           smallint,
    image_id      uuid,
    error_code    text,
    error_message text,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (generation_id, seq)
);

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- What a process last saw of a provider account's health; the latest record wins.
CREATE TABLE accounts (
    provider    text NOT NULL,
    account     text NOT NULL,
    health      text NOT NULL,
    reason      text,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (provider, account)
);

-- Which node holds a provider account (a Discord account must have one gateway session at a
-- time), until `expires_at` by the database's clock.
CREATE TABLE account_holds (
    account    text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
