//! The Midjourney provider: /imagine for the grid, U1–U4 for the upscales, over the account
//! pool, with every step's Discord references saved so that a restarted job picks up where
//! the last process stopped instead of paying for the same render twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_discord::rest::SlashCommand;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::account::Account;
use super::download::{self, Retries};
use super::exchange::{self, Exchange, Send, Timing};
use super::pool::Pool;
use super::reading::{Kind, MIDJOURNEY_BOT_ID, NIJI_BOT_ID, Reading};
use super::router::{Expect, normalise};
use crate::domain::prompt_params;
use crate::domain::{Action, ErrorCode, GenerationKind, Output, Role};
use crate::providers::{Delivery, Provider, ProviderError, ProviderJob, Reporter};

pub struct Midjourney {
    pub pool: Arc<Pool>,
    pub timing: Timing,
    pub retries: Retries,
}

/// What the provider keeps in a generation's `provider_refs`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Refs {
    /// The account that holds the job's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The grid's result message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Shot>,
    /// Each upscale's result message, by image number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upscales: BTreeMap<u8, Shot>,
    /// The result message of a single-picture action (U1–U4, Upscale Subtle/Creative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Shot>,
    /// For an action on an upscale the parent never pressed (it split its grid locally):
    /// the U message this job pressed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Shot>,
    /// The prompts /describe found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// An interaction sent whose outcome is not known yet: after a crash, its messages are
    /// looked for before sending it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// A result message of the bot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shot {
    pub message_id: String,
    #[serde(default)]
    pub flags: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

impl Shot {
    fn of(r: &Reading) -> Self {
        Self {
            message_id: r.message_id.clone(),
            flags: r.flags.raw,
            job_hash: r.job_hash.clone(),
            url: r.attachment.as_ref().and_then(|a| a.url.clone()),
            buttons: r.buttons.clone(),
            prompt: r.prompt.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// `grid` or `upscale_N`.
    pub step: String,
    pub nonce: String,
}

/// The refs of a running job, saved through the reporter at every change.
struct Saved<'a> {
    refs: Mutex<Refs>,
    report: &'a dyn Reporter,
}

impl Saved<'_> {
    async fn update(&self, f: impl FnOnce(&mut Refs)) {
        let value = {
            let Ok(mut refs) = self.refs.lock() else {
                return;
            };
            f(&mut refs);
            serde_json::to_value(&*refs).unwrap_or_default()
        };
        self.report.save_refs(value).await;
    }

