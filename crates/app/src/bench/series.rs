//! One measured series of generations through a whole app, shared by the provider
//! benchmarks (`midjourney`, `providers`): jobs one at a time after a warm-up (latency, CPU
//! time per job), then every job submitted at once (throughput).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{median, tempfile_dir};
use crate::app::App;
use crate::config::Config;
use crate::domain::{Actor, GenerationId, GenerationRequest, GenerationStatus};
use crate::error::AppError;
use crate::jobs::{Stop, run_workers};

/// How long any one wait of a benchmark may take before it reports an error.
const PATIENCE: Duration = Duration::from_mins(2);
/// Jobs run before each measured series and not counted (connections, caches, the database's pages).
const WARM_UP: u32 = 5;

/// A fresh data directory for one app of a benchmark.
pub(super) fn scratch(name: &str) -> Result<std::path::PathBuf, AppError> {
    let dir = tempfile_dir()?.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(dir)
}

/// A configuration on `dir` whose workers look at the queue often and retry quickly.
pub(super) fn bench_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.jobs.poll_secs = 0.02;
    config.jobs.retry_base_secs = 0.05;
    config.jobs.retry_max_secs = 0.5;
    config
}

/// Waits until every generation of `ids` has ended; returns how many succeeded.
pub(super) async fn wait_all(
    app: &App,
    events: &mut tokio::sync::broadcast::Receiver<crate::domain::Event>,
    ids: &[GenerationId],
) -> Result<usize, AppError> {
    let mut open: HashSet<GenerationId> = ids.iter().copied().collect();
    let mut succeeded = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !open.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                return Err(AppError::Internal(format!(
                    "{} generations still running after {}s",
                    open.len(),
                    PATIENCE.as_secs()
                )));
            }
            Ok(Ok(e)) if e.status.is_terminal() && open.remove(&e.generation_id) => {
                succeeded += usize::from(e.status == GenerationStatus::Succeeded);
            }
            Ok(Ok(_)) => {}
            // Too many events at once for the bus: ask the catalogue instead.
            Ok(Err(RecvError::Lagged(_))) => {
                for id in open.clone() {
                    let g = app.catalogue.generation(id).await?;
                    if g.status.is_terminal() {
                        open.remove(&id);
                        succeeded += usize::from(g.status == GenerationStatus::Succeeded);
                    }
                }
            }
            Ok(Err(RecvError::Closed)) => {
                return Err(AppError::Internal("the event bus closed".into()));
            }
        }
    }
    Ok(succeeded)
}

/// What one series measured.
pub(super) struct Series {
    /// The median latency of one job, in milliseconds.
    pub latency_ms: f64,
    pub report: Value,
}

/// Runs `jobs` generations made by `request(i, tag)` through `app` (its workers started here,
/// as many as its providers may run at once): one at a time after the warm-up, then all at once.
pub(super) async fn measure(
    app: &Arc<App>,
    jobs: u32,
    request: impl Fn(u32, &str) -> GenerationRequest,
) -> Result<Series, AppError> {
    let workers = app.providers.total_concurrency();
    let engine = tokio::spawn(run_workers(app.clone(), workers, Stop::Never));
    let measured = run(app, jobs, workers, &request).await;
    engine.abort();
    let _ = engine.await;
    measured
}

async fn run(
    app: &App,
    jobs: u32,
    workers: u32,
    request: &dyn Fn(u32, &str) -> GenerationRequest,
) -> Result<Series, AppError> {
    let mut events = app.bus.subscribe();
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut cpu_start = None;
    for i in 0..WARM_UP + jobs {
        if i == WARM_UP {
            cpu_start = cpu_ms();
        }
        // Let the worker go back to waiting, so the submit's wake-up is not missed.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let t = Instant::now();
        let g = app.submit(Actor::Operator, request(i, "latency")).await?;
        let ok = wait_all(app, &mut events, &[g.id]).await?;
        if i >= WARM_UP {
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            failed += 1 - ok;
        }
    }
    let cpu_per_job = cpu_ms()
        .zip(cpu_start)
        .map(|(end, start)| (end - start) / f64::from(jobs));
    let t = Instant::now();
    let mut ids = Vec::new();
    for i in 0..jobs {
        ids.push(
            app.submit(Actor::Operator, request(i, "throughput"))
                .await?
                .id,
        );
    }
    let ok = wait_all(app, &mut events, &ids).await?;
    let batch = t.elapsed().as_secs_f64();
    failed += ids.len() - ok;
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let p90 = sorted
        .get(sorted.len() * 9 / 10)
        .copied()
        .unwrap_or(f64::NAN);
    let latency_ms = median(latencies);
    Ok(Series {
        latency_ms,
        report: json!({
            "median_ms_per_job": latency_ms,
            "p90_ms_per_job": p90,
            "min_ms_per_job": sorted.first(),
            "cpu_ms_per_job": cpu_per_job,
            "jobs_at_once": workers,
            "jobs_per_second_at_once": f64::from(jobs) / batch,
            "failed": failed,
        }),
    })
}

/// CPU time of this process so far (user and system, all threads), in milliseconds, from
/// `/proc/self/stat` (in `USER_HZ` ticks, 100 a second on Linux: 10 ms resolution).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}
