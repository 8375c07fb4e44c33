//! The engine with the sandbox provider: many generations through the queue, the workers,
//! the catalogue and the store, counted from the first submit to the queue going idle. The
//! workers run in this process, or in child processes (`atelier jobs run --until-idle`, each
//! running `concurrency` jobs at once) on the same catalogue: `SQLite` in a temporary directory,
//! or a scratch database on a `PostgreSQL` server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::children::Children;
use super::rss_kib;
use super::scratch::Scratch;
use crate::app::{App, JobSettings};
use crate::domain::{GenerationRequest, UpscaleSelection};
use crate::error::AppError;
use crate::jobs::{Bus, Stop, run_workers};
use crate::pipeline;
use crate::providers::sandbox::Sandbox;
use crate::providers::{Providers, Registered, UpscaleMode};
use crate::store::{Layout, Store};

/// The account `wiring` gives the sandbox, so child processes serve the same slot.
const ACCOUNT: &str = "local";
/// How often an idle worker looks at the queue (other processes' jobs included).
const POLL: Duration = Duration::from_millis(20);

pub struct Options {
    pub generations: u32,
    pub side: u32,
    /// Jobs run at once per process.
    pub concurrency: u32,
    /// A `PostgreSQL` server URL, or `None` for `SQLite`.
    pub database: Option<String>,
    /// Child processes running the jobs; 0 runs them in this process.
    pub processes: u32,
}

pub async fn bench_engine(o: &Options) -> Result<serde_json::Value, AppError> {
    let scratch = Scratch::new(o.database.as_deref(), "engine").await?;
    let measured = run(o, &scratch).await;
    scratch.remove().await?;
    measured
}

async fn run(o: &Options, scratch: &Scratch) -> Result<serde_json::Value, AppError> {
    let dir = scratch.dir();
    let db = crate::catalogue::open(&scratch.url, true).await?;
    let store = Store::local(&dir.join("images"), &dir.join("tmp"), Layout::Default)?;
    let concurrency = o.concurrency.max(1);
    let mut providers = Providers::default();
    providers.insert(
        "sandbox",
        Registered {
            provider: Arc::new(Sandbox {
                size: o.side,
                delay: Duration::ZERO,
            }),
            account: ACCOUNT.into(),
            // The slot's limit holds across processes: room for every process's workers.
            concurrency: concurrency * o.processes.max(1),
            upscale_mode: UpscaleMode::Provider,
            synthetic: true,
            accounts: None,
            queue_limit: None,
        },
    );
    providers.set_default("sandbox");
    let app = Arc::new(App {
        catalogue: db.catalogue,
        queue: db.queue,
        directory: db.directory,
        credits: crate::config::CreditsConfig::default(),
        store,
        providers,
        bus: Bus::default(),
        jobs: JobSettings {
            poll: POLL,
            ..JobSettings::default()
        },
        png: pipeline::PngCompression::Balanced,
        limits: pipeline::Limits::default(),
    });
    let idle_rss = rss_kib();
    let t = Instant::now();
    for i in 0..o.generations {
        let mut r = GenerationRequest::new(format!("benchmark prompt number {i}"));
        r.upscale = UpscaleSelection::all();
        app.submit(r).await?;
    }
    let enqueue = t.elapsed();
    let busy_rss = if o.processes == 0 {
        run_workers(app.clone(), concurrency, Stop::UntilIdle).await?;
        rss_kib()
    } else {
        let completed = in_children(o, scratch).await?;
        if completed != u64::from(o.generations) {
            return Err(AppError::Internal(format!(
                "the worker processes completed {completed} generations of {}",
                o.generations
            )));
        }
        None
    };
    let total = t.elapsed();
    let left = app.queue.counts(&[format!("sandbox:{ACCOUNT}")]).await?;
    if left.pending + left.running > 0 {
        return Err(AppError::Internal(format!(
            "the queue is not idle after the run: {} pending, {} running",
            left.pending, left.running
        )));
    }
    let run = total.saturating_sub(enqueue);
    Ok(serde_json::json!({
        "database": scratch.kind(),
        "processes": o.processes,
        "generations": o.generations,
        "images_per_generation": 5,
        "grid_side": o.side,
        "concurrency": concurrency,
        "enqueue_ms": enqueue.as_secs_f64() * 1000.0,
        "run_ms": run.as_secs_f64() * 1000.0,
        "total_ms": total.as_secs_f64() * 1000.0,
        "generations_per_second": f64::from(o.generations) / total.as_secs_f64(),
        "run_generations_per_second": f64::from(o.generations) / run.as_secs_f64(),
        "rss_idle_kib": idle_rss,
        "rss_after_kib": busy_rss,
    }))
}

/// Runs the queued generations with `processes` × `atelier jobs run --until-idle` on the same
/// catalogue and folder store; returns how many they completed.
async fn in_children(o: &Options, scratch: &Scratch) -> Result<u64, AppError> {
    let dir = scratch.dir();
    let config = dir.join("atelier.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs]\npoll_secs = {}\n\n[providers.sandbox]\nsize = {}\ndelay_ms = 0\n\
             concurrency = {}\nupscale_mode = \"provider\"\n",
            POLL.as_secs_f64(),
            o.side,
            o.concurrency.max(1)
        ),
    )
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let children = Children::spawn(o.processes, |_, mut c| {
        // The configuration is the file's: settings from this environment would override it.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("ATELIER_") && key != "ATELIER_LOG" {
                c.env_remove(&*key);
            }
        }
        c.arg("--json")
            .arg("--data-dir")
            .arg(dir)
            .arg("--config")
            .arg(&config)
            .args(["jobs", "run", "--until-idle"])
            // In the environment, not the arguments: a URL may carry a password.
            .env("DATABASE_URL", &scratch.url);
        c
    })?;
    let results = children.results().await?;
    Ok(results.iter().filter_map(|r| r["completed"].as_u64()).sum())
}
