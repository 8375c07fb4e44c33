//! One Discord account that drives the Midjourney bot in one channel: its gateway session,
//! its REST client, its health, and the router that hands each bot message to the job it
//! belongs to.
//!
//! The gateway is connected on first use and kept open; a task pumps its events into the
//! router. A close code that forbids reconnecting (4004: the token is no longer valid) or an
//! account-level Midjourney error (moderation, captcha, subscription…) disables the account
//! with its reason: it takes no new jobs until a person fixes it and the process restarts.
//!
//! Where nodes share a database, the gateway is connected only while this node holds the
//! account ([`Hold`], kept by the pool): losing the hold closes the gateway before another node
//! may take it, so two sessions of one account never overlap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use atelier_discord::rest::{CommandScope, InteractionContext};
use atelier_discord::{
    Gateway, GatewayConfig, GatewayEvent, GatewayHandle, RestClient, State, Token,
};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::reading::{self, Kind};
use super::router::{Notice, Router};
use crate::domain::{ErrorCode, Failure};
use crate::providers::{ProviderError, Reporter};

/// How long a connection may take before a waiting job says it is waiting.
const SLOW_CONNECT: Duration = Duration::from_secs(3);

/// `90s`, `1.5s`: a budget as a person reads it.
fn seconds(d: Duration) -> String {
    format!("{}s", (d.as_secs_f64() * 10.0).round() / 10.0)
}

/// How an account is doing, as `atelier accounts` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not connected yet (connects on the first job).
    Idle,
    /// Connecting or reconnecting; with why the last attempt failed, once one has.
    Connecting(Option<String>),
    Ready,
    /// Out of the pool until a person intervenes; the reason says what to do.
    Disabled(String),
    /// Another node holds the account; this one keeps asking.
    HeldElsewhere(String),
    /// This node could not take or renew its hold (the database did not answer).
    Unheld(String),
}

/// Whether this node may connect the account's gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Nobody asks for holds (a process that holds no accounts, such as a benchmark).
    Unmanaged,
    /// Asked for, not answered yet, or lost: no connection.
    Waiting,
    /// This node holds the account.
    Held,
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting(_) => "connecting",
            Self::Ready => "ready",
            Self::Disabled(_) => "disabled",
            Self::HeldElsewhere(_) => "held_elsewhere",
            Self::Unheld(_) => "unheld",
        }
    }

    /// Why the account is disabled, or why it is not connected yet.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Disabled(r)
            | Self::Connecting(Some(r))
            | Self::HeldElsewhere(r)
            | Self::Unheld(r) => Some(r),
            _ => None,
        }
    }
}

/// Where the account talks to the bot.
#[derive(Clone, Debug)]
pub struct Place {
    pub guild_id: Option<String>,
    pub channel_id: String,
}

/// What the configuration says about an account (its token apart).
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub place: Place,
    pub concurrency: u32,
    pub queue_size: u32,
}

pub struct Account {
    pub name: String,
    pub place: Place,
    pub concurrency: u32,
    pub queue_size: u32,
    token: Token,
    pub(super) rest: RestClient,
    gateway_config: GatewayConfig,
    /// A std mutex: nothing awaits while holding it, so `disable` can always take it.
    connection: Mutex<Option<GatewayHandle>>,
    pub(super) router: Mutex<Router>,
    health: watch::Sender<Health>,
    /// Our Discord user id and session id, from READY.
    who: Mutex<Option<(String, String)>>,
    pub(super) permits: Arc<Semaphore>,
    /// Told about every health change (the pool's persister listens).
    changes: Arc<Notify>,
    hold: watch::Sender<Hold>,
    /// Which gateway is current: a pump of a closed one stops touching the account.
    epoch: AtomicU64,
}

