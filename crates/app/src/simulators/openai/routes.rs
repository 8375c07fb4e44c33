//! The OpenAI simulator's routes: the image endpoints with their checks, faults, answers
//! and streams; the model list; the hosted pictures behind URLs; the statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::faults::Fault;
use super::picture::{self, Part};
use super::{Hosted, Sim};
use crate::providers::openai::params::{Family, ImageRequest, check_body};
use crate::providers::openai::wire::{
    ErrorBody, ErrorDetail, ImageData, ImagesResponse, StreamEvent,
};

/// The fields `/images/generations` takes; anything else is an unknown parameter.
const FIELDS: [&str; 14] = [
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "style",
    "response_format",
    "stream",
    "partial_images",
    "user",
];

pub(super) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1/images/generations", post(generations))
        .route("/v1/images/edits", post(edits))
        .route("/v1/models", get(models))
        .route("/images/{token}", get(hosted))
        .route("/_sim/stats", get(stats))
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(sim)
}

/// The headers every API answer carries.
fn api_headers(remaining: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put("x-request-id", format!("req_{:032x}", fastrand::u128(..)));
    put("openai-version", "2020-10-01".into());
    put("openai-organization", "user-simulator".into());
    put("openai-processing-ms", fastrand::u32(20..400).to_string());
    put("x-ratelimit-limit-requests", "50".into());
    put("x-ratelimit-remaining-requests", remaining.to_string());
    put(
        "x-ratelimit-reset-requests",
        if remaining == 0 { "1s" } else { "1.2s" }.into(),
    );
    put("x-ratelimit-limit-tokens", "100000".into());
    put("x-ratelimit-remaining-tokens", "99000".into());
    put("x-ratelimit-reset-tokens", "600ms".into());
    h
}

fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            message: message.to_owned(),
            kind: Some(kind.to_owned()),
            param: param.map(str::to_owned),
            code: code.map(str::to_owned),
        },
    };
    // `param` and `code` are null, not missing, when they do not apply.
    let mut value = serde_json::to_value(&body).unwrap_or_default();
    for key in ["param", "code"] {
        if value["error"].get(key).is_none() {
            value["error"][key] = Value::Null;
        }
    }
    (status, api_headers(49), axum::Json(value)).into_response()
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        code,
    )
}

/// The bearer key, checked.
/// The refusal is boxed: a `Response` is large, and the happy path should not carry it.
fn authorised(sim: &Sim, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(key) if key == sim.config.key => Ok(()),
        Some(key) => {
            sim.count(|s| s.unauthorized += 1);
            let shown: String = key
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Incorrect API key provided: sk-****{shown}. You can find your API key at https://platform.openai.com/account/api-keys."
                ),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            )))
        }
        None => {
            sim.count(|s| s.unauthorized += 1);
            Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
                None,
            )))
        }
    }
}

async fn models(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let data: Vec<Value> = [
        "gpt-image-1",
        "gpt-image-1-mini",
        "gpt-image-1.5",
        "gpt-image-2",
        "dall-e-3",
        "dall-e-2",
    ]
    .iter()
    .map(|id| json!({"id": id, "object": "model", "created": 1_698_785_189, "owned_by": "system"}))
    .collect();
    (
        api_headers(49),
        axum::Json(json!({"object": "list", "data": data})),
    )
        .into_response()
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    let stats = sim.stats.lock().map(|s| s.clone()).unwrap_or_default();
    axum::Json(stats).into_response()
}

async fn hosted(State(sim): State<Arc<Sim>>, Path(token): Path<String>) -> Response {
    let found = sim.hosted.lock().ok().and_then(|h| {
        h.get(&token)
            .map(|p| (p.bytes.clone(), p.content_type, p.until))
    });
    match found {
        Some((_, _, until)) if Instant::now() >= until => {
            sim.count(|s| s.expired += 1);
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/xml")],
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>Signed expiry time has passed.</Message></Error>",
            )
                .into_response()
        }
        Some((bytes, content_type, _)) => {
            sim.count(|s| s.downloads += 1);
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "The specified blob does not exist.").into_response(),
    }
}

