//! `jobs run` and `jobs cancel`.

use tokio::sync::broadcast::error::RecvError;

use super::load_parsed;
use super::output::Out;
use crate::api::GenerationView;
use crate::config::Config;
use crate::domain::{Event, EventKind, GenerationId};
use crate::error::AppError;
use crate::jobs::{Stop, run_workers};
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
    let workers = app.providers.total_concurrency();
    let mut events = app.bus.subscribe();
    let stop = if until_idle {
        Stop::UntilIdle
    } else {
        Stop::Never
    };
    let pool = tokio::spawn(run_workers(app.clone(), workers, stop));
    let mut ends = Ends::default();
    // Counts ends as they come; never ends the wait by itself (a lagging receiver included):
    // the workers stop only once every job's end is recorded.
    let count = async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(line) = super::output::notice_line(&e) {
                        out.notice(&format!("{}: {line}", e.generation_id));
                    }
                    ends.tally(&e, out);
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    tokio::select! {
        worked = pool => match worked {
            Ok(worked) => worked?,
            Err(e) => return Err(AppError::Internal(format!("the workers stopped: {e}"))),
        },
        () = count => {}
        _ = tokio::signal::ctrl_c() => out.notice("interrupted; running jobs resume when workers run again"),
    }
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
    let generation = app.cancel(id).await?;
    let g = app.generation(generation.id).await?;
    let view = GenerationView::of(&g, &app.store);
    out.result(&view, || {
        if g.generation.status.is_terminal() {
            format!("generation {id} canceled")
        } else {
            format!("generation {id}: cancellation requested; its worker stops it")
        }
    });
    Ok(0)
}