    fn get(&self) -> Refs {
        self.refs.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The bot a job talks to: niji・journey when the job asks for it.
fn application_id(job: &ProviderJob) -> &'static str {
    match job.parameters.extra.get("bot").and_then(|v| v.as_str()) {
        Some("niji") => NIJI_BOT_ID,
        _ => MIDJOURNEY_BOT_ID,
    }
}

/// The /imagine prompt: the user's text with its own parameters, plus the ones given apart
/// from it (seed, aspect ratio, negative prompt) that it does not already carry.
pub fn imagine_prompt(job: &ProviderJob) -> String {
    let mut prompt = job.prompt.clone();
    let inline = prompt_params::parse(&prompt)
        .map(|(_, p)| p)
        .unwrap_or_default();
    if inline.aspect_ratio.is_none()
        && let Some(ar) = &job.parameters.aspect_ratio
    {
        let _ = write!(prompt, " --ar {ar}");
    }
    if inline.seed.is_none()
        && let Some(seed) = job.parameters.seed
    {
        let _ = write!(prompt, " --seed {seed}");
    }
    if inline.no.is_none()
        && let Some(neg) = &job.negative_prompt
    {
        let _ = write!(prompt, " --no {neg}");
    }
    prompt
}

impl Midjourney {
    fn exchange<'a>(
        &'a self,
        account: &'a Arc<Account>,
        report: &'a dyn Reporter,
        job: &ProviderJob,
    ) -> Exchange<'a> {
        Exchange {
            account,
            timing: &self.timing,
            report,
            application_id: application_id(job),
        }
    }

    /// The account this job holds (taking one on its first call).
    async fn account(
        &self,
        job: &ProviderJob,
        saved: &Saved<'_>,
    ) -> Result<Arc<Account>, ProviderError> {
        // An action must run on the account that owns the parent's messages, and a job
        // that has messages must stay on their account; a job with nothing sent yet may move
        // (its account was disabled since).
        let refs = saved.get();
        let started = refs.grid.is_some()
            || refs.result.is_some()
            || refs.source.is_some()
            || refs.pending.is_some();
        let parent = parent_refs(job).account;
        // Only a pending interaction ties the job to a disabled account: nothing can come of
        // it there, so the job moves (Midjourney never ran it, or it is lost with the account).
        let dead = |name: &str| {
            self.pool
                .get(name)
                .is_some_and(|a| matches!(a.health(), super::Health::Disabled(_)))
        };
        let only_pending = refs.grid.is_none() && refs.result.is_none() && refs.source.is_none();
        let started = if started && only_pending && refs.account.as_deref().is_some_and(dead) {
            saved.update(|r| r.pending = None).await;
            false
        } else {
            started
        };
        let wanted = parent.or(refs.account.clone().filter(|_| started));
        let account = self.pool.hold(job.generation_id, wanted.as_deref()).await?;
        if refs.account.as_deref() != Some(account.name.as_str()) {
            let name = account.name.clone();
            saved.update(|r| r.account = Some(name.clone())).await;
            saved.report.account(&name).await;
        }
        Ok(account)
    }

    async fn deliver(&self, account: &Account, shot: &Shot) -> Result<Delivery, ProviderError> {
        let url = shot.url.as_deref().ok_or_else(|| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                "the result message has no image attachment",
            )
        })?;
        let bytes = download::fetch(account, &shot.message_id, url, &self.retries).await?;
        Ok(Delivery { bytes })
    }

    /// The message an action presses its button on: the parent's grid, or the parent's
    /// upscale (pressing U on the parent's grid first when the parent split it locally).
    async fn source(
        &self,
        exchange: &Exchange<'_>,
        saved: &Saved<'_>,
        job: &ProviderJob,
        action: Action,
    ) -> Result<Shot, ProviderError> {
        let parent = parent_refs(job);
        let missing = |what: &str| {
            ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("the parent generation has no Midjourney {what} message to act on"),
            )
        };
        let grid = parent.grid.clone();
        let Role::Upscale(index) = action.source() else {
            return grid.ok_or_else(|| missing("grid"));
        };
        if let Some(shot) = parent.upscales.get(&index).or(parent.result.as_ref()) {
            return Ok(shot.clone());
        }
        if let Some(shot) = saved.get().source {
            return Ok(shot);
        }
        let grid = grid.ok_or_else(|| missing("grid or upscale"))?;
        let (what, expect) = press(&grid, Action::Upscale { index })?;
        let reading = self.step(exchange, saved, "source", what, expect).await?;
        let shot = Shot::of(&reading);
        saved.update(|r| r.source = Some(shot.clone())).await;
        Ok(shot)
    }

    /// /describe: uploads the picture and keeps the four prompts Midjourney proposes.
    async fn describe(
        &self,
        exchange: &Exchange<'_>,
        saved: &Saved<'_>,
        job: &ProviderJob,
    ) -> Result<Delivery, ProviderError> {
        if saved.get().prompts.is_empty() {
            let input = job.inputs.first().ok_or_else(|| {
                ProviderError::new(ErrorCode::InvalidParameter, "describe needs an image")
            })?;
            let uploaded = upload(exchange.account, std::slice::from_ref(input)).await?;
            let command = SlashCommand {
                name: "describe".into(),
                options: vec![json!({"type": 11, "name": "image", "value": 0})],
                attachments: uploaded,
            };
            let expect = Expect {
                kinds: vec![Kind::Describe],
                index: None,
                source_message: None,
                prompt: None,
            };
            let reading = self
                .step(exchange, saved, "describe", Send::Slash(command), expect)
                .await?;
            saved
                .update(|r| {
                    r.prompts.clone_from(&reading.prompts);
                    r.pending = None;
                })
                .await;
        }
        Ok(Delivery { bytes: Vec::new() })
    }

    /// The /blend command for the job's pictures (2 to 5), with its dimensions.
    async fn blend(&self, account: &Account, job: &ProviderJob) -> Result<Send, ProviderError> {
        if !(2..=5).contains(&job.inputs.len()) {
            return Err(ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("blend takes 2 to 5 images, not {}", job.inputs.len()),
            ));
        }
        let uploaded = upload(account, &job.inputs).await?;
        let mut options: Vec<serde_json::Value> = (0..uploaded.len())
            .map(|i| json!({"type": 11, "name": format!("image{}", i + 1), "value": i}))
            .collect();
        let ratio = match job
            .parameters
            .extra
            .get("dimensions")
            .and_then(|d| d.as_str())
        {
            Some("portrait") => Some("--ar 2:3"),
            Some("landscape") => Some("--ar 3:2"),
            Some("square") => Some("--ar 1:1"),
            _ => None,
        };
        if let Some(ratio) = ratio {
            options.push(json!({"type": 3, "name": "dimensions", "value": ratio}));
        }
        Ok(Send::Slash(SlashCommand {
            name: "blend".into(),
            options,
            attachments: uploaded,
        }))
    }

    /// Runs one step (`step` names it in the refs) and records its result message.
    async fn step(
        &self,
        exchange: &Exchange<'_>,
        saved: &Saved<'_>,
        step: &str,
        what: Send,
        expect: Expect,
    ) -> Result<Reading, ProviderError> {
        let resumed = saved
            .get()
            .pending
            .filter(|p| p.step == step)
            .map(|p| p.nonce);
        exchange
            .run(&what, expect, resumed, |nonce| {
                saved.update(move |r| {
                    r.pending = nonce.map(|nonce| Pending {
                        step: step.to_owned(),
                        nonce,
                    });
                })
            })
            .await
    }
}

