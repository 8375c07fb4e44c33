//! One exchange with the Midjourney bot: send an interaction (a slash command or a button
//! press), then follow the bot's messages until the result the job expects arrives.
//!
//! What can happen meanwhile, and what we do:
//! - progress "(NN%)": reported, and the deadline starts again;
//! - "Job queued": not an error, the deadline becomes the longer queued one;
//! - an error embed: the job fails with its typed code, or the account is taken out of the
//!   pool when the error is about the account (moderation, captcha, subscription…);
//! - silence: after `history_poll` the channel history is read, in case a dispatch was lost
//!   (a missed final message is the classic "stuck at 85%" of other proxies). The history
//!   restarts the clock only when it shows news (a message whose dispatch was lost, a higher
//!   percentage): a stuck job's last progress message stays there for good. At the deadline
//!   the history is read one last time before the job fails with `timeout`;
//! - a new gateway session (dispatches lost for good): the history is read at once;
//! - the gateway down (Discord unreachable) for longer than `unavailable_after_secs`: the job
//!   fails with a retryable `provider_unavailable` instead of waiting out its deadline, since
//!   no result can reach it meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atelier_discord::RestError;
use atelier_discord::rest::{Component, MessageQuery, SlashCommand};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::account::{Account, Health};
use super::reading::{ErrorCode as MjCode, FatalFor, Kind, Reading};
use super::refs::{Running, Saved};
use super::router::{Expect, Notice, WaiterId};
use crate::domain::ErrorCode;
use crate::providers::{ProviderError, Reporter};

/// Timing of exchanges, from the configuration.
#[derive(Clone, Debug)]
pub struct Timing {
    pub timeout: Duration,
    pub queued_timeout: Duration,
    pub history_poll: Duration,
    /// How long a job waits for its account's gateway to become ready before it fails with
    /// `provider_unavailable` (`unavailable_after_secs`).
    pub connect: Duration,
}

/// What to send.
#[derive(Clone, Debug)]
pub enum Send {
    Slash(SlashCommand),
    Button(Component),
}

/// The nonce an exchange starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nonce {
    /// Nothing is saved for this step: a new nonce is saved, then sent.
    Fresh,
    /// Saved by this process ahead of its send and not sent yet: sent as it is, without
    /// saving it again.
    Reserved(String),
    /// Saved by an earlier attempt, which may have sent it: the channel is read first.
    Resumed(String),
}

/// One exchange on one account.
pub struct Exchange<'a> {
    pub account: &'a Arc<Account>,
    pub timing: &'a Timing,
    pub report: &'a dyn Reporter,
    pub application_id: &'a str,
    /// The prompt a form the bot opens is filled with (Extend's under Remix mode).
    pub prompt: String,
}

/// Removes the waiter from the router however the exchange ends.
struct Registration<'a> {
    account: &'a Account,
    id: WaiterId,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut router) = self.account.router.lock() {
            router.remove(self.id);
        }
    }
}

enum Outcome {
    Done,
    Alive,
    Queued,
    Ignore,
    Fail(ProviderError),
}

