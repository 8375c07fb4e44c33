//! Slash commands (interaction type 2): the command id and version are checked against the
//! index (a stale version is Discord's 400 / 50035 "This command is outdated"), then each
//! command starts its answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{Value, json};

use super::jobs::{self, Finish, JobSpec, Label};
use super::messages::{self, EPHEMERAL, LOADING, RED};
use super::params::{self, PromptError};
use super::{Ctx, InlineFile, announce, id_string, images, post_error, started, texts};
use crate::rest::{ApiError, snowflake};
use crate::sim::{Delivery, Sim};
use crate::state::ImageSource;

pub(super) fn accept(
    sim: &Arc<Sim>,
    mut ctx: Ctx,
    data: &Value,
    files: &HashMap<String, InlineFile>,
) -> Result<(), ApiError> {
    let id = id_string(data.get("id")).ok_or_else(|| ApiError::required(&["data", "id"]))?;
    let id = snowflake("data.id", &id)?;
    let version =
        id_string(data.get("version")).ok_or_else(|| ApiError::required(&["data", "version"]))?;
    let (name, current) = {
        let world = sim.world();
        let command = world.commands.find(ctx.app, id).ok_or_else(|| {
            ApiError::form(
                &["data", "id"],
                "INTERACTION_APPLICATION_COMMAND_UNKNOWN",
                "Unknown application command.",
            )
        })?;
        (command.name, command.version)
    };
    if version != current.to_string() {
        return Err(ApiError::outdated_command());
    }
    ctx.name = Some(name.to_owned());
    let options = Options(
        data.get("options")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    );
    match name {
        "imagine" => {
            let prompt = options.text("prompt")?;
            announce(sim, &ctx, &[]);
            imagine(sim, ctx, &prompt);
        }
        "describe" => {
            let image = match options.get("image") {
                Some(value) => Some(attachment(sim, &ctx, data, value, files)?),
                None => None,
            };
            let link = options
                .get("link")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if image.is_none() && link.is_none() {
                return Err(ApiError::required(&["data", "options", "image"]));
            }
            announce(sim, &ctx, &[]);
            describe(sim, ctx, image, link, 0);
        }
        "blend" => {
            let mut images = Vec::new();
            for n in 1..=5 {
                match options.get(&format!("image{n}")) {
                    Some(value) => images.push(attachment(sim, &ctx, data, value, files)?),
                    None if n <= 2 => {
                        return Err(ApiError::required(&[
                            "data",
                            "options",
                            &format!("image{n}"),
                        ]));
                    }
                    None => {}
                }
            }
            let dimensions = options
                .get("dimensions")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if dimensions
                .as_deref()
                .is_some_and(|d| !matches!(d, "--ar 2:3" | "--ar 1:1" | "--ar 3:2"))
            {
                return Err(ApiError::form(
                    &["data", "options", "dimensions"],
                    "BASE_TYPE_CHOICES",
                    "Value must be one of ('--ar 2:3', '--ar 1:1', '--ar 3:2').",
                ));
            }
            announce(sim, &ctx, &[]);
            blend(sim, ctx, &images, dimensions);
        }
        "shorten" => {
            let prompt = options.text("prompt")?;
            announce(sim, &ctx, &[]);
            let sim = Arc::clone(sim);
            tokio::spawn(async move {
                deferred(&sim, &ctx, 0, |message| {
                    message["embeds"] = json!([{
                        "type": "rich", "title": "", "color": 0, "content_scan_version": 0,
                        "description": texts::shorten(&prompt),
                        "footer": {"text": "Click on a button to imagine one of the shortened prompts"},
                    }]);
                    let mut buttons: Vec<Value> = (1..=5)
                        .map(|n| messages::button(&format!("MJ::Job::PromptAnalyzer::{n}"), Some(&n.to_string()), None))
                        .collect();
                    buttons.push(messages::button("MJ::Job::PromptAnalyzer::show_details", Some("Show Details"), Some("🔎")));
                    message["components"] = json!([messages::row(buttons)]);
                })
                .await;
            });
        }
        "info" => {
            announce(sim, &ctx, &[]);
            let sim = Arc::clone(sim);
            tokio::spawn(async move {
                let description = info(&sim, &ctx);
                deferred(&sim, &ctx, EPHEMERAL, |message| {
                    message["embeds"] = json!([{
                        "type": "rich", "color": 0, "content_scan_version": 0,
                        "title": format!("Your info - {}", ctx.user.username),
                        "description": description,
                    }]);
                })
                .await;
            });
        }
        "settings" => {
            announce(sim, &ctx, &[]);
            let sim = Arc::clone(sim);
            tokio::spawn(async move {
                let relaxed = sim.user(ctx.user.id).is_some_and(|u| u.relaxed);
                deferred(&sim, &ctx, EPHEMERAL, |message| settings(message, relaxed)).await;
            });
        }
        "fast" | "relax" => {
            let relaxed = name == "relax";
            if let Some(user) = sim.world().users.get_mut(&ctx.user.id) {
                user.relaxed = relaxed;
            }
            announce(sim, &ctx, &[]);
            let sim = Arc::clone(sim);
            tokio::spawn(async move {
                if !started(&sim).await {
                    return;
                }
                let text = if relaxed {
                    "Done! Your jobs now do not cost fast-hours, but will take longer to run."
                } else {
                    "Done! Your jobs will now use fast-hours."
                };
                let mut message = messages::base(&ctx, sim.ids.snowflake(), text);
                message["flags"] = json!(EPHEMERAL);
                sim.post(&message, Delivery::Ephemeral);
            });
        }
        _ => return Err(ApiError::not_found()),
    }
    Ok(())
}

