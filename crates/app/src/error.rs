//! The application's error: what every front-end (CLI, HTTP, MCP) maps to its own codes.

use crate::catalogue::CatalogueError;
use crate::domain::Failure;
use crate::pipeline::PipelineError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: nothing was written. (CLI exit 2, HTTP 400/422.)
    #[error("{0}")]
    Invalid(String),
    /// An id that names nothing. (CLI exit 2, HTTP 404.)
    #[error("{0} not found")]
    NotFound(String),
    /// Something that cannot happen now and will not later (try again does not help): a
    /// generation that has already ended cannot be canceled. (CLI exit 2, HTTP 409.)
    #[error("{0}")]
    WrongState(String),
    /// Something that cannot happen now but may later (a full queue). (CLI exit 1, HTTP 409.)
    #[error("{0}")]
    Conflict(String),
    /// A provider's queue holds as many jobs as its accounts take; nothing was queued, and the
    /// same request may succeed later. (CLI exit 1, HTTP 503 with `Retry-After`.)
    #[error("{0}")]
    QueueFull(String),
    /// The actor may not do this (a user asking for an administrator's use case). (HTTP 403.)
    #[error("{0}")]
    Forbidden(String),
    /// The owner's balance is short of a generation's cost; nothing was queued. (HTTP 402.)
    #[error("{needed} credits needed, {balance} left: nothing was queued")]
    InsufficientCredits { needed: i64, balance: i64 },
    /// A generation ended in failure. (CLI exit 1.)
    #[error("generation failed: {0}")]
    Failed(Failure),
    #[error(transparent)]
    Catalogue(CatalogueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
    /// The CLI's `--server` mode: the server could not be reached, or its answer broke off.
    /// (CLI exit 1.)
    #[error("{0}")]
    Unreachable(String),
    /// The CLI's `--server` mode: a problem the server answered that no other variant stands
    /// for (401, 429, 5xx…), with the server's code. (CLI exit 1.)
    #[error("{message}")]
    Remote {
        status: u16,
        code: String,
        message: String,
    },
}

impl From<CatalogueError> for AppError {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::NotFound(what) => Self::NotFound(what),
            CatalogueError::Conflict(what) => Self::Conflict(what),
            other @ (CatalogueError::Other(_) | CatalogueError::Refused(_)) => {
                Self::Catalogue(other)
            }
        }
    }
}

impl From<PipelineError> for AppError {
    fn from(e: PipelineError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<crate::domain::Invalid> for AppError {
    fn from(e: crate::domain::Invalid) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl AppError {
    /// Whether the user's input was at fault (exit code 2) rather than the run (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::NotFound(_) | Self::WrongState(_)
        )
    }
}

impl From<crate::domain::AccountInvalid> for AppError {
    fn from(e: crate::domain::AccountInvalid) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<crate::domain::CreditsInvalid> for AppError {
    fn from(e: crate::domain::CreditsInvalid) -> Self {
        match e {
            crate::domain::CreditsInvalid::NotAdmin => Self::Forbidden(e.to_string()),
            e => Self::Invalid(e.to_string()),
        }
    }
}
