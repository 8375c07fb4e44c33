//! The Replicate simulator's routes: creates (by version or by official model) with their
//! checks, faults and `Prefer: wait`; reads, lists and cancels; the account; the hosted
//! outputs; the statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::faults::Fault;
use super::predictions::Job;
use super::{Hosted, Sim, version_of};
use crate::providers::replicate::params::{Kind, check_input};
use crate::providers::replicate::wire::{InvalidField, Problem, is_version_id};

/// The official models the simulator knows by version id (any `owner/name` may be run by
/// name): their versions are `version_of` their names.
const MODELS: [&str; 5] = [
    "black-forest-labs/flux-schnell",
    "black-forest-labs/flux-dev",
    "stability-ai/sdxl",
    "bytedance/sdxl-lightning-4step",
    "wan-video/wan-2.2-t2v-fast",
];

pub(super) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1/predictions", post(create_by_version).get(list))
        .route(
            "/v1/models/{owner}/{name}/predictions",
            post(create_by_model),
        )
        .route("/v1/predictions/{id}", get(read))
        .route("/v1/predictions/{id}/cancel", post(cancel))
        .route("/v1/account", get(account))
        .route("/files/{token}/{name}", get(hosted))
        .route("/_sim/stats", get(stats))
        .with_state(sim)
}

/// The headers every API answer carries.
fn api_headers(remaining: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&remaining.to_string()) {
        h.insert("ratelimit-remaining", v);
    }
    h.insert("ratelimit-reset", HeaderValue::from_static("1"));
    h
}

fn json_answer(status: StatusCode, headers: HeaderMap, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_default();
    (status, headers, text).into_response()
}

/// A problem-details error answer.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    problem_with(status, title, detail, Vec::new())
}

fn problem_with(
    status: StatusCode,
    title: &str,
    detail: &str,
    invalid_fields: Vec<InvalidField>,
) -> Response {
    let mut headers = api_headers(599);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    let body = Problem {
        kind: None,
        title: title.to_owned(),
        detail: detail.to_owned(),
        status: status.as_u16(),
        invalid_fields,
    };
    json_answer(status, headers, &body)
}

/// The bearer token (or the older `Token` scheme), checked; every API request is counted.
fn authorised(sim: &Sim, headers: &HeaderMap) -> Result<(), Box<Response>> {
    sim.count(|s| s.requests += 1);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("Token "))
        })
        .map(str::trim);
    if given == Some(sim.config.token.as_str()) {
        return Ok(());
    }
    sim.count(|s| s.unauthorized += 1);
    Err(Box::new(problem(
        StatusCode::UNAUTHORIZED,
        "Unauthenticated",
        "You did not pass a valid authentication token",
    )))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    let stats = sim.stats.lock().map(|s| s.clone()).unwrap_or_default();
    axum::Json(stats).into_response()
}

async fn account(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let body = json!({"type": "user", "username": "atelier-sim", "name": "Atelier Simulator", "github_url": null});
    json_answer(StatusCode::OK, api_headers(599), &body)
}

async fn create_by_version(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    sim.count(|s| s.creates += 1);
    let Some(fields) = body_fields(&body) else {
        return bad_json();
    };
    let version = fields
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let model = MODELS
        .iter()
        .find(|m| is_version_id(version) && version_of(m) == version.to_ascii_lowercase());
    let Some(model) = model else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid version or not permitted",
            "The specified version does not exist (or perhaps you don't have permission to use it?)",
        );
    };
    create(&sim, &headers, model, &fields).await
}

async fn create_by_model(
    State(sim): State<Arc<Sim>>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    sim.count(|s| s.creates += 1);
    let Some(fields) = body_fields(&body) else {
        return bad_json();
    };
    if fields.contains_key("version") {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request",
            "version is not taken here: the model's latest version runs",
        );
    }
    create(&sim, &headers, &format!("{owner}/{name}"), &fields).await
}

fn body_fields(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    }
}

fn bad_json() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Invalid JSON",
        "The request body is not a JSON object.",
    )
}

/// `Prefer: wait` (60 s) or `wait=N` (1–60 s).
fn prefer_wait(headers: &HeaderMap) -> Option<u64> {
    let prefer = headers.get("prefer")?.to_str().ok()?.trim();
    if prefer == "wait" {
        return Some(60);
    }
    prefer
        .strip_prefix("wait=")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|n| n.clamp(1, 60))
}