impl Exchange<'_> {
    /// Sends `what` (unless `start` is the nonce of a send an earlier attempt made and the
    /// history shows it arrived) and waits for the result. `pending` is called with the nonce
    /// before each send, so the caller can persist it (except for a nonce the caller reserved
    /// and saved already), and with `None` once the interaction has ended in an answer (a
    /// Midjourney error, a refusal, a timeout after which sending again is the cure). An
    /// uncertain end (transport, the account going down) leaves it pending, so the next
    /// attempt reads the channel before sending again.
    pub async fn run<F, Fut>(
        &self,
        what: &Send,
        expect: Expect,
        start: Nonce,
        pending: F,
    ) -> Result<Reading, ProviderError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<(), ProviderError>>,
    {
        let answered = AtomicBool::new(false);
        let result = self.attempt(what, expect, start, &pending, &answered).await;
        if result.is_err() && answered.load(Ordering::Relaxed) {
            // Best effort: a nonce left pending only costs the next attempt a look at the
            // channel's history, and the job's own error says more than this one.
            let _ = pending(None).await;
        }
        result
    }

    async fn attempt<F, Fut>(
        &self,
        what: &Send,
        expect: Expect,
        start: Nonce,
        pending: &F,
        answered: &AtomicBool,
    ) -> Result<Reading, ProviderError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<(), ProviderError>>,
    {
        let answer = |e: ProviderError| {
            answered.store(true, Ordering::Relaxed);
            e
        };
        let ctx = self
            .account
            .ready(self.application_id, self.timing.connect, Some(self.report))
            .await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (nonce, resumed, saved) = match start {
            Nonce::Fresh => (atelier_discord::new_nonce(), false, false),
            Nonce::Reserved(n) => (n, false, true),
            Nonce::Resumed(n) => (n, true, false),
        };
        let id = self
            .account
            .router
            .lock()
            .map_err(|_| internal("router lock poisoned"))?
            .register(&nonce, expect.clone(), tx);
        let _registration = Registration {
            account: self.account,
            id,
        };

        let mut seen_anything = false;
        if resumed {
            // An earlier attempt may have sent this interaction: look before sending again.
            // If the history cannot be read, sending blind could pay for the render twice.
            let found = self.scan(id, &expect).await.map_err(answer)?.map_err(|e| {
                ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("cannot read the channel history to resume the job: {e}"),
                )
            })?;
            match found {
                Some(Found::Result(r)) => return Ok(*r),
                Some(Found::Alive(_)) => seen_anything = true,
                None => {}
            }
        }
        if !seen_anything {
            let nonce = if resumed {
                let fresh = atelier_discord::new_nonce();
                if let Ok(mut router) = self.account.router.lock() {
                    router.renonce(id, &fresh);
                }
                fresh
            } else {
                nonce
            };
            // Never sent unless saved: a resumed job finds its interaction by this nonce.
            if !saved {
                pending(Some(nonce.clone())).await?;
            }
            let result = match what {
                Send::Slash(command) => {
                    self.account.rest.slash_command(&ctx, command, &nonce).await
                }
                Send::Button(component) => {
                    self.account
                        .rest
                        .press_component(&ctx, component, &nonce)
                        .await
                }
            };
            result.map_err(|e| {
                let e = self.rest_error(&e);
                // Refused outright (4xx): nothing was started.
                answered.store(e.code != ErrorCode::ProviderUnavailable, Ordering::Relaxed);
                e
            })?;
        }

        let mut deadline = Instant::now() + self.timing.timeout;
        let mut quiet_until = Instant::now() + self.timing.history_poll;
        let mut last_progress: Option<u8> = None;
        let mut cancel_saved = false;
        // Since when the account's gateway is not ready: nothing reaches the job meanwhile.
        let mut health = self.account.watch_health();
        let mut watching = true;
        let mut down_since = gateway_down(&health.borrow_and_update()).then(Instant::now);
        loop {
            let gone_at = down_since.map(|t| t + self.timing.connect);
            tokio::select! {
                changed = health.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                        continue;
                    }
                    down_since = match (gateway_down(&health.borrow_and_update()), down_since) {
                        (false, _) => None,
                        (true, since) => since.or_else(|| Some(Instant::now())),
                    };
                }
                () = sleep_until_some(gone_at) => {
                    // Left pending (not `answered`): the next attempt reads the channel first.
                    let why = self
                        .account
                        .health()
                        .reason()
                        .map_or_else(|| "reconnecting".to_owned(), str::to_owned);
                    let e = ProviderError::new(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "Midjourney account {}: the Discord gateway has been down for {:?} while the job waited for its result ({why}); the job is tried again",
                            self.account.name, self.timing.connect
                        ),
                    );
                    self.report.notice(e.failure()).await;
                    return Err(e);
                }
                notice = rx.recv() => {
                    let Some(notice) = notice else {
                        return Err(internal("router dropped the job"));
                    };
                    quiet_until = Instant::now() + self.timing.history_poll;
                    match notice {
                        Notice::Message(r) => match self.consider(&r, &expect).await {
                            Outcome::Done => return Ok(*r),
                            // News restarts the clock, never shortening a queued job's.
                            Outcome::Alive => {
                                deadline = deadline.max(Instant::now() + self.timing.timeout);
                                if r.progress.is_some() {
                                    last_progress = r.progress;
                                }
                                if !cancel_saved {
                                    cancel_saved = self.save_cancel(&r).await;
                                }
                            }
                            Outcome::Queued => {
                                deadline = deadline.max(Instant::now() + self.timing.queued_timeout);
                            }
                            Outcome::Ignore => {}
                            Outcome::Fail(e) => return Err(answer(e)),
                        },
                        Notice::Refused(e) => return Err(answer(e)),
                        Notice::Modal { id: form, custom_id } => {
                            self.fill(&ctx, id, pending, &form, &custom_id).await.map_err(answer)?;
                        }
                        Notice::Resync => {
                            if let Ok(Some(Found::Result(r))) = self.scan(id, &expect).await.map_err(answer)? {
                                return Ok(*r);
                            }
                        }
                        Notice::AccountDown(reason) => {
                            let e = ProviderError::new(
                                ErrorCode::ProviderUnavailable,
                                format!("Midjourney account {} taken out of the pool: {reason}", self.account.name),
                            );
                            self.report.notice(e.failure()).await;
                            return Err(e);
                        }
                    }
                }
                () = tokio::time::sleep_until(quiet_until) => {
                    quiet_until = Instant::now() + self.timing.history_poll;
                    match self.scan(id, &expect).await.map_err(answer)? {
                        Ok(Some(Found::Result(r))) => return Ok(*r),
                        Ok(Some(Found::Alive(life))) => {
                            // Only news restarts the clock: what we saw already proves nothing.
                            let advanced = life.progress > last_progress;
                            if advanced && let Some(p) = life.progress {
                                self.report.progress(f64::from(p)).await;
                                last_progress = life.progress;
                            }
                            if advanced || life.lost_dispatch {
                                let wait = if life.queued { self.timing.queued_timeout } else { self.timing.timeout };
                                deadline = deadline.max(Instant::now() + wait);
                            }
                        }
                        _ => {}
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    if let Ok(Some(Found::Result(r))) = self.scan(id, &expect).await.map_err(answer)? {
                        return Ok(*r);
                    }
                    answered.store(true, Ordering::Relaxed);
                    let at = last_progress.map_or_else(String::new, |p| format!(" (last seen at {p}%)"));
                    return Err(ProviderError::new(
                        ErrorCode::Timeout,
                        format!(
                            "no news from Midjourney for {:?}{at}, and the channel history has no result",
                            self.timing.timeout
                        ),
                    ));
                }
            }
        }
    }

    /// Saves the cancel button of a running message of this job, if it carries one (once per
    /// exchange): a cancel of the generation presses it. True once saved. Unsaved, the job
    /// goes on: only a cancel would miss it.
    async fn save_cancel(&self, r: &Reading) -> bool {
        let Some(custom_id) = r.buttons.iter().find(|b| b.starts_with("MJ::CancelJob::")) else {
            return false;
        };
        let job = r.job_hash.clone().unwrap_or_else(|| r.message_id.clone());
        let running = Running {
            message_id: r.message_id.clone(),
            flags: r.flags.raw,
            custom_id: custom_id.clone(),
            application_id: self.application_id.to_owned(),
        };
        let saved = Saved {
            report: self.report,
        }
        .update(move |refs| {
            refs.running.insert(job, running);
        })
        .await;
        if let Err(e) = &saved {
            tracing::warn!(account = %self.account.name, error = %e.message, "midjourney: the cancel button could not be saved");
        }
        saved.is_ok()
    }

    /// Submits the form the bot opened for this job (a modal submit, type 5) with the job's
    /// prompt, under a new nonce saved first like any send's: the result answers that one.
    async fn fill<F, Fut>(
        &self,
        ctx: &atelier_discord::rest::InteractionContext,
        id: WaiterId,
        pending: &F,
        form: &str,
        custom_id: &str,
    ) -> Result<(), ProviderError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<(), ProviderError>>,
    {
        let modal = super::forms::submit(form, custom_id, &self.prompt).ok_or_else(|| {
            ProviderError::new(
                ErrorCode::Internal,
                format!("Midjourney opened the form {custom_id}, which no job fills"),
            )
        })?;
        let nonce = atelier_discord::new_nonce();
        pending(Some(nonce.clone())).await?;
        if let Ok(mut router) = self.account.router.lock() {
            router.renonce(id, &nonce);
        }
        self.account
            .rest
            .submit_modal(ctx, &modal, &nonce)
            .await
            .map_err(|e| self.rest_error(&e))
    }

    /// What a message of this job means for it.
    async fn consider(&self, r: &Reading, expect: &Expect) -> Outcome {
        if let Some(error) = &r.error {
            return match error.fatal_for {
                FatalFor::None if error.code == MjCode::JobQueued => Outcome::Queued,
                FatalFor::None => {
                    tracing::warn!(account = %self.account.name, title = ?error.title, "midjourney: warning embed");
                    Outcome::Ignore
                }
                FatalFor::Job => Outcome::Fail(job_error(error.code, error_text(r))),
                FatalFor::Account => {
                    let reason = format!("{:?}: {}", error.code, error_text(r));
                    self.account.disable(&reason);
                    let e = ProviderError::new(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "Midjourney account {} taken out of the pool: {reason}",
                            self.account.name
                        ),
                    );
                    // The job moves on (another account, a retry); its followers hear why.
                    self.report.notice(e.failure()).await;
                    Outcome::Fail(e)
                }
            };
        }
        match r.kind {
            Kind::Waiting => Outcome::Alive,
            Kind::Progress => {
                if let Some(p) = r.progress {
                    self.report.progress(f64::from(p)).await;
                }
                Outcome::Alive
            }
            kind if expect.kinds.contains(&kind)
                && (expect.index.is_none() || r.index.is_none() || expect.index == r.index)
                && (r.attachment.is_some() || !r.prompts.is_empty()) =>
            {
                Outcome::Done
            }
            _ => Outcome::Ignore,
        }
    }

    /// Reads the channel's messages since the job's interaction. Returns its result if it
    /// is there, `Alive` with what the history shows if only its progress is, and fails if an
    /// error for it is there; the inner error says the history could not be read.
    async fn scan(
        &self,
        id: WaiterId,
        expect: &Expect,
    ) -> Result<Result<Option<Found>, RestError>, ProviderError> {
        let since = self
            .account
            .router
            .lock()
            .ok()
            .and_then(|r| r.since_ms(id))
            .unwrap_or(0);
        let query = MessageQuery {
            limit: Some(100),
            after: (since > 0).then(|| super::router::snowflake_at(since.saturating_sub(10_000))),
            ..MessageQuery::default()
        };
        let messages = match self
            .account
            .rest
            .messages(&self.account.place.channel_id, &query)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(account = %self.account.name, error = %e, "midjourney: channel history unreadable");
                return Ok(Err(e));
            }
        };
        let mut life: Option<Life> = None;
        // Oldest first, so the last word wins.
        for message in messages.iter().rev() {
            let Some(r) = self.account.read(message) else {
                continue;
            };
            let mine = self
                .account
                .router
                .lock()
                .is_ok_and(|router| router.owner(&r) == Some(id));
            if !mine {
                continue;
            }
            let lost_dispatch = self
                .account
                .router
                .lock()
                .is_ok_and(|mut router| router.own_message(id, &r.message_id));
            // A progress message is judged by the caller (is its percentage new?), so it is
            // not reported here.
            if r.error.is_none() && matches!(r.kind, Kind::Progress | Kind::Waiting) {
                let seen = life.get_or_insert_default();
                seen.lost_dispatch |= lost_dispatch;
                seen.progress = seen.progress.max(r.progress);
                continue;
            }
            match self.consider(&r, expect).await {
                Outcome::Done => {
                    tracing::info!(account = %self.account.name, message = %r.message_id, "midjourney: result found in the channel history");
                    return Ok(Ok(Some(Found::Result(Box::new(r)))));
                }
                Outcome::Fail(e) => return Err(e),
                outcome @ (Outcome::Alive | Outcome::Queued) => {
                    let seen = life.get_or_insert_default();
                    seen.lost_dispatch |= lost_dispatch;
                    seen.queued |= matches!(outcome, Outcome::Queued);
                }
                Outcome::Ignore => {}
            }
        }
        Ok(Ok(life.map(Found::Alive)))
    }

    fn rest_error(&self, e: &RestError) -> ProviderError {
        let account = &self.account.name;
        match e {
            RestError::Unauthorized => {
                self.account
                    .disable("Discord rejected the token (HTTP 401)");
                ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("Midjourney account {account}: Discord rejected the token"),
                )
            }
            RestError::RateLimited { retry_after, .. } => ProviderError {
                retry_after: Some(*retry_after),
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("Discord rate limit on account {account}: {e}"),
                )
            },
            // The configured channel or server is gone (deleted, or the account was removed
            // from it): no job of this account can run until a person fixes its place.
            RestError::Http {
                code: Some(code @ (10003 | 10004)),
                ..
            } => {
                let place = &self.account.place;
                let what = if *code == 10003 {
                    format!("channel {}", place.channel_id)
                } else {
                    format!(
                        "server (guild) {}",
                        place.guild_id.as_deref().unwrap_or("of its channel")
                    )
                };
                let reason = format!(
                    "Discord says its {what} does not exist ({e}): it was deleted or the account \
                     left it; set this account's channel_id (and guild_id) to a channel it can post in"
                );
                self.account.disable(&reason);
                ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("Midjourney account {account}: {reason}"),
                )
            }
            e if e.is_unknown_message() => ProviderError::new(
                ErrorCode::InvalidParameter,
                "the Discord message to act on no longer exists",
            ),
            e if e.is_transient() || e.is_outdated_command() => ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("Discord refused the interaction for now: {e}"),
            ),
            RestError::Http { status: 403, .. } => {
                self.account
                    .disable(&format!("Discord refused the interaction: {e}"));
                ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("Midjourney account {account}: {e}"),
                )
            }
            RestError::CommandNotFound { .. } => {
                ProviderError::new(ErrorCode::ProviderUnavailable, e.to_string())
            }
            e => ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("Discord refused the interaction: {e}"),
            ),
        }
    }
}

