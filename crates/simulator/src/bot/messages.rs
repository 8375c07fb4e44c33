//! The shapes of the bot's messages, after the recorded fixtures: the common skeleton
//! (author, interaction metadata, nonce, timestamps), job lines, attachments, embeds and the
//! button sets of a grid, an upscale and an HD upscale.

use serde_json::{Value, json};

use super::Ctx;
use crate::commands::App;
use crate::ids::{iso_timestamp, snowflake_ms, unix_ms};
use crate::sim::Sim;
use crate::state::User;

pub(crate) const RED: u64 = 16_711_680;
pub(crate) const YELLOW: u64 = 16_776_960;

/// Message flags.
pub(crate) const EPHEMERAL: u64 = 64;
pub(crate) const LOADING: u64 = 128;

pub(crate) fn user_json(user: &User) -> Value {
    json!({
        "id": user.id.to_string(),
        "username": user.username,
        "avatar": null,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "banner": null,
        "accent_color": null,
        "global_name": user.global_name,
        "avatar_decoration_data": null,
        "banner_color": null,
        "clan": null,
    })
}

fn author(app: App) -> Value {
    let (discriminator, avatar) = match app {
        App::Midjourney => ("9282", "f6ce562a6b4979c4b1cbc5b436d3be76"),
        App::Niji => ("5501", "b1e4d7a8c9f03e2d6a5b4c3d2e1f0a9b"),
    };
    json!({
        "id": app.id(),
        "username": app.name(),
        "avatar": avatar,
        "discriminator": discriminator,
        "public_flags": 589_824,
        "flags": 589_824,
        "bot": true,
        "banner": null,
        "accent_color": null,
        "global_name": null,
        "avatar_decoration_data": null,
        "banner_color": null,
        "clan": null,
    })
}

/// A new bot message answering `ctx`: nonce, interaction metadata (plus the legacy
/// `interaction` object for slash commands), mentions when the content names the user.
pub(crate) fn base(ctx: &Ctx, id: u64, content: &str) -> Value {
    let user = user_json(&ctx.user);
    let mut metadata = json!({
        "id": ctx.interaction_id.to_string(),
        "type": ctx.kind,
        "user": user,
        "authorizing_integration_owners": {"0": ctx.user.guild_id.to_string()},
    });
    if let Some(name) = &ctx.name {
        metadata["name"] = json!(name);
    }
    if let Some(message_id) = ctx.message_id {
        metadata["interacted_message_id"] = json!(message_id.to_string());
    }
    let mentions = if content.contains(&format!("<@{}>", ctx.user.id)) {
        json!([user])
    } else {
        json!([])
    };
    let mut message = json!({
        "type": if ctx.kind == 2 { 20 } else { 0 },
        "content": content,
        "mentions": mentions,
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "timestamp": iso_timestamp(snowflake_ms(id)),
        "edited_timestamp": null,
        "flags": 0,
        "components": [],
        "id": id.to_string(),
        "channel_id": ctx.channel_id.to_string(),
        "author": author(ctx.app),
        "pinned": false,
        "mention_everyone": false,
        "tts": false,
        "nonce": ctx.nonce,
        "application_id": ctx.app.id(),
        "webhook_id": ctx.app.id(),
        "guild_id": ctx.user.guild_id.to_string(),
        "interaction_metadata": metadata,
    });
    if ctx.kind == 2 {
        message["interaction"] = json!({
            "id": ctx.interaction_id.to_string(),
            "type": 2,
            "name": ctx.name,
            "user": user,
        });
    }
    message
}

/// The same message as edited: new content, an edit time, no nonce.
pub(crate) fn edited(mut message: Value, content: &str) -> Value {
    message["content"] = json!(content);
    message["edited_timestamp"] = json!(iso_timestamp(unix_ms()));
    if let Some(object) = message.as_object_mut() {
        object.remove("nonce");
    }
    message
}

/// Points a reply at the message its button was on (type 19 with `message_reference`).
pub(crate) fn reply_to(message: &mut Value, parent: &Value) {
    message["type"] = json!(19);
    message["message_reference"] = json!({
        "type": 0,
        "channel_id": parent["channel_id"],
        "message_id": parent["id"],
        "guild_id": parent["guild_id"],
    });
    let mut referenced = parent.clone();
    if let Some(object) = referenced.as_object_mut() {
        object.remove("referenced_message");
        object.remove("message_reference");
    }
    message["referenced_message"] = referenced;
}

