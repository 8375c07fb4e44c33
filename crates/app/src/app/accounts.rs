//! Provider accounts: their health now, and as last recorded by any process.
//!
//! A process that runs jobs records every health change of its pooled accounts in the
//! catalogue (`Catalogue::record_account`), so `atelier accounts`, run from another process
//! or node, shows why an account was taken out of the pool and when.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::App;
use crate::catalogue::{AccountRecord, Catalogue};
use crate::error::AppError;
use crate::providers::{AccountPool, AccountStatus, Providers};

/// What a process last recorded about an account.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LastKnown {
    pub health: String,
    pub reason: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// One account as `atelier accounts` lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub provider: String,
    #[serde(flatten)]
    pub status: AccountStatus,
    /// The last state recorded by a process that used the account.
    pub last_known: Option<LastKnown>,
}

async fn record(
    catalogue: &dyn Catalogue,
    provider: &str,
    s: &AccountStatus,
) -> Result<(), crate::catalogue::CatalogueError> {
    catalogue
        .record_account(&AccountRecord {
            provider: provider.to_owned(),
            account: s.name.clone(),
            health: s.health.clone(),
            reason: s.reason.clone(),
            at: OffsetDateTime::now_utc(),
        })
        .await
}

/// Records the pool's accounts whenever one changes, until the process ends.
pub(crate) fn spawn_account_recorder(
    catalogue: Arc<dyn Catalogue>,
    provider: String,
    pool: &Arc<dyn AccountPool>,
) {
    let changes = pool.changes();
    // Weak: the recorder must not keep the accounts (and their connections) alive.
    let pool = Arc::downgrade(pool);
    tokio::spawn(async move {
        let mut recorded: Vec<AccountStatus> = Vec::new();
        loop {
            changes.notified().await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            for s in pool.statuses() {
                let same = recorded
                    .iter()
                    .any(|r| r.name == s.name && r.health == s.health && r.reason == s.reason);
                if same || s.health == "idle" {
                    continue;
                }
                if let Err(e) = record(catalogue.as_ref(), &provider, &s).await {
                    tracing::warn!(account = %s.name, error = %e, "account state not recorded");
                }
            }
            recorded = pool.statuses();
        }
    });
}

impl App {
    /// Every pooled account; with `check`, each usable one is connected first (at most
    /// `wait`) so that its health is current, and what it found is recorded.
    pub async fn accounts(&self, check: Option<Duration>) -> Result<Vec<AccountView>, AppError> {
        account_views(&self.providers, Some(self.catalogue.as_ref()), check).await
    }
}

/// The accounts of `providers`, with what `catalogue` (when there is one) last recorded.
pub async fn account_views(
    providers: &Providers,
    catalogue: Option<&dyn Catalogue>,
    check: Option<Duration>,
) -> Result<Vec<AccountView>, AppError> {
    let mut views = Vec::new();
    for provider in providers.names() {
        let Some(pool) = providers.get(provider).and_then(|r| r.accounts.clone()) else {
            continue;
        };
        let statuses = match check {
            Some(wait) => pool.check(wait).await,
            None => pool.statuses(),
        };
        for status in statuses {
            let mut last_known = None;
            if let Some(catalogue) = catalogue {
                if check.is_some() && status.health != "idle" {
                    record(catalogue, provider, &status).await?;
                }
                last_known = catalogue
                    .account_record(provider, &status.name)
                    .await?
                    .map(|r| LastKnown {
                        health: r.health,
                        reason: r.reason,
                        at: r.at.format(&Rfc3339).unwrap_or_default(),
                    });
            }
            views.push(AccountView {
                provider: provider.to_owned(),
                status,
                last_known,
            });
        }
    }
    Ok(views)
}
