//! Discord's error bodies: `{"message", "code"}`, and `50035 Invalid Form Body` with the
//! nested `errors` object naming the field.

use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl ApiError {
    fn new(status: StatusCode, code: u64, message: &str) -> Self {
        Self {
            status,
            body: json!({"message": message, "code": code}),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized")
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 0, "404: Not Found")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed")
    }

    pub(crate) fn unknown_message() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10008, "Unknown Message")
    }

    pub(crate) fn unknown_channel() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10003, "Unknown Channel")
    }

    pub(crate) fn unknown_guild() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10004, "Unknown Guild")
    }

    /// What a user account gets from a bot-only endpoint.
    pub(crate) fn bots_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            20002,
            "Only bots can use this endpoint",
        )
    }

    pub(crate) fn missing_access() -> Self {
        Self::new(StatusCode::FORBIDDEN, 50001, "Missing Access")
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            40005,
            "Request entity too large",
        )
    }

    pub(crate) fn bad_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        )
    }

    /// 400 / 50035 with one field error at `path` (e.g. `["data", "custom_id"]`).
    pub(crate) fn form(path: &[&str], code: &str, message: &str) -> Self {
        let mut errors = json!({"_errors": [{"code": code, "message": message}]});
        for key in path.iter().rev() {
            let mut parent = Map::new();
            parent.insert((*key).to_owned(), errors);
            errors = Value::Object(parent);
        }
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({"message": "Invalid Form Body", "code": 50035, "errors": errors}),
        }
    }

    /// The command's version is not the current one.
    pub(crate) fn outdated_command() -> Self {
        Self::form(
            &["data"],
            "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION",
            "This command is outdated, please try again in a few minutes",
        )
    }

    /// A required field is missing or has the wrong type.
    pub(crate) fn required(path: &[&str]) -> Self {
        Self::form(path, "BASE_TYPE_REQUIRED", "This field is required")
    }

    pub(crate) fn body_rejection(rejection: &BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::too_large()
        } else {
            Self::bad_json()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body.to_string(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;

    #[test]
    fn form_errors_nest_by_path() {
        let error = ApiError::form(&["data", "custom_id"], "X", "y");
        assert_eq!(error.body["code"], 50035);
        assert_eq!(
            error.body["errors"]["data"]["custom_id"]["_errors"][0]["code"],
            "X"
        );
        let outdated = ApiError::outdated_command();
        assert_eq!(
            outdated.body["errors"]["data"]["_errors"][0]["code"],
            "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION"
        );
    }
}
