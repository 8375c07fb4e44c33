//! The midjourney-proxy drop-in routes: the REST protocol of the popular Midjourney proxies
//! (`POST /mj/submit/*`, `/mj/task/*`), so the apps written for them work against Atelier
//! with only their base URL and key changed. A thin adapter over the same `App` as the rest of
//! the API (the same keys, also read from the proxies' `mj-api-secret` header; credits;
//! isolation; storage; events), with any provider behind it.
//!
//! The mapping, once: a task is a generation, its id the generation's; `imagine` submits the
//! prompt (grid only: the buttons make the rest), its `base64Array` pictures stored as the
//! caller's imports and used as image prompts; `action` presses a button on the task's grid or
//! picture (`App::act`; Custom Zoom opens a form instead: code 21 and a task waiting for
//! `modal`), `blend` and `describe` store the pictures sent inline as the caller's imports and
//! run on them, `shorten` asks for shorter prompts; `video` animates a start frame (an imagine
//! with `--video`) or extends a task's clip; `notifyHook` is a webhook whose deliveries carry
//! the task object (`App::notify_hook`); `botType: NIJI_JOURNEY` goes to `[server.mj_proxy]
//! niji_provider` with `bot = "niji"`. `state` (each submit's, at most 255 characters) is kept
//! with the generation as its client reference and comes back in the task; `accountFilter` is
//! accepted and ignored.
//!
//! - `envelope.rs`: the submit answer and the errors in the proxy's envelope;
//! - `tasks.rs`: the task routes and the signed picture links;
//! - `shorten.rs`: /shorten; `modal.rs`: the form a Custom Zoom button opened, submitted;
//! - `video.rs`: `video`, its body mapped onto an imagine or an action.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Caller;
use super::input::Body;
use super::openai_images::origin;
use super::{Problem, Shared};
use crate::config::ServerConfig;
use crate::domain::{Actor, Generation, GenerationRequest, ImageId, Role, UpscaleSelection};
use crate::error::AppError;
use envelope::{Envelope, MjError};

pub mod envelope;
pub mod modal;
pub mod shorten;
pub mod tasks;
pub mod video;

/// `[server.mj_proxy]`, read once: which provider each bot type uses.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    provider: Option<String>,
    niji_provider: Option<String>,
}

impl Routes {
    pub fn from_config(config: &ServerConfig) -> Self {
        // An empty name is kept, for `check` to refuse: it is a mistake, not "the default".
        let name = |p: &Option<String>| p.as_deref().map(str::trim).map(str::to_owned);
        Self {
            provider: name(&config.mj_proxy.provider),
            niji_provider: name(&config.mj_proxy.niji_provider),
        }
    }

    /// Refuses a provider this process does not have, when `serve` starts rather than on a
    /// request.
    pub fn check(&self, app: &crate::app::App) -> Result<(), AppError> {
        for (key, p) in [
            ("provider", &self.provider),
            ("niji_provider", &self.niji_provider),
        ] {
            if p.as_deref() == Some("") {
                return Err(AppError::Invalid(format!(
                    "[server.mj_proxy] {key} is empty: name a provider, or leave it out for the default one"
                )));
            }
            if let Some(p) = p {
                app.provider_name(Some(p))
                    .map_err(|e| AppError::Invalid(format!("[server.mj_proxy] {key}: {e}")))?;
            }
        }
        Ok(())
    }

    /// The provider for `botType`, and whether the request asks for the niji bot.
    fn provider(&self, bot: Option<&str>) -> Result<(Option<String>, bool), MjError> {
        match bot.map(str::trim) {
            None | Some("" | "MID_JOURNEY" | "mj") => Ok((self.provider.clone(), false)),
            Some("NIJI_JOURNEY" | "niji") => Ok((
                self.niji_provider.clone().or_else(|| self.provider.clone()),
                true,
            )),
            Some(other) => Err(MjError::invalid(format!(
                "botType must be MID_JOURNEY or NIJI_JOURNEY, not {other:?}"
            ))),
        }
    }
}

/// `POST /mj/submit/imagine`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagineRequest {
    prompt: Option<String>,
    /// Image prompts, 1 to 5 pictures as data URLs (or bare base64): stored as the caller's
    /// imports, their URLs put first in the prompt.
    #[serde(default)]
    base64_array: Vec<String>,
    /// The older single image prompt, taken after `base64Array`'s.
    base64: Option<String>,
    /// Receives the task object on each change.
    notify_hook: Option<String>,
    /// The caller's own string (at most 255 characters, no control characters), kept and
    /// given back in the task's `state`.
    state: Option<String>,
    /// `MID_JOURNEY` (default) or `NIJI_JOURNEY`.
    bot_type: Option<String>,
    /// Accepted and ignored (the proxy's choice of Discord account).
    #[expect(dead_code, reason = "accepted as the proxy documents it, and ignored")]
    #[schema(value_type = Option<Object>)]
    account_filter: Option<Value>,
}

