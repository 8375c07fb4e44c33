//! `/v1/generations`: create (with `Prefer: wait=N`), list, show (with the queue position while
//! queued), cancel; and the generations made from an image (`/v1/images/{id}/actions`,
//! `/v1/images/{id}/versions`).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Caller;
use super::input::{Body, PREFER, id, param};
use super::problem::Answer;
use super::{Problem, Shared};
use crate::api::{
    ActionRequest, CreateGeneration, GenerationQuery, GenerationView, Page, QueueView,
};
use crate::domain::{Actor, Generation, GenerationId, GenerationStatus, ImageId, UpscaleSelection};

/// The generation as the API shows it, with its place in the queue while it waits.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GenerationDetail)]
struct Shown {
    #[serde(flatten)]
    generation: GenerationView,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<QueueView>,
}

async fn shown(s: &Shared, actor: Actor, id: GenerationId) -> Answer<Shown> {
    let g = s.app.generation(actor, id).await?;
    let queue = s
        .app
        .queue_position_of(&g.generation)
        .await?
        .map(|p| QueueView {
            ahead: p.ahead,
            eta_secs: p.eta.map(|d| d.as_secs_f64()),
        });
    Ok(Shown {
        generation: s.app.generation_view(&g).without_paths(),
        queue,
    })
}

/// `Prefer: wait=N` (RFC 7240), capped by `[server] max_wait_secs`; `None` without it.
fn wait_of(headers: &HeaderMap, max: Duration) -> Result<Option<Duration>, Problem> {
    let Some(value) = headers.get(PREFER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Problem::invalid("the Prefer header is not text"))?;
    for pref in text.split([',', ';']) {
        let pref = pref.trim();
        if let Some(n) = pref
            .strip_prefix("wait=")
            .or_else(|| pref.strip_prefix("wait = "))
        {
            let secs: u64 = n.trim().parse().map_err(|_| {
                Problem::invalid(format!(
                    "Prefer: wait={n}: expected a whole number of seconds"
                ))
            })?;
            return Ok(Some(Duration::from_secs(secs).min(max)));
        }
    }
    Ok(None)
}

/// Waits until generation `id` ends, `wait` passes or the server stops.
pub(super) async fn wait_for_end(
    s: &Shared,
    actor: Actor,
    id: GenerationId,
    wait: Duration,
) -> Answer<()> {
    let mut following = s.app.follow(actor, id, 0).await?;
    let mut stopping = s.stopping.clone();
    let ended = async {
        while let Some(e) = following.next().await {
            e?;
        }
        Ok::<(), crate::error::AppError>(())
    };
    tokio::select! {
        ended = tokio::time::timeout(wait, ended) => {
            if let Ok(ended) = ended { ended?; }
        }
        _ = stopping.wait_for(|s| *s) => {}
    }
    Ok(())
}

/// 201 with `Location`, after waiting when asked.
async fn created(
    s: &Shared,
    actor: Actor,
    generation: Generation,
    wait: Option<Duration>,
) -> Answer<Response> {
    if let Some(wait) = wait {
        wait_for_end(s, actor, generation.id, wait).await?;
    }
    let body = shown(s, actor, generation.id).await?;
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/generations/{}", generation.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(wait) = wait
        && let Ok(v) = HeaderValue::from_str(&format!("wait={}", wait.as_secs()))
    {
        response.headers_mut().insert("preference-applied", v);
    }
    Ok(response)
}

/// The headers of the routes that create a generation.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct Creating {
    /// Replays the first answer to a retry with the same key and request for 24 hours
    /// (`Idempotency-Replayed: true`); the same key with another request is a 422, and a retry
    /// while the first still runs a 409 with `Retry-After`.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// `wait=N`: hold the answer until the generation ends or N seconds pass (capped by the
    /// server's `max_wait_secs`).
    #[param(rename = "Prefer", pattern = r"^wait=[0-9]{1,6}$")]
    prefer: Option<String>,
}

/// The answer of the routes that create a generation.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum CreatedGeneration {
    /// Created (and ended, when `Prefer: wait` was given and it ended in time).
    #[response(
        status = 201,
        headers(
            ("Location" = String, description = "The generation's URL"),
            ("Preference-Applied" = Option<String>, description = "`wait=N`, when `Prefer: wait` was honoured"),
            ("Idempotency-Replayed" = Option<String>, description = "`true` on a replayed answer"),
        )
    )]
    Created(#[to_schema] Shown),
}

