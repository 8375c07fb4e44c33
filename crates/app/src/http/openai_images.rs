//! The drop-in OpenAI Images route, `POST /v1/images/generations`, as OpenAI's API answers it:
//! the official client libraries, and the tools built on them, work against Atelier with only
//! their base URL changed. A thin adapter over the same `App` as the rest of the API (the same
//! keys, credits, isolation, storage and events): `model` chooses a provider
//! (`[server.openai_images] models`), the request becomes a generation, the route waits for
//! its end and answers with its pictures, base64 or URLs. Errors are OpenAI's error bodies.
//!
//! The mapping, once: `n` is the provider's own parameter where it takes one (OpenAI's),
//! else the upscales of a grid (1–4) or the count a provider makes; `size` likewise, else an
//! aspect ratio; `quality`, `style`, `background`, `output_format`, `output_compression` and
//! `moderation` reach a provider that takes them and are dropped for the others; `user` is
//! dropped; `stream` is refused.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::Caller;
use super::generations::wait_for_end;
use super::input::Body;
use super::{Problem, Shared};
use crate::config::ServerConfig;
use crate::domain::{
    ErrorCode, GenerationRequest, GenerationStatus, Image, Role, UpscaleSelection,
};
use crate::error::AppError;
use error::{ErrorBody, OpenAiError};

mod error;

/// The fields handed to a provider that takes them by the same name.
const PASSED: [&str; 7] = [
    "size",
    "quality",
    "style",
    "background",
    "output_format",
    "output_compression",
    "moderation",
];

/// `[server.openai_images]`, read once: each model's provider and the model handed to it.
#[derive(Clone, Debug)]
pub struct Routes {
    models: std::collections::BTreeMap<String, (String, Option<String>)>,
    pub wait: Duration,
}

impl Routes {
    pub fn from_config(config: &ServerConfig) -> Result<Self, AppError> {
        let c = &config.openai_images;
        if !(1..=86_400).contains(&c.wait_secs) {
            return Err(AppError::Invalid(format!(
                "[server.openai_images] wait_secs must be from 1 to 86400, not {}",
                c.wait_secs
            )));
        }
        let mut models = std::collections::BTreeMap::new();
        for (model, route) in &c.models {
            let (provider, target) = match route.split_once(':') {
                Some((p, m)) => (p.trim(), Some(m.trim().to_owned())),
                None => (route.trim(), None),
            };
            if model.trim().is_empty()
                || provider.is_empty()
                || target.as_ref().is_some_and(String::is_empty)
            {
                return Err(AppError::Invalid(format!(
                    "[server.openai_images] models: {model:?} = {route:?}: expected a model name \
                     and \"PROVIDER\" or \"PROVIDER:MODEL\""
                )));
            }
            models.insert(model.clone(), (provider.to_owned(), target));
        }
        Ok(Self {
            models,
            wait: Duration::from_secs(c.wait_secs),
        })
    }

    /// Refuses, before the server listens, a mapping to a provider this server does not run,
    /// or a model handed to a provider that takes none (it would be dropped without a word).
    pub fn check(&self, app: &crate::app::App) -> Result<(), AppError> {
        for (model, (provider, target)) in &self.models {
            let name = app.provider_name(Some(provider)).map_err(|e| {
                AppError::Invalid(format!("[server.openai_images] models: {model:?}: {e}"))
            })?;
            if let Some(target) = target
                && !app.takes_parameter(Some(&name), "model")?
            {
                return Err(AppError::Invalid(format!(
                    "[server.openai_images] models: {model:?} = \"{provider}:{target}\": provider \
                     {provider:?} takes no model; map {model:?} to \"{provider}\""
                )));
            }
        }
        Ok(())
    }
}