/// A command's options by name.
struct Options(Vec<Value>);

impl Options {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|o| o.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|o| o.get("value"))
    }

    fn text(&self, name: &str) -> Result<String, ApiError> {
        self.get(name)
            .and_then(Value::as_str)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .ok_or_else(|| ApiError::required(&["data", "options", name]))
    }
}

/// An uploaded image named by an attachment option.
pub(super) struct Picture {
    pub(super) filename: String,
    pub(super) bytes: Bytes,
}

/// Resolves an attachment option (`value` = an id of `data.attachments`) to its bytes: an
/// upload of this user, or a file sent inline with a multipart interaction.
fn attachment(
    sim: &Sim,
    ctx: &Ctx,
    data: &Value,
    value: &Value,
    files: &HashMap<String, InlineFile>,
) -> Result<Picture, ApiError> {
    let wanted = id_string(Some(value)).unwrap_or_default();
    let missing = || {
        ApiError::form(
            &["data", "attachments"],
            "ATTACHMENT_NOT_FOUND",
            "Unknown attachment.",
        )
    };
    let entry = data
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| id_string(a.get("id")).as_deref() == Some(wanted.as_str()))
        .ok_or_else(missing)?;
    if let Some(key) = entry.get("uploaded_filename").and_then(Value::as_str) {
        let world = sim.world();
        let upload = world.uploads.get(key).filter(|u| u.owner == ctx.user.id);
        return match upload {
            Some(upload) => match &upload.bytes {
                Some(bytes) => Ok(Picture {
                    filename: upload.filename.clone(),
                    bytes: bytes.clone(),
                }),
                None => Err(missing()),
            },
            None => Err(missing()),
        };
    }
    files
        .get(&wanted)
        .map(|f| Picture {
            filename: f.filename.clone(),
            bytes: f.bytes.clone(),
        })
        .ok_or_else(missing)
}

