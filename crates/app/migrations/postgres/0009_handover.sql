-- The pick of a claim made as a job ends (catalogue/postgres/queue.rs, FINISH_AND_CLAIM): the
-- worker that ends job `ended` asks for its next job in the same statement, and the token
-- `ended` held counts as free, so that it can pass straight to the next job of its slot. The
-- statement itself makes sure the ender still held `ended`, and that no claimer waits for
-- room in its slot, before it hands the token on (it passes NULL otherwise); here `ended` is
-- only never picked (a job whose lease ran out while its worker was ending it).
--
-- The pick's rules are written once, here; the three-argument form (0008) is this one with no
-- job ending, kept for nodes that still call it during an upgrade.
CREATE FUNCTION atelier_next_job(slots text[], passed text[], only_generation uuid, ended uuid)
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
            AND x.id IS DISTINCT FROM ended
            AND EXISTS (SELECT 1 FROM slot_tokens t
                         WHERE t.slot = x.slot AND t.n <= x.concurrency
                           AND (t.job_id IS NULL OR t.expires_at < statement_timestamp()
                                OR t.job_id = x.id OR t.job_id = ended))
          ORDER BY x.run_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED),
        (SELECT x.id FROM jobs x
          WHERE x.status = 'pending' AND x.run_at <= statement_timestamp()
            AND x.slot = ANY (slots) AND NOT x.slot = ANY (passed)
            AND (only_generation IS NULL OR x.generation_id = only_generation)
            AND EXISTS (SELECT 1 FROM slot_tokens t
                         WHERE t.slot = x.slot AND t.n <= x.concurrency
                           AND (t.job_id IS NULL OR t.expires_at < statement_timestamp()
                                OR t.job_id = x.id OR t.job_id = ended))
          ORDER BY x.run_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED));
END
$$;

CREATE OR REPLACE FUNCTION atelier_next_job(slots text[], passed text[], only_generation uuid)
RETURNS uuid
LANGUAGE sql VOLATILE
AS $$ SELECT atelier_next_job(slots, passed, only_generation, NULL::uuid) $$;

-- As 0008 closed the first form: nobody's but the owner's to call.
REVOKE EXECUTE ON FUNCTION atelier_next_job(text[], text[], uuid, uuid) FROM PUBLIC;
DO $$
DECLARE
    grantee text;
BEGIN
    FOREACH grantee IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF to_regrole(grantee) IS NOT NULL THEN
            EXECUTE format(
                'REVOKE EXECUTE ON FUNCTION atelier_next_job(text[], text[], uuid, uuid) FROM %I',
                grantee);
        END IF;
    END LOOP;
END
$$;
