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
#[derive(serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    generation: GenerationView,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<QueueView>,
}

async fn shown(s: &Shared, actor: Actor, id: GenerationId) -> Answer<Shown> {
    let g = s.app.generation(actor, id).await?;
    let queue = s.app.queue_position(actor, id).await?.map(|p| QueueView {
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
async fn wait_for_end(s: &Shared, actor: Actor, id: GenerationId, wait: Duration) -> Answer<()> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    provider: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

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

pub async fn show(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<Response> {
    let id = id(&raw, "generation")?;
    Ok(axum::Json(shown(&s, actor, id).await?).into_response())
}

pub async fn cancel(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<Response> {
    let id = id(&raw, "generation")?;
    s.app.cancel(actor, id).await?;
    Ok(axum::Json(shown(&s, actor, id).await?).into_response())
}

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
    let generation = s.app.act(actor, image, &body.action, &upscale).await?;
    created(&s, actor, generation, wait).await
}

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
