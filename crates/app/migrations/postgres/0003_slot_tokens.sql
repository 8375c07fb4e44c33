-- A slot's limit as rows: a slot whose jobs run at most L at a time has tokens 1..L, and a
-- running job holds one, until its lease ends (`expires_at`, a copy of the job's
-- `lease_expires_at`, kept with it by claims and renewals). A claim takes a free token (none
-- holds it, or its holder's lease has run out) with `FOR UPDATE SKIP LOCKED` in the statement
-- that takes the job, so a claim is one statement; PostgreSQL re-checks a locked row's
-- condition against its newest version, so no two claims take one token, on any node.
-- `finish` and `retry` give the token back. See catalogue/postgres/queue.rs.
CREATE TABLE slot_tokens (
    slot       text NOT NULL,
    n          integer NOT NULL,
    job_id     uuid,
    expires_at timestamptz,
    PRIMARY KEY (slot, n)
);

-- The tokens of the slots already queued, up to the largest limit their jobs asked for.
INSERT INTO slot_tokens (slot, n)
SELECT slot, generate_series(1, MAX(concurrency)) FROM jobs GROUP BY slot;

-- Running jobs hold them, numbered within their slot (a slot may run more than its limit
-- after the limit was lowered: those extra jobs hold none).
UPDATE slot_tokens t SET job_id = r.id, expires_at = r.lease_expires_at
FROM (SELECT id, slot, lease_expires_at,
             row_number() OVER (PARTITION BY slot ORDER BY lease_expires_at DESC) AS n
      FROM jobs WHERE status = 'running') r
WHERE t.slot = r.slot AND t.n = r.n;

-- The last event number of each generation, kept with it: a life-cycle step reads it with
-- the generation's row lock, in the same statement (catalogue/postgres/writes.rs).
ALTER TABLE generations ADD COLUMN last_seq integer;
UPDATE generations g SET last_seq = e.last
FROM (SELECT generation_id, MAX(seq) AS last FROM events GROUP BY generation_id) e
WHERE g.id = e.generation_id;
UPDATE generations SET last_seq = 0 WHERE last_seq IS NULL;
ALTER TABLE generations ALTER COLUMN last_seq SET DEFAULT 0, ALTER COLUMN last_seq SET NOT NULL;
