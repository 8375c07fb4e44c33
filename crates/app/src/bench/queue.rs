//! The queue alone: `jobs` empty jobs queued, then `workers` claimers (tasks in this process, or
//! in each of `processes` child processes on the same database) claim and finish them until
//! none is left, each finish claiming the next as a worker's does
//! (`Queue::finish_and_claim`); jobs per second over the draining only, the median of `runs`.
//! Only the
//! [`Queue`](crate::catalogue::Queue) trait is timed; the jobs are queued with their
//! generations beforehand, as `App::submit` writes them. Each run has its own fresh database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use super::children::{self, Children};
use super::median;
use super::scratch::Scratch;
use crate::catalogue::{self, Claim, NewJob, Queue};
use crate::domain::{Generation, GenerationKind, JobId, JobStatus};
use crate::error::AppError;

/// The one concurrency slot of the measurement's jobs.
const SLOT: &str = "bench:queue";
const LEASE_MS: i64 = 30_000;

pub struct Options {
    /// A `PostgreSQL` server URL, or `None` for `SQLite`.
    pub database: Option<String>,
    pub jobs: u32,
    pub workers: u32,
    /// Child processes, each with `workers` claimers; 0 runs the claimers in this process.
    pub processes: u32,
    pub runs: u32,
}

pub async fn bench(o: &Options) -> Result<Value, AppError> {
    let mut rates = Vec::new();
    let mut kind = "sqlite";
    let mut enqueue_ms = Vec::new();
    for run in 0..o.runs.max(1) {
        let scratch = Scratch::new(o.database.as_deref(), &format!("queue{run}")).await?;
        kind = scratch.kind();
        let measured = one_run(o, &scratch).await;
        scratch.remove().await?;
        let (rate, enqueue) = measured?;
        rates.push(rate);
        enqueue_ms.push(enqueue);
    }
    Ok(json!({
        "database": kind,
        "jobs": o.jobs,
        "workers": o.workers,
        "processes": o.processes,
        "claimers": o.workers * o.processes.max(1),
        "runs": rates.len(),
        "jobs_per_second": median(rates.clone()),
        "jobs_per_second_runs": rates,
        "enqueue_ms_median": median(enqueue_ms),
    }))
}

/// Jobs per second of one run, and how long queueing them took (ms).
async fn one_run(o: &Options, scratch: &Scratch) -> Result<(f64, f64), AppError> {
    let db = catalogue::open(&scratch.url, true).await?;
    let claimers = o.workers.max(1) * o.processes.max(1);
    let t = Instant::now();
    enqueue(&db.catalogue, o.jobs, o.workers.max(1), claimers).await?;
    let enqueue_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (claimed, seconds) = if o.processes == 0 {
        warm(&db.queue, o.workers).await;
        let t = Instant::now();
        let claimed = drain(&db.queue, o.workers).await?;
        (claimed, t.elapsed().as_secs_f64())
    } else {
        let mut children = Children::spawn(o.processes, |_, mut c| {
            c.args(["--json", "bench", "queue", "--queue-child"])
                .args(["--workers", &o.workers.to_string()])
                // In the environment, not the arguments: a URL may carry a password.
                .env("DATABASE_URL", &scratch.url);
            c
        })?;
        children.ready().await?;
        let t = Instant::now();
        children.go()?;
        let results = children.results().await?;
        let seconds = t.elapsed().as_secs_f64();
        let claimed = results.iter().filter_map(|r| r["claimed"].as_u64()).sum();
        (claimed, seconds)
    };
    let left = db.queue.counts(&[SLOT.to_owned()]).await?;
    if claimed != u64::from(o.jobs) || left.pending + left.running > 0 {
        return Err(AppError::Internal(format!(
            "the queue lost or repeated jobs: {claimed} claimed of {}, {} pending and {} running left",
            o.jobs, left.pending, left.running
        )));
    }
    Ok((f64::from(o.jobs) / seconds, enqueue_ms))
}

/// Queues `count` jobs in one slot whose limit lets all claimers run at once, `writers` at a
/// time.
async fn enqueue(
    catalogue: &Arc<dyn catalogue::Catalogue>,
    count: u32,
    writers: u32,
    claimers: u32,
) -> Result<(), AppError> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (catalogue, next) = (catalogue.clone(), next.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < u64::from(count) {
                let generation = Generation::queued(
                    "bench".into(),
                    GenerationKind::Imagine,
                    "an empty job".into(),
                    crate::domain::Parameters::default(),
                );
                let job = NewJob {
                    id: JobId::new(),
                    slot: SLOT.into(),
                    concurrency: claimers,
                    max_attempts: 1,
                    delay_ms: 0,
                };
                catalogue
                    .create_generation(&generation, Some(&job), &[])
                    .await?;
            }
            Ok::<(), catalogue::CatalogueError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| AppError::Internal(e.to_string()))??;
    }
    Ok(())
}

/// Opens the connections the claimers will use before the clock starts (a pool opens them
/// lazily), as the peer's measurement does.
async fn warm(queue: &Arc<dyn Queue>, workers: u32) {
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let queue = queue.clone();
        all.spawn(async move { queue.counts(&[SLOT.to_owned()]).await });
    }
    while all.join_next().await.is_some() {}
}

/// `workers` claimers claim and finish jobs until a claim finds none; returns how many.
async fn drain(queue: &Arc<dyn Queue>, workers: u32) -> Result<u64, AppError> {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers.max(1) {
        let queue = queue.clone();
        tasks.spawn(async move {
            let worker = format!("bench-{}-{w}", std::process::id());
            let slots = [SLOT.to_owned()];
            let claim = Claim {
                worker: &worker,
                lease_ms: LEASE_MS,
                slots: &slots,
                only: None,
            };
            let mut done = 0u64;
            // As a worker does: each job's end claims the next.
            let mut next = queue.claim(&claim).await?;
            while let Some(job) = next {
                let (ended, after) = queue
                    .finish_and_claim(job.id, JobStatus::Succeeded, None, &claim)
                    .await?;
                if !ended {
                    return Err(AppError::Internal(format!("lost the lease of {}", job.id)));
                }
                done += 1;
                next = after;
            }
            Ok::<u64, AppError>(done)
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.map_err(|e| AppError::Internal(e.to_string()))??;
    }
    Ok(total)
}

/// A child process of the measurement: connects, says it is ready, waits for the start, then
/// drains the queue with `workers` claimers and reports how many jobs it took.
pub async fn child(database_url: Option<&str>, workers: u32) -> Result<Value, AppError> {
    let url = database_url.ok_or_else(|| {
        AppError::Invalid("--queue-child is started by `bench queue`, with DATABASE_URL".into())
    })?;
    let db = catalogue::open(url, false).await?;
    warm(&db.queue, workers).await;
    tokio::task::spawn_blocking(children::wait_for_go)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    let claimed = drain(&db.queue, workers).await?;
    Ok(json!({ "claimed": claimed }))
}
