//! The account pool: which account runs a job.
//!
//! A job holds one account from its first provider call to its end, so its upscales and
//! later actions press buttons on messages of the account that owns them. A new job takes the
//! least busy healthy account; a job that already has one (resumed after a crash, or an
//! action on an earlier generation) waits for that account. Each account runs at most its
//! `concurrency` jobs at once; the U presses of one job are that job's, on its account.
//!
//! Where nodes share a database, each account is held by one node at a time (`holds.rs`):
//! only accounts this node holds take new jobs, and the pool takes jobs only while it holds one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell, OwnedSemaphorePermit};

use super::account::{Account, Health};
use super::holds::Holding;
use super::reading::MIDJOURNEY_BOT_ID;
use crate::domain::{ErrorCode, GenerationId};
use crate::providers::{AccountHolds, AccountPool, AccountStatus, ProviderError};

/// The account a job holds, with its place in the account's concurrency; taken once however
/// many of the job's calls ask at the same time.
type Held = Arc<OnceCell<(Arc<Account>, OwnedSemaphorePermit)>>;

pub struct Pool {
    accounts: Vec<Arc<Account>>,
    held: Mutex<HashMap<GenerationId, Held>>,
    changes: Arc<Notify>,
    /// How long a hold on an account lasts unless renewed.
    hold_lease: Duration,
    /// The tasks keeping this node's holds, once started.
    holding: Mutex<Option<Holding>>,
}

impl Pool {
    /// `changes` must be the `Notify` the accounts were built with.
    pub fn new(accounts: Vec<Arc<Account>>, changes: Arc<Notify>, hold_lease: Duration) -> Self {
        Self {
            accounts,
            held: Mutex::new(HashMap::new()),
            changes,
            hold_lease,
            holding: Mutex::new(None),
        }
    }

    pub fn accounts(&self) -> &[Arc<Account>] {
        &self.accounts
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Account>> {
        self.accounts.iter().find(|a| a.name == name)
    }

    /// The account `job` holds, taking one first if it holds none: `wanted` when the job
    /// must use that account, else the least busy healthy one. A resumed job's upscales ask
    /// at once: one call takes the account and the others wait for it, since a second permit
    /// for the same job could wait for good on an account of concurrency 1.
    pub async fn hold(
        &self,
        job: GenerationId,
        wanted: Option<&str>,
    ) -> Result<Arc<Account>, ProviderError> {
        let held = self
            .held
            .lock()
            .map_err(|_| ProviderError::new(ErrorCode::Internal, "account pool lock poisoned"))?
            .entry(job)
            .or_default()
            .clone();
        let (account, _) = held.get_or_try_init(|| self.take(wanted)).await?;
        Ok(account.clone())
    }

    /// Takes a place on `wanted`, else on the least busy healthy account.
    async fn take(
        &self,
        wanted: Option<&str>,
    ) -> Result<(Arc<Account>, OwnedSemaphorePermit), ProviderError> {
        match wanted {
            Some(name) => {
                let account = self.get(name).cloned().ok_or_else(|| {
                    ProviderError::new(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "Midjourney account {name:?} (which made the earlier images) is no longer configured"
                        ),
                    )
                })?;
                if let Health::Disabled(reason) = account.health() {
                    return Err(ProviderError::new(
                        ErrorCode::ProviderUnavailable,
                        format!("Midjourney account {name} is disabled: {reason}"),
                    ));
                }
                let permit = tokio::time::timeout(WAIT, account.permits.clone().acquire_owned())
                    .await
                    .map_err(|_| busy(name))?
                    .map_err(|_| closed())?;
                Ok((account, permit))
            }
            None => tokio::time::timeout(WAIT, self.least_busy())
                .await
                .map_err(|_| busy("every account"))?,
        }
    }

