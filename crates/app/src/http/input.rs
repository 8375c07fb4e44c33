//! What a request brings, read into domain values: JSON bodies, ids in paths, queries; every
//! failure is a problem document naming what was wrong. Also the layers every route shares:
//! body size limit, request timeout, CORS.

use std::str::FromStr;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::{Settings, Shared};
use crate::http::Problem;

/// RFC 7240's `Prefer` header (`wait=N`).
pub const PREFER: header::HeaderName = header::HeaderName::from_static("prefer");

/// A JSON body; a malformed one is a problem (400 syntax, 415 not JSON, 413 too large, 422
/// wrong fields), never axum's plain-text rejection.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<Shared> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(rejection(&e)),
        }
    }
}

fn rejection(e: &JsonRejection) -> Problem {
    let detail = e.body_text();
    match e {
        JsonRejection::JsonDataError(_) => Problem::invalid(detail),
        JsonRejection::JsonSyntaxError(_) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed_json", detail)
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON, with Content-Type: application/json",
        ),
        _ if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is larger than the server accepts ([server] max_body_kib)",
        ),
        _ => Problem::new(StatusCode::BAD_REQUEST, "bad_request", detail),
    }
}

/// An id from the path: one that is not even a UUID names nothing, so it is "not found".
pub fn id<T: FromStr>(raw: &str, what: &str) -> Result<T, Problem> {
    raw.parse()
        .map_err(|_| Problem::not_found(format!("{what} {raw:?} not found (not a valid id)")))
}

/// A query value read as `T`, or a problem naming the parameter.
pub fn param<T>(
    raw: Option<&str>,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, Problem> {
    raw.map(|v| {
        parse(v)
            .ok_or_else(|| Problem::invalid(format!("query parameter {name}: {v:?} is not valid")))
    })
    .transpose()
}

/// The layers every route shares.
pub fn layers(router: Router, settings: &Settings) -> Router {
    let timeout = settings.request_timeout;
    let router = router
        .layer(middleware::from_fn(move |req: Request, next: Next| async move {
            // Event streams answer at once and then stream; a create that asked to wait has
            // its own bound (`max_wait_secs`), and so has the drop-in OpenAI route, which
            // answers with the pictures (`[server.openai_images] wait_secs`).
            if waits(&req) || req.uri().path() == "/v1/images/generations" {
                return next.run(req).await;
            }
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took longer than the server allows ([server] request_timeout_secs)",
                )
                .retry_after(5)
                .into_response(),
            }
        }))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes));
    match cors(&settings.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn waits(req: &Request) -> bool {
    req.headers()
        .get(PREFER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("wait"))
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                PREFER,
                header::HeaderName::from_static("idempotency-key"),
                header::HeaderName::from_static("last-event-id"),
                header::HeaderName::from_static("mj-api-secret"),
            ])
            .expose_headers([header::LOCATION, header::RETRY_AFTER, header::ETAG]),
    )
}