/// The request body, as OpenAI documents it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagesRequest {
    prompt: String,
    model: Option<String>,
    /// 1 to 10.
    n: Option<u8>,
    /// `auto` or `WIDTHxHEIGHT`.
    size: Option<String>,
    /// `url` or `b64_json`; by default `url` for the `dall-e` models, else `b64_json`.
    response_format: Option<String>,
    quality: Option<String>,
    style: Option<String>,
    background: Option<String>,
    output_format: Option<String>,
    output_compression: Option<u8>,
    moderation: Option<String>,
    /// Accepted and ignored.
    #[expect(dead_code, reason = "accepted as OpenAI documents it, and ignored")]
    user: Option<String>,
    /// Refused: this route answers once the pictures are stored.
    stream: Option<bool>,
    /// Ignored, as `stream` is refused.
    #[expect(dead_code, reason = "accepted as OpenAI documents it, and ignored")]
    partial_images: Option<u8>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImagesResponse {
    created: i64,
    data: Vec<ImageData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    usage: Option<Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ImageData {
    #[serde(skip_serializing_if = "Option::is_none")]
    b64_json: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

#[utoipa::path(
    post,
    path = "/images/generations",
    tag = "openai",
    operation_id = "openai_images_generations",
    summary = "OpenAI's Images API, drop-in",
    description = "Answers as OpenAI's own `POST /v1/images/generations` does, once the pictures are stored: `model` chooses the provider (`[server.openai_images] models`). Errors are OpenAI's `{\"error\": {…}}` bodies.",
    request_body = ImagesRequest,
    responses(
        (status = 200, description = "The pictures", body = ImagesResponse),
        (status = 400, description = "Bad input (also a body too large or not JSON), or a prompt refused by the provider's policy", body = ErrorBody),
        (status = 401, description = "No API key, or not a valid one", body = ErrorBody),
        (status = 403, description = "The key's user is disabled", body = ErrorBody),
        (status = 404, description = "A model that names no provider", body = ErrorBody),
        (status = 409, description = "The generation was canceled meanwhile", body = ErrorBody),
        (status = 413, description = "The body is larger than the server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 429, description = "Over the key's rate (`Retry-After`), or not enough credits (`insufficient_quota`)", body = ErrorBody),
        (status = 500, description = "The generation failed here", body = ErrorBody),
        (status = 502, description = "The provider failed or could not be reached", body = ErrorBody),
        (status = 503, description = "The server could not take the request now (`Retry-After`)", body = ErrorBody),
        (status = 504, description = "Not done within `wait_secs`: the generation goes on", body = ErrorBody),
    )
)]
pub async fn generations(
    State(s): State<Shared>,
    caller: Result<Caller, Problem>,
    headers: HeaderMap,
    body: Result<Body<ImagesRequest>, Problem>,
) -> Result<axum::Json<ImagesResponse>, OpenAiError> {
    let Caller(actor) = caller?;
    let Body(body) = body.map_err(OpenAiError::body)?;
    let url = body.response_format.clone().unwrap_or_else(|| {
        let dall_e = body
            .model
            .as_deref()
            .is_some_and(|m| m.starts_with("dall-e"));
        if dall_e { "url" } else { "b64_json" }.to_owned()
    });
    if url != "url" && url != "b64_json" {
        return Err(OpenAiError::invalid(
            "response_format",
            format!("Invalid value: '{url}'. Supported values are: 'url' and 'b64_json'."),
        ));
    }
    let (request, n) = request(&s, body)?;
    let generation = s.app.submit(actor, request).await?;
    wait_for_end(&s, actor, generation.id, s.settings.openai_images.wait).await?;
    let g = s.app.generation(actor, generation.id).await?;
    match g.generation.status {
        GenerationStatus::Succeeded => {}
        GenerationStatus::Failed | GenerationStatus::Canceled => {
            return Err(failed(g.generation.error.as_ref()));
        }
        _ => {
            return Err(OpenAiError::status(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "generation {} did not end within {} s ([server.openai_images] wait_secs); \
                     it goes on: follow it at /v1/generations/{}",
                    g.generation.id,
                    s.settings.openai_images.wait.as_secs(),
                    g.generation.id
                ),
            ));
        }
    }
    let usage = s.app.generation_view(&g).usage;
    let mut data = Vec::with_capacity(usize::from(n));
    for image in results(g.images).into_iter().take(usize::from(n)) {
        data.push(if url == "url" {
            ImageData {
                b64_json: None,
                url: Some(image.public_url.clone().unwrap_or_else(|| {
                    let base = origin(&headers).unwrap_or_else(|| s.app.served_origin());
                    format!("{base}/v1/images/{}/file", image.id)
                })),
            }
        } else {
            let (_, bytes) = s.app.image_bytes(actor, image.id, false).await?;
            ImageData {
                b64_json: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                url: None,
            }
        });
    }
    Ok(axum::Json(ImagesResponse {
        created: g.generation.created_at.unix_timestamp(),
        data,
        usage,
    }))
}

