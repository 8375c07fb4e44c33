//! The API's reference page (`GET /docs`): a small page of ours, built into the binary, that
//! reads `/openapi.json` and renders every operation with a form to try it. It works offline:
//! its script and style are served here too, and its `Content-Security-Policy` lets the
//! browser load nothing from anywhere else.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("docs/index.html");
const SCRIPT: &str = include_str!("docs/docs.js");
const STYLE: &str = include_str!("docs/docs.css");

/// Only this server: scripts, styles, fetches, images; no frames, no plugins.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; \
    base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `GET /docs`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "service",
    operation_id = "docs",
    summary = "This API's reference page (works offline)",
    security(()),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /docs/docs.js`.
#[utoipa::path(
    get,
    path = "/docs/docs.js",
    tag = "service",
    operation_id = "docs_script",
    summary = "The reference page's script",
    security(()),
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String))
)]
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /docs/docs.css`.
#[utoipa::path(
    get,
    path = "/docs/docs.css",
    tag = "service",
    operation_id = "docs_style",
    summary = "The reference page's style",
    security(()),
    responses((status = 200, description = "The style sheet", content_type = "text/css", body = String))
)]
pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
