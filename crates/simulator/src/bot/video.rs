//! Midjourney's video in Discord (since mid-2025): `/imagine` with an image prompt and
//! `--video`, Animate (high or low motion) on an upscaled still, a video grid's clips
//! (`video_virtual_upscale`, its U1–U4) and Extend (high or low) on a clip, which with Remix
//! mode on opens its modal (`MJ::AnimateModal::<hash>::1::<high|low>::1`) first.
//!
//! Each is a rendering job like a grid's (`jobs.rs`: waiting, progress, final, the job faults),
//! whose file the caller's [`crate::Painter::clip`] draws: a video grid is an animated WebP, a
//! clip an MP4 named `<uuid>_<i>_720_N.mp4`. The result line is the prompt with `--video 1`
//! and no action words, `**<https://s.mj.run/…> … --video 1** - <@user> (fast)`, as people
//! have reported it. Buttons: a video grid carries its clips' U1–U4, a clip Extend (High
//! motion) and Extend (Low motion); an upscaled still gets Animate (High/Low motion).

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{Value, json};

use super::buttons::{ModalForm, derive, open_modal};
use super::images::Encoded;
use super::jobs::{self, Finish, JobSpec, Label};
use super::messages::{button, row};
use super::params;
use super::slash::refuse;
use super::{Ctx, announce, started};
use crate::ClipKind;
use crate::rest::ApiError;
use crate::sim::Sim;
use crate::state::{ImageSource, ModalKind};

/// A video button.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Video<'a> {
    /// `MJ::JOB::animate_<motion>::<i>::<hash>::SOLO` on an upscaled still.
    Animate { motion: &'static str, hash: &'a str },
    /// `MJ::JOB::video_virtual_upscale::<i>::<hash>` on a video grid.
    Upscale { index: u8, hash: &'a str },
    /// `MJ::JOB::animate_<motion>_extend::<i>::<hash>` on a clip.
    Extend { motion: &'static str, hash: &'a str },
}

/// The video button a `custom_id` names, if it is one.
pub(super) fn parse(custom_id: &str) -> Option<Video<'_>> {
    let parts: Vec<&str> = custom_id.split("::").collect();
    let ["MJ", "JOB", verb, index, hash, ..] = parts.as_slice() else {
        return None;
    };
    let hash = *hash;
    let motion = |m: &str| match m {
        "high" => Some("high"),
        "low" => Some("low"),
        _ => None,
    };
    if *verb == "video_virtual_upscale" {
        let index = index.parse::<u8>().ok().filter(|i| (1..=4).contains(i))?;
        return Some(Video::Upscale { index, hash });
    }
    let rest = verb.strip_prefix("animate_")?;
    match rest.strip_suffix("_extend") {
        Some(m) => motion(m).map(|motion| Video::Extend { motion, hash }),
        None => motion(rest).map(|motion| Video::Animate { motion, hash }),
    }
}

/// Whether a prompt asks for video (`--video`, any case).
pub(super) fn asked(prompt: &str) -> bool {
    atelier_midjourney_params::parse(prompt)
        .params
        .iter()
        .any(|w| w.name == "video")
}

