-- The claim takes the first due pending job in (run_at, id) order: with `id` in the index the
-- scan stops at the first job whose slot has room instead of sorting the whole queue, so a
-- claim costs the same with ten queued jobs or ten thousand.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (status, run_at, id);
