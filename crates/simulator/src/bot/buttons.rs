//! Button presses (type 3) and modal submits (type 5).
//!
//! A press must name a message of the channel (else 404 / 10008) that carries that
//! `custom_id` (else 400 / 50035); pressing a button again is fine, as on Midjourney.
//! Grid buttons: U1-U4 (`Image #N`, at once), V1-V4, 🔄. Upscale buttons: Upscale
//! (Subtle/Creative), Vary (Subtle/Strong/Region), Zoom Out 2x/1.5x/Custom, pans. Describe
//! and shorten buttons open an "imagine" modal; Custom Zoom opens its zoom modal. Video
//! buttons (Animate, a video grid's clips, Extend and its modal) are `video.rs`'s.

use std::sync::Arc;

use serde_json::{Value, json};

use super::jobs::{self, Finish, JobSpec, Label};
use super::messages::{self, custom_ids};
use super::params;
use super::slash::{Picture, describe, imagine, refuse};
use super::{Ctx, announce, id_string, images, started, texts, video};
use crate::ids::mix;
use crate::rest::{ApiError, snowflake};
use crate::sim::{Delivery, Sim};
use crate::state::{ImageSource, JobRecord, Modal, ModalKind};

/// Modals kept open at once; beyond that the oldest are forgotten.
const OPEN_MODALS: usize = 1000;

/// What a `custom_id` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action<'a> {
    Upsample {
        index: u8,
        hash: &'a str,
    },
    Variation {
        index: u8,
        hash: &'a str,
    },
    Reroll {
        hash: &'a str,
    },
    UpscaleHd {
        creative: bool,
        hash: &'a str,
    },
    Vary {
        strong: bool,
        hash: &'a str,
    },
    Inpaint,
    Outpaint {
        zoom: &'static str,
        hash: &'a str,
    },
    CustomZoom {
        hash: &'a str,
    },
    Pan {
        direction: &'static str,
        hash: &'a str,
    },
    /// `None` = "Imagine all".
    PicReader(Option<usize>),
    PicReadRetry,
    PromptAnalyzer(usize),
    Settings(&'a str),
    /// The cancel button of a running job's progress message.
    CancelJob(&'a str),
    /// Acknowledged without effect (bookmark, appeal, details…).
    Other,
}

fn parse(custom_id: &str) -> Action<'_> {
    let parts: Vec<&str> = custom_id.split("::").collect();
    let index = |s: &str| s.parse::<u8>().ok().filter(|i| (1..=4).contains(i));
    match parts.as_slice() {
        ["MJ", "JOB", "upsample", i, hash, ..] if index(i).is_some() => Action::Upsample {
            index: index(i).unwrap_or(1),
            hash,
        },
        ["MJ", "JOB", "variation", i, hash, ..] if index(i).is_some() => Action::Variation {
            index: index(i).unwrap_or(1),
            hash,
        },
        ["MJ", "JOB", "reroll", _, hash, ..] => Action::Reroll { hash },
        ["MJ", "JOB", verb, _, hash, ..]
            if verb.starts_with("upsample_") && verb.ends_with("_subtle") =>
        {
            Action::UpscaleHd {
                creative: false,
                hash,
            }
        }
        ["MJ", "JOB", verb, _, hash, ..]
            if verb.starts_with("upsample_") && verb.ends_with("_creative") =>
        {
            Action::UpscaleHd {
                creative: true,
                hash,
            }
        }
        ["MJ", "JOB", "low_variation", _, hash, ..] => Action::Vary {
            strong: false,
            hash,
        },
        ["MJ", "JOB", "high_variation", _, hash, ..] => Action::Vary { strong: true, hash },
        ["MJ", "JOB", pan, _, hash, ..] if pan.starts_with("pan_") => {
            let direction = match *pan {
                "pan_left" => "Left",
                "pan_right" => "Right",
                "pan_up" => "Up",
                _ => "Down",
            };
            Action::Pan { direction, hash }
        }
        ["MJ", "Inpaint", ..] => Action::Inpaint,
        ["MJ", "Outpaint", level, _, hash, ..] => Action::Outpaint {
            zoom: if *level == "75" { "1.5" } else { "2" },
            hash,
        },
        ["MJ", "CustomZoom", hash] => Action::CustomZoom { hash },
        ["MJ", "Job", "PicReader", "all"] => Action::PicReader(None),
        ["MJ", "Job", "PicReader", n] => n
            .parse()
            .map_or(Action::Other, |n| Action::PicReader(Some(n))),
        ["MJ", "Picread", "Retry"] => Action::PicReadRetry,
        ["MJ", "Job", "PromptAnalyzer", n] => {
            n.parse().map_or(Action::Other, Action::PromptAnalyzer)
        }
        ["MJ", "Settings", name, ..] => Action::Settings(name),
        ["MJ", "CancelJob", "ByJobid", hash] => Action::CancelJob(hash),
        _ => Action::Other,
    }
}

