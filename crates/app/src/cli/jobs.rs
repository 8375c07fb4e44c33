//! `jobs run`, `jobs cancel` and `worker` (this process as one node of several).

use tokio::sync::broadcast::error::RecvError;

use super::args::WorkerArgs;
use super::load_parsed;
use super::output::Out;
use crate::app::Stop;
use crate::config::Config;
use crate::domain::{Actor, Event, EventKind, GenerationId};
use crate::error::AppError;
use crate::wiring;

pub async fn run(config: &Config, until_idle: bool, out: &Out) -> Result<u8, AppError> {
    let providers = wiring::providers(config)?;
    let app = match wiring::open(config, providers, false).await {
        // No catalogue yet: nothing can be queued, so "until idle" is already true.
        Err(AppError::NotFound(_)) if until_idle => {
            out.result(
                &serde_json::json!({"completed": 0, "failed": 0, "canceled": 0}),
                || "no jobs".into(),
            );
            return Ok(0);
        }
        other => other?,
    };
    let workers = app.total_concurrency();
    let mut events = app.local_events();
    let stop = if until_idle {
        Stop::UntilIdle
    } else {
        Stop::Never
    };
    let pool = {
        let app = app.clone();
        tokio::spawn(async move { app.run_workers(workers, stop).await })
    };
    let mut ends = Ends::default();
    // Counts ends as they come; never ends the wait by itself (a lagging receiver included):
    // the workers stop only once every job's end is recorded.
    let count = async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(line) = super::output::notice_line(&crate::api::EventView::from(&e))
                    {
                        out.notice(&format!("{}: {line}", e.generation_id));
                    }
                    ends.tally(&e, out);
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let worked = tokio::select! {
        worked = pool => match worked {
            Ok(worked) => worked,
            Err(e) => Err(AppError::Internal(format!("the workers stopped: {e}"))),
        },
        () = count => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            out.notice("interrupted; running jobs resume when workers run again");
            Ok(())
        }
    };
    // Another node may take this one's accounts at once rather than after their holds' lease.
    app.release_accounts().await;
    worked?;
    // The ends published while the last job finished.
    while let Ok(e) = events.try_recv() {
        ends.tally(&e, out);
    }
    let Ends {
        completed,
        failed,
        canceled,
    } = ends;
    out.result(
        &serde_json::json!({"completed": completed, "failed": failed, "canceled": canceled}),
        || format!("{completed} completed, {failed} failed, {canceled} canceled"),
    );
    Ok(0)
}

/// `atelier worker`: runs `--concurrency` workers as this node until SIGINT or SIGTERM; then
/// stops claiming and lets the jobs in hand finish for the grace period. Jobs still running
/// after it are left leased: another node takes each over when its lease runs out, spending no
/// attempt. A write the catalogue refuses stops the workers and exits 1, as `jobs run` does.
pub async fn worker(config: &Config, args: &WorkerArgs, out: &Out) -> Result<u8, AppError> {
    let providers = wiring::providers(config)?;
    let app = wiring::open(config, providers, true).await?;
    let count = args.concurrency.unwrap_or_else(|| app.total_concurrency());
    let grace =
        std::time::Duration::from_secs_f64(args.grace.unwrap_or(config.node.shutdown_grace_secs));
    let node = app.node().to_owned();
    tracing::info!(%node, workers = count, "node started");
    out.notice(&format!(
        "node {node}: {count} workers; SIGINT or SIGTERM stops them"
    ));
    let mut events = app.local_events();
    let mut ends = Ends::default();
    let (drain_tx, drain) = tokio::sync::watch::channel(false);
    let mut pool = {
        let app = app.clone();
        tokio::spawn(async move { app.run_node(count, Stop::Never, drain).await })
    };
    let mut signals = Signals::new()?;
    let count_ends = async {
        loop {
            match events.recv().await {
                Ok(e) => ends.tally(&e, out),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let joined = tokio::select! {
        joined = &mut pool => Some(joined),
        () = signals.next() => None,
        () = count_ends => None,
    };
    let joined = if let Some(joined) = joined {
        joined
    } else {
        {
            out.notice(&format!(
                "stopping: finishing the jobs in hand for at most {}s (again to stop now)",
                grace.as_secs_f64()
            ));
            let _ = drain_tx.send(true);
            tokio::select! {
                joined = tokio::time::timeout(grace, &mut pool) => if let Ok(joined) = joined {
                    joined
                } else {
                    left_leased(&mut pool, out).await;
                    Ok(Ok(()))
                },
                () = signals.next() => {
                    left_leased(&mut pool, out).await;
                    Ok(Ok(()))
                }
            }
        }
    };
    app.release_accounts().await;
    while let Ok(e) = events.try_recv() {
        ends.tally(&e, out);
    }
    match joined {
        Ok(worked) => worked?,
        Err(e) => return Err(AppError::Internal(format!("the workers stopped: {e}"))),
    }
    let Ends {
        completed,
        failed,
        canceled,
    } = ends;
    out.result(
        &serde_json::json!({"node": node, "completed": completed, "failed": failed, "canceled": canceled}),
        || format!("node {node} stopped: {completed} completed, {failed} failed, {canceled} canceled"),
    );
    Ok(0)
}

/// Stops the workers with their jobs still in hand: each job stays leased and is taken over by
/// another node (or this one, started again) when its lease runs out, spending no attempt.
async fn left_leased(pool: &mut tokio::task::JoinHandle<Result<(), AppError>>, out: &Out) {
    pool.abort();
    let _ = pool.await;
    tracing::warn!(
        "jobs still running at the end of the grace period stay leased; another node takes them over when their lease runs out"
    );
    out.notice(
        "jobs still running stay leased; another node takes them over when their lease runs out",
    );
}

/// SIGINT and SIGTERM, as one stream.
pub(super) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> Result<Self, AppError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let fail =
                |e: std::io::Error| AppError::Internal(format!("cannot listen for signals: {e}"));
            Ok(Self {
                term: signal(SignalKind::terminate()).map_err(fail)?,
                int: signal(SignalKind::interrupt()).map_err(fail)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    pub(super) async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Generations that ended while `jobs run` ran, by how.
#[derive(Default)]
struct Ends {
    completed: u64,
    failed: u64,
    canceled: u64,
}

impl Ends {
    fn tally(&mut self, e: &Event, out: &Out) {
        match e.kind {
            EventKind::Completed => self.completed += 1,
            EventKind::Failed => self.failed += 1,
            EventKind::Canceled => self.canceled += 1,
            _ => return,
        }
        out.notice(&format!("{} {}", e.kind.as_str(), e.generation_id));
    }
}

pub async fn cancel(config: &Config, id: &str, out: &Out) -> Result<u8, AppError> {
    let id: GenerationId = load_parsed(id)?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let generation = app.cancel(Actor::Operator, id).await?;
    let g = app.generation(Actor::Operator, generation.id).await?;
    let view = app.generation_view(&g);
    out.result(&view, || canceled_line(&view));
    Ok(0)
}

/// What `jobs cancel` says: canceled, or asked of the worker that runs it.
pub(super) fn canceled_line(view: &crate::api::GenerationView) -> String {
    let ended = crate::domain::GenerationStatus::parse(&view.status)
        .is_some_and(crate::domain::GenerationStatus::is_terminal);
    if ended {
        format!("generation {} canceled", view.id)
    } else {
        format!(
            "generation {}: cancellation requested; its worker stops it",
            view.id
        )
    }
}