/// `POST /mj/submit/action`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRequest {
    /// A button's `customId` from the task.
    custom_id: Option<String>,
    task_id: Option<String>,
    notify_hook: Option<String>,
    /// Kept and given back in the task's `state`, as on imagine.
    state: Option<String>,
}

/// `POST /mj/submit/blend`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlendRequest {
    /// 2 to 5 pictures as data URLs (or bare base64).
    #[serde(default)]
    base64_array: Vec<String>,
    /// `PORTRAIT`, `SQUARE` or `LANDSCAPE`.
    dimensions: Option<String>,
    bot_type: Option<String>,
    notify_hook: Option<String>,
    /// Kept and given back in the task's `state`, as on imagine.
    state: Option<String>,
}

/// `POST /mj/submit/describe`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRequest {
    /// The picture as a data URL (or bare base64).
    base64: Option<String>,
    bot_type: Option<String>,
    notify_hook: Option<String>,
    /// Kept and given back in the task's `state`, as on imagine.
    state: Option<String>,
}

fn caller(caller: Result<Caller, Problem>) -> Result<Actor, MjError> {
    Ok(caller?.0)
}

/// A submit's `state`, checked before anything is written (refused as bad input, code 4).
/// A field the submit needs: present and not blank.
fn required(value: Option<String>, field: &str) -> Result<String, MjError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| MjError::invalid(format!("{field} is required")))
}

fn state(state: Option<&str>) -> Result<Option<&str>, MjError> {
    match state {
        Some(raw) => {
            crate::domain::check_client_reference(raw)
                .map_err(|e| MjError::invalid(format!("state: {e}")))?;
            Ok(Some(raw))
        }
        None => Ok(None),
    }
}

/// A notify hook, checked (and refused as a webhook would be) before anything is written.
async fn hook(
    s: &Shared,
    actor: Actor,
    url: Option<&str>,
) -> Result<Option<crate::app::NotifyHook>, MjError> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => Ok(Some(s.app.notify_hook(actor, url).await.map_err(|e| {
            MjError::invalid(format!("notifyHook: {}", Problem::from(e).detail))
        })?)),
        None => Ok(None),
    }
}

/// The answer for a queued generation: code 1, or 22 with the jobs ahead of it.
async fn submitted(s: &Shared, g: &Generation) -> axum::Json<Envelope> {
    let ahead = s
        .app
        .queue_position_of(g)
        .await
        .ok()
        .flatten()
        .map_or(0, |q| q.ahead);
    axum::Json(Envelope::submitted(g.id.to_string(), ahead))
}

/// Pictures sent inline: data URLs (`data:image/png;base64,…`) or bare base64.
fn pictures(items: &[String], field: &str) -> Result<Vec<Vec<u8>>, MjError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let b64 = item
                .split_once(";base64,")
                .map_or(item.as_str(), |(_, data)| data)
                .trim();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| MjError::invalid(format!("{field}[{i}] is not base64: {e}")))
        })
        .collect()
}

#[utoipa::path(
    post,
    path = "/mj/submit/imagine",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_imagine",
    summary = "midjourney-proxy: submit an imagine task",
    description = "Queues a generation of the prompt (the grid; the buttons make the rest). Key in `mj-api-secret` or `Authorization: Bearer`. `botType` chooses `[server.mj_proxy] provider` or `niji_provider`; `notifyHook` receives the task object on each change; `state` (at most 255 characters) comes back in the task; image prompts (`base64Array`, and the older `base64`: 1 to 5 pictures as data URLs) are stored as the caller's imports and put first in the prompt, for a provider that takes image prompts.",
    request_body = ImagineRequest,
    responses(
        (status = 200, description = "Submitted: code 1, or 22 behind others; `result` is the task id", body = Envelope),
        (status = 400, description = "Bad input (code 4: also pictures that are not base64 or not pictures, more than 5, or a provider without image prompts) or a banned word (code 24)", body = Envelope),
        (status = 401, description = "No valid key (code 4)", body = Envelope),
        (status = 402, description = "Not enough credits (code 9)", body = Envelope),
        (status = 429, description = "Over the key's rate (code 9, `Retry-After`)", body = Envelope),
        (status = 503, description = "The provider's queue is full (code 23, `Retry-After`)", body = Envelope),
    )
)]
pub async fn imagine(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    body: Result<Body<ImagineRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    let prompt = required(body.prompt, "prompt")?;
    let mut inline = pictures(&body.base64_array, "base64Array")?;
    if let Some(one) = body.base64.filter(|b| !b.trim().is_empty()) {
        inline.extend(pictures(&[one], "base64")?);
    }
    let (provider, niji) = s.settings.mj_proxy.provider(body.bot_type.as_deref())?;
    let mut request = GenerationRequest::new(prompt);
    request.client_reference = state(body.state.as_deref())?.map(str::to_owned);
    request.provider = provider;
    request.upscale = UpscaleSelection::none();
    if niji {
        request.extra.insert("bot".into(), "niji".into());
    }
    let g = imagine_with_pictures(
        &s,
        actor,
        request,
        inline,
        None,
        "sent to /mj/submit/imagine",
        body.notify_hook.as_deref(),
    )
    .await?;
    Ok(submitted(&s, &g).await)
}