/// /imagine: checks the prompt, then submits a grid job (or answers with an error embed; a
/// trigger word of `texts::UNTITLED_ERRORS` gets that title-less reply).
pub(super) fn imagine(sim: &Arc<Sim>, ctx: Ctx, prompt: &str) {
    let footer = format!("/imagine {prompt}");
    if let Some(error) = texts::untitled_error(prompt) {
        let sim = Arc::clone(sim);
        tokio::spawn(async move {
            if started(&sim).await {
                let embed = messages::untitled_embed(error.description, error.colour);
                post_error(&sim, &ctx, &embed, EPHEMERAL);
            }
        });
        return;
    }
    let checked = params::moderated(prompt, &sim.config.moderated_words).and_then(|()| {
        let niji = ctx.app == crate::commands::App::Niji;
        params::check(prompt, &sim.config.banned_words, niji)
    });
    let checked = checked.and_then(|()| live_links(sim, prompt));
    if let Err(error) = checked {
        let sim = Arc::clone(sim);
        tokio::spawn(async move {
            if started(&sim).await {
                refuse(&sim, &ctx, &error, &footer);
            }
        });
        return;
    }
    let seed = params::seed(prompt).unwrap_or_else(|| sim.ids.u32());
    if super::video::asked(prompt) {
        super::video::imagine(sim, ctx, prompt, seed);
        return;
    }
    jobs::submit(
        sim,
        JobSpec {
            prompt: prompt.to_owned(),
            label: Label::same(""),
            seed,
            source: ImageSource::Grid {
                prompt: prompt.to_owned(),
                seed,
            },
            finish: Finish::Grid,
            parent: None,
            footer,
            ctx,
        },
    );
}

/// The image prompts at the start of `prompt` that point at this simulator's CDN must be live
/// signed links, as the bot fetches each one (an expired or forged link, or a file that is
/// gone, is "Invalid link"); links elsewhere are taken on trust, there being nothing to fetch
/// them from.
fn live_links(sim: &Sim, prompt: &str) -> Result<(), PromptError> {
    let dead = prompt
        .split_whitespace()
        .take_while(|w| atelier_midjourney_params::is_image_prompt(w))
        .map(|w| w.trim_start_matches('<').trim_end_matches('>'))
        .any(|url| sim.serves_url(url) == Some(false));
    if dead {
        Err(PromptError::DeadLink)
    } else {
        Ok(())
    }
}

/// The embed for a refused prompt.
pub(super) fn refuse(sim: &Sim, ctx: &Ctx, error: &PromptError, footer: &str) {
    match error {
        PromptError::Invalid(description) => {
            let embed = messages::embed("Invalid parameter", description, RED, Some(footer));
            post_error(sim, ctx, &embed, EPHEMERAL);
        }
        PromptError::Empty => {
            let embed = messages::embed(
                "Empty prompt",
                "Your prompt has no words to imagine. Please add a description.",
                RED,
                Some(footer),
            );
            post_error(sim, ctx, &embed, EPHEMERAL);
        }
        PromptError::DeadLink => {
            let embed = messages::embed(
                "Invalid link",
                "Could not validate this link. Please try again later.",
                RED,
                Some(footer),
            );
            post_error(sim, ctx, &embed, EPHEMERAL);
        }
        PromptError::Moderated => {
            let embed = messages::embed(
                "Pending mod message",
                "You have a pending moderation message. Please acknowledge it before using the bot further.",
                RED,
                None,
            );
            post_error(sim, ctx, &embed, EPHEMERAL);
        }
        PromptError::Banned => {
            let id = sim.ids.snowflake();
            let mut message = messages::base(ctx, id, "");
            message["embeds"] = json!([messages::embed(
                "Banned prompt detected",
                "Sorry! Our AI moderators feel your prompt might be against our community standards.\n\nIf you think this is a mistake, please press the **Appeal** button below and we will send it to a more sophisticated AI to double-check the result.",
                RED,
                Some(footer),
            )]);
            message["components"] = json!([messages::row(vec![messages::button(
                &format!("MJ::Prompt::Appeal::{id}"),
                Some("Appeal"),
                None
            )])]);
            sim.post(&message, Delivery::Normal);
        }
    }
}

