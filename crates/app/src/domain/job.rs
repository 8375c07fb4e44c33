//! A durable job: the unit of work the queue hands to a worker.

use super::{GenerationId, JobId};

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
    /// Claims so far, including the current one.
    pub attempts: u32,
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