#[async_trait]
impl Provider for Midjourney {
    async fn render(
        &self,
        job: &ProviderJob,
        report: &dyn Reporter,
    ) -> Result<Delivery, ProviderError> {
        let saved = Saved {
            refs: Mutex::new(serde_json::from_value(job.refs.clone()).unwrap_or_default()),
            report,
        };
        let account = self.account(job, &saved).await?;
        let single = job.action.is_some_and(|a| a.output() == Output::Single);
        let done = if single {
            saved.get().result
        } else {
            saved.get().grid
        };
        if let Some(shot) = done {
            return self.deliver(&account, &shot).await;
        }
        let exchange = self.exchange(&account, report, job);
        if job.kind == GenerationKind::Describe {
            return self.describe(&exchange, &saved, job).await;
        }
        let (what, expect) = match job.action {
            None if job.kind == GenerationKind::Blend => (
                self.blend(&account, job).await?,
                Expect {
                    kinds: vec![Kind::Blend, Kind::Imagine],
                    index: None,
                    source_message: None,
                    prompt: None,
                },
            ),
            None => {
                let prompt = imagine_prompt(job);
                let command = SlashCommand {
                    name: "imagine".into(),
                    options: vec![json!({"type": 3, "name": "prompt", "value": prompt})],
                    attachments: Vec::new(),
                };
                let expect = Expect {
                    kinds: vec![Kind::Imagine, Kind::Reroll],
                    index: None,
                    source_message: None,
                    prompt: Some(normalise(&prompt)),
                };
                (Send::Slash(command), expect)
            }
            Some(action) => {
                let source = self.source(&exchange, &saved, job, action).await?;
                press(&source, action)?
            }
        };
        let step = if single { "result" } else { "grid" };
        let reading = self.step(&exchange, &saved, step, what, expect).await?;
        let shot = Shot::of(&reading);
        saved
            .update(|r| {
                if single {
                    r.result = Some(shot.clone());
                } else {
                    r.grid = Some(shot.clone());
                }
                r.pending = None;
            })
            .await;
        self.deliver(&account, &shot).await
    }