/// A reply that first shows "thinking" (flag 128, with the nonce), then its content as an
/// update without the nonce, as Midjourney's deferred replies do.
async fn deferred(sim: &Sim, ctx: &Ctx, flags: u64, fill: impl FnOnce(&mut Value)) {
    if !started(sim).await {
        return;
    }
    let id = sim.ids.snowflake();
    let mut message = messages::base(ctx, id, "");
    message["flags"] = json!(flags | LOADING);
    let delivery = if flags & EPHEMERAL == 0 {
        Delivery::Normal
    } else {
        Delivery::Ephemeral
    };
    sim.post(&message, delivery);
    if sim.sleep(sim.config.timing.step).await.is_err() {
        return;
    }
    let mut update = messages::edited(message, "");
    update["flags"] = json!(flags);
    fill(&mut update);
    sim.edit(&update);
}

/// /describe of an uploaded image or a link; `variant` varies the wording (retry button).
pub(super) fn describe(
    sim: &Arc<Sim>,
    ctx: Ctx,
    image: Option<Picture>,
    link: Option<String>,
    variant: u32,
) {
    let sim = Arc::clone(sim);
    tokio::spawn(async move {
        if !started(&sim).await {
            return;
        }
        let (url, bytes) = match (image, link) {
            (Some(picture), _) => {
                let id = sim.ids.snowflake();
                let path = format!(
                    "/ephemeral-attachments/{}/{id}/{}",
                    ctx.channel_id, picture.filename
                );
                let mime = crate::cdn::mime(&picture.filename);
                sim.put_blob(path.clone(), picture.bytes.clone(), mime);
                (sim.signed_url(&path), Some(picture.bytes))
            }
            (None, Some(link)) => {
                let own = link
                    .strip_prefix(&sim.http_base)
                    .map(|rest| rest.split('?').next().unwrap_or(rest).to_owned());
                let bytes = own.and_then(|path| sim.blob(&path)).map(|(b, _)| b);
                (link, bytes)
            }
            (None, None) => return,
        };
        let summary = match bytes {
            Some(bytes) => images::blocking(move || images::summary(&bytes))
                .await
                .flatten(),
            None => Some(((1024, 1024), [128, 128, 128])),
        };
        let Some((size, colour)) = summary else {
            let embed = messages::embed(
                "Invalid image",
                "The file could not be read as an image. Please try another one.",
                RED,
                None,
            );
            post_error(&sim, &ctx, &embed, EPHEMERAL);
            return;
        };
        let id = sim.ids.snowflake();
        let mut message = messages::base(&ctx, id, "");
        let image = json!({"url": url, "proxy_url": url, "width": size.0, "height": size.1});
        message["embeds"] =
            json!([{"type": "rich", "color": 0, "content_scan_version": 0, "image": image}]);
        sim.post(&message, Delivery::Normal);
        if sim.sleep(sim.config.timing.step).await.is_err() {
            return;
        }
        let mut update = messages::edited(message, "");
        update["embeds"][0]["description"] = json!(texts::describe(size, colour, variant));
        let mut picks: Vec<Value> = (1..=4)
            .map(|n| {
                messages::button(
                    &format!("MJ::Job::PicReader::{n}"),
                    Some(&n.to_string()),
                    None,
                )
            })
            .collect();
        picks.push(messages::button("MJ::Picread::Retry", None, Some("🔄")));
        update["components"] = json!([
            messages::row(picks),
            messages::row(vec![messages::button(
                "MJ::Job::PicReader::all",
                Some("Imagine all"),
                Some("🎉")
            )]),
        ]);
        sim.edit(&update);
    });
}