/// `**prompt** - [label]<@user> (status…)`.
pub(crate) fn job_line(prompt: &str, label: &str, user_id: u64, status: &str) -> String {
    format!("**{prompt}** - {label}<@{user_id}> {status}")
}

/// The mode token for the user: `fast` or `relaxed`.
pub(crate) fn mode(sim: &Sim, user_id: u64) -> &'static str {
    if sim.user(user_id).is_some_and(|u| u.relaxed) {
        "relaxed"
    } else {
        "fast"
    }
}

/// An attachment object for a stored blob.
pub(crate) fn attachment(
    sim: &Sim,
    path: &str,
    id: u64,
    filename: &str,
    size: usize,
    (width, height): (u32, u32),
) -> Value {
    let url = sim.signed_url(path);
    json!({
        "id": id.to_string(),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
        "width": width,
        "height": height,
        "content_type": crate::cdn::mime(filename),
        "placeholder": "X/cFDYJ3h4eHeIiAiHiHeHh3ingHl4iI",
        "placeholder_version": 1,
    })
}

pub(crate) fn embed(title: &str, description: &str, color: u64, footer: Option<&str>) -> Value {
    let mut embed = json!({
        "type": "rich",
        "title": title,
        "description": description,
        "color": color,
        "content_scan_version": 0,
    });
    if let Some(footer) = footer {
        embed["footer"] = json!({"text": footer});
    }
    embed
}

/// An embed with a description only, no title: how some error replies arrive (§7).
pub(crate) fn untitled_embed(description: &str, color: Option<u64>) -> Value {
    let mut embed = json!({
        "type": "rich",
        "description": description,
        "content_scan_version": 0,
    });
    if let Some(color) = color {
        embed["color"] = json!(color);
    }
    embed
}

pub(crate) fn button(custom_id: &str, label: Option<&str>, emoji: Option<&str>) -> Value {
    let mut button = json!({"type": 2, "custom_id": custom_id, "style": 2});
    if let Some(label) = label {
        button["label"] = json!(label);
    }
    if let Some(emoji) = emoji {
        button["emoji"] = json!({"name": emoji});
    }
    button
}

fn link(url: &str, label: &str) -> Value {
    json!({"type": 2, "style": 5, "label": label, "url": url})
}

#[allow(clippy::needless_pass_by_value)] // callers build the list in place
pub(crate) fn row(components: Vec<Value>) -> Value {
    json!({"type": 1, "components": components})
}

/// U1-U4 and 🔄, then V1-V4.
pub(crate) fn grid_buttons(hash: &str) -> Value {
    let mut first: Vec<Value> = (1..=4)
        .map(|i| {
            button(
                &format!("MJ::JOB::upsample::{i}::{hash}"),
                Some(&format!("U{i}")),
                None,
            )
        })
        .collect();
    first.push(button(
        &format!("MJ::JOB::reroll::0::{hash}::SOLO"),
        None,
        Some("🔄"),
    ));
    let second = (1..=4)
        .map(|i| {
            button(
                &format!("MJ::JOB::variation::{i}::{hash}"),
                Some(&format!("V{i}")),
                None,
            )
        })
        .collect();
    json!([row(first), row(second)])
}

/// The button of a running job's progress message: `MJ::CancelJob::ByJobid::<job uuid>`.
pub(crate) fn cancel_buttons(hash: &str) -> Value {
    json!([row(vec![button(
        &format!("MJ::CancelJob::ByJobid::{hash}"),
        Some("Cancel Job"),
        None
    )])])
}

/// The buttons under "Image #N": the model's re-upscales (`upscaler`: `v7`, `v6r1`…; the V8
/// family has none, its native 2K coming from `--hd`), varies, zooms, pans, bookmark and web
/// link.
pub(crate) fn upscale_buttons(hash: &str, upscaler: Option<&str>, web: &str) -> Value {
    let solo = |verb: &str| format!("MJ::JOB::{verb}::1::{hash}::SOLO");
    let mut rows = Vec::new();
    if let Some(version) = upscaler {
        rows.push(row(vec![
            button(
                &solo(&format!("upsample_{version}_2x_subtle")),
                Some("Upscale (Subtle)"),
                None,
            ),
            button(
                &solo(&format!("upsample_{version}_2x_creative")),
                Some("Upscale (Creative)"),
                None,
            ),
        ]));
    }
    rows.extend(the_rest(hash, web));
    json!(rows)
}