/// A video button pressed on `message`: starts its job, or opens Extend's modal in remix mode.
pub(super) fn press(
    sim: &Arc<Sim>,
    ctx: Ctx,
    video: Video<'_>,
    message: Value,
) -> Result<(), ApiError> {
    let (Video::Animate { hash, .. } | Video::Upscale { hash, .. } | Video::Extend { hash, .. }) =
        video;
    let record = sim
        .world()
        .jobs
        .get(hash)
        .filter(|r| r.owner == ctx.user.id)
        .cloned()
        .ok_or_else(|| ApiError::form(&["data", "custom_id"], "UNKNOWN_JOB", "Unknown job."))?;
    match video {
        Video::Animate { motion, hash } => {
            announce(sim, &ctx, &[]);
            let seed = derive(sim, hash, motion, 0);
            let prompt = format!(
                "<https://s.mj.run/{}> {} --motion {motion} --video 1",
                &hash[..hash.len().min(11)],
                record.prompt
            );
            submit(sim, ctx, prompt, seed, Finish::VideoGrid, Some(message));
        }
        Video::Upscale { index, hash } => {
            announce(sim, &ctx, &[]);
            let seed = derive(sim, hash, "video_upscale", index);
            submit(
                sim,
                ctx,
                record.prompt,
                seed,
                Finish::Clip { index },
                Some(message),
            );
        }
        Video::Extend { motion, hash } => {
            if sim.user(ctx.user.id).is_some_and(|u| u.remix) {
                open_modal(
                    sim,
                    &ctx,
                    ModalKind::Extend {
                        hash: hash.to_owned(),
                        motion,
                    },
                    &ModalForm {
                        custom_id: format!("MJ::AnimateModal::{hash}::1::{motion}::1"),
                        title: "Animate",
                        input: "MJ::AnimateModal::prompt",
                        label: "Prompt",
                        value: record.prompt,
                    },
                );
            } else {
                announce(sim, &ctx, &[]);
                extend(sim, ctx, hash, motion, record.prompt, message);
            }
        }
    }
    Ok(())
}

/// Extend's modal submitted with `prompt`: checked like any prompt, then the extend runs.
pub(super) fn extend_from_modal(
    sim: &Arc<Sim>,
    ctx: Ctx,
    hash: &str,
    motion: &'static str,
    prompt: String,
) {
    let record = sim.world().jobs.get(hash).cloned();
    let Some(record) = record else { return };
    let parent = sim
        .world()
        .message(ctx.channel_id, record.message_id)
        .cloned();
    let niji = ctx.app == crate::commands::App::Niji;
    if let Err(error) = params::check(&prompt, &sim.config.banned_words, niji) {
        let sim = Arc::clone(sim);
        tokio::spawn(async move {
            if started(&sim).await {
                refuse(&sim, &ctx, &error, &format!("/imagine {prompt}"));
            }
        });
        return;
    }
    let Some(parent) = parent else { return };
    extend(sim, ctx, hash, motion, prompt, parent);
}

fn extend(
    sim: &Arc<Sim>,
    ctx: Ctx,
    hash: &str,
    motion: &'static str,
    prompt: String,
    parent: Value,
) {
    let seed = derive(sim, hash, &format!("extend_{motion}"), 1);
    submit(
        sim,
        ctx,
        prompt,
        seed,
        Finish::Clip { index: 1 },
        Some(parent),
    );
}

/// `/imagine` with `--video` (the prompt checked already): a video grid.
pub(super) fn imagine(sim: &Arc<Sim>, ctx: Ctx, prompt: &str, seed: u32) {
    submit(sim, ctx, prompt.to_owned(), seed, Finish::VideoGrid, None);
}

fn submit(
    sim: &Arc<Sim>,
    ctx: Ctx,
    prompt: String,
    seed: u32,
    finish: Finish,
    parent: Option<Value>,
) {
    let kind = match finish {
        Finish::Clip { .. } => ClipKind::Clip,
        _ => ClipKind::Grid,
    };
    jobs::submit(
        sim,
        JobSpec {
            footer: format!("/imagine {prompt}"),
            source: ImageSource::Clip {
                prompt: prompt.clone(),
                seed,
                kind,
            },
            prompt,
            label: Label::same(""),
            seed,
            finish,
            parent,
            ctx,
        },
    );
}

/// The painter's clip; `None` (the job fails) when it draws nothing.
pub(super) fn render(sim: &Sim, prompt: &str, seed: u32, kind: ClipKind) -> Option<Encoded> {
    let bytes = sim.config.painter.clip(prompt, seed, kind);
    if bytes.is_empty() {
        return None;
    }
    // The attachment's size as Midjourney states it; the clip itself is the painter's.
    let size = match kind {
        ClipKind::Grid => (1024, 1024),
        ClipKind::Clip => (1280, 720),
    };
    Some(Encoded {
        bytes: Bytes::from(bytes),
        size,
    })
}

