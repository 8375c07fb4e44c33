//! The Discord gateway: a WebSocket on any path.
//!
//! [`upgrade`] answers the HTTP upgrade itself (tokio-tungstenite over hyper's upgraded
//! connection) and hands the socket to [`connection`]. The query decides the framing:
//! `compress=zlib-stream` gives binary frames from one zlib stream per connection, without
//! it every payload is a text frame.

mod connection;
mod sessions;
mod zlib;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::rest::ApiError;
use crate::sim::Sim;

pub(crate) use sessions::{Outgoing, Sessions};

/// Largest client message accepted; bigger ones close the connection with 4002.
const MAX_MESSAGE: usize = 4 << 20;

/// True when the request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// The fallback route: a WebSocket upgrade on any path is the gateway; anything else is 404.
pub(crate) async fn upgrade(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
    mut request: Request,
) -> Response {
    if !is_upgrade(request.headers()) {
        return ApiError::not_found().into_response();
    }
    let headers = request.headers();
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| version_ok)
    else {
        return (StatusCode::BAD_REQUEST, "bad WebSocket handshake").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let options = connection::Options {
        compress: query.get("compress").is_some_and(|c| c == "zlib-stream"),
        version_ok: query
            .get("v")
            .is_none_or(|v| matches!(v.as_str(), "9" | "10")),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_MESSAGE))
                    .max_frame_size(Some(MAX_MESSAGE));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                connection::run(sim, socket, options).await;
            }
            Err(error) => tracing::debug!(%error, "gateway: upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
