//! The Midjourney provider: /imagine for the grid, U1–U4 for the upscales, over the account
//! pool, with every step's Discord references saved so that a restarted job picks up where
//! the last process stopped instead of paying for the same render twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_discord::rest::{Component, SlashCommand};
use serde_json::json;

use super::account::Account;
use super::commands::{self, application_id, imagine_prompt};
use super::download::{self, Retries};
use super::exchange::{Exchange, Nonce, Send, Timing};
use super::pool::Pool;
use super::press::{self, press};
use super::reading::{Kind, Reading};
use super::refs::{self, Saved, Shot, parent_refs};
use super::router::{Expect, normalise};
use super::video;
use crate::domain::{Action, ErrorCode, GenerationId, GenerationKind, Role};
use crate::providers::{Capabilities, Output, Provider, ProviderError, ProviderJob, Reporter};

pub struct Midjourney {
    pub pool: Arc<Pool>,
    pub timing: Timing,
    pub retries: Retries,
    /// U presses one job sends at once (Midjourney runs a few jobs per account and queues the
    /// rest).
    pub upscales_at_once: usize,
    /// Nonces this process saved ahead of their send (the U presses', with the grid's result)
    /// and has not sent yet, by job: such a press is sent without reading the channel first.
    /// After a restart the set is empty, so every saved nonce is looked for first.
    pub reserved: Mutex<HashMap<GenerationId, HashSet<String>>>,
}

