//! The drop-in route's errors as OpenAI's API writes them, `{"error": {message, type, param,
//! code}}`, mapped from the API's problems (statuses OpenAI does not use become its own).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Problem;
use crate::error::AppError;

/// An error as OpenAI's API writes it: `{"error": {message, type, param, code}}`.
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: &'static str,
    /// The `Retry-After` of the problem it came from.
    retry_after: Option<HeaderValue>,
}

impl OpenAiError {
    pub(super) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param),
            code: "invalid_value",
            retry_after: None,
        }
    }

    pub(super) fn status(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code,
            retry_after: None,
        }
    }
}

impl From<Problem> for OpenAiError {
    fn from(p: Problem) -> Self {
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (status, code) = match status {
            // OpenAI answers bad input with 400, and a key with no credit left with 429.
            StatusCode::UNPROCESSABLE_ENTITY => (StatusCode::BAD_REQUEST, "invalid_value"),
            StatusCode::UNAUTHORIZED => (status, "invalid_api_key"),
            StatusCode::PAYMENT_REQUIRED => (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota"),
            StatusCode::TOO_MANY_REQUESTS => (status, "rate_limit_exceeded"),
            _ => (status, p.code),
        };
        let detail = p.detail.clone();
        let retry_after = p
            .into_response()
            .headers()
            .get(header::RETRY_AFTER)
            .cloned();
        Self {
            status,
            message: detail,
            param: None,
            code,
            retry_after,
        }
    }
}

impl From<AppError> for OpenAiError {
    fn from(e: AppError) -> Self {
        Problem::from(e).into()
    }
}

/// OpenAI's error body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiErrorBody)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiErrorDetail)]
struct ErrorDetail {
    message: String,
    /// `invalid_request_error`, `insufficient_quota`, `requests` or `server_error`.
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'static str>,
    code: &'static str,
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            429 if self.code == "insufficient_quota" => "insufficient_quota",
            429 => "requests",
            500.. => "server_error",
            _ => "invalid_request_error",
        };
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                kind,
                param: self.param,
                code: self.code,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(v) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_become_openai_errors_with_their_headers() {
        let e = OpenAiError::from(Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits",
            "short",
        ));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota")
        );
        let e = OpenAiError::from(Problem::invalid("bad"));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "invalid_value")
        );
        let e = OpenAiError::from(
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow").retry_after(7),
        );
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }
}
