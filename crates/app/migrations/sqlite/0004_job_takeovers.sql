-- A job taken over after its worker stopped without a word (killed, crashed: its lease ran
-- out) counts a takeover, not an attempt: `attempts` is the provider-failure budget
-- (`max_attempts`), `takeovers` has its own, higher limit (`[jobs] max_takeovers`).
ALTER TABLE jobs ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
