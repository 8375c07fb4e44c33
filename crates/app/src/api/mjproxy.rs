//! The midjourney-proxy protocol's task object (the REST API of the popular Midjourney
//! proxies, `/mj/submit/*` and `/mj/task/*`), made from a generation: served by the drop-in
//! routes (`http/mjproxy.rs`) and posted to a task's `notifyHook` by the webhook deliveries,
//! so both send the same document.
//!
//! Also the buttons' custom ids (Midjourney's `MJ::JOB::…` strings, with the task id where
//! Midjourney puts its message hash), read back into Atelier's action words; the signed
//! links that let a client download a task's picture without a key are in `links.rs`.

use serde::Serialize;
use serde_json::{Value, json};

mod links;
mod modal;

pub use links::{LinkError, Links};
pub use modal::ModalTask;

use crate::app::GenerationWithImages;
use crate::domain::{Action, ActionName, GenerationKind, GenerationStatus, Image, Role};

/// A task as the proxy's `GET /mj/task/{id}/fetch` answers it.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The generation's id.
    pub id: String,
    /// `IMAGINE`, `UPSCALE`, `VARIATION`, `REROLL`, `ZOOM`, `PAN`, `DESCRIBE`, `SHORTEN`,
    /// `BLEND`, `VIDEO`.
    pub action: &'static str,
    /// `SUBMITTED`, `IN_PROGRESS`, `SUCCESS`, `FAILURE`, `CANCEL`, or `MODAL` (waiting for
    /// `POST /mj/submit/modal`).
    pub status: &'static str,
    /// `"0%"` to `"100%"`.
    pub progress: String,
    pub prompt: String,
    pub prompt_en: String,
    pub description: String,
    /// The submit's `state`, as it was sent (the generation's client reference).
    pub state: Option<String>,
    /// Unix milliseconds.
    pub submit_time: i64,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    /// The result's picture: the grid, or the one picture of an upscale.
    pub image_url: Option<String>,
    pub fail_reason: Option<String>,
    pub buttons: Vec<Button>,
    #[schema(value_type = Object)]
    pub properties: Value,
}

/// One of a finished task's buttons.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Button {
    /// What `POST /mj/submit/action` takes back.
    pub custom_id: String,
    pub emoji: &'static str,
    pub label: &'static str,
    /// 2: a button.
    #[serde(rename = "type")]
    pub kind: u8,
    /// 2: secondary.
    pub style: u8,
}