/// Vary, zoom, pan, bookmark and web rows of an upscale.
fn the_rest(hash: &str, web: &str) -> Vec<Value> {
    let solo = |verb: &str| format!("MJ::JOB::{verb}::1::{hash}::SOLO");
    vec![
        row(vec![
            button(&solo("low_variation"), Some("Vary (Subtle)"), Some("🪄")),
            button(&solo("high_variation"), Some("Vary (Strong)"), Some("🪄")),
            button(
                &format!("MJ::Inpaint::1::{hash}::SOLO"),
                Some("Vary (Region)"),
                Some("🖌️"),
            ),
        ]),
        row(vec![
            button(
                &format!("MJ::Outpaint::50::1::{hash}::SOLO"),
                Some("Zoom Out 2x"),
                Some("🔍"),
            ),
            button(
                &format!("MJ::Outpaint::75::1::{hash}::SOLO"),
                Some("Zoom Out 1.5x"),
                Some("🔍"),
            ),
            button(
                &format!("MJ::CustomZoom::{hash}"),
                Some("Custom Zoom"),
                Some("🔍"),
            ),
        ]),
        row(vec![
            button(&solo("pan_left"), None, Some("⬅️")),
            button(&solo("pan_right"), None, Some("➡️")),
            button(&solo("pan_up"), None, Some("⬆️")),
            button(&solo("pan_down"), None, Some("⬇️")),
        ]),
        row(vec![
            button(&format!("MJ::BOOKMARK::{hash}"), None, Some("❤️")),
            link(web, "Web"),
        ]),
    ]
}

/// The buttons under an HD upscale: varies, bookmark and web link.
pub(crate) fn hd_buttons(hash: &str) -> Value {
    json!([
        row(vec![
            button(
                &format!("MJ::JOB::low_variation::1::{hash}::SOLO"),
                Some("Vary (Subtle)"),
                Some("🪄")
            ),
            button(
                &format!("MJ::JOB::high_variation::1::{hash}::SOLO"),
                Some("Vary (Strong)"),
                Some("🪄")
            ),
        ]),
        row(vec![
            button(&format!("MJ::BOOKMARK::{hash}"), None, Some("❤️")),
            link(&format!("https://www.midjourney.com/jobs/{hash}"), "Web"),
        ]),
    ])
}

/// Every `custom_id` on a message, depth-first.
pub(crate) fn custom_ids(message: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                if let Some(id) = map.get("custom_id").and_then(Value::as_str) {
                    out.push(id.to_owned());
                }
                if let Some(children) = map.get("components") {
                    walk(children, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&message["components"], &mut out);
    out
}

/// `username_prompt_words_hash.png`, as Midjourney names its files.
pub(crate) fn file_name(username: &str, prompt: &str, hash: &str) -> String {
    let mut words = String::new();
    for word in prompt
        .split_whitespace()
        .take_while(|w| !w.starts_with("--"))
        .filter(|w| !w.starts_with('<'))
    {
        let clean: String = word
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if clean.is_empty() || words.len() + clean.len() > 60 {
            continue;
        }
        words.push_str(&clean);
        words.push('_');
    }
    format!("{username}_{words}{hash}.png")
}

#[cfg(test)]
mod tests {
    use super::{custom_ids, file_name, grid_buttons, job_line};
    use serde_json::json;

    #[test]
    fn names_lines_and_buttons() {
        assert_eq!(
            file_name("atelier_tester", "a red fox, in the snow! --ar 3:2", "h"),
            "atelier_tester_a_red_fox_in_the_snow_h.png"
        );
        assert_eq!(
            file_name("u", "<https://s.mj.run/a> <https://s.mj.run/b>", "h"),
            "u_h.png"
        );
        assert_eq!(
            job_line("p", "Variations by ", 7, "(fast)"),
            "**p** - Variations by <@7> (fast)"
        );
        let ids = custom_ids(&json!({"components": grid_buttons("h")}));
        assert_eq!(ids.len(), 9);
        assert_eq!(ids[4], "MJ::JOB::reroll::0::h::SOLO");
    }
}
