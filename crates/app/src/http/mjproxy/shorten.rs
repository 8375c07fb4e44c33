//! `POST /mj/submit/shorten`: shorter versions of a prompt (Midjourney's /shorten) as a task
//! whose `prompt` holds them when it succeeds.

use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;

use super::super::auth::Caller;
use super::super::input::Body;
use super::super::{Problem, Shared};
use super::envelope::{Envelope, MjError};
use super::{caller, hook, required, submitted};
use crate::domain::GenerationRequest;

/// `POST /mj/submit/shorten`: the imagine body, its prompt shortened rather than drawn.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShortenRequest {
    prompt: Option<String>,
    /// `MID_JOURNEY` (default) or `NIJI_JOURNEY`.
    bot_type: Option<String>,
    notify_hook: Option<String>,
    /// The caller's own string (at most 255 characters), kept with the task.
    state: Option<String>,
    /// Accepted and ignored (the proxy's choice of Discord account).
    #[expect(dead_code, reason = "accepted as the proxy documents it, and ignored")]
    #[schema(value_type = Option<Object>)]
    account_filter: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/mj/submit/shorten",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_shorten",
    summary = "midjourney-proxy: shorter versions of a prompt",
    description = "Queues a /shorten of `prompt` on the bot type's provider; when the task succeeds its `prompt` holds the shortened prompts, one a line, as Midjourney numbers them. A provider that does not shorten prompts is refused (code 4).",
    request_body = ShortenRequest,
    responses(
        (status = 200, description = "Submitted (code 1 or 22)", body = Envelope),
        (status = 400, description = "No prompt, a bad botType, a banned word (code 24), or a provider that does not shorten (code 4)", body = Envelope),
        (status = 401, description = "No valid key (code 4)", body = Envelope),
    )
)]
pub async fn shorten(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    body: Result<Body<ShortenRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    let prompt = required(body.prompt, "prompt")?;
    let (provider, niji) = s.settings.mj_proxy.provider(body.bot_type.as_deref())?;
    let mut request = GenerationRequest::new(prompt);
    request.provider = provider;
    request.client_reference = body.state;
    if niji {
        request.extra.insert("bot".into(), "niji".into());
    }
    // Checked before the hook's secret is made: bad input writes nothing.
    let request = s.app.check_shorten(request)?;
    let hook = hook(&s, actor, body.notify_hook.as_deref()).await?;
    let g = s.app.shorten(actor, request, hook).await?;
    Ok(submitted(&s, &g).await)
}
