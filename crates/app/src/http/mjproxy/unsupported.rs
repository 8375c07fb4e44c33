//! The proxies' routes that Atelier does not play (`shorten`, `modal`), each answered as the
//! proxy answers a failed submit: code 9, with HTTP 501.

use super::super::Problem;
use super::super::auth::Caller;
use super::super::input::Body;
use super::caller;
use super::envelope::{Envelope, MjError};
use serde::Deserialize;

/// The body of the routes this server does not play (`shorten`, `modal`): read only
/// so that a body that is not JSON is still told so; other fields are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnyRequest {
    #[expect(dead_code, reason = "read only to tell a malformed body")]
    prompt: Option<String>,
    #[expect(dead_code, reason = "read only to tell a malformed body")]
    task_id: Option<String>,
}

/// The routes of the proxies that Atelier does not play, each answered as the proxy answers a
/// failed submit.
fn unsupported(
    c: Result<Caller, Problem>,
    body: Result<Body<AnyRequest>, Problem>,
    what: &str,
) -> Result<axum::Json<Envelope>, MjError> {
    caller(c)?;
    body?;
    Err(MjError::unsupported(what))
}

#[utoipa::path(
    post,
    path = "/mj/submit/shorten",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_shorten",
    summary = "midjourney-proxy: shorten (not supported)",
    description = "Always code 9 with 501: no provider of this server analyses prompts.",
    request_body = AnyRequest,
    responses((status = 501, description = "Not supported (code 9)", body = Envelope))
)]
pub async fn shorten(
    c: Result<Caller, Problem>,
    body: Result<Body<AnyRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    unsupported(
        c,
        body,
        "shorten is not supported by this server: none of its providers analyses prompts",
    )
}

#[utoipa::path(
    post,
    path = "/mj/submit/modal",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_modal",
    summary = "midjourney-proxy: modal (not supported)",
    description = "Always code 9 with 501: custom zoom and vary region, the buttons that open a modal, are not offered.",
    request_body = AnyRequest,
    responses((status = 501, description = "Not supported (code 9)", body = Envelope))
)]
pub async fn modal(
    c: Result<Caller, Problem>,
    body: Result<Body<AnyRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    unsupported(
        c,
        body,
        "modal is not supported by this server: no task offers custom zoom or vary region",
    )
}
