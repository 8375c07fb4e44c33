//! The REST client's error type.
//!
//! No variant ever carries the token: it only lives in a request header marked sensitive,
//! and Discord does not echo it back.

use std::time::Duration;

/// Everything a REST call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// HTTP 401: the token is invalid or expired.
    #[error("Discord rejected the token (HTTP 401)")]
    Unauthorized,
    /// Still rate limited after the configured retries, or asked to wait longer than the
    /// configured maximum.
    #[error("rate limited on {route}; retry after {retry_after:?}")]
    RateLimited {
        route: String,
        retry_after: Duration,
        global: bool,
    },
    /// Any other non-success status, with Discord's JSON error code and message when the
    /// body had them. `errors` is the compact JSON of the field errors (`50035`).
    #[error("HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Http {
        status: u16,
        code: Option<u64>,
        message: String,
        errors: Option<String>,
    },
    /// A success response whose body was not what the endpoint promises.
    #[error("unexpected response body: {0}")]
    Decode(String),
    /// Connection, TLS or timeout failure.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The application command index has no command with that name.
    #[error("application {application_id} has no command named {name:?}")]
    CommandNotFound {
        application_id: String,
        name: String,
    },
    /// An id that is not a snowflake (digits only) was passed in.
    #[error("not a Discord id: {0:?}")]
    InvalidId(String),
    /// A download exceeded the size limit.
    #[error("download larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The client could not be built from its configuration.
    #[error("invalid REST configuration: {0}")]
    Config(String),
}

impl RestError {
    /// HTTP status, when the failure came with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized => Some(401),
            Self::RateLimited { .. } => Some(429),
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when an application command was refused because its id/version is stale
    /// (the bot re-registered its commands): refresh the command index and retry.
    pub fn is_outdated_command(&self) -> bool {
        let Self::Http {
            status: 400 | 404,
            code,
            message,
            errors,
        } = self
        else {
            return false;
        };
        let errors = errors.as_deref().unwrap_or_default();
        errors.contains("INTERACTION_APPLICATION_COMMAND_INVALID_VERSION")
            || errors.contains("APPLICATION_COMMAND_INVALID_VERSION")
            || message.contains("Unknown Integration")
            || message.contains("outdated")
            || *code == Some(10063)
    }

    /// True for 404 "Unknown Message" (code 10008): the target message is gone.
    pub fn is_unknown_message(&self) -> bool {
        matches!(
            self,
            Self::Http {
                code: Some(10008),
                ..
            }
        )
    }

    /// True when the same request may succeed later without any change: rate limits,
    /// transport failures and Discord-side 5xx errors.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transport(_) => true,
            Self::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Builds an [`RestError::Http`] from a failed response body.
    pub(crate) fn from_body(status: u16, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            code: Option<u64>,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            errors: Option<serde_json::Value>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(parsed) => Self::Http {
                status,
                code: parsed.code,
                message: parsed.message.unwrap_or_default(),
                errors: parsed.errors.map(|e| truncate(&e.to_string(), 2048)),
            },
            Err(_) => Self::Http {
                status,
                code: None,
                message: truncate(&String::from_utf8_lossy(body), 200),
                errors: None,
            },
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::RestError;

    #[test]
    fn recognises_an_outdated_command() {
        let body = br#"{"message":"Invalid Form Body","code":50035,"errors":{"data":{"_errors":[
            {"code":"INTERACTION_APPLICATION_COMMAND_INVALID_VERSION",
             "message":"This command is outdated, please try again in a few minutes"}]}}}"#;
        let error = RestError::from_body(400, body);
        assert!(error.is_outdated_command());
        assert_eq!(
            error.to_string(),
            "HTTP 400 (code 50035): Invalid Form Body"
        );
        let unknown = RestError::from_body(404, br#"{"message":"Unknown Message","code":10008}"#);
        assert!(unknown.is_unknown_message() && !unknown.is_outdated_command());
    }

    #[test]
    fn non_json_bodies_are_truncated() {
        let body = "<html>".repeat(100);
        let RestError::Http { message, code, .. } = RestError::from_body(502, body.as_bytes())
        else {
            panic!("not Http");
        };
        assert_eq!(code, None);
        assert!(message.chars().count() <= 201);
    }
}
