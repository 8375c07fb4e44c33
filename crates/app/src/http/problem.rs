//! Errors as `application/problem+json` (RFC 9457) with a stable `code` per kind, mapped once
//! from `AppError`: bad input is a 4xx naming what was wrong, never a 5xx.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::AppError;

/// One problem document.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Problem {
    /// `about:blank`: the status says the kind, and `code` says it precisely.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// Stable, for programs: `invalid_input`, `not_found`, `conflict`, …
    pub code: &'static str,
    /// For people: what was wrong, and how to fix it when there is a way.
    pub detail: String,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// Tells the client when to try again (`Retry-After`, in seconds).
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(m) => Self::invalid(m),
            AppError::NotFound(what) => Self::not_found(format!("{what} not found")),
            AppError::QueueFull(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", m).retry_after(30)
            }
            AppError::Conflict(m) | AppError::WrongState(m) => {
                Self::new(StatusCode::CONFLICT, "conflict", m)
            }
            AppError::Forbidden(m) => Self::forbidden(m),
            e @ AppError::InsufficientCredits { .. } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                e.to_string(),
            ),
            AppError::Failed(f) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "generation_failed",
                f.to_string(),
            ),
            other @ (AppError::Catalogue(_)
            | AppError::Store(_)
            | AppError::Internal(_)
            | AppError::Unreachable(_)
            | AppError::Remote { .. }) => {
                // The detail stays in the log: it may name files and hosts.
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the server could not complete the request; try again",
                )
                .retry_after(5)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let mut response = (status, axum::Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// What a handler returns: a value or a problem.
pub type Answer<T> = Result<T, Problem>;
