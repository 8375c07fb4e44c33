//! The proxy's task routes (`GET /mj/task/{id}/fetch`, `POST /mj/task/list-by-condition`,
//! `GET /mj/task/list`, `POST /mj/task/{id}/cancel`, `GET /mj/task/{id}/image-seed`) and the
//! signed links to pictures (`GET /mj/image/{link}`), which clients download without a key.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::auth::Caller;
use super::super::input::Body;
use super::super::{Problem, Shared};
use super::envelope::{Envelope, MjError};
use super::{caller, client_origin};
use crate::api::GenerationQuery;
use crate::api::mjproxy::{ModalTask, Task};
use crate::app::GenerationWithImages;
use crate::domain::{Actor, GenerationId};
use crate::error::AppError;

/// The most ids one `list-by-condition` takes.
const MAX_IDS: usize = 200;

/// A task of `actor`'s, or "not found" (also for another user's).
pub(super) async fn visible(
    s: &Shared,
    actor: Actor,
    id: &str,
) -> Result<GenerationWithImages, MjError> {
    let parsed: GenerationId = id.trim().parse().map_err(|_| MjError::no_task(id))?;
    match s.app.generation(actor, parsed).await {
        Ok(g) => Ok(g),
        Err(AppError::NotFound(_)) => Err(MjError::no_task(id)),
        Err(e) => Err(e.into()),
    }
}

/// Task `id` of `actor`'s as the proxy shows it: a generation, or a task waiting for its form
/// (`MODAL`); "not found" for anything else, another user's included.
async fn task_of(
    s: &Shared,
    actor: Actor,
    id: &str,
    origin: Option<&str>,
) -> Result<Task, MjError> {
    if let Some(modal) = ModalTask::parse(id) {
        return match s.app.mj_modal_task(actor, &modal).await {
            Ok(task) => Ok(task),
            Err(AppError::NotFound(_)) => Err(MjError::no_task(id)),
            Err(e) => Err(e.into()),
        };
    }
    let g = visible(s, actor, id).await?;
    Ok(s.app.mj_task(&g, origin))
}