impl Midjourney {
    fn exchange<'a>(
        &'a self,
        account: &'a Arc<Account>,
        report: &'a dyn Reporter,
        job: &'a ProviderJob,
    ) -> Exchange<'a> {
        Exchange {
            account,
            timing: &self.timing,
            report,
            application_id: application_id(job),
            prompt: form_prompt(job),
        }
    }

    /// The account this job holds (taking one on its first call), and whether the generation
    /// does not know it yet.
    async fn account(
        &self,
        job: &ProviderJob,
        saved: &Saved<'_>,
    ) -> Result<(Arc<Account>, bool), ProviderError> {
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
            saved.update(|r| r.pending.clear()).await?;
            false
        } else {
            started
        };
        let wanted = parent.or(refs.account.clone().filter(|_| started));
        let account = self.pool.hold(job.generation_id, wanted.as_deref()).await?;
        // The refs learn the account with the first nonce saved on it (see `step`): until
        // something is sent, the job is not tied to it.
        let new = refs.account.as_deref() != Some(account.name.as_str());
        Ok((account, new))
    }

    /// Runs `work` on the job's account, noted for the generation's account column (written
    /// with the references `work` saves before it sends anything).
    async fn on_account<'a, T, F, Fut>(
        &self,
        job: &'a ProviderJob,
        saved: &'a Saved<'a>,
        work: F,
    ) -> Result<T, ProviderError>
    where
        F: FnOnce(Arc<Account>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let (account, new) = self.account(job, saved).await?;
        if new {
            saved.report.account(&account.name).await;
        }
        work(account).await
    }

    /// Downloads the picture of a result message.
    async fn deliver(&self, account: &Account, shot: &Shot) -> Result<Vec<u8>, ProviderError> {
        let url = shot.url.as_deref().ok_or_else(|| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                "the result message has no image attachment",
            )
        })?;
        download::fetch(account, &shot.message_id, url, &self.retries).await
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
        let reading = self
            .step(exchange, saved, job, "source", what, expect)
            .await?;
        let shot = Shot::of(&reading);
        saved
            .update(|r| {
                r.source = Some(shot.clone());
                r.pending.remove("source");
            })
            .await?;
        Ok(shot)
    }

    /// /describe (the picture uploaded first) and /shorten (the job's prompt): keeps the
    /// prompts Midjourney proposes.
    async fn prompts(
        &self,
        exchange: &Exchange<'_>,
        saved: &Saved<'_>,
        job: &ProviderJob,
    ) -> Result<(), ProviderError> {
        if !saved.get().prompts.is_empty() {
            return Ok(());
        }
        let (step, command, kind) = if job.kind == GenerationKind::Shorten {
            let command = SlashCommand {
                name: "shorten".into(),
                options: vec![json!({"type": 3, "name": "prompt", "value": job.prompt})],
                attachments: Vec::new(),
            };
            ("shorten", command, Kind::Shorten)
        } else {
            let input = job.inputs.first().ok_or_else(|| {
                ProviderError::new(ErrorCode::InvalidParameter, "describe needs an image")
            })?;
            let uploaded = commands::upload(exchange.account, std::slice::from_ref(input)).await?;
            let command = SlashCommand {
                name: "describe".into(),
                options: vec![json!({"type": 11, "name": "image", "value": 0})],
                attachments: uploaded,
            };
            ("describe", command, Kind::Describe)
        };
        let expect = Expect {
            kinds: vec![kind],
            index: None,
            source_message: None,
            prompt: None,
        };
        let reading = self
            .step(exchange, saved, job, step, Send::Slash(command), expect)
            .await?;
        if reading.prompts.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("Midjourney's /{step} result held no prompts"),
            ));
        }
        saved
            .update(|r| {
                r.prompts.clone_from(&reading.prompts);
                r.pending.remove(step);
            })
            .await
    }

    /// The URLs of the job's image prompts: those saved by an earlier attempt, else its
    /// pictures uploaded now and their URLs saved before the /imagine that carries them is
    /// sent.
    async fn image_prompts(
        &self,
        account: &Account,
        saved: &Saved<'_>,
        job: &ProviderJob,
    ) -> Result<Vec<String>, ProviderError> {
        if job.inputs.is_empty() {
            return Ok(Vec::new());
        }
        let known = saved.get().image_prompts;
        if known.len() == job.inputs.len() {
            return Ok(known);
        }
        let urls = commands::image_prompt_urls(account, &job.inputs).await?;
        let keep = urls.clone();
        saved.update(move |r| r.image_prompts = keep).await?;
        Ok(urls)
    }

    /// Runs one step (`step` names it in the refs' `pending`) up to its result message; the
    /// caller saves the result and clears the step's nonce in one write. The nonce is saved
    /// before the send, together with the account it is sent from.
    async fn step(
        &self,
        exchange: &Exchange<'_>,
        saved: &Saved<'_>,
        job: &ProviderJob,
        step: &str,
        what: Send,
        expect: Expect,
    ) -> Result<Reading, ProviderError> {
        let start = match saved.get().pending.remove(step) {
            None => Nonce::Fresh,
            Some(nonce) if self.take_reserved(job.generation_id, &nonce) => Nonce::Reserved(nonce),
            Some(nonce) => Nonce::Resumed(nonce),
        };
        let account = &exchange.account.name;
        exchange
            .run(&what, expect, start, |nonce| {
                saved.update(move |r| match nonce {
                    Some(nonce) => {
                        r.account = Some(account.clone());
                        r.pending.insert(step.to_owned(), nonce);
                    }
                    None => {
                        r.pending.remove(step);
                    }
                })
            })
            .await
    }

    /// Whether `nonce` is one this process reserved for `job` and has not sent; it is sent
    /// now.
    fn take_reserved(&self, job: GenerationId, nonce: &str) -> bool {
        self.reserved
            .lock()
            .ok()
            .and_then(|mut r| r.get_mut(&job).map(|set| set.remove(nonce)))
            .unwrap_or(false)
    }

    /// Nonces for the U presses the engine will ask for next (those without a result or a
    /// nonce yet), to save with the grid's result: the presses then need no write of their
    /// own before they are sent.
    fn reserve(&self, job: &ProviderJob, saved: &Saved<'_>) -> Vec<(String, String)> {
        let refs = saved.get();
        let fresh: Vec<(String, String)> = job
            .upscales
            .iter()
            .filter(|i| !refs.upscales.contains_key(i))
            .map(|i| format!("upscale_{i}"))
            .filter(|step| !refs.pending.contains_key(step))
            .map(|step| (step, atelier_discord::new_nonce()))
            .collect();
        if !fresh.is_empty()
            && let Ok(mut reserved) = self.reserved.lock()
        {
            reserved
                .entry(job.generation_id)
                .or_default()
                .extend(fresh.iter().map(|(_, nonce)| nonce.clone()));
        }
        fresh
    }
}

