-- The claim as catalogue/postgres/queue.rs sends it (6 round trips: BEGIN, PICK, slot lock, live count, TAKE, COMMIT), then finish (with NOTIFY).
BEGIN;
SELECT j.id AS jid, j.slot AS slot, j.concurrency AS conc FROM jobs j
 WHERE j.slot = ANY ('{bench_queue}') AND NOT j.slot = ANY ('{}') AND (NULL::uuid IS NULL OR j.generation_id = NULL)
   AND ((j.status = 'running' AND j.lease_expires_at < statement_timestamp()) OR (j.status = 'pending' AND j.run_at <= statement_timestamp()))
   AND (SELECT COUNT(*) FROM jobs r WHERE r.slot = j.slot AND r.status = 'running' AND r.lease_expires_at >= statement_timestamp() AND r.id <> j.id) < j.concurrency
 ORDER BY j.status = 'running' DESC, j.run_at, j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED \gset
SELECT pg_advisory_xact_lock(hashtext('atelier.slot.' || :slot));
SELECT COUNT(*) FROM jobs WHERE slot = :slot AND status = 'running' AND lease_expires_at >= statement_timestamp() AND id <> :jid;
UPDATE jobs SET status = 'running', lease_owner = 'w', lease_expires_at = statement_timestamp() + make_interval(secs => 30000::float8 / 1000),
  attempts = attempts + (status = 'pending')::int, takeovers = takeovers + (status = 'running')::int, updated_at = statement_timestamp()
  WHERE id = :jid RETURNING *;
COMMIT;
WITH done AS (
  UPDATE jobs SET status = 'succeeded', last_error = COALESCE(NULL, last_error),
      lease_owner = NULL, lease_expires_at = NULL, updated_at = statement_timestamp()
  WHERE id = :jid AND lease_owner = 'w' AND status = 'running' RETURNING 1)
SELECT COUNT(*) FROM (SELECT pg_notify('atelier_work', '') FROM done) n;
