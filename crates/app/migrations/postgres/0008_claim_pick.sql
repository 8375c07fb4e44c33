-- The claim's pick (catalogue/postgres/queue.rs), planned the same way whatever the table's
-- statistics say. Written in the claim's statement, the pick was planned from statistics, and a
-- queue filled faster than autovacuum analyses it has none: PostgreSQL then guessed a couple of
-- due jobs and chose a bitmap scan of every due job, a sort, and the token check on each, so a
-- claim cost O(queue depth) (4.9 ms against 0.22 ms on 2,000 fresh jobs) until the next
-- ANALYZE. With bitmap scans off for the function's own statements, a table without
-- statistics gets the walk of `jobs_due` in (`run_at`, `id`) order that stops at the first job
-- qualifying, whatever the depth; with statistics the planner may still prefer a sequential
-- scan and a sort when the claim's slots hold few of the due jobs (then the walk would also
-- pass most of them). Bitmap scans stay on everywhere else (the tag search needs them).
--
-- The next job to run, locked (FOR UPDATE SKIP LOCKED): among jobs of `slots`, less those of
-- `passed`, and of `only_generation` when given; first a running job whose lease ran out (its
-- worker stopped), then a pending job that is due, each in (`run_at`, `id`) order; only a job
-- whose slot has a free token (none holds it, its holder's lease ran out, or it is the job's
-- own). NULL when there is none. Volatile: it locks rows, so a caller runs it once per claim.
CREATE FUNCTION atelier_next_job(slots text[], passed text[], only_generation uuid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off
AS $$
BEGIN
    RETURN COALESCE(
        (SELECT x.id FROM jobs x
          WHERE x.status = 'running' AND x.lease_expires_at < statement_timestamp()
            AND x.slot = ANY (slots) AND NOT x.slot = ANY (passed)
            AND (only_generation IS NULL OR x.generation_id = only_generation)
            AND EXISTS (SELECT 1 FROM slot_tokens t
                         WHERE t.slot = x.slot AND t.n <= x.concurrency
                           AND (t.job_id IS NULL OR t.expires_at < statement_timestamp()
                                OR t.job_id = x.id))
          ORDER BY x.run_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED),
        (SELECT x.id FROM jobs x
          WHERE x.status = 'pending' AND x.run_at <= statement_timestamp()
            AND x.slot = ANY (slots) AND NOT x.slot = ANY (passed)
            AND (only_generation IS NULL OR x.generation_id = only_generation)
            AND EXISTS (SELECT 1 FROM slot_tokens t
                         WHERE t.slot = x.slot AND t.n <= x.concurrency
                           AND (t.job_id IS NULL OR t.expires_at < statement_timestamp()
                                OR t.job_id = x.id))
          ORDER BY x.run_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED));
END
$$;

-- Slots a claim found full (every token held) when it found no job to take: a claimer there
-- may be waiting for room, so the next `finish` in the slot sends NOTIFY and takes the mark
-- off. Without a mark a finish sends none (NOTIFY serialises the commits of every transaction
-- that sends it, which had made every finish in a busy slot wait for the others).
CREATE TABLE slot_waits (slot text PRIMARY KEY);

-- Closed to every role but the owner (Atelier's), as the other queue tables are: RLS without a
-- policy lets nobody else in (Supabase's Data API would otherwise offer the tokens to its anon
-- and authenticated roles, who could break the slots' limits), and the pick, which locks jobs,
-- is not anyone's to call: not PUBLIC's, nor the roles Supabase grants every new function to.
-- `slot_tokens` (0003) missed this; so did sqlx's own table, closed here when Atelier's role
-- owns it (it made it, unless another role ran the first migrations).
ALTER TABLE slot_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE slot_waits ENABLE ROW LEVEL SECURITY;
REVOKE EXECUTE ON FUNCTION atelier_next_job(text[], text[], uuid) FROM PUBLIC;
DO $$
DECLARE
    grantee text;
BEGIN
    FOREACH grantee IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF to_regrole(grantee) IS NOT NULL THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION atelier_next_job(text[], text[], uuid) FROM %I',
                           grantee);
        END IF;
    END LOOP;
    IF pg_has_role((SELECT relowner FROM pg_class WHERE oid = '_sqlx_migrations'::regclass),
                   'USAGE') THEN
        ALTER TABLE _sqlx_migrations ENABLE ROW LEVEL SECURITY;
    END IF;
END
$$;