/// What a form the bot opens for an action is filled with: for Custom Zoom the job's prompt
/// (the caller's new one); for Extend under Remix mode the prompt of the message the action is
/// pressed on as the bot echoed it, image prompts included (a video's prompt means nothing
/// without its picture), else the job's own.
fn form_prompt(job: &ProviderJob) -> String {
    // Custom Zoom's form takes the caller's new prompt, which is the job's.
    if job.action.is_some_and(Action::takes_prompt) {
        return job.prompt.clone();
    }
    let parent = parent_refs(job);
    let shot = match job.action.map(Action::source) {
        Some(Role::Upscale(i)) => parent.upscales.get(&i).or(parent.result.as_ref()),
        _ => parent.grid.as_ref(),
    };
    shot.and_then(|s| s.prompt.clone())
        .unwrap_or_else(|| job.prompt.clone())
}

#[async_trait]
impl Provider for Midjourney {
    fn capabilities(&self) -> Capabilities {
        // Midjourney's own buttons since mid-2025 include video (Animate, a video grid's
        // clips, Extend), which the sandbox does not play.
        Capabilities {
            video: true,
            actions: &crate::domain::ActionName::WITH_VIDEO,
            ..Capabilities::MIDJOURNEY
        }
    }

    fn check(
        &self,
        prompt: &str,
        negative_prompt: Option<&str>,
        parameters: &crate::domain::Parameters,
    ) -> Result<(), String> {
        commands::check(prompt, negative_prompt, parameters)
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let saved = Saved { report };
        let delivered = self
            .on_account(job, &saved, |account| self.render_on(account, job, &saved))
            .await?;
        match delivered {
            Some(bytes) => report.output(video::delivered(1, bytes)).await,
            None => Ok(()),
        }
    }

    async fn upscale(
        &self,
        job: &ProviderJob,
        index: u8,
        report: &dyn Reporter,
    ) -> Result<Output, ProviderError> {
        let saved = Saved { report };
        let bytes = self
            .on_account(job, &saved, |account| {
                self.upscale_on(account, job, &saved, index)
            })
            .await?;
        Ok(video::delivered(index, bytes))
    }

    /// Presses the cancel button of each Midjourney job the generation still runs, on the
    /// account that runs them, if its gateway is connected in this process (the node that
    /// holds it): a process that only asked for the cancel (`atelier jobs cancel`) never opens
    /// a second session on the account for it.
    async fn cancel(&self, refs: &serde_json::Value) {
        let refs = refs::read(refs);
        let Some(account) = refs.account.as_deref().and_then(|name| self.pool.get(name)) else {
            return;
        };
        if refs.running.is_empty() || account.health() != super::Health::Ready {
            return;
        }
        for (job, running) in &refs.running {
            let ctx = match account
                .ready(&running.application_id, self.timing.connect, None)
                .await
            {
                Ok(ctx) => ctx,
                Err(e) => {
                    tracing::warn!(account = %account.name, error = %e.message, "midjourney: cannot press a cancel button");
                    return;
                }
            };
            let button = Component::button(&running.message_id, running.flags, &running.custom_id);
            match account
                .rest
                .press_component(&ctx, &button, &atelier_discord::new_nonce())
                .await
            {
                Ok(()) => {
                    tracing::info!(account = %account.name, %job, "midjourney: job canceled by its button");
                }
                // Gone (it ended meanwhile) or refused: nothing runs that a press could stop.
                Err(e) => {
                    tracing::info!(account = %account.name, %job, error = %e, "midjourney: the cancel button was not taken");
                }
            }
        }
    }

    async fn release(&self, job: &ProviderJob) {
        if let Ok(mut reserved) = self.reserved.lock() {
            reserved.remove(&job.generation_id);
        }
        self.pool.release(job.generation_id);
    }

    fn upscales_at_once(&self) -> usize {
        self.upscales_at_once
    }

    fn offers(
        &self,
        refs: &serde_json::Value,
        role: Role,
        index: Option<u8>,
    ) -> Option<Vec<Action>> {
        let refs = refs::read(refs);
        let (shot, index) = match (role, index) {
            (Role::Grid, _) => (refs.grid?, 0),
            (Role::Upscale(index), _) => (refs.upscales.get(&index)?.clone(), index),
            (Role::Variant(1), Some(index)) => (refs.result?, index),
            _ => return None,
        };
        Some(press::offered(&shot, index))
    }
}