async fn generations(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    sim.count(|s| {
        s.requests += 1;
        s.generations += 1;
    });
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            None,
            None,
        );
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return invalid(
            &format!("Unknown parameter: '{unknown}'."),
            Some(unknown),
            Some("unknown_parameter"),
        );
    }
    let prompt = match fields.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        _ => {
            return invalid(
                "Missing required parameter: 'prompt'.",
                Some("prompt"),
                Some("missing_required_parameter"),
            );
        }
    };
    answer(&sim, &fields, &prompt, &[], "image_generation").await
}

async fn edits(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    sim.count(|s| {
        s.requests += 1;
        s.edits += 1;
    });
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let parts = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(picture::boundary)
        .and_then(|b| picture::parts(&body, &b));
    let Some(parts) = parts else {
        return invalid(
            "Invalid content type: /v1/images/edits takes multipart/form-data.",
            None,
            None,
        );
    };
    let mut fields = Map::new();
    let mut images: Vec<Part> = Vec::new();
    for part in parts {
        match (part.name.as_str(), &part.filename) {
            ("image" | "image[]", Some(_)) => images.push(part),
            ("mask", Some(_)) => {}
            (name, None) if FIELDS.contains(&name) => {
                fields.insert(
                    name.to_owned(),
                    Value::String(String::from_utf8_lossy(&part.bytes).into_owned()),
                );
            }
            (name, _) => {
                return invalid(
                    &format!("Unknown parameter: '{name}'."),
                    Some(name),
                    Some("unknown_parameter"),
                );
            }
        }
    }
    if images.is_empty() {
        return invalid(
            "Missing required parameter: 'image'.",
            Some("image"),
            Some("missing_required_parameter"),
        );
    }
    let Some(Value::String(prompt)) = fields.remove("prompt") else {
        return invalid(
            "Missing required parameter: 'prompt'.",
            Some("prompt"),
            Some("missing_required_parameter"),
        );
    };
    let model = fields
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("dall-e-2");
    if Family::of(model) == Family::DallE3 {
        return invalid(
            "Invalid model dall-e-3. Edits take dall-e-2 or a GPT image model.",
            Some("model"),
            Some("invalid_value"),
        );
    }
    if Family::of(model) == Family::DallE2 && images.len() > 1 {
        return invalid(
            "dall-e-2 edits one image.",
            Some("image"),
            Some("invalid_value"),
        );
    }
    let inputs: Vec<Vec<u8>> = images.into_iter().map(|p| p.bytes).collect();
    answer(&sim, &fields, &prompt, &inputs, "image_edit").await
}

/// FNV-1a of the prompt and the input pictures: the same request draws the same pictures.
fn seed(prompt: &str, inputs: &[Vec<u8>]) -> u32 {
    prompt
        .bytes()
        .chain(inputs.iter().flat_map(|i| i.iter().step_by(61).copied()))
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
}

