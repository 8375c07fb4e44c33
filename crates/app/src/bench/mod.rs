//! `atelier bench`: measures this machine and prints medians (benchmarks report, they never
//! assert; see BENCHMARKS.md).
//!
//! - `pipeline`: the grid pipeline alone on a provider-like 2048² grid;
//! - `engine`: sandbox generations through queue, workers, catalogue and store, on `SQLite` or
//!   `PostgreSQL`, with the workers in this process or in several;
//! - `queue`: the job queue alone (claim + finish of empty jobs), for the comparison with
//!   graphile-worker (`bench/queue-vs-graphile.sh`);
//! - `midjourney`: the Midjourney provider against the Discord + Midjourney simulator — the
//!   engine's overhead per job beside the sandbox's, and the memory of connected accounts;
//! - `providers`: each HTTP provider (OpenAI, Replicate, ComfyUI) against its simulator, its overhead per job
//!   beside the sandbox's separate outputs;
//! - `rate` and `sse`, against a running server (`bench/http.sh` starts it): one GET's latency
//!   at a constant request rate, and the live feed with many subscribers (memory per
//!   subscriber, commit-to-arrival time); `wire.rs` is their lean HTTP/1.1 client.

mod children;
mod engine;
mod midjourney;
mod pipeline;
mod providers;
mod queue;
mod rate;
mod scratch;
mod series;
mod sse;
mod wire;

use crate::cli::Out;
use crate::cli::args::BenchArgs;
use crate::config::Config;
use crate::error::AppError;

pub use pipeline::realistic_grid;

pub async fn run(config: &Config, args: BenchArgs, out: &Out) -> Result<u8, AppError> {
    if args.queue_child {
        let value = queue::child(
            config
                .database_url
                .as_ref()
                .map(crate::secret::DatabaseUrl::expose),
            args.workers,
        )
        .await?;
        out.result(&value, || value.to_string());
        return Ok(0);
    }
    let mut report = serde_json::Map::new();
    let mut keep = None;
    report.insert(
        "cores".into(),
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .into(),
    );
    if matches!(args.what.as_str(), "pipeline" | "all") {
        let (runs, save) = (args.runs.unwrap_or(15).max(3), args.save_grid.clone());
        for (name, png) in [
            ("pipeline", crate::pipeline::PngCompression::Balanced),
            ("pipeline_fast_png", crate::pipeline::PngCompression::Fast),
            ("pipeline_small_png", crate::pipeline::PngCompression::Small),
        ] {
            let save = save.clone();
            let r = tokio::task::spawn_blocking(move || {
                pipeline::bench_pipeline(runs, save.as_deref(), png)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
            report.insert(name.into(), r);
        }
    }
    if matches!(args.what.as_str(), "engine" | "all") {
        report.insert(
            "engine".into(),
            engine::bench_engine(&engine::Options {
                generations: args.generations.max(10),
                side: args.side.clamp(16, 2048) & !1,
                concurrency: args.concurrency,
                database: args.database.clone(),
                processes: args.processes,
            })
            .await?,
        );
    }
    if matches!(args.what.as_str(), "queue" | "all") {
        report.insert(
            "queue".into(),
            queue::bench(&queue::Options {
                database: args.database.clone(),
                jobs: args.jobs.unwrap_or(5000).max(1),
                workers: args.workers,
                processes: args.processes,
                runs: args.runs.unwrap_or(3),
            })
            .await?,
        );
    }
    if matches!(args.what.as_str(), "midjourney" | "all") {
        let options = midjourney::Options {
            jobs: args.jobs.unwrap_or(200).max(10),
            side: args.mj_side.clamp(16, 2048) & !1,
            accounts: args.accounts,
            rss_accounts: args.rss_accounts,
            sim_process: args.sim_process,
        };
        let (value, guard) = midjourney::bench(&options).await?;
        report.insert("midjourney".into(), value);
        keep = Some(guard);
    }
    if matches!(args.what.as_str(), "providers" | "all") {
        let options = providers::Options {
            jobs: args.jobs.unwrap_or(100).max(10),
            side: args.mj_side.clamp(16, 2048) & !1,
            outputs: args.outputs,
            rounds: args.runs.unwrap_or(3).clamp(1, 100),
        };
        report.insert("providers".into(), providers::bench(&options).await?);
    }
    if matches!(args.what.as_str(), "rate" | "sse") {
        let url = args
            .url
            .clone()
            .ok_or_else(|| AppError::Invalid("--url names the server to measure".into()))?;
        let key = args.api_key.clone().ok_or_else(|| {
            AppError::Invalid("--api-key (or ATELIER_BENCH_KEY) is the key to send".into())
        })?;
        let value = if args.what == "rate" {
            rate::bench(&rate::Options {
                url,
                path: args.path.clone().ok_or_else(|| {
                    AppError::Invalid("--path names what to ask for: /v1/generations/ID".into())
                })?,
                key,
                rate: args.rate,
                seconds: args.seconds,
                connections: args.connections,
                server_pid: args.server_pid,
            })
            .await?
        } else {
            sse::bench(&sse::Options {
                url,
                key,
                subscribers: args.subscribers,
                generations: args.sse_generations,
                server_pid: args.server_pid.ok_or_else(|| {
                    AppError::Invalid("--server-pid: the server whose memory is measured".into())
                })?,
            })
            .await?
        };
        report.insert(args.what.clone(), value);
    }
    let value = serde_json::Value::Object(report);
    out.result(&value, || {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    });
    drop(keep);
    Ok(0)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Resident set size of this process in KiB.
fn rss_kib() -> Option<u64> {
    status_kib("self", "VmRSS")
}

/// A `/proc/<pid>/status` field given in KiB (`VmRSS`, `VmHWM`), for `pid` or `self`.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn tempfile_dir() -> Result<std::path::PathBuf, AppError> {
    let dir = std::env::temp_dir().join(format!("atelier-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(dir)
}
