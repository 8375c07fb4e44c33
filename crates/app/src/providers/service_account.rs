//! One account of an HTTP service (an OpenAI key, a Replicate token, a ComfyUI server) as
//! `atelier accounts` shows it: idle until its first call, ready once a call succeeded,
//! connecting (with why) while the service cannot be reached, disabled when its credential
//! cannot be read or the service refused it, with the reason. A job given a disabled account
//! fails at once, naming the reason (rather than waiting in the queue for a credential nobody
//! will fix). Each provider gives it its client and says how that client is probed ([`Probe`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{AccountPool, AccountStatus};

/// Why a probe failed.
pub enum Trouble {
    /// The service refused the credential: the account cannot work until it is fixed.
    Refused(String),
    /// No answer, or not a usable one: the account may work later.
    Unreachable(String),
}

/// The one cheap call that tells whether an account works (`atelier accounts --check`).
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    async fn probe(&self) -> Result<(), Trouble>;
}

/// One configured credential against one service.
pub struct ServiceAccount<C> {
    pub name: String,
    /// The service's root, shown where a Discord account shows its channel.
    pub base: String,
    pub concurrency: u32,
    pub queue_size: u32,
    /// `None` when the credential cannot be read (its environment variable is unset).
    pub client: Option<C>,
    state: Mutex<(&'static str, Option<String>)>,
    busy: AtomicU32,
    changes: Arc<Notify>,
}

impl<C> ServiceAccount<C> {
    pub fn new(
        name: String,
        base: String,
        concurrency: u32,
        queue_size: u32,
        client: Result<C, String>,
    ) -> Self {
        let (client, state) = match client {
            Ok(c) => (Some(c), ("idle", None)),
            Err(why) => (None, ("disabled", Some(why))),
        };
        Self {
            name,
            base,
            concurrency,
            queue_size,
            client,
            state: Mutex::new(state),
            busy: AtomicU32::new(0),
            changes: Arc::new(Notify::new()),
        }
    }

    fn set(&self, health: &'static str, reason: Option<String>) {
        let changed = self.state.lock().is_ok_and(|mut s| {
            let changed = s.0 != health || s.1 != reason;
            *s = (health, reason);
            changed
        });
        if changed {
            self.changes.notify_waiters();
        }
    }

    /// A call succeeded.
    pub fn worked(&self) {
        self.set("ready", None);
    }

    /// The service refused the credential: out until it is fixed.
    pub fn refused(&self, why: &str) {
        self.set("disabled", Some(why.to_owned()));
    }

    /// The service could not be reached: shown connecting, with why, unless it is disabled.
    pub fn unreachable(&self, why: &str) {
        if self.disabled().is_none() {
            self.set("connecting", Some(why.to_owned()));
        }
    }

    /// Why the account cannot take a job, if it cannot.
    pub fn disabled(&self) -> Option<String> {
        self.state
            .lock()
            .ok()
            .and_then(|s| (s.0 == "disabled").then(|| s.1.clone().unwrap_or_default()))
    }

    /// Counts a job holding the account until the guard is dropped.
    pub fn hold(self: &Arc<Self>) -> Busy<C> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A job on the account.
pub struct Busy<C>(Arc<ServiceAccount<C>>);

impl<C> Drop for Busy<C> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl<C: Probe> AccountPool for ServiceAccount<C> {
    fn statuses(&self) -> Vec<AccountStatus> {
        let (health, reason) = self
            .state
            .lock()
            .map_or_else(|_| ("idle".into(), None), |s| (s.0.to_owned(), s.1.clone()));
        vec![AccountStatus {
            name: self.name.clone(),
            health,
            reason,
            busy: self.busy.load(Ordering::Relaxed),
            concurrency: self.concurrency,
            queue_size: self.queue_size,
            channel_id: self.base.clone(),
        }]
    }

    fn changes(&self) -> Arc<Notify> {
        self.changes.clone()
    }

    /// Probes the service: ready, connecting with why, or disabled with the reason.
    async fn check(&self, wait: Duration) -> Vec<AccountStatus> {
        if let Some(client) = &self.client {
            match tokio::time::timeout(wait, client.probe()).await {
                Ok(Ok(())) => self.worked(),
                Ok(Err(Trouble::Refused(why))) => self.refused(&why),
                Ok(Err(Trouble::Unreachable(why))) => self.unreachable(&why),
                Err(_) => {
                    self.unreachable(&format!("no answer within {} s", wait.as_secs_f64()));
                }
            }
        }
        self.statuses()
    }
}
