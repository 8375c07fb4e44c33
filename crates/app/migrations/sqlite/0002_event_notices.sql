-- Events that are not an end may carry an error as a notice (e.g. "the account was taken out
-- of the pool; the job moves to another"): only a failed or canceled event sets the
-- generation's error, so a generation that later succeeds keeps none.
DROP TRIGGER events_apply_to_generation;

CREATE TRIGGER events_apply_to_generation AFTER INSERT ON events
BEGIN
    UPDATE generations SET
        status = NEW.status,
        phase = NEW.phase,
        progress = NEW.progress,
        error_code = CASE WHEN NEW.status IN ('failed', 'canceled')
                          THEN COALESCE(NEW.error_code, error_code) ELSE error_code END,
        error_message = CASE WHEN NEW.status IN ('failed', 'canceled')
                             THEN COALESCE(NEW.error_message, error_message) ELSE error_message END,
        started_at = CASE WHEN started_at IS NULL AND NEW.status = 'running'
                          THEN NEW.created_at ELSE started_at END,
        completed_at = CASE WHEN NEW.status IN ('succeeded', 'failed', 'canceled')
                            THEN NEW.created_at ELSE completed_at END
    WHERE id = NEW.generation_id;
END;
