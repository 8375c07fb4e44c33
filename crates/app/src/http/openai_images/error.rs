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
    param: Option<String>,
    code: &'static str,
    /// The `Retry-After` of the problem it came from.
    retry_after: Option<HeaderValue>,
}

impl OpenAiError {
    pub(super) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param.to_owned()),
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

impl OpenAiError {
    /// A body the route could not read: a field refused by its type names that field, as
    /// OpenAI's `param` does, in words without the JSON reader's preamble and position.
    pub(super) fn body(p: Problem) -> Self {
        let unreadable = p.status == StatusCode::UNPROCESSABLE_ENTITY.as_u16();
        let mut e = Self::from(p);
        if unreadable {
            let (param, message) = field_error(&e.message);
            e.param = param;
            e.message = message;
        }
        e
    }
}

/// The field a deserialization error names (`n: invalid value…`, ``missing field `prompt` ``,
/// ``unknown field `steps` ``), and the error without the reader's preamble and position.
fn field_error(detail: &str) -> (Option<String>, String) {
    let text = detail
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(detail);
    let text = match text.rsplit_once(" at line ") {
        Some((head, tail)) if tail.split(" column ").all(|n| n.parse::<u64>().is_ok()) => head,
        _ => text,
    };
    let quoted = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    };
    let param = quoted("missing field `")
        .or_else(|| quoted("unknown field `"))
        .or_else(|| {
            let (path, _) = text.split_once(": ")?;
            path.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
                .then(|| path.to_owned())
                .filter(|p| !p.is_empty())
        });
    (param, text.to_owned())
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
    param: Option<String>,
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
    fn unreadable_bodies_name_their_field() {
        for (detail, param, message) in [
            (
                "Failed to deserialize the JSON body into the target type: n: invalid value: integer `-1`, expected u8 at line 1 column 8",
                Some("n"),
                "n: invalid value: integer `-1`, expected u8",
            ),
            (
                "Failed to deserialize the JSON body into the target type: missing field `prompt` at line 1 column 2",
                Some("prompt"),
                "missing field `prompt`",
            ),
            (
                "Failed to deserialize the JSON body into the target type: unknown field `steps`, expected one of `prompt`, `model` at line 1 column 30",
                Some("steps"),
                "unknown field `steps`, expected one of `prompt`, `model`",
            ),
            (
                "invalid type: string \"x\", expected u8 at line x",
                None,
                "invalid type: string \"x\", expected u8 at line x",
            ),
        ] {
            let e = OpenAiError::body(Problem::invalid(detail));
            assert_eq!(e.param.as_deref(), param, "{detail}");
            assert_eq!(e.message, message);
            assert_eq!(e.code, "invalid_value");
        }
        // Other problems keep their words.
        let e = OpenAiError::body(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "expected value at line 1 column 1",
        ));
        assert_eq!(
            (e.param, e.message.as_str()),
            (None, "expected value at line 1 column 1")
        );
    }

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
