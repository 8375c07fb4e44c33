//! This process as a node: running workers, holding and letting go of provider accounts, and
//! what its workers write, for the front-end that runs them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::App;
use crate::domain::{Actor, Event, GenerationId};
use crate::error::AppError;
pub use crate::jobs::Stop;

/// A credit hold this old whose generation is missing or ended was left by a crash.
const STRAY_HOLD: Duration = Duration::from_mins(5);
const SWEEP_EVERY: Duration = Duration::from_mins(1);

impl App {
    /// Runs `count` workers until `stop`. A write the catalogue refuses stops them (the jobs
    /// in hand stay leased, to be taken over) and is returned.
    pub async fn run_workers(self: &Arc<Self>, count: u32, stop: Stop) -> Result<(), AppError> {
        Ok(crate::jobs::run_workers(self.clone(), count, stop).await?)
    }

    /// [`App::run_workers`], whose workers stop claiming once `drain` turns true and return
    /// when the jobs in hand have ended.
    pub async fn run_node(
        self: &Arc<Self>,
        count: u32,
        stop: Stop,
        drain: watch::Receiver<bool>,
    ) -> Result<(), AppError> {
        let workers = crate::jobs::run_node(self.clone(), count, stop, drain);
        // While it runs, the node also settles the credit holds a crash left between holding
        // a generation's cost and writing the generation, and forgets expired idempotency keys.
        let sweep = async {
            loop {
                if self.credits.enabled {
                    match self.settle_stray_credits(STRAY_HOLD).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(settled = n, "credit holds left by a crash settled");
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot sweep stray credit holds"),
                    }
                }
                match self.purge_requests().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "expired idempotency keys forgotten"),
                    Err(e) => tracing::warn!(error = %e, "cannot purge expired idempotency keys"),
                }
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        };
        tokio::select! {
            worked = workers => Ok(worked?),
            () = sweep => Ok(()),
            // Webhooks: deliveries derived from the feed and attempted, beside the workers.
            () = crate::webhooks::run(self) => Ok(()),
        }
    }

    /// Asks for this node's hold on each pooled provider account (kept and renewed in the
    /// background), as a node that runs jobs or checks accounts does first.
    pub fn hold_accounts(&self) {
        crate::jobs::hold_accounts(self);
    }

    /// Closes the pooled accounts' connections and lets go of their holds, so another node may
    /// take them at once rather than after the hold's lease.
    pub async fn release_accounts(&self) {
        crate::jobs::release_accounts(self).await;
    }

    /// The events this process's own workers and use cases write, as they write them (for a
    /// front-end that reports on the work it runs; [`App::follow_feed`] hears every node).
    pub fn local_events(&self) -> broadcast::Receiver<Event> {
        self.bus.subscribe()
    }

    /// Whether the job of generation `id` has ended (its end recorded in the queue), which
    /// comes after the generation's last event.
    pub async fn job_ended(&self, actor: Actor, id: GenerationId) -> Result<bool, AppError> {
        self.visible_generation(actor, id).await?;
        Ok(self.queue.job_of(id).await?.status.is_terminal())
    }
}

impl App {
    /// Whether this node can serve: its catalogue answers a read and its store is reachable.
    pub async fn ready(&self) -> Result<(), AppError> {
        self.catalogue.feed_end().await?;
        self.store.check().await?;
        Ok(())
    }
}

/// How many jobs of one provider's slot wait and run, across every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotLoad {
    pub provider: String,
    pub pending: u64,
    pub running: u64,
}

impl App {
    /// The queue's depth and the jobs running, for each configured provider (`/metrics`).
    pub async fn queue_load(&self) -> Result<Vec<SlotLoad>, AppError> {
        let mut loads = Vec::new();
        for name in self.providers.names() {
            let Some(reg) = self.providers.get(name) else {
                continue;
            };
            let slot = super::slot_of(name, &reg.account);
            let counts = self.queue.counts(std::slice::from_ref(&slot)).await?;
            loads.push(SlotLoad {
                provider: name.to_owned(),
                pending: counts.pending,
                running: counts.running,
            });
        }
        Ok(loads)
    }
}

/// This node's workers running in the background beside a front-end's own work (the HTTP
/// server, the MCP server), until the front-end stops them.
pub struct RunningNode {
    app: Arc<App>,
    pool: Option<tokio::task::JoinHandle<Result<(), AppError>>>,
    drain: watch::Sender<bool>,
}

impl App {
    /// Starts `workers` workers (none for 0) in the background.
    pub fn start_node(self: &Arc<Self>, workers: u32) -> RunningNode {
        let (drain, draining) = watch::channel(false);
        let pool = (workers > 0).then(|| {
            let app = self.clone();
            tokio::spawn(async move { app.run_node(workers, Stop::Never, draining).await })
        });
        RunningNode {
            app: self.clone(),
            pool,
            drain,
        }
    }
}

impl RunningNode {
    /// Resolves when the workers stop by themselves (the catalogue refuses writes), with why;
    /// never when none run.
    pub async fn ended(&mut self) -> Result<(), AppError> {
        let Some(pool) = self.pool.as_mut() else {
            return std::future::pending().await;
        };
        let worked = pool.await;
        self.pool = None;
        worked.unwrap_or_else(|e| Err(AppError::Internal(format!("the workers stopped: {e}"))))
    }

    /// Stops claiming, lets the jobs in hand finish for `grace` (the rest stay leased, for
    /// another node to take over), then lets this node's accounts go.
    pub async fn stop(self, grace: Duration) {
        let _ = self.drain.send(true);
        if let Some(mut pool) = self.pool {
            match tokio::time::timeout(grace, &mut pool).await {
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "the workers stopped with an error"),
                Ok(_) => {}
                Err(_) => {
                    pool.abort();
                    let _ = pool.await;
                    tracing::warn!(
                        "jobs still running at the end of the grace period stay leased; another node takes them over when their lease runs out"
                    );
                }
            }
        }
        self.app.release_accounts().await;
    }
}