impl Account {
    pub fn new(
        id: Identity,
        token: Token,
        rest: RestClient,
        gateway_config: GatewayConfig,
        changes: Arc<Notify>,
    ) -> Self {
        let concurrency = id.concurrency;
        Self {
            name: id.name,
            place: id.place,
            concurrency,
            queue_size: id.queue_size,
            token,
            rest,
            gateway_config,
            connection: Mutex::new(None),
            router: Mutex::new(Router::default()),
            health: watch::Sender::new(Health::Idle),
            who: Mutex::new(None),
            permits: Arc::new(Semaphore::new(concurrency as usize)),
            changes,
            hold: watch::Sender::new(Hold::Unmanaged),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn hold(&self) -> Hold {
        *self.hold.borrow()
    }

    /// Whether the gateway may be connected now.
    fn may_connect(&self) -> bool {
        matches!(self.hold(), Hold::Unmanaged | Hold::Held)
    }

    /// Whether the account takes new jobs on this node.
    pub fn usable(&self) -> bool {
        self.may_connect() && !matches!(self.health(), Health::Disabled(_))
    }

    /// This node now holds the account: it connects on the next job.
    pub(super) fn held(&self) {
        if self.hold.send_replace(Hold::Held) != Hold::Held
            && matches!(self.health(), Health::HeldElsewhere(_) | Health::Unheld(_))
        {
            self.set_health(Health::Idle);
        }
    }

    /// Holds are asked for from now on: no connection until one is granted.
    pub(super) fn managed(&self) {
        self.hold.send_if_modified(|h| {
            if *h == Hold::Unmanaged {
                *h = Hold::Waiting;
                return true;
            }
            false
        });
    }

    /// This node does not hold the account (any more): closes the gateway, so another node
    /// may connect once the hold is its, and tells the jobs waiting on the account.
    pub(super) async fn unheld(&self, why: Health) {
        let was = self.hold.send_replace(Hold::Waiting);
        self.set_health(why.clone());
        let handle = self.connection.lock().ok().and_then(|mut c| {
            // A pump of the closed gateway no longer touches the account.
            self.epoch.fetch_add(1, Ordering::SeqCst);
            c.take()
        });
        if was == Hold::Held
            && let Ok(router) = self.router.lock()
        {
            let reason = why.reason().unwrap_or("the hold was lost").to_owned();
            router.broadcast(|| Notice::AccountDown(reason.clone()));
        }
        if let Some(handle) = handle {
            tracing::warn!(account = %self.name, reason = why.reason().unwrap_or_default(), "midjourney: gateway closed: the account's hold is not this node's");
            handle.shutdown().await;
        }
    }

    /// Moves to `next` unless the account is disabled (only a restart brings it back).
    fn set_health(&self, next: Health) {
        let changed = self.health.send_if_modified(|h| {
            if matches!(h, Health::Disabled(_)) || *h == next {
                return false;
            }
            *h = next;
            true
        });
        if changed {
            self.changes.notify_one();
        }
    }

    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// Jobs holding this account right now.
    pub fn busy(&self) -> u32 {
        self.concurrency
            .saturating_sub(self.permits.available_permits() as u32)
    }

    /// Marks the account unusable from the start (its configuration cannot work), quietly:
    /// every command builds the pool, and the reason is shown by `atelier accounts`.
    pub fn start_disabled(&self, reason: String) {
        self.health.send_replace(Health::Disabled(reason));
    }

    /// Takes the account out of the pool, says why in the log, and stops its gateway.
    pub fn disable(&self, reason: &str) {
        let changed = self.health.send_if_modified(|h| {
            if matches!(h, Health::Disabled(_)) {
                return false;
            }
            *h = Health::Disabled(reason.to_owned());
            true
        });
        if changed {
            self.changes.notify_one();
            tracing::error!(account = %self.name, %reason, "midjourney: account taken out of the pool");
            if let Ok(router) = self.router.lock() {
                router.broadcast(|| Notice::AccountDown(reason.to_owned()));
            }
            let handle = self.connection.lock().ok().and_then(|mut c| c.take());
            if let Some(handle) = handle {
                tokio::spawn(handle.shutdown());
            }
        }
    }

    fn unavailable(&self) -> Option<ProviderError> {
        match self.health() {
            Health::Disabled(reason) => Some(ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("Midjourney account {} is disabled: {reason}", self.name),
            )),
            _ => None,
        }
    }

    /// Connects if needed and waits until the session is ready, at most `wait`; returns the
    /// interaction context for `application_id`. While it waits, `report` (a job's) hears
    /// why the gateway is not ready yet, once per new reason, so its followers see what the
    /// job waits for. Not ready in time is `provider_unavailable` with the last reason, and
    /// not retried: `wait` is the whole budget a job gives an unreachable Discord.
    pub async fn ready(
        self: &Arc<Self>,
        application_id: &str,
        wait: Duration,
        report: Option<&dyn Reporter>,
    ) -> Result<InteractionContext, ProviderError> {
        if let Some(e) = self.unavailable() {
            return Err(e);
        }
        let deadline = Instant::now() + wait;
        if !self.wait_for_hold(deadline, wait, report).await {
            let why = self
                .health()
                .reason()
                .map_or_else(|| "not held by this node".to_owned(), str::to_owned);
            // Retryable: the node that holds the account, or this one later, can run the job.
            return Err(ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!(
                    "Midjourney account {}: this node did not get to hold it within {}: {why}",
                    self.name,
                    seconds(wait)
                ),
            ));
        }
        {
            let mut connection = self
                .connection
                .lock()
                .map_err(|_| ProviderError::new(ErrorCode::Internal, "account lock poisoned"))?;
            // Checked again under the lock: `disable` takes it to stop the gateway.
            if let Some(e) = self.unavailable() {
                return Err(e);
            }
            if connection.is_none() {
                // Checked under the lock too: `unheld` takes it to close the gateway.
                if !self.may_connect() {
                    return Err(ProviderError::new(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "Midjourney account {}: this node just lost its hold",
                            self.name
                        ),
                    ));
                }
                self.set_health(Health::Connecting(None));
                let (handle, events) =
                    Gateway::spawn(self.gateway_config.clone(), self.token.clone(), None);
                *connection = Some(handle);
                let epoch = self.epoch.load(Ordering::SeqCst);
                tokio::spawn(pump(Arc::downgrade(self), events, epoch));
            }
        }
        let ready = self
            .wait_ready(deadline.saturating_duration_since(Instant::now()), report)
            .await;
        if let Some(e) = self.unavailable() {
            return Err(e);
        }
        if !ready && !self.may_connect() {
            return Err(ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!(
                    "Midjourney account {}: this node lost its hold while connecting: {}",
                    self.name,
                    self.health().reason().unwrap_or("another node holds it")
                ),
            ));
        }
        if !ready {
            let why = self
                .health()
                .reason()
                .map_or_else(|| "still connecting".to_owned(), str::to_owned);
            return Err(ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "Midjourney account {}: the Discord gateway was not ready within {}: {why}",
                        self.name,
                        seconds(wait)
                    ),
                )
            });
        }
        let session_id = self
            .who
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|(_, s)| s.clone()))
            .unwrap_or_default();
        Ok(InteractionContext {
            application_id: application_id.to_owned(),
            guild_id: self.place.guild_id.clone(),
            channel_id: self.place.channel_id.clone(),
            session_id,
        })
    }

    /// Waits until this node holds the account (true), or until `deadline` (false), telling
    /// `report` once that it waits for another node to let go.
    async fn wait_for_hold(
        &self,
        deadline: Instant,
        wait: Duration,
        report: Option<&dyn Reporter>,
    ) -> bool {
        let mut hold = self.hold.subscribe();
        let mut told = false;
        loop {
            if matches!(*hold.borrow_and_update(), Hold::Unmanaged | Hold::Held) {
                return true;
            }
            if !told && let Some(report) = report {
                told = true;
                let why = self
                    .health()
                    .reason()
                    .map_or_else(|| "its hold is not granted yet".to_owned(), str::to_owned);
                report
                    .notice(Failure::new(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "waiting for this node to hold Midjourney account {} ({why}), at most {}",
                            self.name,
                            seconds(wait)
                        ),
                    ))
                    .await;
            }
            match tokio::time::timeout_at(deadline, hold.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Waits until the account is ready (true) or disabled, or `wait` has passed (false),
    /// telling `report` why it waits.
    async fn wait_ready(&self, wait: Duration, report: Option<&dyn Reporter>) -> bool {
        let deadline = Instant::now() + wait;
        // A connection takes milliseconds; one still pending after this is worth a word even
        // before an attempt has failed (a silently dropped handshake ends only at its timeout).
        let mut quiet_until = Some(Instant::now() + SLOW_CONNECT);
        let mut told: Option<String> = None;
        let mut health = self.watch_health();
        loop {
            let now = health.borrow_and_update().clone();
            let why = match now {
                Health::Ready => return true,
                Health::Disabled(_) | Health::HeldElsewhere(_) | Health::Unheld(_) => {
                    return false;
                }
                Health::Connecting(Some(reason)) => Some(reason),
                Health::Idle | Health::Connecting(None) => None,
            };
            if let (Some(why), Some(report)) = (why, report)
                && told.as_ref() != Some(&why)
            {
                quiet_until = None;
                report
                    .notice(Failure::new(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "waiting for Midjourney account {}: {why}; trying again with backoff for at most {} in all",
                            self.name,
                            seconds(wait)
                        ),
                    ))
                    .await;
                told = Some(why);
            }
            let slow = async move {
                match quiet_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, health.changed()) => match changed {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return false,
                },
                () = slow => {
                    quiet_until = None;
                    if let Some(report) = report {
                        report
                            .notice(Failure::new(
                                ErrorCode::ProviderUnavailable,
                                format!(
                                    "waiting for Midjourney account {} to connect to the Discord gateway (at most {})",
                                    self.name,
                                    seconds(wait)
                                ),
                            ))
                            .await;
                    }
                }
            }
        }
    }

    /// Our Discord user id, once READY arrived.
    pub fn user_id(&self) -> Option<String> {
        self.who
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|(u, _)| u.clone()))
    }

    pub fn command_scope(&self) -> CommandScope {
        match &self.place.guild_id {
            Some(g) => CommandScope::Guild(g.clone()),
            None => CommandScope::Channel(self.place.channel_id.clone()),
        }
    }

    /// Reads a message of our channel the way the pump does: `None` when it is not a
    /// Midjourney message about one of our jobs.
    pub(super) fn read(&self, message: &Value) -> Option<reading::Reading> {
        let r = reading::read(message, &[]).ok()?;
        if r.channel_id != self.place.channel_id || r.kind == Kind::Ignore {
            return None;
        }
        // Someone else's job in a shared channel.
        if let (Some(theirs), Some(ours)) = (r.user_id.as_deref(), self.user_id())
            && theirs != ours
        {
            return None;
        }
        Some(r)
    }

    fn on_dispatch(&self, name: &str, data: &Value) {
        match name {
            "MESSAGE_CREATE" | "MESSAGE_UPDATE" => {
                if let Some(r) = self.read(data) {
                    let (id, kind) = (r.message_id.clone(), r.kind);
                    let taken = self.router.lock().is_ok_and(|mut router| router.deliver(r));
                    if !taken {
                        tracing::debug!(account = %self.name, message = %id, ?kind, "midjourney: message for no waiting job");
                    }
                }
            }
            // Accepted, then failed ("the application did not respond"): worth another try.
            "INTERACTION_FAILURE" => {
                if let Some(nonce) = data["nonce"].as_str()
                    && let Ok(router) = self.router.lock()
                {
                    router.refuse(
                        nonce,
                        &ProviderError::new(
                            ErrorCode::ProviderUnavailable,
                            "Discord says the Midjourney bot did not respond to the interaction",
                        ),
                    );
                }
            }
            // Custom Zoom's form, and Extend's under Remix mode: the job fills it.
            "INTERACTION_MODAL_CREATE"
                if data["custom_id"].as_str().is_some_and(super::forms::fills) =>
            {
                if let (Some(nonce), Some(id), Some(form)) = (
                    data["nonce"].as_str(),
                    data["id"].as_str(),
                    data["custom_id"].as_str(),
                ) && let Ok(router) = self.router.lock()
                {
                    router.modal(nonce, id, form);
                }
            }
            // A form instead of a job: remix mode is on, and a job would wait for a person.
            "INTERACTION_MODAL_CREATE" | "INTERACTION_IFRAME_MODAL_CREATE" => {
                if let Some(nonce) = data["nonce"].as_str()
                    && let Ok(router) = self.router.lock()
                {
                    let form = data["custom_id"].as_str().unwrap_or("a form");
                    router.refuse(
                        nonce,
                        &ProviderError::new(
                            ErrorCode::InvalidParameter,
                            format!(
                                "Midjourney answered with {form} instead of starting the job; turn remix mode off (/prefer remix) for this account"
                            ),
                        ),
                    );
                }
            }
            "INTERACTION_CREATE" | "INTERACTION_SUCCESS" => {
                if let (Some(nonce), Some(id)) = (data["nonce"].as_str(), data["id"].as_str())
                    && let Ok(mut router) = self.router.lock()
                {
                    router.interaction(nonce, id);
                }
            }
            _ => {}
        }
    }
}