#[utoipa::path(
    post,
    path = "/generations",
    tag = "generations",
    operation_id = "create_generation",
    summary = "Ask for images",
    description = "Queues a generation; credits are reserved now, debited on success and refunded on failure or cancel. `image_prompts` names up to 5 of the caller's still pictures the generation starts from, for a provider that takes image prompts (404 for an image the caller cannot see, 422 for a clip or a provider without image prompts).",
    params(Creating),
    request_body = CreateGeneration,
    responses(
        CreatedGeneration,
        (status = 402, response = super::openapi::PaymentRequired),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub async fn create(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Body(body): Body<CreateGeneration>,
) -> Answer<Response> {
    let wait = wait_of(&headers, s.settings.max_wait)?;
    let webhook = body
        .webhook()
        .map_err(|e| Problem::invalid(e.to_string()))?;
    let request = body
        .request()
        .map_err(|e| Problem::invalid(e.to_string()))?;
    let generation = s.app.submit_with_webhook(actor, request, webhook).await?;
    created(&s, actor, generation, wait).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<crate::api::GenerationStatusName>)]
    status: Option<String>,
    provider: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(minimum = 1)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/generations",
    tag = "generations",
    operation_id = "list_generations",
    summary = "The caller's generations, newest first",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = Page<GenerationView>),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub async fn list(
    State(s): State<Shared>,
    Caller(actor): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<axum::Json<Page<GenerationView>>> {
    let Query(q) = query.map_err(|e| Problem::invalid(e.body_text()))?;
    if q.limit == Some(0) {
        return Err(Problem::invalid("limit must be at least 1"));
    }
    let query = GenerationQuery {
        status: param(q.status.as_deref(), "status", GenerationStatus::parse)?,
        provider: q.provider,
        before: param(q.cursor.as_deref(), "cursor", |c| c.parse().ok())?,
        limit: q.limit,
    };
    let page = s.app.generations(actor, &query).await?;
    let mut data = Vec::with_capacity(page.generations.len());
    for g in &page.generations {
        let with = s.app.generation(actor, g.id).await?;
        data.push(s.app.generation_view(&with).without_paths());
    }
    Ok(axum::Json(Page {
        data,
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

#[utoipa::path(
    get,
    path = "/generations/{id}",
    tag = "generations",
    operation_id = "get_generation",
    summary = "A generation, with its place in the queue while it waits",
    params(("id" = uuid::Uuid, Path, description = "The generation's id")),
    responses(
        (status = 200, description = "The generation", body = Shown),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn show(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<Response> {
    let id = id(&raw, "generation")?;
    Ok(axum::Json(shown(&s, actor, id).await?).into_response())
}

#[utoipa::path(
    post,
    path = "/generations/{id}/cancel",
    tag = "generations",
    operation_id = "cancel_generation",
    summary = "Cancel a generation that has not ended (its credits are refunded)",
    params(("id" = uuid::Uuid, Path, description = "The generation's id")),
    responses(
        (status = 200, description = "The generation, cancelled", body = Shown),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub async fn cancel(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<Response> {
    let id = id(&raw, "generation")?;
    s.app.cancel(actor, id).await?;
    Ok(axum::Json(shown(&s, actor, id).await?).into_response())
}

#[utoipa::path(
    post,
    path = "/images/{id}/actions",
    tag = "generations",
    operation_id = "act_on_image",
    summary = "Press a button on an image (upscale, variation, reroll, vary, zoom, pan)",
    params(("id" = uuid::Uuid, Path, description = "The image's id"), Creating),
    request_body = ActionRequest,
    responses(
        CreatedGeneration,
        (status = 402, response = super::openapi::PaymentRequired),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub async fn act(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Body(body): Body<ActionRequest>,
) -> Answer<Response> {
    let image: ImageId = id(&raw, "image")?;
    let wait = wait_of(&headers, s.settings.max_wait)?;
    let upscale = match &body.upscale {
        Some(u) => u.selection().map_err(|e| Problem::invalid(e.to_string()))?,
        None => UpscaleSelection::none(),
    };
    let generation = s
        .app
        .act_with(
            actor,
            image,
            &body.action,
            crate::app::ActOptions {
                prompt: body.prompt.as_deref(),
                upscale,
                ..crate::app::ActOptions::default()
            },
        )
        .await?;
    created(&s, actor, generation, wait).await
}

#[utoipa::path(
    post,
    path = "/images/{id}/versions",
    tag = "generations",
    operation_id = "create_image_version",
    summary = "Make a new version of an image (the same request again, numbered one higher)",
    params(("id" = uuid::Uuid, Path, description = "The image's id"), Creating),
    responses(
        CreatedGeneration,
        (status = 402, response = super::openapi::PaymentRequired),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 413, response = super::openapi::TooLarge),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub async fn version(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Answer<Response> {
    let image: ImageId = id(&raw, "image")?;
    let wait = wait_of(&headers, s.settings.max_wait)?;
    let generation = s.app.new_version(actor, image).await?;
    created(&s, actor, generation, wait).await
}
