//! Webhooks over HTTP: a generation's delivery log (`/v1/generations/{id}/webhooks`, scoped
//! like every generation route) and the caller's signing secret (`/v1/me/webhook-secret`,
//! read, and rotated with `POST …/rotate`). A generation's webhook itself is given when it is
//! created (`generations.rs`).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::input::id;
use super::problem::Answer;
use super::{Problem, Shared};
use crate::api::{DeliveryView, WebhookSecretView};
use crate::domain::Actor;

/// A generation's deliveries, oldest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Deliveries {
    data: Vec<DeliveryView>,
}

#[utoipa::path(
    get,
    path = "/generations/{id}/webhooks",
    tag = "generations",
    operation_id = "list_webhook_deliveries",
    summary = "A generation's webhook deliveries and their attempts",
    params(("id" = uuid::Uuid, Path, description = "The generation's id")),
    responses(
        (status = 200, description = "The delivery log", body = Deliveries),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn deliveries(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<axum::Json<Deliveries>> {
    let id = id(&raw, "generation")?;
    let log = s.app.webhook_deliveries(actor, id).await?;
    Ok(axum::Json(Deliveries {
        data: log.iter().map(DeliveryView::from).collect(),
    }))
}

/// A secret is never kept by a cache on the way.
fn secret_answer(view: WebhookSecretView) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(view)).into_response()
}

fn operator(actor: Actor) -> Result<(), Problem> {
    if actor.owner().is_none() {
        return Err(Problem::not_found(
            "the operator has no webhook secret here: it is [webhooks] secret in the configuration",
        ));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/me/webhook-secret",
    tag = "accounts",
    operation_id = "get_webhook_secret",
    summary = "The caller's webhook signing secret (made on first use)",
    responses(
        (status = 200, description = "The secret (`Cache-Control: no-store`)", body = WebhookSecretView),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn secret(State(s): State<Shared>, Caller(actor): Caller) -> Answer<Response> {
    operator(actor)?;
    Ok(secret_answer(s.app.webhook_secret(actor).await?))
}

#[utoipa::path(
    post,
    path = "/me/webhook-secret/rotate",
    tag = "accounts",
    operation_id = "rotate_webhook_secret",
    summary = "Replace the caller's webhook secret (the old one still signs for a while)",
    responses(
        (status = 200, description = "The new secret (`Cache-Control: no-store`)", body = WebhookSecretView),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn rotate(State(s): State<Shared>, Caller(actor): Caller) -> Answer<Response> {
    operator(actor)?;
    Ok(secret_answer(s.app.rotate_webhook_secret(actor).await?))
}