/// The generation the body asks for, and how many pictures it ends with.
fn request(s: &Shared, body: ImagesRequest) -> Result<(GenerationRequest, u8), OpenAiError> {
    // The prompt's own faults (blank, too long, a control character, a bad parameter in it)
    // name it, as OpenAI's `param` does; `check` below would refuse them without a field.
    if let Err(e) = GenerationRequest::new(body.prompt.clone()).validated()
        && e.is_about_prompt()
    {
        return Err(OpenAiError::invalid("prompt", e.to_string()));
    }
    if body.stream == Some(true) {
        return Err(OpenAiError::invalid(
            "stream",
            "streaming is not supported by this server; leave stream out",
        ));
    }
    let n = body.n.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return Err(OpenAiError::invalid(
            "n",
            format!("Invalid 'n': integer must be between 1 and 10, not {n}."),
        ));
    }
    let (provider, model) = route(s, body.model.as_deref())?;
    let asked = Some(provider.as_str());
    let takes = |name: &str| s.app.takes_parameter(asked, name);
    let mut request = GenerationRequest::new(body.prompt);
    request.provider = Some(provider.clone());
    request.upscale = UpscaleSelection::none();
    let fields = [
        ("size", body.size.map(Value::from)),
        ("quality", body.quality.map(Value::from)),
        ("style", body.style.map(Value::from)),
        ("background", body.background.map(Value::from)),
        ("output_format", body.output_format.map(Value::from)),
        (
            "output_compression",
            body.output_compression.map(Value::from),
        ),
        ("moderation", body.moderation.map(Value::from)),
    ];
    debug_assert!(fields.iter().map(|f| f.0).eq(PASSED));
    for (name, value) in fields {
        let Some(value) = value else { continue };
        if takes(name)? {
            request.extra.insert(name.to_owned(), value);
        } else if name == "size" {
            let size = value.as_str().unwrap_or_default();
            if size != "auto" {
                request.aspect_ratio = Some(aspect_ratio(size).ok_or_else(|| {
                    OpenAiError::invalid(
                        "size",
                        format!(
                            "Invalid value: '{size}'. Supported values are 'auto' and \
                             WIDTHxHEIGHT in pixels, such as '1024x1024'."
                        ),
                    )
                })?);
            }
        }
    }
    if let Some(model) = model
        && takes("model")?
    {
        request.extra.insert("model".into(), model.into());
    }
    if takes("n")? {
        request.extra.insert("n".into(), n.into());
    } else if s.app.renders_grid(asked)? {
        let upscales: Vec<u8> = (1..=n).collect();
        request.upscale = UpscaleSelection::from_indices(&upscales).map_err(|_| {
            OpenAiError::invalid(
                "n",
                format!("provider {provider:?} makes at most 4 images per request, not {n}"),
            )
        })?;
    }
    let request = s.app.check(request)?;
    let makes = s.app.results_count(&request)?;
    if makes != n {
        return Err(OpenAiError::invalid(
            "n",
            format!("provider {provider:?} makes {makes} image(s) per request, not {n}"),
        ));
    }
    Ok((request, n))
}

/// The provider `model` names, and the model handed to it.
fn route(s: &Shared, model: Option<&str>) -> Result<(String, Option<String>), OpenAiError> {
    let Some(model) = model else {
        return Ok((s.app.provider_name(None)?, None));
    };
    let (provider, target) = match s.settings.openai_images.models.get(model) {
        Some((p, m)) => (p.clone(), m.clone()),
        None => (model.to_owned(), None),
    };
    s.app
        .provider_name(Some(&provider))
        .map(|p| (p, target))
        .map_err(|_| {
            OpenAiError::status(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!(
                    "The model `{model}` does not exist or you do not have access to it \
                     (map it to a provider in [server.openai_images] models)."
                ),
            )
        })
}

/// `WIDTHxHEIGHT` as a reduced ratio (`1792x1024` → `7:4`); none for anything else.
fn aspect_ratio(size: &str) -> Option<String> {
    let (w, h) = size.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(w) || !digits(h) {
        return None;
    }
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    if w == 0 || h == 0 {
        return None;
    }
    let (mut a, mut b) = (w, h);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    Some(format!("{}:{}", w / a, h / a))
}

/// A generation's results in order: its upscales or separate outputs, else its grid.
fn results(mut images: Vec<Image>) -> Vec<Image> {
    let order = |r: Role| match r {
        Role::Grid => 0,
        Role::Upscale(n) | Role::Variant(n) => n,
    };
    images.sort_by_key(|i| order(i.role));
    if images.iter().any(|i| i.role != Role::Grid) {
        images.retain(|i| i.role != Role::Grid);
    }
    images
}