/// Checks a create, deals it its fault, makes the prediction and answers (after waiting for
/// it, when asked).
async fn create(
    sim: &Arc<Sim>,
    headers: &HeaderMap,
    model: &str,
    fields: &Map<String, Value>,
) -> Response {
    let kind = if model.contains("video") {
        Kind::Video
    } else {
        Kind::Image
    };
    let input = match fields.get("input") {
        Some(Value::Object(input)) => input.clone(),
        _ => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Input validation failed",
                "- input: Required\n",
            );
        }
    };
    let input = match check_input(&input, kind) {
        Ok(input) => input,
        Err(refusal) => {
            let description = capitalised(&refusal.message);
            return problem_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Input validation failed",
                &format!("- {}: {description}\n", refusal.field),
                vec![InvalidField {
                    kind: "invalid".into(),
                    field: refusal.field,
                    description,
                }],
            );
        }
    };
    let fault = sim.fault();
    match fault {
        Some(Fault::ServerError) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "Something went wrong on our end. Please try again.",
            );
        }
        Some(Fault::Overloaded) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "The service is overloaded; try again shortly.",
            );
        }
        Some(Fault::RateLimit) => {
            let mut response = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Request was throttled.",
                "Request was throttled. Expected available in 1 second.",
            );
            let h = response.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            h.insert("ratelimit-remaining", HeaderValue::from_static("0"));
            return response;
        }
        Some(Fault::Slow) => tokio::time::sleep(sim.config.slow).await,
        _ => {}
    }
    let outputs = u8::try_from(
        input
            .get("num_outputs")
            .and_then(Value::as_u64)
            .unwrap_or(1),
    )
    .unwrap_or(1);
    sim.count(|s| {
        s.predictions += 1;
        s.asked.push(outputs);
        if s.asked.len() > 100 {
            s.asked.remove(0);
        }
    });
    let job = Job::new(model, &version_of(model), kind, input, fault);
    let id = job.id.clone();
    let job = Arc::new(tokio::sync::Mutex::new(job));
    if let Ok(mut all) = sim.predictions.lock() {
        all.insert(id.clone(), job.clone());
    }
    if let Ok(mut order) = sim.order.lock() {
        order.push(id);
    }
    let wait = prefer_wait(headers);
    if let Some(secs) = wait {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut stop = sim.stop.subscribe();
        while Instant::now() < until && !job.lock().await.status(sim.config.latency).is_terminal() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
    let mut headers = api_headers(598);
    if let Some(secs) = wait
        && let Ok(v) = HeaderValue::from_str(&format!("wait={secs}"))
    {
        headers.insert("preference-applied", v);
    }
    match shown(sim, &job).await {
        Ok(view) => json_answer(StatusCode::CREATED, headers, &view),
        Err(why) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            &why,
        ),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The prediction as the API shows it now, its outputs drawn and hosted the first time it is
/// seen ended.
async fn shown(sim: &Arc<Sim>, job: &Arc<tokio::sync::Mutex<Job>>) -> Result<Value, String> {
    let mut job = job.lock().await;
    if job.needs_drawing(sim.config.latency) {
        let ttl = match job.fault {
            Some(Fault::ExpiringUrls) => sim.config.url_ttl.min(Duration::from_secs(1)),
            Some(Fault::ExpiredUrls) => Duration::ZERO,
            _ => sim.config.url_ttl,
        };
        let urls: Vec<String> = if job.fault == Some(Fault::Nsfw) {
            Vec::new()
        } else {
            let drawn = {
                let max_side = sim.config.max_side;
                let snapshot =
                    Job::new(&job.model, &job.version, job.kind, job.input.clone(), None);
                tokio::task::spawn_blocking(move || snapshot.draw(max_side))
                    .await
                    .map_err(|e| e.to_string())??
            };
            drawn
                .into_iter()
                .map(|(bytes, name, content_type)| host(sim, bytes, &name, content_type, ttl))
                .collect()
        };
        job.end_with(urls);
    }
    serde_json::to_value(job.view(sim)).map_err(|e| e.to_string())
}

/// Keeps a file behind a URL until `ttl` has passed.
fn host(
    sim: &Sim,
    bytes: Vec<u8>,
    name: &str,
    content_type: &'static str,
    ttl: Duration,
) -> String {
    let token = format!("{:032x}", fastrand::u128(..));
    let now = Instant::now();
    if let Ok(mut hosted) = sim.hosted.lock() {
        // Files expired a minute ago go (until then they answer as expired); at most a few
        // hundred are kept.
        hosted.retain(|_, f| f.until + Duration::from_mins(1) > now);
        if hosted.len() >= 512 {
            hosted.clear();
        }
        hosted.insert(
            token.clone(),
            Hosted {
                bytes,
                content_type,
                until: now + ttl,
            },
        );
    }
    format!("{}/files/{token}/{name}", sim.base)
}

fn find(sim: &Sim, id: &str) -> Option<Arc<tokio::sync::Mutex<Job>>> {
    sim.predictions.lock().ok().and_then(|p| p.get(id).cloned())
}

fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not found",
        "The requested resource could not be found.",
    )
}

async fn read(State(sim): State<Arc<Sim>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    sim.count(|s| s.polls += 1);
    let Some(job) = find(&sim, &id) else {
        return not_found();
    };
    match shown(&sim, &job).await {
        Ok(view) => json_answer(StatusCode::OK, api_headers(597), &view),
        Err(why) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            &why,
        ),
    }
}

async fn cancel(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    sim.count(|s| s.cancels += 1);
    let Some(job) = find(&sim, &id) else {
        return not_found();
    };
    if job.lock().await.cancel(sim.config.latency) {
        sim.count(|s| s.canceled += 1);
    }
    match shown(&sim, &job).await {
        Ok(view) => json_answer(StatusCode::OK, api_headers(596), &view),
        Err(why) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            &why,
        ),
    }
}

/// `GET /v1/predictions`: the newest first, one page of up to 100.
async fn list(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let ids: Vec<String> = sim
        .order
        .lock()
        .map(|o| o.iter().rev().take(100).cloned().collect())
        .unwrap_or_default();
    let mut results = Vec::new();
    for id in ids {
        if let Some(job) = find(&sim, &id)
            && let Ok(view) = shown(&sim, &job).await
        {
            results.push(view);
        }
    }
    json_answer(
        StatusCode::OK,
        api_headers(599),
        &json!({"previous": null, "next": null, "results": results}),
    )
}

async fn hosted(
    State(sim): State<Arc<Sim>>,
    Path((token, _name)): Path<(String, String)>,
) -> Response {
    let found = sim.hosted.lock().ok().and_then(|h| {
        h.get(&token)
            .map(|f| (f.bytes.clone(), f.content_type, f.until))
    });
    match found {
        Some((_, _, until)) if Instant::now() >= until => {
            sim.count(|s| s.expired += 1);
            (StatusCode::NOT_FOUND, "Not Found").into_response()
        }
        Some((bytes, content_type, _)) => {
            sim.count(|s| s.downloads += 1);
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}
