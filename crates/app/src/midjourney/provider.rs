//! The Midjourney provider: /imagine for the grid, U1–U4 for the upscales, over the account
//! pool, with every step's Discord references saved so that a restarted job picks up where
//! the last process stopped instead of paying for the same render twice.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use atelier_discord::rest::SlashCommand;
use serde_json::json;

use super::account::Account;
use super::download::{self, Retries};
use super::exchange::{Exchange, Send, Timing};
use super::pool::Pool;
use super::press::press;
use super::reading::{Kind, MIDJOURNEY_BOT_ID, NIJI_BOT_ID, Reading};
use super::refs::{Saved, Shot, parent_refs};
use super::router::{Expect, normalise};
use crate::domain::prompt_params;
use crate::domain::{Action, ErrorCode, GenerationKind, Output, Role};
use crate::providers::{Delivery, Provider, ProviderError, ProviderJob, Reporter};

pub struct Midjourney {
    pub pool: Arc<Pool>,
    pub timing: Timing,
    pub retries: Retries,
    /// U presses one job sends at once (Midjourney runs a few jobs per account and queues the
    /// rest).
    pub upscales_at_once: usize,
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
            || !refs.pending.is_empty();
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
            saved.update(|r| r.pending.clear()).await;
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
        saved
            .update(|r| {
                r.source = Some(shot.clone());
                r.pending.remove("source");
            })
            .await;
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
                    r.pending.remove("describe");
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

    /// Runs one step (`step` names it in the refs' `pending`) up to its result message; the
    /// caller saves the result and clears the step's nonce. The nonce is saved before the
    /// send.
    async fn step(
        &self,
        exchange: &Exchange<'_>,
        saved: &Saved<'_>,
        step: &str,
        what: Send,
        expect: Expect,
    ) -> Result<Reading, ProviderError> {
        let resumed = saved.get().pending.remove(step);
        exchange
            .run(&what, expect, resumed, |nonce| {
                saved.update(move |r| match nonce {
                    Some(nonce) => {
                        r.pending.insert(step.to_owned(), nonce);
                    }
                    None => {
                        r.pending.remove(step);
                    }
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
        let saved = Saved { report };
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
                r.pending.remove(step);
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
        let saved = Saved { report };
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
        let step = format!("upscale_{index}");
        let reading = self.step(&exchange, &saved, &step, press, expect).await?;
        let shot = Shot::of(&reading);
        saved
            .update(|r| {
                r.upscales.insert(index, shot.clone());
                r.pending.remove(&step);
            })
            .await;
        self.deliver(&account, &shot).await
    }

    async fn release(&self, job: &ProviderJob) {
        self.pool.release(job.generation_id);
    }

    fn upscales_at_once(&self) -> usize {
        self.upscales_at_once
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
}
