//! The proxies' routes that Atelier does not play (`video`), each
//! answered as the proxy answers a failed submit: code 9, with HTTP 501.

use super::super::Problem;
use super::super::auth::Caller;
use super::super::input::Body;
use super::caller;
use super::envelope::{Envelope, MjError};
use serde::Deserialize;

/// The body of the routes this server does not play (`video`): read only
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
    path = "/mj/submit/video",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_video",
    summary = "midjourney-proxy: video (not supported yet)",
    description = "Always code 9 with 501 until the Midjourney provider makes videos.",
    request_body = AnyRequest,
    responses((status = 501, description = "Not supported (code 9)", body = Envelope))
)]
pub async fn video(
    c: Result<Caller, Problem>,
    body: Result<Body<AnyRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    unsupported(
        c,
        body,
        "video is not supported by this server yet: no provider animates a task's picture",
    )
}
