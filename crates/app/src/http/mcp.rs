//! `/mcp`: the MCP server (`crate::mcp`) over streamable HTTP, behind the API's own bearer
//! keys: the `Caller` extractor (`auth.rs`) checks the key and the request carries its actor
//! to the tools, so every tool sees only the caller's work. A request without a valid key is
//! a 401 problem, before MCP reads it. MCP's event streams end when the server stops.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;

use super::Shared;
use super::auth::Caller;

/// The `Host` headers `/mcp` accepts: loopback names, the bind address (unless it is the
/// unspecified one, which no client addresses) and the configured public names.
pub fn allowed_hosts(bind: SocketAddr, public: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if !bind.ip().is_unspecified() && !bind.ip().is_loopback() {
        hosts.push(bind.ip().to_string());
    }
    hosts.extend(
        public
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty()),
    );
    hosts
}

/// The route, with its authentication.
pub(super) fn routes(shared: &Shared) -> Router<Shared> {
    let settings = crate::mcp::Settings {
        max_wait: shared.settings.max_wait,
        paths: false,
    };
    let service = crate::mcp::streamable_http(
        shared.app.clone(),
        settings,
        shared.settings.mcp_hosts.clone(),
        shared.settings.max_body_bytes,
    );
    // MCP's streams (a session's, a waiting call's) would otherwise hold the stop.
    let cancel = service.config.cancellation_token.clone();
    let mut stopping = shared.stopping.clone();
    tokio::spawn(async move {
        let _ = stopping.wait_for(|s| *s).await;
        cancel.cancel();
    });
    Router::new()
        .route_service("/mcp", service)
        .route_layer(middleware::from_fn_with_state(shared.clone(), signed_in))
}

/// Lets in only a caller with a valid key, and hands the tools its actor.
async fn signed_in(Caller(actor): Caller, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(actor);
    next.run(request).await
}
