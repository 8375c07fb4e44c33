-- Puts every generation's job back in the queue, pending and due (slot limit 64: never full).
TRUNCATE jobs;
INSERT INTO jobs (id, generation_id, kind, slot, concurrency, max_attempts, run_at)
  SELECT gen_random_uuid(), id, 'generate', 'bench_queue', 64, 1, statement_timestamp() FROM generations;
TRUNCATE slot_tokens;
INSERT INTO slot_tokens (slot, n) SELECT 'bench_queue', generate_series(1, 64);
VACUUM ANALYZE jobs;
VACUUM ANALYZE slot_tokens;
