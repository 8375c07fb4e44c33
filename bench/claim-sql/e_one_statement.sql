-- The floor: one statement claims (no slot limit, no lock), one finishes; what graphile-worker sends per job.
WITH j AS (SELECT j.id FROM jobs j WHERE j.slot = ANY ('{bench_queue}') AND j.status = 'pending' AND j.run_at <= statement_timestamp()
  ORDER BY j.run_at, j.id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE jobs SET status = 'running', lease_owner = 'w', lease_expires_at = statement_timestamp() + make_interval(secs => 30000::float8 / 1000),
  attempts = attempts + 1, updated_at = statement_timestamp() FROM j WHERE jobs.id = j.id RETURNING jobs.id AS jid \gset
UPDATE jobs SET status = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, updated_at = statement_timestamp() WHERE id = :jid AND lease_owner = 'w' AND status = 'running';
