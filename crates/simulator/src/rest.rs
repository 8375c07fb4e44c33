//! The HTTP side: the router (REST under `/api/v9`, `/api/v10` and unversioned `/api`, CDN,
//! uploads, control, and the gateway as the fallback), Discord-shaped errors, authentication
//! and the rate-limit headers (plus the `rate-limit` fault).

mod channels;
mod error;
mod interactions;
mod multipart;
mod ratelimit;
mod reads;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};

use crate::sim::Sim;
use crate::state::User;

pub(crate) use error::ApiError;
pub(crate) use ratelimit::RateWindows;

/// Largest request body (Discord's upload limit).
pub(crate) const MAX_BODY: usize = 25 << 20;

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    let api = Router::new()
        .route("/gateway", get(reads::gateway))
        .route("/users/@me", get(channels::me))
        .route("/users/@me/guilds", get(reads::my_guilds))
        .route("/users/@me/channels", get(channels::dm_channels))
        .route(
            "/users/@me/billing/country-code",
            get(channels::country_code),
        )
        .route("/interactions", post(interactions::post))
        .route("/guilds/{guild}", get(reads::guild))
        .route("/guilds/{guild}/channels", get(reads::guild_channels))
        .route(
            "/guilds/{guild}/application-command-index",
            get(channels::guild_command_index),
        )
        .route("/channels/{channel}", get(reads::channel))
        .route(
            "/channels/{channel}/application-command-index",
            get(channels::channel_command_index),
        )
        .route(
            "/channels/{channel}/application-commands/search",
            get(channels::command_search),
        )
        .route(
            "/channels/{channel}/attachments",
            post(channels::upload_slots),
        )
        .route(
            "/channels/{channel}/messages",
            get(channels::messages).post(channels::create_message),
        )
        .route(
            "/channels/{channel}/messages/{message}",
            get(channels::message),
        )
        .route("/attachments/refresh-urls", post(channels::refresh_urls))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .fallback(|| async { ApiError::not_found() })
        .layer(from_fn_with_state(Arc::clone(&sim), ratelimit::limits));
    // Discord answers a path without a version too (as its default, the deprecated v6); the
    // simulator answers it as v9 rather than model v6's older shapes.
    Router::new()
        .nest("/api/v9", api.clone())
        .nest("/api/v10", api.clone())
        .nest("/api", api)
        .route(
            "/attachments/{channel}/{attachment}/{filename}",
            get(crate::cdn::download),
        )
        .route(
            "/ephemeral-attachments/{channel}/{attachment}/{filename}",
            get(crate::cdn::download),
        )
        .route("/upload/{*key}", put(channels::upload))
        .merge(crate::control::router())
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed().into_response() })
        .fallback(crate::gateway::upgrade)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(sim)
}

/// The user behind the raw `Authorization` header (no `Bot ` prefix for user tokens).
pub(crate) fn authed(sim: &Sim, headers: &HeaderMap) -> Result<User, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    sim.user_for_token(token).ok_or_else(ApiError::unauthorized)
}

/// A snowflake from a path or a body, or Discord's coercion error for `field`.
pub(crate) fn snowflake(field: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|_| value.len() <= 20)
        .ok_or_else(|| {
            ApiError::form(
                &[field],
                "NUMBER_TYPE_COERCE",
                &format!(
                    "Value \"{}\" is not snowflake.",
                    value.chars().take(40).collect::<String>()
                ),
            )
        })
}
