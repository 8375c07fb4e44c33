//! Who calls: the `Caller` every route takes, from `Authorization: Bearer …` (or nobody, as
//! the operator, when `[server] auth = "none"` on a loopback address).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::Shared;
use crate::config::ServerAuth;
use crate::domain::Actor;
use crate::http::Problem;

/// The actor a request runs for.
pub struct Caller(pub Actor);

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Problem> {
        if state.settings.auth == ServerAuth::None {
            return Ok(Self(Actor::Operator));
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Problem::unauthorized("send an API key: Authorization: Bearer <key>"))?;
        let actor = state
            .app
            .authenticate(token)
            .await
            .map_err(|_| Problem::unauthorized("this API key or session is not valid"))?;
        Ok(Self(actor))
    }
}