impl Midjourney {
    /// /imagine, /blend or an action, on the job's account: the picture it made (`None` for
    /// /describe), once its result message is saved.
    async fn render_on(
        &self,
        account: Arc<Account>,
        job: &ProviderJob,
        saved: &Saved<'_>,
    ) -> Result<Option<Vec<u8>>, ProviderError> {
        let report = saved.report;
        let single = job
            .action
            .is_some_and(|a| a.output() == crate::domain::Output::Single);
        let done = if single {
            saved.get().result
        } else {
            saved.get().grid
        };
        if let Some(shot) = done {
            return self.deliver(&account, &shot).await.map(Some);
        }
        let exchange = self.exchange(&account, report, job);
        if job.kind.makes_prompts() {
            return self.prompts(&exchange, saved, job).await.map(|()| None);
        }
        let (what, expect) = match job.action {
            None if job.kind == GenerationKind::Blend => (
                commands::blend(&account, job).await?,
                Expect {
                    kinds: vec![Kind::Blend, Kind::Imagine],
                    index: None,
                    source_message: None,
                    prompt: None,
                },
            ),
            None => {
                let urls = self.image_prompts(&account, saved, job).await?;
                let prompt = imagine_prompt(job, &urls);
                let command = SlashCommand {
                    name: "imagine".into(),
                    options: vec![json!({"type": 3, "name": "prompt", "value": prompt})],
                    attachments: Vec::new(),
                };
                let expect = Expect {
                    // `--video` makes a video grid, which reads as video.
                    kinds: vec![Kind::Imagine, Kind::Reroll, Kind::Video],
                    index: None,
                    source_message: None,
                    prompt: Some(normalise(&prompt)),
                };
                (Send::Slash(command), expect)
            }
            Some(action) => {
                let source = self.source(&exchange, saved, job, action).await?;
                let (what, mut expect) = press(&source, action)?;
                if action.takes_prompt() {
                    // The result shows the caller's new prompt, not the source's.
                    expect.prompt = Some(normalise(&job.prompt));
                }
                (what, expect)
            }
        };
        let step = if single { "result" } else { "grid" };
        let reading = self.step(&exchange, saved, job, step, what, expect).await?;
        let shot = Shot::of(&reading);
        let presses = if single {
            Vec::new()
        } else {
            self.reserve(job, saved)
        };
        let model = (job.kind != GenerationKind::Blend)
            .then(|| commands::model(job))
            .flatten();
        let save = saved.update(|r| {
            if single {
                r.result = Some(shot.clone());
            } else {
                r.grid = Some(shot.clone());
            }
            r.model = r.model.take().or(model);
            if let Some(job) = &shot.job_hash {
                r.running.remove(job);
            }
            r.pending.remove(step);
            r.pending.extend(presses);
        });
        // The result is saved while it downloads: both are done before the picture is
        // delivered. Unsaved, it fails the attempt: the U presses' nonces reserved with it
        // must not be sent.
        let (saved, delivered) = tokio::join!(save, self.deliver(&account, &shot));
        saved?;
        delivered.map(Some)
    }

    /// U`index` on the job's grid, on the job's account.
    async fn upscale_on(
        &self,
        account: Arc<Account>,
        job: &ProviderJob,
        saved: &Saved<'_>,
        index: u8,
    ) -> Result<Vec<u8>, ProviderError> {
        let report = saved.report;
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
        let (press, expect) = press(&grid, video::upscale_action(job, index))?;
        let step = format!("upscale_{index}");
        let reading = self
            .step(&exchange, saved, job, &step, press, expect)
            .await?;
        let shot = Shot::of(&reading);
        let save = saved.update(|r| {
            r.upscales.insert(index, shot.clone());
            r.pending.remove(&step);
            if let Some(job) = &shot.job_hash {
                r.running.remove(job);
            }
        });
        let (saved, delivered) = tokio::join!(save, self.deliver(&account, &shot));
        saved?;
        delivered
    }
}
