//! This node's holds on its Discord accounts: one node at a time connects an account.
//!
//! A task per account asks for the hold (`midjourney:<name>`) and renews it every third of
//! its lease. The lease is the database's; this node's own clock only decides when to give
//! up: a hold not renewed within two thirds of the lease (counted from when the last granted
//! request was sent) closes the gateway, so it is closed before the hold can run out and
//! another node connect. An account held elsewhere is asked for again every few seconds.
//! Letting go closes the gateways first, then releases the holds.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::account::{Account, Health, Hold};
use crate::providers::AccountHolds;

/// Longest pause between two requests for an account another node holds.
const RETRY: Duration = Duration::from_secs(2);

/// The name of an account's hold in the queue.
fn key(account: &Account) -> String {
    format!("midjourney:{}", account.name)
}

/// The running hold tasks; aborted when dropped (the holds then run out by themselves).
pub struct Holding {
    holds: Arc<dyn AccountHolds>,
    holder: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Holding {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Holding {
    /// Starts asking for every usable account's hold as `holder`.
    pub fn start(
        accounts: &[Arc<Account>],
        holds: Arc<dyn AccountHolds>,
        holder: &str,
        lease: Duration,
    ) -> Self {
        let tasks = accounts
            .iter()
            .filter(|a| !matches!(a.health(), Health::Disabled(_)))
            .map(|a| {
                a.managed();
                tokio::spawn(keep(
                    Arc::downgrade(a),
                    holds.clone(),
                    holder.to_owned(),
                    lease,
                ))
            })
            .collect();
        Self {
            holds,
            holder: holder.to_owned(),
            tasks,
        }
    }

    /// Stops renewing, closes the gateways, then releases the holds: another node may take
    /// the accounts at once.
    pub async fn let_go(self, accounts: &[Arc<Account>]) {
        for task in &self.tasks {
            task.abort();
        }
        for account in accounts {
            if account.hold() == Hold::Held {
                account
                    .unheld(Health::Unheld("this node let go of it".into()))
                    .await;
                self.holds.release(&key(account), &self.holder).await;
            }
        }
    }
}

/// Keeps `account`'s hold for as long as the account exists.
async fn keep(
    account: Weak<Account>,
    holds: Arc<dyn AccountHolds>,
    holder: String,
    lease: Duration,
) {
    let renew_every = lease / 3;
    let give_up_after = lease.mul_f64(2.0 / 3.0);
    let retry_every = RETRY.min(renew_every);
    // When the last granted request was sent: the hold lasts at least `lease` from then.
    let mut granted: Option<Instant> = None;
    loop {
        let Some(account) = account.upgrade() else {
            return;
        };
        if matches!(account.health(), Health::Disabled(_)) {
            // Out of the pool for good: another node may try its luck with it.
            if granted.is_some() {
                holds.release(&key(&account), &holder).await;
            }
            return;
        }
        let asked = Instant::now();
        // A request may not outlast the hold it renews (nor, unheld, one renewal period).
        let limit = granted.map_or(asked + renew_every, |at| at + give_up_after);
        let answer = tokio::time::timeout_at(limit, holds.hold(&key(&account), &holder, lease))
            .await
            .unwrap_or_else(|_| Err("no answer in time".to_owned()));
        let pause = match answer {
            Ok(true) => {
                granted = Some(asked);
                account.held();
                renew_every
            }
            Ok(false) => {
                granted = None;
                if account.hold() == Hold::Held || !elsewhere(&account) {
                    account
                        .unheld(Health::HeldElsewhere(format!(
                            "another node holds it; asking again every {}s",
                            retry_every.as_secs_f64()
                        )))
                        .await;
                }
                retry_every
            }
            Err(why) => match granted {
                Some(at) if at.elapsed() < give_up_after => {
                    tracing::warn!(account = %account.name, %why, "midjourney: account hold not renewed; trying again");
                    // Twice as often, and awake at the moment to give up.
                    (renew_every / 2)
                        .min((at + give_up_after).saturating_duration_since(Instant::now()))
                }
                _ => {
                    granted = None;
                    account
                        .unheld(Health::Unheld(format!(
                            "the hold could not be taken or renewed: {why}"
                        )))
                        .await;
                    retry_every
                }
            },
        };
        drop(account);
        tokio::time::sleep(pause).await;
    }
}

/// Whether the account already shows it is held elsewhere (nothing new to say).
fn elsewhere(account: &Account) -> bool {
    matches!(account.health(), Health::HeldElsewhere(_))
}