/// Whether a gateway in this health can deliver nothing: connecting again (or not yet), not
/// held here. A disabled account is told apart (`Notice::AccountDown`).
fn gateway_down(health: &Health) -> bool {
    matches!(
        health,
        Health::Idle | Health::Connecting(_) | Health::HeldElsewhere(_) | Health::Unheld(_)
    )
}

/// Sleeps until `at`, or forever when there is none.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

enum Found {
    Result(Box<Reading>),
    Alive(Life),
}

/// What the channel history shows of a job that has no result yet.
#[derive(Default)]
struct Life {
    /// The highest percentage its progress messages show.
    progress: Option<u8>,
    /// One of its messages had never reached us by the gateway.
    lost_dispatch: bool,
    /// Midjourney queued it.
    queued: bool,
}

/// The error as one line: Midjourney's embeds span several paragraphs.
fn error_text(r: &Reading) -> String {
    one_line(&error_paragraphs(r))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn error_paragraphs(r: &Reading) -> String {
    let e = r.error.as_ref();
    let title = e.and_then(|e| e.title.as_deref());
    let message = e.and_then(|e| e.message.as_deref());
    match (title, message) {
        (Some(t), Some(m)) => format!("{t}: {}", m.trim()),
        (Some(t), None) => t.to_owned(),
        (None, Some(m)) => m.trim().to_owned(),
        (None, None) => "Midjourney reported an error".to_owned(),
    }
}

/// The product error code of a job-fatal Midjourney error.
fn job_error(code: MjCode, message: String) -> ProviderError {
    let code = match code {
        MjCode::BannedPrompt => ErrorCode::BannedPrompt,
        MjCode::InvalidParameter | MjCode::InvalidRequest => ErrorCode::InvalidParameter,
        MjCode::QueueFull => ErrorCode::QueueFull,
        MjCode::InsufficientCredits => ErrorCode::InsufficientCredits,
        // Midjourney's own failures ("Failed", "(Stopped)", unclassified red embeds): trying
        // again usually works.
        _ => ErrorCode::ProviderUnavailable,
    };
    ProviderError::new(code, message)
}

fn internal(m: &str) -> ProviderError {
    ProviderError::new(ErrorCode::Internal, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_errors_map_to_product_codes() {
        assert_eq!(
            job_error(MjCode::BannedPrompt, String::new()).code,
            ErrorCode::BannedPrompt
        );
        assert_eq!(
            job_error(MjCode::InvalidRequest, String::new()).code,
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            job_error(MjCode::QueueFull, String::new()).code,
            ErrorCode::QueueFull
        );
        assert!(
            job_error(MjCode::Stopped, String::new())
                .code
                .is_retryable()
        );
    }
}