    /// Gives back the account `job` held.
    pub fn release(&self, job: GenerationId) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&job);
        }
    }

    async fn least_busy(&self) -> Result<(Arc<Account>, OwnedSemaphorePermit), ProviderError> {
        loop {
            let mut healthy: Vec<&Arc<Account>> =
                self.accounts.iter().filter(|a| a.usable()).collect();
            if healthy.is_empty() {
                return Err(self.none_usable());
            }
            // Connected accounts first (one that cannot connect would take every job and
            // fail it); then fewest running jobs relative to what the account may run; ties
            // go to the account listed first, so a lone job always lands on the same one.
            healthy.sort_by(|a, b| {
                let load = |x: &Account| f64::from(x.busy()) / f64::from(x.concurrency.max(1));
                let ready = |x: &Account| x.health() != Health::Ready;
                ready(a).cmp(&ready(b)).then(load(a).total_cmp(&load(b)))
            });
            for account in healthy {
                if let Ok(permit) = account.permits.clone().try_acquire_owned() {
                    return Ok((account.clone(), permit));
                }
            }
            // All busy: the engine claims no more jobs than the pool runs, so this is brief.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn none_usable(&self) -> ProviderError {
        let reasons: Vec<String> = self
            .accounts
            .iter()
            .map(|a| format!("{}: {}", a.name, a.health().reason().unwrap_or("disabled")))
            .collect();
        ProviderError::new(
            ErrorCode::ProviderUnavailable,
            format!(
                "no usable Midjourney account ({}); see `atelier accounts`",
                reasons.join("; ")
            ),
        )
    }
}

/// Longest wait for an account: the engine claims no more jobs than the pool runs, so a long
/// wait means jobs that hold accounts are stuck; failing lets the job be retried later.
const WAIT: Duration = Duration::from_mins(10);

fn busy(what: &str) -> ProviderError {
    ProviderError::new(
        ErrorCode::ProviderUnavailable,
        format!("{what} stayed busy for {} minutes", WAIT.as_secs() / 60),
    )
}

fn closed() -> ProviderError {
    ProviderError::new(ErrorCode::Internal, "account semaphore closed")
}

#[async_trait::async_trait]
impl AccountPool for Pool {
    async fn check(&self, wait: Duration) -> Vec<AccountStatus> {
        let mut checks = tokio::task::JoinSet::new();
        for account in &self.accounts {
            let account = account.clone();
            checks.spawn(async move {
                let result = account.ready(MIDJOURNEY_BOT_ID, wait, None).await;
                if let Err(e) = &result {
                    tracing::warn!(account = %account.name, error = %e, "midjourney: account check failed");
                }
                (account.name.clone(), result.err())
            });
        }
        let mut failures = HashMap::new();
        while let Some(joined) = checks.join_next().await {
            if let Ok((name, Some(e))) = joined {
                failures.insert(name, e.message);
            }
        }
        // An account not ready says why, even when no attempt has failed yet.
        let mut statuses = self.statuses();
        for s in &mut statuses {
            if s.health != "ready" && s.reason.is_none() {
                s.reason = failures.remove(&s.name);
            }
        }
        statuses
    }

    fn statuses(&self) -> Vec<AccountStatus> {
        self.accounts
            .iter()
            .map(|a| {
                let health = a.health();
                AccountStatus {
                    name: a.name.clone(),
                    health: health.as_str().to_owned(),
                    reason: health.reason().map(str::to_owned),
                    busy: a.busy(),
                    concurrency: a.concurrency,
                    queue_size: a.queue_size,
                    channel_id: a.place.channel_id.clone(),
                }
            })
            .collect()
    }

    fn changes(&self) -> Arc<Notify> {
        self.changes.clone()
    }

    /// While some account is not disabled, only when this node holds one; with every account
    /// disabled, a job is claimed to fail with their reasons, as on every node.
    fn takes_jobs(&self) -> bool {
        let mut live = self
            .accounts
            .iter()
            .filter(|a| !matches!(a.health(), Health::Disabled(_)))
            .peekable();
        live.peek().is_none() || live.any(|a| a.usable())
    }

    fn hold_with(&self, holds: Arc<dyn AccountHolds>, holder: &str) {
        let Ok(mut holding) = self.holding.lock() else {
            return;
        };
        if holding.is_none() {
            *holding = Some(Holding::start(
                &self.accounts,
                holds,
                holder,
                self.hold_lease,
            ));
        }
    }

    async fn let_go(&self) {
        let holding = self.holding.lock().ok().and_then(|mut h| h.take());
        if let Some(holding) = holding {
            holding.let_go(&self.accounts).await;
        }
    }
}