/// The failure of an ended generation as OpenAI would say it.
fn failed(error: Option<&crate::domain::Failure>) -> OpenAiError {
    let Some(f) = error else {
        return OpenAiError::status(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "failed");
    };
    let (status, code) = match f.code {
        ErrorCode::BannedPrompt => (StatusCode::BAD_REQUEST, "content_policy_violation"),
        ErrorCode::InvalidParameter => (StatusCode::BAD_REQUEST, "invalid_value"),
        ErrorCode::InsufficientCredits => (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota"),
        ErrorCode::QueueFull => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"),
        ErrorCode::Canceled => (StatusCode::CONFLICT, "canceled"),
        ErrorCode::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        ErrorCode::ProviderUnavailable | ErrorCode::DownloadFailed => {
            (StatusCode::BAD_GATEWAY, "provider_error")
        }
        ErrorCode::IntegrityFailed | ErrorCode::Internal => {
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
    };
    OpenAiError::status(status, code, f.message.clone())
}

/// `scheme://host[:port]` the client reached the server by, for URLs in the answer; `None`
/// when its `Host` is missing (HTTP/1.0), empty or not an authority, so the caller falls back
/// to an address of the server's own rather than writing `http:/…` or a guessed host.
pub(super) fn origin(headers: &HeaderMap) -> Option<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|h| is_authority(h))?;
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    Some(format!("{scheme}://{host}"))
}

/// Whether `h` is a `Host` header's authority: a name or IPv4 address, or a bracketed IPv6
/// address, with an optional numeric port; no user information, path or stray characters.
fn is_authority(h: &str) -> bool {
    let port = if let Some(rest) = h.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(port) => port,
            None => return false,
        }
    } else {
        let (host, port) = h.split_once(':').map_or((h, None), |(h, p)| (h, Some(p)));
        let name = host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        match (name, port) {
            (false, _) => return false,
            (true, None) => return true,
            (true, Some(port)) => port,
        }
    };
    port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_is_no_authority_gives_no_origin() {
        let with = |host: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(host) = host {
                h.insert(header::HOST, host.parse().unwrap());
            }
            origin(&h)
        };
        for (host, expect) in [
            ("example.com", "http://example.com"),
            ("example.com:8443", "http://example.com:8443"),
            ("127.0.0.1:8787", "http://127.0.0.1:8787"),
            ("[::1]:8787", "http://[::1]:8787"),
            ("[::1]", "http://[::1]"),
        ] {
            assert_eq!(with(Some(host)).as_deref(), Some(expect), "{host}");
        }
        for bad in [
            "",
            "  ",
            "example.com:",
            "example.com:99999",
            "example.com:0",
            "a:b:c",
            "user@example.com",
            "example.com/path",
            "..",
            "a..b",
            "[nope]:1",
            "[::1]x",
            "ex ample",
        ] {
            assert_eq!(with(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(with(None), None);
    }

    #[test]
    fn sizes_become_reduced_ratios() {
        assert_eq!(aspect_ratio("1792x1024").as_deref(), Some("7:4"));
        assert_eq!(aspect_ratio("1024x1024").as_deref(), Some("1:1"));
        assert_eq!(aspect_ratio("1024x1536").as_deref(), Some("2:3"));
        assert_eq!(aspect_ratio("auto"), None);
        assert_eq!(aspect_ratio("0x10"), None);
        assert_eq!(aspect_ratio("12x"), None);
        for bad in [
            "axb",
            "0x0",
            "",
            "1024X1024",
            "+1x1",
            "1x-1",
            "99999999x1",
            " 1x1",
        ] {
            assert_eq!(aspect_ratio(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn model_routes_are_read_and_bad_ones_refused() {
        let mut c = ServerConfig::default();
        c.openai_images
            .models
            .insert("gpt-image-1".into(), "openai:gpt-image-1".into());
        c.openai_images
            .models
            .insert("dall-e-3".into(), "sandbox".into());
        let r = Routes::from_config(&c).unwrap();
        assert_eq!(
            r.models["gpt-image-1"],
            ("openai".to_owned(), Some("gpt-image-1".to_owned()))
        );
        assert_eq!(r.models["dall-e-3"], ("sandbox".to_owned(), None));
        for bad in ["", ":x", "openai:"] {
            c.openai_images.models.insert("m".into(), bad.into());
            assert!(Routes::from_config(&c).is_err(), "{bad:?}");
        }
        c.openai_images.models.clear();
        c.openai_images.wait_secs = 0;
        assert!(Routes::from_config(&c).is_err());
    }
}