/// Makes the task object of `g`. `plays` are the actions its provider plays (only those get a
/// button); `url` gives a picture's address.
pub fn task(
    g: &GenerationWithImages,
    plays: &[ActionName],
    url: impl Fn(&Image) -> String,
) -> Task {
    let gn = &g.generation;
    let ms = |t: time::OffsetDateTime| {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    };
    let status = match gn.status {
        GenerationStatus::Queued | GenerationStatus::Submitted => "SUBMITTED",
        GenerationStatus::Running => "IN_PROGRESS",
        GenerationStatus::Succeeded => "SUCCESS",
        GenerationStatus::Failed => "FAILURE",
        GenerationStatus::Canceled => "CANCEL",
    };
    let progress = if gn.status == GenerationStatus::Succeeded {
        100
    } else {
        // Truncated, never rounded up to a 100% that is not there yet.
        gn.progress.clamp(0.0, 99.0) as u8
    };
    let action = parent_action(g);
    let picture = g
        .images
        .iter()
        .find(|i| i.role == Role::Grid)
        .or_else(|| g.images.iter().min_by_key(|i| order(i.role)));
    let succeeded = gn.status == GenerationStatus::Succeeded;
    let buttons = if succeeded {
        buttons(&gn.id.to_string(), gn.kind, picture.map(|p| p.role), plays)
    } else {
        Vec::new()
    };
    let description = match (gn.kind, action) {
        (GenerationKind::Imagine, _) => format!("/imagine {}", gn.prompt),
        (GenerationKind::Shorten, _) => format!("/shorten {}", gn.prompt),
        (_, Some(a)) => format!(
            "/{} {}",
            a,
            gn.parent_id.map(|p| p.to_string()).unwrap_or_default()
        ),
        (kind, None) => format!("/{}", kind.as_str()),
    };
    let image_url = if succeeded { picture.map(&url) } else { None };
    // A describe's or a shorten's prompt is what it found: its prompts, as Midjourney writes
    // them. Until then a describe has none (its request text is a placeholder) and a shorten
    // shows the prompt it shortens.
    let prompt = match gn.kind {
        kind if kind.makes_prompts() => {
            let found = described(&gn.provider_refs);
            if found.is_empty() && kind == GenerationKind::Shorten {
                gn.prompt.clone()
            } else {
                found
            }
        }
        _ => gn.prompt.clone(),
    };
    let properties = json!({
        "finalPrompt": prompt,
        "provider": gn.provider,
        "generationId": gn.id.to_string(),
    });
    Task {
        id: gn.id.to_string(),
        action: match gn.kind {
            // `--video` on /imagine (what /mj/submit/video queues): a video task.
            GenerationKind::Imagine if crate::domain::makes_video(None, &gn.parameters) => "VIDEO",
            GenerationKind::Imagine | GenerationKind::Import => "IMAGINE",
            GenerationKind::Upscale => "UPSCALE",
            GenerationKind::Variation => "VARIATION",
            GenerationKind::Reroll => "REROLL",
            GenerationKind::Zoom => "ZOOM",
            GenerationKind::Pan => "PAN",
            GenerationKind::Describe => "DESCRIBE",
            GenerationKind::Shorten => "SHORTEN",
            GenerationKind::Blend => "BLEND",
            // Animate and Extend: the fork that added video names its tasks so.
            GenerationKind::Animate => "VIDEO",
        },
        status,
        progress: format!("{progress}%"),
        prompt_en: prompt.clone(),
        description,
        prompt,
        state: gn.client_reference.clone(),
        submit_time: ms(gn.created_at),
        start_time: gn.started_at.map(ms),
        finish_time: gn.completed_at.map(ms),
        image_url,
        fail_reason: gn.error.as_ref().map(|e| e.message.clone()),
        buttons,
        properties,
    }
}

