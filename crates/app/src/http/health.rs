//! `/healthz` (the process answers) and `/readyz` (its catalogue and store answer too), for
//! load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Shared;

pub async fn live() -> &'static str {
    "ok"
}

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