/// A video result's file name: `<uuid>_<i>_720_N.mp4` for a clip, an animated WebP for a
/// video grid.
pub(super) fn file_name(finish: Finish, hash: &str) -> String {
    match finish {
        Finish::Clip { index } => format!("{hash}_{index}_720_N.mp4"),
        _ => format!("{hash}_grid.webp"),
    }
}

/// A video grid's buttons: its clips' U1–U4.
pub(super) fn grid_buttons(hash: &str) -> Value {
    let upscales = (1..=4)
        .map(|i| {
            button(
                &format!("MJ::JOB::video_virtual_upscale::{i}::{hash}"),
                Some(&format!("U{i}")),
                None,
            )
        })
        .collect();
    json!([row(upscales)])
}

/// A clip's buttons: Extend, high and low motion.
pub(super) fn clip_buttons(hash: &str) -> Value {
    json!([row(vec![
        button(
            &format!("MJ::JOB::animate_high_extend::1::{hash}"),
            Some("Extend (High motion)"),
            Some("🎞️")
        ),
        button(
            &format!("MJ::JOB::animate_low_extend::1::{hash}"),
            Some("Extend (Low motion)"),
            Some("🎞️")
        ),
    ])])
}

/// Adds Animate (high and low motion) under an upscaled still's other buttons.
pub(super) fn add_animate(components: &mut Value, hash: &str) {
    if let Some(rows) = components.as_array_mut() {
        rows.push(row(vec![
            button(
                &format!("MJ::JOB::animate_high::1::{hash}::SOLO"),
                Some("Animate (High motion)"),
                Some("🎞️"),
            ),
            button(
                &format!("MJ::JOB::animate_low::1::{hash}::SOLO"),
                Some("Animate (Low motion)"),
                Some("🎞️"),
            ),
        ]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::messages::custom_ids;

    #[test]
    fn video_custom_ids_parse() {
        assert_eq!(
            parse("MJ::JOB::animate_high::1::h::SOLO"),
            Some(Video::Animate {
                motion: "high",
                hash: "h"
            })
        );
        assert_eq!(
            parse("MJ::JOB::animate_low_extend::1::h"),
            Some(Video::Extend {
                motion: "low",
                hash: "h"
            })
        );
        assert_eq!(
            parse("MJ::JOB::video_virtual_upscale::3::h"),
            Some(Video::Upscale {
                index: 3,
                hash: "h"
            })
        );
        assert_eq!(parse("MJ::JOB::video_virtual_upscale::5::h"), None);
        assert_eq!(parse("MJ::JOB::animate_medium::1::h::SOLO"), None);
        assert_eq!(parse("MJ::JOB::upsample::1::h"), None);
    }

    #[test]
    fn video_messages_carry_their_buttons_and_files() {
        let grid = custom_ids(&json!({"components": grid_buttons("h")}));
        assert_eq!(
            grid,
            (1..=4)
                .map(|i| format!("MJ::JOB::video_virtual_upscale::{i}::h"))
                .collect::<Vec<_>>()
        );
        let clip = custom_ids(&json!({"components": clip_buttons("c")}));
        assert_eq!(
            clip,
            [
                "MJ::JOB::animate_high_extend::1::c",
                "MJ::JOB::animate_low_extend::1::c"
            ]
        );
        let mut still = json!([]);
        add_animate(&mut still, "s");
        let still = custom_ids(&json!({ "components": still }));
        assert_eq!(
            still,
            [
                "MJ::JOB::animate_high::1::s::SOLO",
                "MJ::JOB::animate_low::1::s::SOLO"
            ]
        );
        assert_eq!(file_name(Finish::Clip { index: 2 }, "u"), "u_2_720_N.mp4");
        assert_eq!(file_name(Finish::VideoGrid, "u"), "u_grid.webp");
        assert!(asked("https://x/a.png fox --VIDEO"));
        assert!(!asked("a video of a fox"));
    }
}
