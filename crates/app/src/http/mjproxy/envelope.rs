//! The proxy's answer to a submit, `{code, description, result, properties}`, and its errors
//! in the same envelope: `code` is the proxy's (1 submitted, 21 waiting for a form, 22 queued
//! behind others, 3 not found, 4 validation error, 9 failure, 23 queue full, 24 banned prompt), the HTTP status the
//! one Atelier gives the same trouble (400, 401, 404, 409, 503…), so a client that reads
//! `code` and one that checks the status both see it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::super::Problem;
use crate::error::AppError;

/// Submitted.
pub const SUCCESS: u16 = 1;
/// No such task.
pub const NOT_FOUND: u16 = 3;
/// Bad input, or a task in the wrong state.
pub const VALIDATION_ERROR: u16 = 4;
/// Anything else, and what this server does not do.
pub const FAILURE: u16 = 9;
/// The button opened a form: the task waits for `POST /mj/submit/modal`.
pub const EXISTED: u16 = 21;
/// Submitted behind others of the same provider.
pub const IN_QUEUE: u16 = 22;
/// The provider's queue is full: try again later.
pub const QUEUE_REJECTED: u16 = 23;
/// The prompt holds a word the server refuses.
pub const BANNED_PROMPT: u16 = 24;

/// The submit envelope.
#[derive(Serialize, Debug, utoipa::ToSchema)]
#[schema(as = MjSubmitResult)]
pub struct Envelope {
    pub code: u16,
    pub description: String,
    /// The task id, when one was made.
    pub result: Option<String>,
    #[schema(value_type = Object)]
    pub properties: Value,
}

impl Envelope {
    /// A button that opened a form: code 21, `result` the task waiting for it, and the form's
    /// value as it opens (`finalPrompt`).
    pub fn modal(task: &crate::api::mjproxy::Task) -> Self {
        Self {
            code: EXISTED,
            description: "Waiting for window confirm".into(),
            result: Some(task.id.clone()),
            properties: json!({
                "finalPrompt": task.properties["finalPrompt"],
                "remix": true,
            }),
        }
    }

    /// Success (code 1) with `result` and no properties.
    pub fn ok(description: impl Into<String>, result: String) -> Self {
        Self {
            code: SUCCESS,
            description: description.into(),
            result: Some(result),
            properties: json!({}),
        }
    }

    pub fn submitted(id: String, ahead: u64) -> Self {
        if ahead == 0 {
            Self::ok("Submit success", id)
        } else {
            Self {
                code: IN_QUEUE,
                description: format!("In queue, there are {ahead} tasks ahead"),
                result: Some(id),
                properties: json!({"numberOfQueues": ahead}),
            }
        }
    }
}

/// An error answered in the envelope.
#[derive(Debug)]
pub struct MjError {
    status: StatusCode,
    code: u16,
    description: String,
    properties: Value,
    retry_after: Option<HeaderValue>,
}

impl MjError {
    pub fn new(status: StatusCode, code: u16, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            properties: json!({}),
            retry_after: None,
        }
    }

    /// Bad input: 400, code 4.
    pub fn invalid(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, VALIDATION_ERROR, description)
    }

    /// No such task (or not the caller's): 404, code 3.
    pub fn no_task(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            format!("task {id:?} does not exist or has expired"),
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.code == NOT_FOUND
    }
}

/// The message `domain::banned` refuses a prompt with.
const BANNED: &str = "the prompt contains words this server refuses: ";

impl From<Problem> for MjError {
    fn from(p: Problem) -> Self {
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (status, code) = match (status, p.code) {
            (StatusCode::NOT_FOUND, _) => (status, NOT_FOUND),
            (_, "queue_full") => (status, QUEUE_REJECTED),
            // The proxies answer bad fields with 400, as a malformed body.
            (StatusCode::UNPROCESSABLE_ENTITY, _) => (StatusCode::BAD_REQUEST, VALIDATION_ERROR),
            (s, _)
                if s.is_client_error()
                    && s != StatusCode::PAYMENT_REQUIRED
                    && s != StatusCode::TOO_MANY_REQUESTS =>
            {
                (status, VALIDATION_ERROR)
            }
            _ => (status, FAILURE),
        };
        let mut properties = json!({});
        let code = match p.detail.find(BANNED) {
            Some(at) if code == VALIDATION_ERROR => {
                properties = json!({"bannedWord": p.detail[at + BANNED.len()..]});
                BANNED_PROMPT
            }
            _ => code,
        };
        let description = p.detail.clone();
        let retry_after = p
            .into_response()
            .headers()
            .get(header::RETRY_AFTER)
            .cloned();
        Self {
            status,
            code,
            description,
            properties,
            retry_after,
        }
    }
}

impl From<AppError> for MjError {
    fn from(e: AppError) -> Self {
        Problem::from(e).into()
    }
}

impl IntoResponse for MjError {
    fn into_response(self) -> Response {
        let body = Envelope {
            code: self.code,
            description: self.description,
            result: None,
            properties: self.properties,
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
    fn answers_are_the_proxy_envelope() {
        assert_eq!(
            serde_json::to_value(Envelope::ok("Success", "42".into())).unwrap(),
            json!({"code": 1, "description": "Success", "result": "42", "properties": {}})
        );
        assert_eq!(
            serde_json::to_value(Envelope::submitted("t".into(), 0)).unwrap(),
            json!({"code": 1, "description": "Submit success", "result": "t", "properties": {}})
        );
        assert_eq!(
            serde_json::to_value(Envelope::submitted("t".into(), 2)).unwrap(),
            json!({"code": 22, "description": "In queue, there are 2 tasks ahead", "result": "t",
                   "properties": {"numberOfQueues": 2}})
        );
    }

    #[test]
    fn problems_become_the_proxy_codes() {
        let code = |p: Problem| {
            let e = MjError::from(p);
            (e.status.as_u16(), e.code)
        };
        assert_eq!(code(Problem::invalid("x")), (400, VALIDATION_ERROR));
        assert_eq!(code(Problem::not_found("x")), (404, NOT_FOUND));
        assert_eq!(code(Problem::unauthorized("x")), (401, VALIDATION_ERROR));
        assert_eq!(
            code(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                "x"
            )),
            (503, QUEUE_REJECTED)
        );
        assert_eq!(
            code(Problem::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                "x"
            )),
            (402, FAILURE)
        );
        let banned = MjError::from(Problem::invalid(format!("{BANNED}forbidden")));
        assert_eq!(banned.code, BANNED_PROMPT);
        assert_eq!(banned.properties["bannedWord"], "forbidden");
    }
}