/// Checks a request, deals it its fault, and answers it.
async fn answer(
    sim: &Arc<Sim>,
    fields: &Map<String, Value>,
    prompt: &str,
    inputs: &[Vec<u8>],
    events: &'static str,
) -> Response {
    let mut body = fields.clone();
    body.remove("user");
    let request = match check_body(&body, prompt) {
        Ok(r) => r,
        Err(refusal) => {
            let code = if refusal.param == "prompt" {
                "string_above_max_length"
            } else {
                "invalid_value"
            };
            return invalid(&refusal.message, Some(&refusal.param), Some(code));
        }
    };
    sim.count(|s| {
        s.asked.push(request.n);
        if s.asked.len() > 100 {
            s.asked.remove(0);
        }
    });
    let mut ttl = sim.config.url_ttl;
    match sim.fault() {
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                None,
            );
        }
        Some(Fault::Overloaded) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The engine is currently overloaded, please try again later.",
                "server_error",
                None,
                None,
            );
        }
        Some(Fault::RateLimit) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for images per minute (IPM): Limit 50, Used 50, Requested 1. Please try again in 1s.",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            );
            let h = response.headers_mut();
            *h = api_headers(0);
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return response;
        }
        Some(Fault::Refusal) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Your request was rejected as a result of our safety system. Your request may contain content that is not allowed by our safety system.",
                "image_generation_user_error",
                None,
                Some("moderation_blocked"),
            );
        }
        Some(Fault::Stuck) => {
            tokio::select! {
                () = sim.stopped() => {}
                () = tokio::time::sleep(Duration::from_hours(1)) => {}
            }
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                "The request timed out.",
                "server_error",
                None,
                None,
            );
        }
        Some(Fault::Slow) => tokio::time::sleep(sim.config.slow).await,
        Some(Fault::BrokenStream) if request.stream => {
            let cut = (request.n / 2).max(1);
            return stream(
                sim,
                request,
                inputs.len(),
                seed(prompt, inputs),
                events,
                Some(cut),
            );
        }
        Some(Fault::ExpiringUrls) => ttl = ttl.min(Duration::from_secs(1)),
        Some(Fault::ExpiredUrls) => ttl = Duration::ZERO,
        Some(Fault::BrokenStream) | None => {}
    }
    if request.stream {
        return stream(
            sim,
            request,
            inputs.len(),
            seed(prompt, inputs),
            events,
            None,
        );
    }
    tokio::time::sleep(sim.config.latency).await;
    let family = Family::of(&request.model);
    let pictures = match draw_all(sim, &request, seed(prompt, inputs), None).await {
        Ok(p) => p,
        Err(why) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &why,
                "server_error",
                None,
                None,
            );
        }
    };
    let url = match request.response_format.as_deref() {
        Some(f) => f == "url",
        // dall-e models answer with URLs unless asked for base64; GPT image models never do.
        None => matches!(family, Family::DallE2 | Family::DallE3),
    };
    let format = request
        .output_format
        .clone()
        .unwrap_or_else(|| "png".into());
    let data = pictures
        .into_iter()
        .map(|bytes| {
            if url {
                ImageData {
                    url: Some(host(sim, bytes, &format, ttl)),
                    revised_prompt: (family == Family::DallE3).then(|| prompt.to_owned()),
                    ..ImageData::default()
                }
            } else {
                ImageData {
                    b64_json: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    ..ImageData::default()
                }
            }
        })
        .collect();
    let gpt = matches!(family, Family::GptImage | Family::GptImageFree);
    let size = request.size.clone().unwrap_or_else(|| "1024x1024".into());
    let quality = effective_quality(&request);
    let response = ImagesResponse {
        created: time::OffsetDateTime::now_utc().unix_timestamp(),
        data,
        background: gpt.then(|| {
            if request.background.as_deref() == Some("transparent") {
                "transparent".into()
            } else {
                "opaque".into()
            }
        }),
        output_format: gpt.then(|| format.clone()),
        quality: gpt.then(|| quality.clone()),
        size: gpt.then(|| size.clone()),
        usage: gpt.then(|| picture::usage(prompt, inputs.len(), &size, &quality, request.n)),
    };
    (api_headers(49), axum::Json(response)).into_response()
}

fn effective_quality(request: &ImageRequest) -> String {
    match request.quality.as_deref() {
        None | Some("auto") => "medium".into(),
        Some(q) => q.to_owned(),
    }
}