/// An imagine whose image prompts are `inline` pictures (none: the prompt alone), each in
/// order after the request's own, and whose end frame is `end`, a picture sent inline too: the
/// request is checked as if they were stored and the pictures verified, then the notify hook
/// made, then the pictures stored as the caller's imports (noted `note`) and the generation
/// queued on them. Bad input writes nothing.
pub(super) async fn imagine_with_pictures(
    s: &Shared,
    actor: Actor,
    request: GenerationRequest,
    mut inline: Vec<Vec<u8>>,
    end: Option<Vec<u8>>,
    note: &str,
    notify_hook: Option<&str>,
) -> Result<Generation, MjError> {
    let prompts = inline.len();
    let mut request = s.app.check_with_pictures(request, prompts, end.is_some())?;
    inline.extend(end);
    let prepared = if inline.is_empty() {
        None
    } else {
        // Admission (queue, credits) before the pictures are stored: a refusal stores none.
        s.app
            .admits(
                actor,
                request.provider.as_deref(),
                crate::domain::GenerationKind::Imagine,
            )
            .await?;
        Some(s.app.prepare_pictures(inline, note).await?)
    };
    let hook = hook(s, actor, notify_hook).await?;
    if let Some(prepared) = prepared {
        let mut ids = s.app.import_prepared(actor, prepared).await?;
        if ids.len() > prompts {
            request.end_frame = ids.pop();
        }
        request.image_prompts.extend(ids);
    }
    Ok(s.app.submit_notified(actor, request, hook).await?)
}

#[utoipa::path(
    post,
    path = "/mj/submit/action",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_action",
    summary = "midjourney-proxy: press a button of a task",
    description = "`customId` is one of the task's `buttons` (Midjourney's own custom ids are read too: U1–U4, V1–V4, reroll, vary, upscale subtle/creative, zoom out, pan, video); the result is a new task. Custom Zoom opens a form: code 21, `result` a task waiting (`MODAL`) for `POST /mj/submit/modal` with the new prompt. Vary (Region) is refused.",
    request_body = ActionRequest,
    responses(
        (status = 200, description = "Submitted (code 1 or 22), or waiting for its form (code 21)", body = Envelope),
        (status = 400, description = "Missing fields, an unknown customId or one the task's provider does not play (code 4)", body = Envelope),
        (status = 404, description = "No such task of the caller's (code 3)", body = Envelope),
        (status = 409, description = "The task has not succeeded (code 4)", body = Envelope),
    )
)]
pub async fn action(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    body: Result<Body<ActionRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    let (Some(custom), Some(task)) = (
        body.custom_id.filter(|c| !c.trim().is_empty()),
        body.task_id.filter(|t| !t.trim().is_empty()),
    ) else {
        return Err(MjError::invalid("customId and taskId are required"));
    };
    let reference = state(body.state.as_deref())?;
    let g = tasks::visible(&s, actor, &task).await?;
    if g.generation.status != crate::domain::GenerationStatus::Succeeded {
        return Err(MjError::new(
            StatusCode::CONFLICT,
            envelope::VALIDATION_ERROR,
            format!(
                "task {task} is {}: buttons are pressed on a task that succeeded",
                g.generation.status.as_str()
            ),
        ));
    }
    let word = crate::api::mjproxy::action_of(&custom).map_err(MjError::invalid)?;
    let on_grid = word.starts_with('u') && !word.starts_with("upscale")
        || word.starts_with('v') && !word.starts_with("vary")
        || word == "reroll";
    let image: Option<ImageId> = g
        .images
        .iter()
        .filter(|i| (i.role == Role::Grid) == on_grid)
        .min_by_key(|i| match i.role {
            Role::Grid => 0,
            Role::Upscale(n) | Role::Variant(n) => n,
        })
        .map(|i| i.id);
    let image = image.ok_or_else(|| {
        MjError::invalid(format!(
            "customId {custom:?} is not a button of task {task}: it acts on {}",
            if on_grid {
                "a grid"
            } else {
                "an upscaled picture"
            }
        ))
    })?;
    // A button that opens a form: the task waits for /mj/submit/modal, nothing runs yet.
    if crate::api::mjproxy::ModalTask::new(image, &word).is_some() {
        let task = s.app.mj_open_form(actor, image, &word).await?;
        return Ok(axum::Json(Envelope::modal(&task)));
    }
    // Checked before the hook's secret is made: bad input writes nothing.
    s.app.check_action(actor, image, &word, None).await?;
    let hook = hook(&s, actor, body.notify_hook.as_deref()).await?;
    let made = s
        .app
        .act_notified(
            actor,
            image,
            &word,
            &UpscaleSelection::none(),
            hook,
            reference,
        )
        .await?;
    Ok(submitted(&s, &made).await)
}

