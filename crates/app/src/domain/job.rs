//! A durable job: the unit of work the queue hands to a worker.

use super::{ErrorCode, Failure, GenerationId, JobId};

/// What a job does. Stored as text; the payload is JSON.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JobKind {
    /// Run a generation through its provider to the end (grid, then upscales).
    Generate,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "generate" => Some(Self::Generate),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl JobStatus {
    /// Succeeded, failed or canceled: nobody holds or will run the job.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }
}

/// A job as the queue holds it. Times are Unix milliseconds: the queue compares them in SQL.
#[derive(Clone, PartialEq, Debug)]
pub struct Job {
    pub id: JobId,
    pub generation_id: GenerationId,
    pub kind: JobKind,
    /// The concurrency slot: jobs of one provider account share one.
    pub slot: String,
    /// How many jobs of this slot may run at once.
    pub concurrency: u32,
    pub status: JobStatus,
    /// Runs started from the queue (the first, then each retry), including the current one:
    /// the provider-failure budget, up to `max_attempts`.
    pub attempts: u32,
    /// Claims of the job after its worker stopped without recording an end (its lease ran
    /// out): they do not spend `attempts`.
    pub takeovers: u32,
    pub max_attempts: u32,
    pub run_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub cancel_requested: bool,
}

/// What the holder of a lease learns when it renews it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lease {
    Held,
    /// Someone asked to cancel: stop and report the generation canceled.
    CancelRequested,
    /// The lease expired and was taken over, or the job is gone: stop without writing.
    Lost,
}

/// What a worker does with a job it has just claimed. The job life cycle's rules live here
/// and in [`Job::after_retryable_failure`], so every catalogue and worker applies the same.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OnClaim {
    Run,
    /// Canceled while nobody held it (its worker died, or it waited for a retry).
    Cancel,
    /// End the generation with this failure, without running it.
    GiveUp(Failure),
}

/// What becomes of a job whose run failed with a retryable error.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AfterFailure {
    /// Back to the queue: the budget has attempts left.
    Retry,
    /// The budget is spent: the generation fails with this.
    Fail(Failure),
}

impl Job {
    /// A takeover (a claim after the worker stopped without a word) spends no attempt, so a
    /// job killed with its process resumes however often that happens; but a job taken over
    /// more than `max_takeovers` times is given up, since it may be what stops its worker.
    pub fn on_claim(&self, max_takeovers: u32) -> OnClaim {
        if self.cancel_requested {
            return OnClaim::Cancel;
        }
        if self.takeovers > max_takeovers {
            return OnClaim::GiveUp(Failure::new(
                ErrorCode::Internal,
                format!(
                    "gave up after {} takeovers: each worker that ran this job stopped without \
                     recording an end (killed or crashed), so the job may be what stops its \
                     worker (limit: [jobs] max_takeovers = {max_takeovers})",
                    self.takeovers
                ),
            ));
        }
        if self.attempts > self.max_attempts {
            // Only a catalogue from before takeovers were counted apart gets here.
            let last = self.last_error.as_deref().unwrap_or("none recorded");
            let code = last
                .split_once(':')
                .and_then(|(code, _)| code.parse().ok())
                .unwrap_or(ErrorCode::Internal);
            return OnClaim::GiveUp(Failure::new(
                code,
                format!(
                    "gave up after {} attempts; last error: {last}",
                    self.max_attempts
                ),
            ));
        }
        OnClaim::Run
    }

    /// A retryable failure goes back to the queue while attempts are left.
    pub fn after_retryable_failure(&self, failure: &Failure) -> AfterFailure {
        if self.attempts >= self.max_attempts {
            return AfterFailure::Fail(Failure::new(
                failure.code,
                format!(
                    "gave up after {} attempts: {}",
                    self.attempts, failure.message
                ),
            ));
        }
        AfterFailure::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(attempts: u32, takeovers: u32) -> Job {
        Job {
            id: JobId::new(),
            generation_id: GenerationId::new(),
            kind: JobKind::Generate,
            slot: "sandbox:local".into(),
            concurrency: 1,
            status: JobStatus::Running,
            attempts,
            takeovers,
            max_attempts: 5,
            run_at: 0,
            lease_owner: Some("w".into()),
            lease_expires_at: Some(1),
            last_error: None,
            cancel_requested: false,
        }
    }

    #[test]
    fn takeovers_have_their_own_limit_and_say_so() {
        assert_eq!(job(1, 10).on_claim(10), OnClaim::Run);
        let OnClaim::GiveUp(f) = job(1, 11).on_claim(10) else {
            panic!("given up");
        };
        assert_eq!(f.code, ErrorCode::Internal);
        assert!(
            f.message.starts_with("gave up after 11 takeovers"),
            "{}",
            f.message
        );
        assert!(f.message.contains("max_takeovers = 10"), "{}", f.message);
    }

    #[test]
    fn a_cancel_wins_and_attempts_are_the_failure_budget() {
        let mut j = job(1, 50);
        j.cancel_requested = true;
        assert_eq!(j.on_claim(10), OnClaim::Cancel);
        let timeout = Failure::new(ErrorCode::Timeout, "slow");
        assert_eq!(
            job(4, 0).after_retryable_failure(&timeout),
            AfterFailure::Retry
        );
        let AfterFailure::Fail(f) = job(5, 0).after_retryable_failure(&timeout) else {
            panic!("the budget is spent");
        };
        assert_eq!(
            (f.code, f.message.as_str()),
            (ErrorCode::Timeout, "gave up after 5 attempts: slow")
        );
    }
}
