//! `/healthz` (the process answers) and `/readyz` (its catalogue and store answer too), for
//! load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Shared;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    operation_id = "healthz",
    summary = "The process answers",
    security(()),
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String))
)]
pub async fn live() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    operation_id = "readyz",
    summary = "The catalogue and the store answer too, and the server is not stopping",
    security(()),
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "`not ready` or `stopping`", content_type = "text/plain", body = String),
    )
)]
pub async fn ready(State(s): State<Shared>) -> Response {
    if *s.stopping.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    match s.app.ready().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => {
            tracing::warn!(%why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
        }
    }
}
