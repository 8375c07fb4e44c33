//! The Midjourney bot (and niji・journey): validates an interaction the way Discord does,
//! answers 204, then plays the bot's side over the gateway.
//!
//! - `slash`: slash commands (type 2): /imagine, /describe, /blend, /shorten, /info,
//!   /settings, /fast, /relax.
//! - `buttons`: button presses (type 3) and modal submits (type 5).
//! - `jobs`: per-user concurrency and the life cycle of a rendering job.
//! - `messages`: message shapes; `params`: prompt parameters (by the table the app shares,
//!   `atelier-midjourney-params`); `images`: image work; `texts`: /describe and /shorten
//!   wording, /blend links; `video`: video jobs (`--video`, Animate, a video grid's clips,
//!   Extend and its remix modal), their buttons and files.

mod buttons;
mod images;
mod jobs;
pub(crate) mod messages;
mod params;
mod slash;
mod texts;
mod video;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use image::RgbaImage;
use serde_json::{Value, json};

use crate::commands::App;
use crate::rest::{ApiError, snowflake};
use crate::sim::{Delivery, Sim};
use crate::state::User;

/// A file sent inline with a multipart interaction (`files[N]`).
#[derive(Clone, Debug)]
pub(crate) struct InlineFile {
    pub(crate) filename: String,
    pub(crate) bytes: Bytes,
}

/// The bot's own state: job slots and decoded images.
#[derive(Default)]
pub(crate) struct Bot {
    pub(crate) scheduler: Arc<jobs::Scheduler>,
    /// Running jobs, for their cancel buttons.
    pub(crate) cancels: jobs::Cancels,
    images: images::ImageCache,
}

impl Bot {
    fn images_get(&self, hash: &str) -> Option<Arc<RgbaImage>> {
        self.images.get(hash)
    }

    fn images_put(&self, hash: &str, image: RgbaImage) {
        self.images.put(hash, Arc::new(image));
    }

    /// (running, queued) jobs of a user.
    pub(crate) fn load(&self, user: u64) -> (usize, usize) {
        self.scheduler.load(user)
    }
}

/// Who asked what, where: everything a bot message needs to answer an interaction.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub(crate) user: User,
    pub(crate) app: App,
    pub(crate) channel_id: u64,
    pub(crate) nonce: Option<String>,
    pub(crate) interaction_id: u64,
    /// 2 slash command, 3 component, 5 modal submit.
    pub(crate) kind: u8,
    /// The command name (slash commands only).
    pub(crate) name: Option<String>,
    /// The message whose component was used (type 3).
    pub(crate) message_id: Option<u64>,
}

/// Validates an interaction and starts the bot's answer; `Err` is the HTTP error to return.
pub(crate) fn accept(
    sim: &Arc<Sim>,
    user: &User,
    payload: &Value,
    files: &HashMap<String, InlineFile>,
) -> Result<(), ApiError> {
    let kind = payload
        .get("type")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::required(&["type"]))?;
    let app = id_string(payload.get("application_id"))
        .as_deref()
        .and_then(App::from_id)
        .ok_or_else(|| {
            ApiError::form(
                &["application_id"],
                "UNKNOWN_APPLICATION",
                "Unknown application.",
            )
        })?;
    let channel_raw =
        id_string(payload.get("channel_id")).ok_or_else(|| ApiError::required(&["channel_id"]))?;
    let channel_id = snowflake("channel_id", &channel_raw)?;
    match sim.world().channels.get(&channel_id) {
        None => return Err(ApiError::unknown_channel()),
        Some(channel) if channel.owner != user.id => return Err(ApiError::missing_access()),
        Some(_) => {}
    }
    if let Some(guild) = id_string(payload.get("guild_id"))
        && guild != user.guild_id.to_string()
    {
        return Err(ApiError::form(
            &["guild_id"],
            "UNKNOWN_GUILD",
            "The channel is not in this guild.",
        ));
    }
    let nonce = match payload.get("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 25 => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(ApiError::form(
                &["nonce"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 25 or fewer in length.",
            ));
        }
    };
    let data = payload
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| ApiError::required(&["data"]))?;
    let ctx = Ctx {
        user: user.clone(),
        app,
        channel_id,
        nonce,
        interaction_id: sim.ids.snowflake(),
        kind: kind as u8,
        name: None,
        message_id: None,
    };
    match kind {
        2 => slash::accept(sim, ctx, data, files),
        3 => buttons::press(sim, ctx, payload, data),
        5 => buttons::submit(sim, ctx, data),
        // Autocomplete: nothing to show.
        4 => Ok(()),
        _ => Err(ApiError::form(
            &["type"],
            "BASE_TYPE_CHOICES",
            "Value must be one of {2, 3, 4, 5}.",
        )),
    }
}

/// A snowflake given as a string or a number.
pub(crate) fn id_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// `INTERACTION_CREATE` then (after `extra` dispatches, e.g. a modal) `INTERACTION_SUCCESS`,
/// carrying the interaction id and the nonce.
fn announce(sim: &Sim, ctx: &Ctx, extra: &[(&str, Value)]) {
    let ids = json!({"id": ctx.interaction_id.to_string(), "nonce": ctx.nonce});
    sim.dispatch(ctx.user.id, "INTERACTION_CREATE", &ids);
    for (name, data) in extra {
        sim.dispatch(ctx.user.id, name, data);
    }
    sim.dispatch(ctx.user.id, "INTERACTION_SUCCESS", &ids);
}

/// An error or notice embed answering `ctx` (flags 64 makes it ephemeral).
fn post_error(sim: &Sim, ctx: &Ctx, embed: &Value, flags: u64) -> Value {
    let id = sim.ids.snowflake();
    let mut message = messages::base(ctx, id, "");
    message["embeds"] = json!([embed]);
    message["flags"] = json!(flags);
    let delivery = if flags & messages::EPHEMERAL == 0 {
        Delivery::Normal
    } else {
        Delivery::Ephemeral
    };
    sim.post(&message, delivery);
    message
}

/// Waits the "before waiting" delay; false if the simulator stops first.
async fn started(sim: &Sim) -> bool {
    sim.sleep(sim.config.timing.before_waiting).await.is_ok()
}
