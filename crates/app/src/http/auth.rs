//! Who calls: the `Caller` every route takes, from `Authorization: Bearer …` (an API key, a
//! session token or a trusted sign-in service's JWT), or nobody, as the operator, when
//! `[server] auth = "none"` on a loopback address; on the midjourney-proxy routes (`/mj/`) also
//! from the proxies' `mj-api-secret` header. Each user's requests are held to their rate
//! (`rate.rs`); refused credentials count against the client's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::Shared;
use crate::config::ServerAuth;
use crate::domain::Actor;
use crate::error::AppError;
use crate::http::Problem;

/// The actor a request runs for.
pub struct Caller(pub Actor);

/// The client's address, as the connection shows it (a proxy's, behind one).
pub fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
}

/// The key of an `mj-api-secret` header (the midjourney-proxy clients'), with or without a
/// `Bearer ` before it.
fn mj_api_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("mj-api-secret")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v.trim();
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map_or(v, |(_, token)| token.trim())
        })
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Problem> {
        if state.settings.auth == ServerAuth::None {
            return Ok(Self(Actor::Operator));
        }
        // The midjourney-proxy clients send their key in `mj-api-secret`, some with another
        // `Authorization` beside it: on those routes that header comes first.
        let proxied = parts.uri.path().starts_with("/mj/");
        let token = proxied
            .then(|| mj_api_secret(&parts.headers))
            .flatten()
            .or_else(|| bearer(&parts.headers))
            .ok_or_else(|| Problem::unauthorized("send an API key: Authorization: Bearer <key>"))?;
        match state.app.authenticate(token).await {
            Ok(actor) => {
                state.rate.request(actor)?;
                Ok(Self(actor))
            }
            Err(AppError::NotFound(_)) => {
                state.rate.refused(client_address(parts))?;
                Err(Problem::unauthorized(
                    "this API key, session or token is not valid",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}
