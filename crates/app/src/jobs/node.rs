//! A node: one process running workers on a database other processes share.
//!
//! Its id names its workers (the jobs' lease owners) and its holds on provider accounts, so
//! the catalogue says which node has what. Account holds go through [`QueueHolds`], the
//! queue seen as the narrow [`AccountHolds`] a provider's pool needs: the pool never sees SQL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::app::App;
use crate::catalogue::Queue;
use crate::providers::AccountHolds;

/// The id of this process as a node: `configured` when given, else the host's name, the
/// process id and a random part (two containers are often both PID 1 on hosts of one name).
pub fn node_id(configured: Option<&str>) -> String {
    if let Some(id) = configured.map(str::trim).filter(|s| !s.is_empty()) {
        return id.to_owned();
    }
    format!(
        "{}-{}-{:08x}",
        hostname(),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// The kernel's host name, or `node` where it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

/// The queue's account holds, as a pool asks for them.
pub struct QueueHolds(pub Arc<dyn Queue>);

#[async_trait]
impl AccountHolds for QueueHolds {
    async fn hold(&self, account: &str, holder: &str, lease: Duration) -> Result<bool, String> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.0
            .hold_account(account, holder, lease_ms)
            .await
            .map_err(|e| e.to_string())
    }

    async fn release(&self, account: &str, holder: &str) {
        if let Err(e) = self.0.release_account(account, holder).await {
            // The hold runs out by itself after its lease.
            tracing::warn!(%account, error = %e, "account hold not released");
        }
    }
}

/// Starts holding the accounts of every pooled provider for this node (once per process:
/// later calls do nothing). A process that runs jobs or connects accounts calls it first.
pub fn hold_accounts(app: &App) {
    for name in app.providers.names() {
        if let Some(pool) = app.providers.get(name).and_then(|r| r.accounts.clone()) {
            pool.hold_with(Arc::new(QueueHolds(app.queue.clone())), &app.jobs.node);
        }
    }
}

/// Closes the pooled accounts' gateways, then lets go of their holds, so another node may
/// take them at once instead of after the lease.
pub async fn release_accounts(app: &App) {
    for name in app.providers.names() {
        if let Some(pool) = app.providers.get(name).and_then(|r| r.accounts.clone()) {
            pool.let_go().await;
        }
    }
}