    async fn upscale(
        &self,
        job: &ProviderJob,
        index: u8,
        report: &dyn Reporter,
    ) -> Result<Delivery, ProviderError> {
        let saved = Saved {
            refs: Mutex::new(serde_json::from_value(job.refs.clone()).unwrap_or_default()),
            report,
        };
        let account = self.account(job, &saved).await?;
        let refs = saved.get();
        if let Some(shot) = refs.upscales.get(&index) {
            return self.deliver(&account, shot).await;
        }
        let grid = refs.grid.ok_or_else(|| {
            ProviderError::new(
                ErrorCode::Internal,
                "no grid message is recorded for this generation",
            )
        })?;
        let exchange = self.exchange(&account, report, job);
        let (press, expect) = press(&grid, Action::Upscale { index })?;
        let reading = self
            .step(
                &exchange,
                &saved,
                &format!("upscale_{index}"),
                press,
                expect,
            )
            .await?;
        let shot = Shot::of(&reading);
        saved
            .update(|r| {
                r.upscales.insert(index, shot.clone());
                r.pending = None;
            })
            .await;
        self.deliver(&account, &shot).await
    }

    async fn release(&self, job: &ProviderJob) {
        self.pool.release(job.generation_id);
    }
}

/// Uploads pictures to the account's channel for a slash command.
async fn upload(
    account: &Account,
    inputs: &[crate::providers::Input],
) -> Result<Vec<serde_json::Value>, ProviderError> {
    let files = inputs
        .iter()
        .map(|i| (i.filename.clone(), i.bytes.clone()))
        .collect();
    let uploaded = account
        .rest
        .upload_attachments(&account.place.channel_id, files)
        .await
        .map_err(|e| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("uploading to Discord failed: {e}"),
            )
        })?;
    Ok(uploaded
        .iter()
        .map(atelier_discord::rest::UploadedAttachment::to_json)
        .collect())
}

fn parent_refs(job: &ProviderJob) -> Refs {
    serde_json::from_value(job.parent_refs.clone()).unwrap_or_default()
}

