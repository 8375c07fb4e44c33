//! The ComfyUI server as `atelier accounts` shows it: idle until its first call, ready once a
//! call succeeded, connecting (with the reason) while it cannot be reached, disabled when the
//! token cannot be read or a proxy refused it (401, 403). A job given a disabled server fails
//! at once, naming the reason.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::client::{Blame, Client};
use crate::providers::{AccountPool, AccountStatus};

/// One configured server.
pub struct Account {
    pub name: String,
    /// The server's root, shown where a Discord account shows its channel.
    pub base: String,
    pub concurrency: u32,
    pub queue_size: u32,
    /// `None` when the token cannot be read (its environment variable is unset).
    pub client: Option<Client>,
    state: Mutex<(&'static str, Option<String>)>,
    busy: AtomicU32,
    changes: Arc<Notify>,
}

impl Account {
    pub fn new(
        name: String,
        base: String,
        concurrency: u32,
        queue_size: u32,
        client: Result<Client, String>,
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

    /// A call failed: a refused token takes the server out until it is fixed; an unreachable
    /// server is shown connecting, with the reason.
    pub fn failed(&self, blame: Blame, why: &str) {
        if blame == Blame::Token {
            self.set("disabled", Some(why.to_owned()));
        } else if self.disabled().is_none() {
            self.set("connecting", Some(why.to_owned()));
        }
    }

    /// Why the server cannot take a job, if it cannot.
    pub fn disabled(&self) -> Option<String> {
        self.state
            .lock()
            .ok()
            .and_then(|s| (s.0 == "disabled").then(|| s.1.clone().unwrap_or_default()))
    }

    /// Counts a job on the server until the guard is dropped.
    pub fn hold(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A job on the server.
pub struct Busy(Arc<Account>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl AccountPool for Account {
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

    /// Asks the server for its system stats: ready, or why not.
    async fn check(&self, wait: Duration) -> Vec<AccountStatus> {
        if let Some(client) = &self.client {
            match tokio::time::timeout(wait, client.system_stats()).await {
                Ok(Ok(_)) => self.worked(),
                Ok(Err(e)) => self.failed(e.blame, &e.error.message),
                Err(_) => self.set(
                    "connecting",
                    Some(format!("no answer within {} s", wait.as_secs_f64())),
                ),
            }
        }
        self.statuses()
    }
}
