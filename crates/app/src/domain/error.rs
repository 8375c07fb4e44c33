//! Typed failure codes of the generation life cycle (product.md §4.2).

use std::fmt;
use std::str::FromStr;

/// Why a generation failed. Stable names: they are stored and shown to API clients.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ErrorCode {
    BannedPrompt,
    InvalidParameter,
    QueueFull,
    ProviderUnavailable,
    Timeout,
    DownloadFailed,
    IntegrityFailed,
    InsufficientCredits,
    Canceled,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        Self::BannedPrompt,
        Self::InvalidParameter,
        Self::QueueFull,
        Self::ProviderUnavailable,
        Self::Timeout,
        Self::DownloadFailed,
        Self::IntegrityFailed,
        Self::InsufficientCredits,
        Self::Canceled,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BannedPrompt => "banned_prompt",
            Self::InvalidParameter => "invalid_parameter",
            Self::QueueFull => "queue_full",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::Timeout => "timeout",
            Self::DownloadFailed => "download_failed",
            Self::IntegrityFailed => "integrity_failed",
            Self::InsufficientCredits => "insufficient_credits",
            Self::Canceled => "canceled",
            Self::Internal => "internal",
        }
    }

    /// Whether trying the same job again later may succeed. A corrupt download is retried
    /// because the provider usually serves a good copy on the next fetch.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::QueueFull
                | Self::ProviderUnavailable
                | Self::Timeout
                | Self::DownloadFailed
                | Self::IntegrityFailed
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown error code {s:?}"))
    }
}

/// A failure with its code and a human message (never containing secrets).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}