/// The button press of `action` on `source`, and the result it waits for.
fn press(source: &Shot, action: Action) -> Result<(Send, Expect), ProviderError> {
    let (prefixes, built, kinds, index): (Vec<String>, Option<String>, Vec<Kind>, Option<u8>) =
        match action {
            Action::Upscale { index } => (
                vec![format!("MJ::JOB::upsample::{index}::")],
                Some(format!("MJ::JOB::upsample::{index}::")),
                vec![Kind::Upscale],
                Some(index),
            ),
            Action::Variation { index } => (
                vec![format!("MJ::JOB::variation::{index}::")],
                Some(format!("MJ::JOB::variation::{index}::")),
                vec![Kind::Variation],
                None,
            ),
            Action::Reroll => (
                vec!["MJ::JOB::reroll::0::".into()],
                None,
                vec![Kind::Imagine, Kind::Reroll],
                None,
            ),
            Action::VaryStrong { .. } => (
                vec!["MJ::JOB::high_variation::1::".into()],
                None,
                vec![Kind::Variation],
                None,
            ),
            Action::VarySubtle { .. } => (
                vec!["MJ::JOB::low_variation::1::".into()],
                None,
                vec![Kind::Variation],
                None,
            ),
            Action::UpscaleSubtle { .. } => {
                (vec!["_subtle::1::".into()], None, vec![Kind::Upscale], None)
            }
            Action::UpscaleCreative { .. } => (
                vec!["_creative::1::".into()],
                None,
                vec![Kind::Upscale],
                None,
            ),
            Action::ZoomOut { factor, .. } => (
                vec![format!(
                    "MJ::Outpaint::{}::1::",
                    if factor == 15 { 75 } else { 50 }
                )],
                None,
                vec![Kind::Zoom],
                None,
            ),
            Action::Pan { direction, .. } => {
                let d = serde_json::to_value(direction)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (
                    vec![format!("MJ::JOB::pan_{d}::1::")],
                    None,
                    vec![Kind::Pan],
                    None,
                )
            }
        };
    let custom_id = source
        .buttons
        .iter()
        .find(|b| {
            prefixes.iter().any(|p| {
                b.starts_with(p.as_str()) || (p.starts_with('_') && b.contains(p.as_str()))
            })
        })
        .cloned()
        .or_else(|| Some(format!("{}{}", built?, source.job_hash.as_ref()?)))
        .ok_or_else(|| {
            ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("the Midjourney message has no {action} button"),
            )
        })?;
    let expect = Expect {
        kinds,
        index,
        source_message: Some(source.message_id.clone()),
        prompt: source.prompt.as_deref().map(normalise),
    };
    Ok((
        Send::Button(exchange::button(
            &source.message_id,
            source.flags,
            &custom_id,
        )),
        expect,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GenerationId, Parameters};

    fn job(prompt: &str) -> ProviderJob {
        ProviderJob {
            generation_id: GenerationId::new(),
            kind: crate::domain::GenerationKind::Imagine,
            prompt: prompt.into(),
            negative_prompt: None,
            parameters: Parameters::default(),
            account: None,
            refs: json!({}),
            action: None,
            parent_refs: serde_json::Value::Null,
            inputs: Vec::new(),
        }
    }

    #[test]
    fn prompts_carry_parameters_given_apart() {
        let mut j = job("a fox --ar 2:3");
        j.parameters.aspect_ratio = Some("2:3".into());
        j.parameters.seed = Some(9);
        j.negative_prompt = Some("cars".into());
        assert_eq!(imagine_prompt(&j), "a fox --ar 2:3 --seed 9 --no cars");
    }

    #[test]
    fn buttons_come_from_the_message_or_the_hash() {
        let mut grid = Shot {
            message_id: "1".into(),
            flags: 0,
            job_hash: Some("h".into()),
            url: None,
            buttons: vec![
                "MJ::JOB::upsample::2::real".into(),
                "MJ::JOB::upsample_v7_2x_subtle::1::real::SOLO".into(),
            ],
            prompt: None,
        };
        let custom_id = |grid: &Shot, action: Action| match press(grid, action) {
            Ok((Send::Button(c), _)) => Some(c.custom_id),
            _ => None,
        };
        assert_eq!(
            custom_id(&grid, Action::Upscale { index: 2 }).as_deref(),
            Some("MJ::JOB::upsample::2::real")
        );
        assert_eq!(
            custom_id(&grid, Action::Upscale { index: 3 }).as_deref(),
            Some("MJ::JOB::upsample::3::h")
        );
        assert_eq!(
            custom_id(&grid, Action::UpscaleSubtle { index: 1 }).as_deref(),
            Some("MJ::JOB::upsample_v7_2x_subtle::1::real::SOLO")
        );
        assert_eq!(custom_id(&grid, Action::Reroll), None);
        grid.job_hash = None;
        assert_eq!(custom_id(&grid, Action::Upscale { index: 3 }), None);
    }

    #[test]
    fn refs_round_trip_through_json() {
        let mut refs = Refs {
            account: Some("main".into()),
            ..Refs::default()
        };
        refs.upscales.insert(
            2,
            Shot {
                message_id: "5".into(),
                flags: 0,
                job_hash: None,
                url: Some("u".into()),
                buttons: vec![],
                prompt: None,
            },
        );
        let value = serde_json::to_value(&refs).unwrap();
        assert_eq!(value["upscales"]["2"]["message_id"], "5");
        let back: Refs = serde_json::from_value(value).unwrap();
        assert_eq!(back.upscales[&2].url.as_deref(), Some("u"));
    }
}