/// /blend: identical images are refused, the others become `<https://s.mj.run/…>` links.
fn blend(sim: &Arc<Sim>, ctx: Ctx, pictures: &[Picture], dimensions: Option<String>) {
    let duplicate = pictures
        .iter()
        .enumerate()
        .any(|(i, a)| pictures[..i].iter().any(|b| a.bytes == b.bytes));
    if duplicate {
        let sim = Arc::clone(sim);
        tokio::spawn(async move {
            if started(&sim).await {
                let embed = messages::embed(
                    "Duplicate images detected",
                    "You have provided the same image multiple times. Please use unique images for blending.",
                    RED,
                    None,
                );
                post_error(&sim, &ctx, &embed, 0);
            }
        });
        return;
    }
    let mut prompt = pictures
        .iter()
        .map(|_| format!("<https://s.mj.run/{}>", sim.ids.alphanumeric(11)))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(dimensions) = dimensions {
        prompt = format!("{prompt} {dimensions}");
    }
    let seed = sim.ids.u32();
    jobs::submit(
        sim,
        JobSpec {
            label: Label::same(""),
            seed,
            source: ImageSource::Grid {
                prompt: prompt.clone(),
                seed,
            },
            finish: Finish::Grid,
            parent: None,
            footer: "/blend".to_owned(),
            prompt,
            ctx,
        },
    );
}

fn info(sim: &Sim, ctx: &Ctx) -> String {
    let (running, queued) = sim.bot.load(ctx.user.id);
    let relaxed = sim.user(ctx.user.id).is_some_and(|u| u.relaxed);
    let mode = if relaxed { "Relaxed" } else { "Fast" };
    format!(
        "**User ID**: {}\n**Subscription**: Pro (Active monthly, renews next on <t:1767225600>)\n\
         **Job Mode**: {mode}\n**Visibility Mode**: Public\n**Fast Time Remaining**: 29.5/30.0 hours (98.33%)\n\
         **Lifetime Usage**: {} images (0.5 hours)\n**Relaxed Usage**: 0 images (0.00 hours)\n\n\
         **Queued Jobs (fast)**: {queued}\n**Queued Jobs (relax)**: 0\n**Running Jobs**: {running}",
        ctx.user.id,
        sim.stats.snapshot_jobs_finished(),
    )
}

fn settings(message: &mut Value, relaxed: bool) {
    let style = |on: bool| if on { 3 } else { 2 };
    let toggle = |id: &str, label: &str, emoji: &str, on: bool| {
        let mut b = messages::button(id, Some(label), Some(emoji));
        b["style"] = json!(style(on));
        b
    };
    let remix = toggle("MJ::Settings::RemixMode", "Remix mode", "🎛️", false);
    let high = toggle(
        "MJ::Settings::HighVariabilityMode::1",
        "High Variation Mode",
        "🎨",
        true,
    );
    let low = toggle(
        "MJ::Settings::LowVariabilityMode::1",
        "Low Variation Mode",
        "🎨",
        false,
    );
    let fast = toggle("MJ::Settings::FastMode", "Fast mode", "🐇", !relaxed);
    let relax = toggle("MJ::Settings::RelaxMode", "Relax mode", "🐢", relaxed);
    let turbo = toggle("MJ::Settings::TurboMode", "Turbo mode", "⚡", false);
    message["content"] = json!("Adjust your settings here. Current suffix: ` --v 7`");
    message["components"] = json!([
        messages::row(vec![json!({
            "type": 3, "custom_id": "MJ::Settings::VersionSelector", "min_values": 1, "max_values": 1,
            "options": [
                {"label": "Midjourney Model V7", "value": "7", "default": true},
                {"label": "Midjourney Model V6.1", "value": "6.1", "default": false},
                {"label": "Niji Model V6", "value": "niji 6", "default": false},
            ],
        })]),
        messages::row(vec![remix, high, low]),
        messages::row(vec![
            fast,
            relax,
            turbo,
            messages::button("MJ::Settings::ResetSettings", Some("Reset Settings"), None)
        ]),
    ]);
}
