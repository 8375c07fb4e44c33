//! `/metrics`: Prometheus's text format. Requests are counted and timed by route template (so
//! ids never make new series), method and status; the engine counts job runs and provider
//! errors through the same `metrics` facade; the queue's depth is read from the catalogue at
//! each scrape, so it is the whole deployment's, whichever node answers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::auth::Caller;
use super::problem::Answer;
use super::{Problem, Shared};
use crate::config::MetricsAccess;

const DURATION: &str = "atelier_http_request_duration_seconds";
/// Buckets from a cached status read (well under a millisecond) to a long `Prefer: wait`.
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` if another recorder was installed
/// first (then nothing is exported).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(DURATION.into()), BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            // Histograms are folded into their buckets by the upkeep; without it they grow.
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        })
        .as_ref()
}

/// Counts and times every request.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only the standard methods name a series: a made-up one would make a new series per
    // request, and anyone may send one.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("atelier_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`, for whom `[server] metrics` allows.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    summary = "Prometheus metrics (an administrator's key unless [server] metrics = \"public\")",
    responses(
        (status = 200, description = "Prometheus's text format", content_type = "text/plain", body = String),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn scrape(State(s): State<Shared>, caller: Result<Caller, Problem>) -> Answer<Response> {
    match s.settings.metrics {
        MetricsAccess::Off => return Err(Problem::not_found("no such route")),
        MetricsAccess::Public => {}
        MetricsAccess::Admin => {
            let Caller(actor) = caller?;
            if !actor.sees_all() {
                return Err(Problem::forbidden(
                    "only an administrator may read the metrics",
                ));
            }
        }
    }
    let Some(handle) = handle() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "metrics are not recorded in this process",
        ));
    };
    for load in s.app.queue_load().await? {
        metrics::gauge!("atelier_jobs", "provider" => load.provider.clone(), "status" => "pending")
            .set(load.pending as f64);
        metrics::gauge!("atelier_jobs", "provider" => load.provider, "status" => "running")
            .set(load.running as f64);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}