/// The request's pictures, drawn on a blocking thread; `side` overrides the long edge (partial
/// images are drawn small).
#[allow(clippy::similar_names)] // `size` is the request's text, `side` the square drawn
async fn draw_all(
    sim: &Sim,
    request: &ImageRequest,
    seed: u32,
    side: Option<u32>,
) -> Result<Vec<Vec<u8>>, String> {
    let (prompt, n) = (request.prompt.clone(), request.n);
    let size = request.size.clone().unwrap_or_else(|| "1024x1024".into());
    let format = request
        .output_format
        .clone()
        .unwrap_or_else(|| "png".into());
    let compression = request.output_compression.unwrap_or(100);
    let max_side = side.or(sim.config.max_side);
    let drawn = tokio::task::spawn_blocking(move || {
        (0..u32::from(n))
            .map(|i| picture::picture(&prompt, seed, i, &size, &format, compression, max_side))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| e.to_string())??;
    sim.count(|s| s.images += u64::from(n));
    Ok(drawn)
}

/// Keeps a picture behind a URL until `ttl` has passed.
fn host(sim: &Sim, bytes: Vec<u8>, format: &str, ttl: Duration) -> String {
    let token = format!("img-{:032x}", fastrand::u128(..));
    let now = Instant::now();
    if let Ok(mut hosted) = sim.hosted.lock() {
        // Expired pictures go; at most a few hundred are kept.
        hosted.retain(|_, p| p.until > now);
        if hosted.len() >= 256 {
            hosted.clear();
        }
        hosted.insert(
            token.clone(),
            Hosted {
                bytes,
                content_type: match format {
                    "jpeg" => "image/jpeg",
                    "webp" => "image/webp",
                    _ => "image/png",
                },
                until: now + ttl,
            },
        );
    }
    let expiry = time::OffsetDateTime::now_utc() + ttl;
    format!(
        "{}/images/{token}?se={}&sp=r&sig={:016x}",
        sim.base,
        expiry.unix_timestamp(),
        fastrand::u64(..)
    )
}

/// A streamed answer: per image, its partial images then its completed event, as server-sent
/// events named by their `type`; with `cut`, the connection breaks after that many images.
fn stream(
    sim: &Arc<Sim>,
    request: ImageRequest,
    inputs: usize,
    seed: u32,
    events: &'static str,
    cut: Option<u8>,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let sim = sim.clone();
    tokio::spawn(async move {
        let partials = u32::from(request.partial_images.unwrap_or(0));
        let step = sim.config.latency / (partials + 1);
        let size = request.size.clone().unwrap_or_else(|| "1024x1024".into());
        let quality = effective_quality(&request);
        let format = request
            .output_format
            .clone()
            .unwrap_or_else(|| "png".into());
        let background = request.background.clone().unwrap_or_else(|| "auto".into());
        let Ok(finals) = draw_all(&sim, &request, seed, None).await else {
            return;
        };
        let event = |kind: &str, b64: String, index: Option<u32>, usage| StreamEvent {
            kind: format!("{events}.{kind}"),
            b64_json: Some(b64),
            partial_image_index: index,
            usage,
            created_at: Some(time::OffsetDateTime::now_utc().unix_timestamp()),
            size: Some(size.clone()),
            quality: Some(quality.clone()),
            background: Some(background.clone()),
            output_format: Some(format.clone()),
            error: None,
        };
        let one = ImageRequest {
            n: 1,
            ..request.clone()
        };
        for (i, bytes) in finals.into_iter().enumerate() {
            if cut.is_some_and(|c| i >= usize::from(c)) {
                // An error in the body makes the server drop the connection mid-answer; the
                // events before it are given time to leave first.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = sender
                    .send(Err(std::io::Error::other("connection reset")))
                    .await;
                return;
            }
            for k in 0..partials {
                tokio::time::sleep(step).await;
                // A partial image is the picture drawn small.
                let Ok(small) = draw_all(&sim, &one, seed, Some(32 << k)).await else {
                    return;
                };
                let b64 = base64::engine::general_purpose::STANDARD.encode(&small[0]);
                if send(&sender, &event("partial_image", b64, Some(k), None))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tokio::time::sleep(step).await;
            let usage = picture::usage(&request.prompt, inputs, &size, &quality, 1);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            if send(&sender, &event("completed", b64, None, Some(usage)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let mut headers = api_headers(49);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (headers, Body::from_stream(body)).into_response()
}

async fn send(
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    event: &StreamEvent,
) -> Result<(), ()> {
    let data = serde_json::to_string(event).map_err(|_| ())?;
    let text = format!("event: {}\ndata: {data}\n\n", event.kind);
    sender.send(Ok(Bytes::from(text))).await.map_err(|_| ())
}