#[utoipa::path(
    post,
    path = "/mj/submit/blend",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_blend",
    summary = "midjourney-proxy: blend 2 to 5 pictures",
    description = "The pictures (`base64Array`, data URLs) are stored as the caller's imports, then blended by the bot type's provider into a new grid.",
    request_body = BlendRequest,
    responses(
        (status = 200, description = "Submitted (code 1 or 22)", body = Envelope),
        (status = 400, description = "Not 2 to 5 pictures, not pictures, bad dimensions, or a provider that does not blend (code 4)", body = Envelope),
    )
)]
pub async fn blend(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    body: Result<Body<BlendRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    if !(2..=5).contains(&body.base64_array.len()) {
        return Err(MjError::invalid(format!(
            "base64Array must hold 2 to 5 pictures, not {}",
            body.base64_array.len()
        )));
    }
    let dimensions = match body.dimensions.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) if ["PORTRAIT", "SQUARE", "LANDSCAPE"].contains(&d) => Some(d.to_ascii_lowercase()),
        Some(d) => {
            return Err(MjError::invalid(format!(
                "dimensions must be PORTRAIT, SQUARE or LANDSCAPE, not {d:?}"
            )));
        }
    };
    let (provider, _) = s.settings.mj_proxy.provider(body.bot_type.as_deref())?;
    let reference = state(body.state.as_deref())?;
    let pictures = pictures(&body.base64_array, "base64Array")?;
    s.app
        .serves(provider.as_deref(), crate::domain::GenerationKind::Blend)?;
    // Admission (queue, credits) before the pictures are stored: a refusal stores nothing.
    s.app
        .admits(
            actor,
            provider.as_deref(),
            crate::domain::GenerationKind::Blend,
        )
        .await?;
    let hook = hook(&s, actor, body.notify_hook.as_deref()).await?;
    let ids = s
        .app
        .import_pictures(actor, pictures, "sent to /mj/submit/blend")
        .await?;
    let g = s
        .app
        .blend_notified(
            actor,
            &ids,
            dimensions.as_deref(),
            &UpscaleSelection::none(),
            provider.as_deref(),
            hook,
            reference,
        )
        .await?;
    Ok(submitted(&s, &g).await)
}

#[utoipa::path(
    post,
    path = "/mj/submit/describe",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_describe",
    summary = "midjourney-proxy: four prompts for a picture",
    description = "The picture (`base64`, a data URL) is stored as the caller's import, then described by the bot type's provider; the task's `prompt` holds the prompts when it succeeds.",
    request_body = DescribeRequest,
    responses(
        (status = 200, description = "Submitted (code 1 or 22)", body = Envelope),
        (status = 400, description = "No picture, not a picture, or a provider that does not describe (code 4)", body = Envelope),
    )
)]
pub async fn describe(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    body: Result<Body<DescribeRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    let picture = required(body.base64, "base64")?;
    let (provider, _) = s.settings.mj_proxy.provider(body.bot_type.as_deref())?;
    let reference = state(body.state.as_deref())?;
    let pictures = pictures(&[picture], "base64")?;
    s.app
        .serves(provider.as_deref(), crate::domain::GenerationKind::Describe)?;
    // Admission (queue, credits) before the pictures are stored: a refusal stores nothing.
    s.app
        .admits(
            actor,
            provider.as_deref(),
            crate::domain::GenerationKind::Describe,
        )
        .await?;
    let hook = hook(&s, actor, body.notify_hook.as_deref()).await?;
    let ids = s
        .app
        .import_pictures(actor, pictures, "sent to /mj/submit/describe")
        .await?;
    let image = ids
        .first()
        .copied()
        .ok_or_else(|| MjError::invalid("base64 holds no picture"))?;
    let g = s
        .app
        .describe_notified(actor, image, provider.as_deref(), hook, reference)
        .await?;
    Ok(submitted(&s, &g).await)
}

/// The address a client reached the server by, when its `Host` tells one; else `None`, and
/// links begin with `[server.mj_proxy] public_url` or the address the server listens on.
pub(super) fn client_origin(headers: &HeaderMap) -> Option<String> {
    origin(headers)
}
