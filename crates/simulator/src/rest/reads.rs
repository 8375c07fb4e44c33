//! The read endpoints user-account clients call at start-up, answered as Discord answers a
//! member of the guild: the channel, the guilds, the guild and its channels, the gateway URL.
//!
//! Each simulated user is the owner of one guild holding one text channel (the same guild
//! and channel READY announces). Another user's guild or channel is `403 Missing Access`;
//! an id nobody has is `404 Unknown Guild` / `Unknown Channel`. Query parameters Discord
//! does not know are ignored, as Discord ignores them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, authed, snowflake};
use crate::sim::Sim;
use crate::state::User;

type ApiResult<T> = Result<T, ApiError>;

/// Every permission bit Discord documents (bits 0–52 but the unassigned 47): what the owner of
/// a guild computes to, sent as a string as every API version since v8 does.
const ALL_PERMISSIONS: u64 = ((1 << 53) - 1) & !(1 << 47);
/// `@everyone`: what a member needs to use the bots (create invites, add reactions, view
/// channels, send messages, embed links, attach files, read history, external emojis, use
/// application commands and external apps).
const EVERYONE_PERMISSIONS: u64 =
    1 | 1 << 6 | 1 << 10 | 1 << 11 | 1 << 14 | 1 << 15 | 1 << 16 | 1 << 18 | 1 << 31 | 1 << 50;
/// The user and the two bots (Midjourney, niji・journey) that answer in the channel.
const MEMBERS: u64 = 3;

/// The caller's own guild, or 403 for another user's and 404 for an id nobody has.
pub(crate) fn own_guild(sim: &Sim, user: &User, raw: &str) -> ApiResult<u64> {
    let guild = snowflake("guild_id", raw)?;
    if guild == user.guild_id {
        return Ok(guild);
    }
    let known = sim.world().channels.values().any(|c| c.guild_id == guild);
    Err(if known {
        ApiError::missing_access()
    } else {
        ApiError::unknown_guild()
    })
}

/// Discord's boolean query strings: `true`, `True` or `1`.
fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| matches!(v.as_str(), "true" | "True" | "1"))
}

/// The user's text channel, as `GET /channels/{id}` and the guild's channel list show it.
fn channel_json(sim: &Sim, user: &User) -> Value {
    let last_message_id = sim
        .world()
        .channels
        .get(&user.channel_id)
        .and_then(|c| c.messages.last_key_value())
        .map(|(id, _)| id.to_string());
    json!({
        "id": user.channel_id.to_string(),
        "type": 0,
        "guild_id": user.guild_id.to_string(),
        "name": "midjourney",
        "position": 0,
        "permission_overwrites": [],
        "parent_id": null,
        "topic": null,
        "nsfw": false,
        "rate_limit_per_user": 0,
        "last_message_id": last_message_id,
        "flags": 0,
    })
}

fn guild_name(user: &User) -> String {
    format!("{}'s server", user.username)
}

/// `GET channels/{id}`.
pub(crate) async fn channel(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    super::channels::own_channel(&sim, &user, &channel)?;
    Ok(Json(channel_json(&sim, &user)))
}

/// `GET users/@me/guilds?before=&after=&limit=&with_counts=`: partial guild objects.
pub(crate) async fn my_guilds(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    let limit = match query.get("limit") {
        None => 200,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| {
                ApiError::form(
                    &["limit"],
                    "NUMBER_TYPE_MAX",
                    "int value should be less than or equal to 200.",
                )
            })?,
    };
    let anchor = |name: &str| -> ApiResult<Option<u64>> {
        query.get(name).map(|raw| snowflake(name, raw)).transpose()
    };
    let (before, after) = (anchor("before")?, anchor("after")?);
    let listed =
        before.is_none_or(|b| user.guild_id < b) && after.is_none_or(|a| user.guild_id > a);
    let mut guild = json!({
        "id": user.guild_id.to_string(),
        "name": guild_name(&user),
        "icon": null,
        "banner": null,
        "owner": true,
        "permissions": ALL_PERMISSIONS.to_string(),
        "features": [],
    });
    if flag(&query, "with_counts") {
        guild["approximate_member_count"] = json!(MEMBERS);
        guild["approximate_presence_count"] = json!(MEMBERS);
    }
    let guilds: Vec<Value> = std::iter::once(guild)
        .filter(|_| listed)
        .take(limit)
        .collect();
    Ok(Json(Value::Array(guilds)))
}

/// `GET guilds/{id}?with_counts=`: the guild object, for a member.
pub(crate) async fn guild(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(guild): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    let id = own_guild(&sim, &user, &guild)?.to_string();
    let mut guild = json!({
        "id": id,
        "name": guild_name(&user),
        "icon": null,
        "description": null,
        "splash": null,
        "discovery_splash": null,
        "banner": null,
        "features": [],
        "emojis": [],
        "stickers": [],
        "owner_id": user.id.to_string(),
        "application_id": null,
        "region": null,
        "afk_channel_id": null,
        "afk_timeout": 300,
        "system_channel_id": user.channel_id.to_string(),
        "system_channel_flags": 0,
        "widget_enabled": false,
        "widget_channel_id": null,
        "verification_level": 0,
        "roles": [{
            "id": id,
            "name": "@everyone",
            "permissions": EVERYONE_PERMISSIONS.to_string(),
            "position": 0,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "managed": false,
            "mentionable": false,
            "icon": null,
            "unicode_emoji": null,
            "flags": 0,
        }],
        "default_message_notifications": 0,
        "mfa_level": 0,
        "explicit_content_filter": 0,
        "max_presences": null,
        "max_members": 25_000_000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "vanity_url_code": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "rules_channel_id": null,
        "public_updates_channel_id": null,
        "safety_alerts_channel_id": null,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": false,
        "incidents_data": null,
    });
    if flag(&query, "with_counts") {
        guild["approximate_member_count"] = json!(MEMBERS);
        guild["approximate_presence_count"] = json!(MEMBERS);
    }
    Ok(Json(guild))
}

/// `GET guilds/{id}/channels`: the guild's one text channel.
pub(crate) async fn guild_channels(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(guild): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    own_guild(&sim, &user, &guild)?;
    Ok(Json(json!([channel_json(&sim, &user)])))
}

/// `GET gateway`: where to connect; no authentication, as on Discord.
pub(crate) async fn gateway(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({"url": sim.ws_base}))
}

#[cfg(test)]
mod tests {
    use super::ALL_PERMISSIONS;

    #[test]
    fn the_owner_has_every_documented_permission() {
        // ADMINISTRATOR (1 << 3) and BYPASS_SLOWMODE (1 << 52), the highest documented bit.
        assert_ne!(ALL_PERMISSIONS & (1 << 3), 0);
        assert_ne!(ALL_PERMISSIONS & (1 << 52), 0);
        assert_eq!(ALL_PERMISSIONS, 8_866_461_766_385_663);
    }
}