#[utoipa::path(
    get,
    path = "/mj/task/{id}/fetch",
    tag = "midjourney-proxy",
    operation_id = "mj_task_fetch",
    summary = "midjourney-proxy: one task",
    description = "The task object: `status`, `progress`, `imageUrl` (a signed link that opens without a key, or the store's public URL), `buttons` (what the task's provider plays)…",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "No such task of the caller's (code 3)", body = Envelope),
    )
)]
pub async fn fetch(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Task>, MjError> {
    let actor = caller(c)?;
    Ok(axum::Json(
        task_of(&s, actor, &id, client_origin(&headers).as_deref()).await?,
    ))
}

/// `POST /mj/task/list-by-condition`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Condition {
    /// Task ids; those that name no task of the caller's are left out.
    #[serde(default)]
    ids: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/mj/task/list-by-condition",
    tag = "midjourney-proxy",
    operation_id = "mj_task_list_by_condition",
    summary = "midjourney-proxy: tasks by id",
    description = "The caller's tasks among `ids` (at most 200), in the order asked; ids that name none are left out, as the proxy does.",
    request_body = Condition,
    responses(
        (status = 200, description = "The tasks", body = [Task]),
        (status = 400, description = "Not JSON, or more than 200 ids (code 4)", body = Envelope),
    )
)]
pub async fn list_by_condition(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    headers: HeaderMap,
    body: Result<Body<Condition>, Problem>,
) -> Result<axum::Json<Vec<Task>>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    if body.ids.len() > MAX_IDS {
        return Err(MjError::invalid(format!(
            "ids holds {} task ids; at most {MAX_IDS} at once",
            body.ids.len()
        )));
    }
    let origin = client_origin(&headers);
    let mut out = Vec::with_capacity(body.ids.len());
    for id in &body.ids {
        match task_of(&s, actor, id, origin.as_deref()).await {
            Ok(task) => out.push(task),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(axum::Json(out))
}

#[utoipa::path(
    get,
    path = "/mj/task/list",
    tag = "midjourney-proxy",
    operation_id = "mj_task_list",
    summary = "midjourney-proxy: the newest tasks",
    description = "The caller's 100 newest generations as tasks, newest first.",
    responses((status = 200, description = "The tasks", body = [Task]))
)]
pub async fn list(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<Task>>, MjError> {
    let actor = caller(c)?;
    let query = GenerationQuery {
        limit: Some(100),
        ..GenerationQuery::default()
    };
    let page = s.app.generations(actor, &query).await?;
    let origin = client_origin(&headers);
    let mut out = Vec::with_capacity(page.generations.len());
    for g in page.generations {
        match s.app.generation(actor, g.id).await {
            Ok(g) => out.push(s.app.mj_task(&g, origin.as_deref())),
            Err(AppError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(axum::Json(out))
}

#[utoipa::path(
    post,
    path = "/mj/task/{id}/cancel",
    tag = "midjourney-proxy",
    operation_id = "mj_task_cancel",
    summary = "midjourney-proxy: cancel a task",
    description = "Cancels the task's generation: at once while it waits, through its worker while it runs; its status becomes `CANCEL`.",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "Canceled (code 1)", body = Envelope),
        (status = 404, description = "No such task of the caller's (code 3)", body = Envelope),
        (status = 409, description = "The task has already ended (code 4)", body = Envelope),
    )
)]
pub async fn cancel(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    Path(id): Path<String>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    if let Some(modal) = ModalTask::parse(&id) {
        // Nothing runs until the form is submitted, so there is nothing to stop.
        s.app
            .mj_modal_task(actor, &modal)
            .await
            .map_err(|e| match e {
                AppError::NotFound(_) => MjError::no_task(&id),
                e => e.into(),
            })?;
        return Ok(axum::Json(Envelope::ok(
            "Nothing to cancel: the task waits for its form and runs nothing until /mj/submit/modal",
            modal.id(),
        )));
    }
    let g = visible(&s, actor, &id).await?;
    s.app.cancel(actor, g.generation.id).await?;
    Ok(axum::Json(Envelope::ok(
        "Canceled",
        g.generation.id.to_string(),
    )))
}

#[utoipa::path(
    get,
    path = "/mj/task/{id}/image-seed",
    tag = "midjourney-proxy",
    operation_id = "mj_task_image_seed",
    summary = "midjourney-proxy: a task's seed",
    description = "The seed the task was made with, when it asked for one (`--seed`).",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "`result` is the seed (code 1)", body = Envelope),
        (status = 400, description = "The task names no seed (code 4)", body = Envelope),
        (status = 404, description = "No such task of the caller's (code 3)", body = Envelope),
    )
)]
pub async fn image_seed(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    Path(id): Path<String>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let g = visible(&s, actor, &id).await?;
    let seed =
        g.generation.parameters.seed.ok_or_else(|| {
            MjError::invalid(format!("task {id} was made with no seed of its own"))
        })?;
    Ok(axum::Json(Envelope::ok("Success", seed.to_string())))
}

#[utoipa::path(
    get,
    path = "/mj/image/{link}",
    tag = "midjourney-proxy",
    operation_id = "mj_image",
    summary = "midjourney-proxy: a task's picture, by its signed link",
    description = "Opens without a key: the link (a task's `imageUrl`) is signed by this server and expires after `[server.mj_proxy] link_ttl_secs`; fetch the task again for a fresh one.",
    params(("link" = String, Path, description = "The signed link")),
    responses(
        (status = 200, description = "The picture's bytes", content_type = "image/png"),
        (status = 404, response = super::super::openapi::NotFound),
    ),
    security(())
)]
pub async fn image(State(s): State<Shared>, Path(link): Path<String>) -> Response {
    match s.app.image_by_link(&link).await {
        Ok((image, bytes)) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            let headers = response.headers_mut();
            if let Ok(kind) = HeaderValue::from_str(&image.media_type()) {
                headers.insert(header::CONTENT_TYPE, kind);
            }
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            response
        }
        Err(AppError::NotFound(m)) => Problem::not_found(m).into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}