/// A describe's or a shorten's prompts as Midjourney's answer writes them, each after its
/// keycap digit (`1️⃣ …`), separated by blank lines; empty before it found them.
fn described(refs: &Value) -> String {
    let prompts = refs["prompts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    prompts
        .iter()
        .filter_map(Value::as_str)
        .enumerate()
        .map(|(i, p)| format!("{}\u{fe0f}\u{20e3} {p}", i + 1))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The action a generation made by a button played, from its parameters.
fn parent_action(g: &GenerationWithImages) -> Option<Action> {
    g.generation.action()
}

fn order(r: Role) -> u8 {
    match r {
        Role::Grid => 0,
        Role::Upscale(n) | Role::Variant(n) => n,
    }
}

/// The buttons of a finished task: a grid's U1–U4, reroll and V1–V4; one upscaled picture's
/// vary, upscale, zoom and pan. Only what the provider plays.
fn buttons(
    id: &str,
    kind: GenerationKind,
    picture: Option<Role>,
    plays: &[ActionName],
) -> Vec<Button> {
    let button = |custom: String, emoji, label| Button {
        custom_id: custom,
        emoji,
        label,
        kind: 2,
        style: 2,
    };
    let mut out = Vec::new();
    let has = |a: ActionName| plays.contains(&a);
    match (kind, picture) {
        (_, None) => {}
        (kind, _) if kind.makes_prompts() => {}
        (_, Some(Role::Grid)) => {
            const U: [&str; 4] = ["U1", "U2", "U3", "U4"];
            const V: [&str; 4] = ["V1", "V2", "V3", "V4"];
            if has(ActionName::Upscale) {
                for (i, label) in U.iter().enumerate() {
                    out.push(button(
                        format!("MJ::JOB::upsample::{}::{id}", i + 1),
                        "",
                        label,
                    ));
                }
            }
            if has(ActionName::Reroll) {
                out.push(button(format!("MJ::JOB::reroll::0::{id}::SOLO"), "🔄", ""));
            }
            if has(ActionName::Variation) {
                for (i, label) in V.iter().enumerate() {
                    out.push(button(
                        format!("MJ::JOB::variation::{}::{id}", i + 1),
                        "",
                        label,
                    ));
                }
            }
            // A video grid's clips.
            if has(ActionName::VideoUpscale) {
                for (i, label) in U.iter().enumerate() {
                    out.push(button(
                        format!("MJ::JOB::video_virtual_upscale::{}::{id}", i + 1),
                        "",
                        label,
                    ));
                }
            }
        }
        (_, Some(_)) => {
            let one = [
                (
                    ActionName::UpscaleSubtle,
                    "upsample_v6_2x_subtle",
                    "",
                    "Upscale (Subtle)",
                ),
                (
                    ActionName::UpscaleCreative,
                    "upsample_v6_2x_creative",
                    "",
                    "Upscale (Creative)",
                ),
                (
                    ActionName::VaryStrong,
                    "high_variation",
                    "🪄",
                    "Vary (Strong)",
                ),
                (
                    ActionName::VarySubtle,
                    "low_variation",
                    "🪄",
                    "Vary (Subtle)",
                ),
            ];
            for (name, job, emoji, label) in one {
                if has(name) {
                    out.push(button(
                        format!("MJ::JOB::{job}::1::{id}::SOLO"),
                        emoji,
                        label,
                    ));
                }
            }
            if has(ActionName::ZoomOut) {
                out.push(button(
                    format!("MJ::Outpaint::50::1::{id}::SOLO"),
                    "🔍",
                    "Zoom Out 2x",
                ));
                out.push(button(
                    format!("MJ::Outpaint::75::1::{id}::SOLO"),
                    "🔍",
                    "Zoom Out 1.5x",
                ));
            }
            if has(ActionName::ZoomCustom) {
                out.push(button(format!("MJ::CustomZoom::{id}"), "🔍", "Custom Zoom"));
            }
            if has(ActionName::Animate) {
                for (motion, label) in [
                    ("high", "Animate (High motion)"),
                    ("low", "Animate (Low motion)"),
                ] {
                    out.push(button(
                        format!("MJ::JOB::animate_{motion}::1::{id}::SOLO"),
                        "🎞️",
                        label,
                    ));
                }
            }
            if has(ActionName::Extend) {
                for (motion, label) in [
                    ("high", "Extend (High motion)"),
                    ("low", "Extend (Low motion)"),
                ] {
                    out.push(button(
                        format!("MJ::JOB::animate_{motion}_extend::1::{id}"),
                        "🎞️",
                        label,
                    ));
                }
            }
            if has(ActionName::Pan) {
                for (dir, emoji) in [
                    ("left", "⬅️"),
                    ("right", "➡️"),
                    ("up", "⬆️"),
                    ("down", "⬇️"),
                ] {
                    out.push(button(
                        format!("MJ::JOB::pan_{dir}::1::{id}::SOLO"),
                        emoji,
                        "",
                    ));
                }
            }
        }
    }
    out
}

/// The Atelier action a button's custom id presses (`u2`, `vary-strong`, `zoom-out-1.5x`…),
/// or why none: the custom ids of Midjourney's own and the proxies' buttons are read, the
/// message hash in them is not (the task id names the message).
pub fn action_of(custom_id: &str) -> Result<String, String> {
    let parts: Vec<&str> = custom_id.trim().split("::").collect();
    let number = |s: Option<&&str>| {
        s.and_then(|n| n.parse::<u8>().ok())
            .filter(|n| (1..=4).contains(n))
    };
    let unknown =
        || format!("unknown customId {custom_id:?}: not a button of a task of this server");
    match parts.as_slice() {
        ["MJ", "JOB", job, rest @ ..] => {
            let n = number(rest.first());
            Ok(match *job {
                "upsample" => format!("u{}", n.ok_or_else(unknown)?),
                "variation" => format!("v{}", n.ok_or_else(unknown)?),
                "reroll" => "reroll".into(),
                "high_variation" => "vary-strong".into(),
                "low_variation" => "vary-subtle".into(),
                j if j.starts_with("upsample_") && j.ends_with("_subtle") => {
                    "upscale-subtle".into()
                }
                j if j.starts_with("upsample_") && j.ends_with("_creative") => {
                    "upscale-creative".into()
                }
                "pan_left" => "pan-left".into(),
                "pan_right" => "pan-right".into(),
                "pan_up" => "pan-up".into(),
                "pan_down" => "pan-down".into(),
                "animate_high" => "animate-high".into(),
                "animate_low" => "animate-low".into(),
                "animate_high_extend" => "extend-high".into(),
                "animate_low_extend" => "extend-low".into(),
                "video_virtual_upscale" => format!("video-u{}", n.ok_or_else(unknown)?),
                _ => return Err(unknown()),
            })
        }
        ["MJ", "Outpaint", "50", ..] => Ok("zoom-out-2x".into()),
        ["MJ", "Outpaint", "75", ..] => Ok("zoom-out-1.5x".into()),
        // Opens a form: answered with a task waiting for it (code 21), run by /mj/submit/modal.
        ["MJ", "CustomZoom", ..] => Ok("zoom-custom".into()),
        ["MJ", "Inpaint", ..] => Err(format!(
            "customId {custom_id:?} is Vary (Region), which needs Midjourney's region editor: this server does not drive it"
        )),
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_describes_prompts_are_numbered_as_midjourney_writes_them() {
        let refs = json!({"prompts": ["a red fox --ar 3:2", "a fox in snow"]});
        assert_eq!(
            described(&refs),
            "1\u{fe0f}\u{20e3} a red fox --ar 3:2\n\n2\u{fe0f}\u{20e3} a fox in snow"
        );
        assert_eq!(described(&json!({})), "");
    }

    #[test]
    fn custom_ids_read_back_into_actions() {
        let id = "0b7e1d0a-7f36-4c2e-9d76-2f1c0c4b8a11";
        for (custom, action) in [
            (format!("MJ::JOB::upsample::2::{id}"), "u2"),
            (format!("MJ::JOB::variation::4::{id}"), "v4"),
            (format!("MJ::JOB::reroll::0::{id}::SOLO"), "reroll"),
            (
                format!("MJ::JOB::high_variation::1::{id}::SOLO"),
                "vary-strong",
            ),
            (
                format!("MJ::JOB::low_variation::1::{id}::SOLO"),
                "vary-subtle",
            ),
            (
                format!("MJ::JOB::upsample_v6_2x_subtle::1::{id}::SOLO"),
                "upscale-subtle",
            ),
            (
                format!("MJ::JOB::upsample_v7_2x_creative::1::{id}::SOLO"),
                "upscale-creative",
            ),
            (format!("MJ::Outpaint::50::1::{id}::SOLO"), "zoom-out-2x"),
            (format!("MJ::Outpaint::75::1::{id}::SOLO"), "zoom-out-1.5x"),
            (format!("MJ::JOB::pan_up::1::{id}::SOLO"), "pan-up"),
            (format!("MJ::CustomZoom::{id}"), "zoom-custom"),
        ] {
            assert_eq!(action_of(&custom).as_deref(), Ok(action), "{custom}");
        }
        for bad in [
            "",
            "MJ::JOB::upsample::9::x",
            "MJ::BOOKMARK::x",
            "U1",
            "MJ::Inpaint::1::x::SOLO",
        ] {
            assert!(action_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_button_made_reads_back() {
        let plays = ActionName::WITH_VIDEO;
        let mut words = Vec::new();
        for role in [Role::Grid, Role::Variant(1)] {
            for b in buttons("t", GenerationKind::Imagine, Some(role), &plays) {
                words.push(action_of(&b.custom_id).unwrap_or_else(|e| panic!("{e}")));
            }
        }
        // Video's buttons too: Animate on a picture, a video grid's clips, Extend on a clip.
        for word in [
            "zoom-custom",
            "animate-high",
            "animate-low",
            "video-u3",
            "extend-high",
            "extend-low",
        ] {
            assert!(words.iter().any(|w| w == word), "{word} not in {words:?}");
        }
        let grid = buttons(
            "t",
            GenerationKind::Imagine,
            Some(Role::Grid),
            &[ActionName::Upscale],
        );
        assert_eq!(grid.len(), 4);
        assert_eq!(grid[0].label, "U1");
    }
}