pub(super) fn press(
    sim: &Arc<Sim>,
    mut ctx: Ctx,
    payload: &Value,
    data: &Value,
) -> Result<(), ApiError> {
    let message_id =
        id_string(payload.get("message_id")).ok_or_else(|| ApiError::required(&["message_id"]))?;
    let message_id = snowflake("message_id", &message_id)?;
    let custom_id = data
        .get("custom_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::required(&["data", "custom_id"]))?;
    let message = sim
        .world()
        .message(ctx.channel_id, message_id)
        .cloned()
        .ok_or_else(ApiError::unknown_message)?;
    if message["author"]["id"] != ctx.app.id() {
        return Err(ApiError::form(
            &["application_id"],
            "INTERACTION_APPLICATION_MISMATCH",
            "This message does not belong to the application.",
        ));
    }
    if !custom_ids(&message).iter().any(|id| id == custom_id) {
        return Err(ApiError::form(
            &["data", "custom_id"],
            "COMPONENT_CUSTOM_ID_INVALID",
            "Component custom id cannot be found on this message.",
        ));
    }
    ctx.message_id = Some(message_id);
    if let Some(pressed) = video::parse(custom_id) {
        return video::press(sim, ctx, pressed, message);
    }
    let action = parse(custom_id);
    let record = match &action {
        Action::Upsample { hash, .. }
        | Action::Variation { hash, .. }
        | Action::Reroll { hash }
        | Action::UpscaleHd { hash, .. }
        | Action::Vary { hash, .. }
        | Action::Outpaint { hash, .. }
        | Action::CustomZoom { hash }
        | Action::Pan { hash, .. } => Some(
            sim.world()
                .jobs
                .get(*hash)
                .filter(|r| r.owner == ctx.user.id)
                .cloned()
                .ok_or_else(|| {
                    ApiError::form(&["data", "custom_id"], "UNKNOWN_JOB", "Unknown job.")
                })?,
        ),
        _ => None,
    };
    match (action, record) {
        (Action::Upsample { index, hash }, Some(record)) => {
            announce(sim, &ctx, &[]);
            upsample(sim, ctx, record, hash.to_owned(), index, message);
        }
        (Action::Variation { index, hash }, Some(record)) => {
            announce(sim, &ctx, &[]);
            let seed = derive(sim, hash, "variation", index);
            grid(
                sim,
                ctx,
                &record,
                seed,
                Label::same("Variations by "),
                Some(message),
            );
        }
        (Action::Reroll { hash }, Some(record)) => {
            announce(sim, &ctx, &[]);
            let seed = derive(sim, hash, "reroll", 0);
            grid(sim, ctx, &record, seed, Label::same(""), None);
        }
        (Action::Vary { strong, hash }, Some(record)) => {
            announce(sim, &ctx, &[]);
            let seed = derive(sim, hash, if strong { "strong" } else { "subtle" }, 0);
            let label = if strong {
                "Variations (Strong) by "
            } else {
                "Variations (Subtle) by "
            };
            grid(sim, ctx, &record, seed, Label::same(label), Some(message));
        }
        (Action::Pan { direction, hash }, Some(record)) => {
            announce(sim, &ctx, &[]);
            let seed = derive(sim, hash, direction, 0);
            grid(
                sim,
                ctx,
                &record,
                seed,
                Label::same(&format!("Pan {direction} by ")),
                Some(message),
            );
        }
        (Action::Outpaint { zoom, hash }, Some(mut record)) => {
            announce(sim, &ctx, &[]);
            let seed = derive(sim, hash, zoom, 0);
            record.prompt = params::with_zoom(&record.prompt, zoom);
            grid(
                sim,
                ctx,
                &record,
                seed,
                Label::same("Zoom Out by "),
                Some(message),
            );
        }
        (Action::UpscaleHd { creative, hash }, Some(record)) => {
            announce(sim, &ctx, &[]);
            let kind = if creative { "Creative" } else { "Subtle" };
            jobs::submit(
                sim,
                JobSpec {
                    footer: format!("/imagine {}", record.prompt),
                    prompt: record.prompt,
                    label: Label {
                        running: "Upscaling by ".to_owned(),
                        done: format!("Upscaled ({kind}) by "),
                    },
                    seed: record.seed,
                    source: ImageSource::Doubled {
                        of: hash.to_owned(),
                    },
                    finish: Finish::Hd,
                    parent: Some(message),
                    ctx,
                },
            );
        }
        (Action::CustomZoom { hash }, Some(record)) => {
            let value = params::with_zoom(&record.prompt, "2");
            open_modal(
                sim,
                &ctx,
                ModalKind::CustomZoom {
                    hash: hash.to_owned(),
                },
                &ModalForm {
                    custom_id: format!("MJ::OutpaintCustomZoomModal::{hash}"),
                    title: "Zoom Out",
                    input: "MJ::OutpaintCustomZoomModal::prompt",
                    label: "Zoom Prompt",
                    value,
                },
            );
        }
        (Action::Inpaint, _) => {
            let token = sim.ids.hex(32);
            let iframe = json!({
                "id": ctx.interaction_id.to_string(), "nonce": ctx.nonce,
                "channel_id": ctx.channel_id.to_string(),
                "custom_id": format!("MJ::iframe::{token}"), "title": "Vary (Region)",
                "modal_size": 2, "iframe_path": format!("/inpaint/{token}"),
                "application": application(&ctx),
            });
            announce(sim, &ctx, &[("INTERACTION_IFRAME_MODAL_CREATE", iframe)]);
        }
        (Action::PicReader(pick), _) => {
            let prompts = texts::numbered(
                message["embeds"][0]["description"]
                    .as_str()
                    .unwrap_or_default(),
            );
            match pick {
                None => {
                    announce(sim, &ctx, &[]);
                    for prompt in prompts {
                        imagine(sim, ctx.clone(), &prompt);
                    }
                }
                Some(n) => {
                    let value = prompts
                        .get(n.saturating_sub(1))
                        .cloned()
                        .unwrap_or_default();
                    open_modal(
                        sim,
                        &ctx,
                        ModalKind::Imagine,
                        &ModalForm {
                            custom_id: format!("MJ::Picreader::Modal::{n}"),
                            title: "Imagine This!",
                            input: "MJ::Picreader::Modal::PromptField",
                            label: "Prompt",
                            value,
                        },
                    );
                }
            }
        }
        (Action::PromptAnalyzer(n), _) => {
            let prompts = texts::numbered(
                message["embeds"][0]["description"]
                    .as_str()
                    .unwrap_or_default(),
            );
            let value = prompts
                .get(n.saturating_sub(1))
                .cloned()
                .unwrap_or_default();
            open_modal(
                sim,
                &ctx,
                ModalKind::Imagine,
                &ModalForm {
                    custom_id: format!("MJ::ImagineModal::{message_id}"),
                    title: "Imagine This!",
                    input: "MJ::ImagineModal::new_prompt",
                    label: "Prompt",
                    value,
                },
            );
        }
        (Action::PicReadRetry, _) => {
            announce(sim, &ctx, &[]);
            let link = message["embeds"][0]["image"]["url"]
                .as_str()
                .map(str::to_owned);
            let variant = mix(&[&message_id.to_le_bytes(), &ctx.interaction_id.to_le_bytes()]);
            describe(sim, ctx, None::<Picture>, link, variant);
        }
        (Action::CancelJob(hash), _) => {
            announce(sim, &ctx, &[]);
            sim.bot.cancels.cancel(hash, ctx.user.id);
        }
        (Action::Settings(name), _) => {
            if let Some(user) = sim.world().users.get_mut(&ctx.user.id) {
                match name {
                    "FastMode" => user.relaxed = false,
                    "RelaxMode" => user.relaxed = true,
                    "RemixMode" => user.remix = !user.remix,
                    _ => {}
                }
            }
            announce(sim, &ctx, &[]);
        }
        _ => announce(sim, &ctx, &[]),
    }
    Ok(())
}

pub(super) fn submit(sim: &Arc<Sim>, ctx: Ctx, data: &Value) -> Result<(), ApiError> {
    let modal_id = id_string(data.get("id")).ok_or_else(|| ApiError::required(&["data", "id"]))?;
    let modal_id = snowflake("data.id", &modal_id)?;
    let custom_id = data
        .get("custom_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::required(&["data", "custom_id"]))?;
    let value = data
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|row| {
            row.get("components")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find_map(|input| input.get("value").and_then(Value::as_str))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::required(&["data", "components"]))?;
    let modal = {
        let mut world = sim.world();
        let open = world.modals.get(&modal_id).is_some_and(|m| {
            m.user_id == ctx.user.id && m.custom_id == custom_id && m.app == ctx.app
        });
        if open {
            world.modals.remove(&modal_id)
        } else {
            None
        }
    };
    let Some(modal) = modal else {
        return Err(ApiError::form(
            &["data", "id"],
            "UNKNOWN_INTERACTION",
            "Unknown interaction.",
        ));
    };
    announce(sim, &ctx, &[]);
    match modal.kind {
        ModalKind::Imagine => imagine(sim, ctx, &value),
        ModalKind::Extend { hash, motion } => {
            video::extend_from_modal(sim, ctx, &hash, motion, value);
        }
        ModalKind::CustomZoom { hash } => {
            let record = sim.world().jobs.get(&hash).cloned();
            let parent = record
                .as_ref()
                .and_then(|r| sim.world().message(ctx.channel_id, r.message_id).cloned());
            let Some(record) = record else { return Ok(()) };
            let niji = ctx.app == crate::commands::App::Niji;
            if let Err(error) = params::check(&value, &sim.config.banned_words, niji) {
                let sim = Arc::clone(sim);
                let footer = format!("/imagine {value}");
                tokio::spawn(async move {
                    if started(&sim).await {
                        refuse(&sim, &ctx, &error, &footer);
                    }
                });
                return Ok(());
            }
            let seed = derive(sim, &hash, "custom", 0);
            let record = JobRecord {
                prompt: value,
                ..record
            };
            grid(sim, ctx, &record, seed, Label::same("Zoom Out by "), parent);
        }
    }
    Ok(())
}

/// A new seed for a job derived from `hash`, different for every derivation.
pub(super) fn derive(sim: &Sim, hash: &str, tag: &str, index: u8) -> u32 {
    let mut world = sim.world();
    let Some(record) = world.jobs.get_mut(hash) else {
        return sim.ids.u32();
    };
    record.children += 1;
    mix(&[
        &record.seed.to_le_bytes(),
        tag.as_bytes(),
        &[index],
        &record.children.to_le_bytes(),
    ])
}

/// A new grid from a recorded job's prompt.
fn grid(
    sim: &Arc<Sim>,
    ctx: Ctx,
    record: &JobRecord,
    seed: u32,
    label: Label,
    parent: Option<Value>,
) {
    jobs::submit(
        sim,
        JobSpec {
            footer: format!("/imagine {}", record.prompt),
            prompt: record.prompt.clone(),
            label,
            seed,
            source: ImageSource::Grid {
                prompt: record.prompt.clone(),
                seed,
            },
            finish: Finish::Grid,
            parent,
            ctx,
        },
    );
}

/// U1-U4: quadrant `index` of the grid as its own image, answered at once. Unqueued, the
/// press is a running job from its interaction on, so presses sent together overlap in the
/// stats.
fn upsample(sim: &Arc<Sim>, ctx: Ctx, record: JobRecord, grid: String, index: u8, parent: Value) {
    let sim = Arc::clone(sim);
    tokio::spawn(async move {
        sim.stats.job_started();
        if !started(&sim).await {
            sim.stats.job_ended(false);
            return;
        }
        let hash = sim.ids.uuid();
        let work = {
            let (sim, grid, hash) = (Arc::clone(&sim), grid.clone(), hash.clone());
            move || {
                let image = images::quadrant(&*images::resolve(&sim, &grid)?, index);
                let encoded = images::png(&image);
                sim.bot.images_put(&hash, image);
                encoded
            }
        };
        let uid = ctx.user.id;
        let Some(image) = images::blocking(work).await.flatten() else {
            let failed = messages::base(
                &ctx,
                sim.ids.snowflake(),
                &format!("Failed to process your command <@{uid}> 😭"),
            );
            sim.post(&failed, Delivery::Normal);
            sim.stats.job_ended(false);
            return;
        };
        let id = sim.ids.snowflake();
        let content = format!("**{}** - Image #{index} <@{uid}>", record.prompt);
        let mut message = messages::base(&ctx, id, &content);
        messages::reply_to(&mut message, &parent);
        let attachment_id = sim.ids.snowflake();
        let filename = messages::file_name(&ctx.user.username, &record.prompt, &hash);
        let path = format!("/attachments/{}/{attachment_id}/{filename}", ctx.channel_id);
        let size = image.bytes.len();
        sim.put_blob(path.clone(), image.bytes, "image/png");
        message["attachments"] = json!([messages::attachment(
            &sim,
            &path,
            attachment_id,
            &filename,
            size,
            image.size
        )]);
        let upscaler =
            params::upscaler_version(&record.prompt, record.app == crate::commands::App::Niji);
        let web = format!("https://www.midjourney.com/jobs/{grid}?index={}", index - 1);
        message["components"] = messages::upscale_buttons(&hash, upscaler, &web);
        video::add_animate(&mut message["components"], &hash);
        sim.world().jobs.insert(
            hash,
            JobRecord {
                source: ImageSource::Quadrant { grid, index },
                message_id: id,
                children: 0,
                ..record
            },
        );
        sim.post(&message, Delivery::Normal);
        sim.stats.job_ended(true);
    });
}

pub(super) struct ModalForm {
    pub(super) custom_id: String,
    pub(super) title: &'static str,
    pub(super) input: &'static str,
    pub(super) label: &'static str,
    pub(super) value: String,
}

/// Opens a modal: `INTERACTION_MODAL_CREATE` between the interaction's create and success.
pub(super) fn open_modal(sim: &Sim, ctx: &Ctx, kind: ModalKind, form: &ModalForm) {
    {
        let mut world = sim.world();
        if world.modals.len() >= OPEN_MODALS
            && let Some(oldest) = world.modals.keys().min().copied()
        {
            world.modals.remove(&oldest);
        }
        world.modals.insert(
            ctx.interaction_id,
            Modal {
                user_id: ctx.user.id,
                custom_id: form.custom_id.clone(),
                kind,
                app: ctx.app,
            },
        );
    }
    let modal = json!({
        "id": ctx.interaction_id.to_string(),
        "nonce": ctx.nonce,
        "channel_id": ctx.channel_id.to_string(),
        "custom_id": form.custom_id,
        "title": form.title,
        "components": [{"type": 1, "components": [{
            "type": 4, "custom_id": form.input, "label": form.label, "style": 2,
            "value": form.value, "required": true, "min_length": 1, "max_length": 4000,
        }]}],
        "application": application(ctx),
    });
    announce(sim, ctx, &[("INTERACTION_MODAL_CREATE", modal)]);
}

fn application(ctx: &Ctx) -> Value {
    json!({"id": ctx.app.id(), "name": ctx.app.name(), "icon": null, "bot_id": ctx.app.id()})
}

#[cfg(test)]
mod tests {
    use super::{Action, parse};

    #[test]
    fn custom_ids_parse() {
        assert_eq!(
            parse("MJ::JOB::upsample::3::h"),
            Action::Upsample {
                index: 3,
                hash: "h"
            }
        );
        assert_eq!(parse("MJ::JOB::upsample::9::h"), Action::Other);
        assert_eq!(
            parse("MJ::JOB::reroll::0::h::SOLO"),
            Action::Reroll { hash: "h" }
        );
        assert_eq!(
            parse("MJ::JOB::upsample_v7_2x_creative::1::h::SOLO"),
            Action::UpscaleHd {
                creative: true,
                hash: "h"
            }
        );
        assert_eq!(
            parse("MJ::JOB::pan_up::1::h::SOLO"),
            Action::Pan {
                direction: "Up",
                hash: "h"
            }
        );
        assert_eq!(
            parse("MJ::Outpaint::75::1::h::SOLO"),
            Action::Outpaint {
                zoom: "1.5",
                hash: "h"
            }
        );
        assert_eq!(parse("MJ::CustomZoom::h"), Action::CustomZoom { hash: "h" });
        assert_eq!(parse("MJ::Job::PicReader::all"), Action::PicReader(None));
        assert_eq!(
            parse("MJ::Job::PromptAnalyzer::2"),
            Action::PromptAnalyzer(2)
        );
        assert_eq!(parse("MJ::BOOKMARK::h"), Action::Other);
    }
}