/// Pumps one gateway's events into the account until the gateway stops.
async fn pump(account: Weak<Account>, mut events: mpsc::Receiver<GatewayEvent>, epoch: u64) {
    let mut sessions = 0u32;
    while let Some(event) = events.recv().await {
        let Some(account) = account.upgrade() else {
            return;
        };
        // The gateway was closed (the hold lost): its last words change nothing.
        if account.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        match event {
            GatewayEvent::Ready { session, user_id } => {
                sessions += 1;
                if let Ok(mut who) = account.who.lock() {
                    *who = Some((user_id, session.id));
                }
                tracing::info!(account = %account.name, "midjourney: gateway ready");
                account.set_health(Health::Ready);
                // A new session (not a resume): dispatches sent meanwhile are lost for good.
                if sessions > 1
                    && let Ok(router) = account.router.lock()
                {
                    router.broadcast(|| Notice::Resync);
                }
            }
            GatewayEvent::Resumed { session } => {
                if let Ok(mut who) = account.who.lock()
                    && let Some((_, id)) = who.as_mut()
                {
                    *id = session.id;
                }
                account.set_health(Health::Ready);
            }
            GatewayEvent::Dispatch { name, data, .. } => account.on_dispatch(&name, &data),
            // Ready only with READY or RESUMED in hand, so the session id is known. Once an
            // attempt has failed, its reason stays until the account is ready again.
            GatewayEvent::StateChanged(state) => {
                if !matches!(state, State::Active | State::FatallyClosed { .. })
                    && !matches!(account.health(), Health::Connecting(_))
                {
                    account.set_health(Health::Connecting(None));
                }
            }
            GatewayEvent::Retrying {
                attempts,
                reason,
                retry_in,
            } => {
                tracing::warn!(account = %account.name, attempts, ?retry_in, %reason, "midjourney: gateway not connected; trying again");
                account.set_health(Health::Connecting(Some(reason)));
            }
            GatewayEvent::Fatal { reason } => {
                account.disable(&format!("Discord refused the session: {reason}"));
            }
        }
    }
}
