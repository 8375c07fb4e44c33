//! `atelier bench midjourney`: what the Midjourney provider costs besides the image work, and
//! the memory of many connected accounts, against the Discord + Midjourney simulator.
//!
//! - **Memory** (run first, so the process's peak is this phase's): a simulator with N
//!   accounts runs as a child process (`atelier simulate discord`), so the numbers are the
//!   atelier process's own; every account is connected, then one job per account runs.
//!   The child's RSS is reported apart.
//! - **Overhead per job**: the same tiny generations (grid and four upscales) through the
//!   sandbox provider, then through Midjourney against an in-process simulator with no delays;
//!   the difference of the median latencies is what correlation, REST, gateway and CDN cost on
//!   loopback. The in-process simulator shares the cores, so its own work is in that number.
//!   Each mode (`local_split`, `discord`) is measured one job at a time (latency), then with
//!   every job submitted at once (throughput).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atelier_simulator::{Painter, Timing};
use serde_json::{Value, json};

use super::series::{Series, bench_config, measure, scratch, wait_all};
use super::{median, rss_kib, status_kib, tempfile_dir};
use crate::app::App;
use crate::cli::simulate::SandboxPainter;
use crate::config::{AccountConfig, Config, MidjourneyUpscaleMode, SandboxUpscaleMode};
use crate::domain::{Actor, GenerationRequest, UpscaleSelection};
use crate::error::AppError;
use crate::jobs::{Stop, run_workers};
use crate::pipeline;
use crate::wiring;

pub struct Options {
    /// Jobs per measured series.
    pub jobs: u32,
    /// Grid side of the simulator's and the sandbox's images.
    pub side: u32,
    /// Accounts (and jobs at once) of the overhead measurement.
    pub accounts: u16,
    /// Accounts of the memory measurement.
    pub rss_accounts: u16,
    /// Run the overhead measurement's simulator as a child process.
    pub sim_process: bool,
}

/// Runs both measurements. The returned guard holds the simulators and the apps connected to
/// them: drop it after printing, so no gateway complains about a stopped simulator before.
pub async fn bench(o: &Options) -> Result<(Value, Guard), AppError> {
    let mut report = serde_json::Map::new();
    report.insert("grid_side".into(), o.side.into());
    report.insert("jobs".into(), o.jobs.into());
    let (memory, kept) = memory(o).await?;
    report.insert("memory".into(), memory);
    let side = o.side;
    let image_work = tokio::task::spawn_blocking(move || image_work(side))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    report.insert("image_work".into(), image_work);
    // In process by default (its work shares the cores and is in the numbers); with
    // `--sim-process`, in a child process (still on the same two cores, but not in our RSS
    // or our CPU time).
    let (endpoints, sim, child) = if o.sim_process {
        let (child, summary) = child_simulator(o.accounts, o.side).await?;
        (Endpoints::from_summary(&summary)?, None, Some(child))
    } else {
        let mut sim_config = atelier_simulator::Config::new(Arc::new(SandboxPainter));
        sim_config.timing = Timing::instant();
        sim_config.image_side = o.side;
        sim_config.accounts = usize::from(o.accounts);
        let sim = atelier_simulator::start(sim_config)
            .await
            .map_err(|e| AppError::Internal(format!("simulator: {e}")))?;
        (Endpoints::of(&sim), Some(sim), None)
    };
    report.insert("simulator_in_process".into(), sim.is_some().into());
    for mode in ["local_split", "discord"] {
        let sandbox = series(o, mode, None).await?;
        let midjourney = series(o, mode, Some(&endpoints)).await?;
        let overhead = midjourney.latency_ms - sandbox.latency_ms;
        report.insert(
            mode.into(),
            json!({
                "sandbox": sandbox.report,
                "midjourney": midjourney.report,
                "overhead_ms_per_job": overhead,
                "midjourney_over_sandbox": midjourney.latency_ms / sandbox.latency_ms,
            }),
        );
    }
    if let Some(sim) = &sim {
        let stats = sim.control().stats();
        report.insert(
            "simulator_stats".into(),
            json!({
                "rest_requests": stats.rest_requests,
                "interactions": stats.interactions,
                "dispatches": stats.dispatches,
                "downloads": stats.downloads,
                "faults_injected": stats.faults_injected,
            }),
        );
    }
    // The per-process scratch folder, now that every series removed its own (if empty).
    let _ = std::fs::remove_dir(tempfile_dir()?);
    Ok((
        Value::Object(report),
        Guard {
            _kept: kept,
            _sim: sim,
            _child: child,
        },
    ))
}

pub struct Guard {
    _kept: Kept,
    _sim: Option<atelier_simulator::Running>,
    _child: Option<ChildSimulator>,
}

/// Where a simulator listens, and its accounts.
struct Endpoints {
    api_base: String,
    gateway_url: String,
    cdn_base: String,
    accounts: Vec<AccountConfig>,
}

impl Endpoints {
    fn of(sim: &atelier_simulator::Running) -> Self {
        Self {
            api_base: sim.api_base(),
            gateway_url: sim.gateway_url(),
            cdn_base: sim.cdn_base(),
            accounts: sim
                .accounts()
                .iter()
                .enumerate()
                .map(|(i, a)| account(i, &a.token, &a.guild_id, &a.channel_id))
                .collect(),
        }
    }

    /// From what `atelier --json simulate discord` printed.
    fn from_summary(summary: &Value) -> Result<Self, AppError> {
        let accounts = summary["accounts"]
            .as_array()
            .map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(i, a)| {
                        Some(account(
                            i,
                            a["token"].as_str()?,
                            a["guild_id"].as_str()?,
                            a["channel_id"].as_str()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            api_base: text(summary, "api_base")?,
            gateway_url: text(summary, "gateway_url")?,
            cdn_base: text(summary, "cdn_base")?,
            accounts,
        })
    }
}

/// Midjourney settings for a simulator: no pacing between interactions, quick retries.
fn midjourney_config(
    config: &mut Config,
    api_base: String,
    gateway_url: String,
    cdn_base: String,
    accounts: Vec<AccountConfig>,
    mode: &str,
) {
    config.default_provider = "midjourney".into();
    config.providers.sandbox.enabled = false;
    let m = &mut config.providers.midjourney;
    m.enabled = true;
    m.upscale_mode = if mode == "local_split" {
        MidjourneyUpscaleMode::LocalSplit
    } else {
        MidjourneyUpscaleMode::Discord
    };
    m.api_base = api_base;
    m.gateway_url = gateway_url;
    m.cdn_base = cdn_base;
    m.interaction_gap_ms = 0;
    m.interaction_jitter_ms = 0;
    m.download_backoff_ms = 10;
    m.accounts = accounts;
}

fn account(i: usize, token: &str, guild_id: &str, channel_id: &str) -> AccountConfig {
    AccountConfig {
        name: format!("sim-{}", i + 1),
        token: token.into(),
        guild_id: Some(guild_id.to_owned()),
        channel_id: channel_id.to_owned(),
        concurrency: 1,
        // The throughput run queues every job at once.
        queue_size: 10_000,
        enabled: true,
    }
}

/// Connects every account; fails unless all of them are ready.
async fn connect_all(app: &App) -> Result<usize, AppError> {
    let views = app.accounts(Some(Duration::from_secs(30))).await?;
    let ready = views.iter().filter(|v| v.status.health == "ready").count();
    if ready < views.len() {
        let bad: Vec<String> = views
            .iter()
            .filter(|v| v.status.health != "ready")
            .map(|v| {
                format!(
                    "{}: {} {}",
                    v.status.name,
                    v.status.health,
                    v.status.reason.as_deref().unwrap_or("")
                )
            })
            .collect();
        return Err(AppError::Internal(format!(
            "{ready} of {} accounts connected ({})",
            views.len(),
            bad.join("; ")
        )));
    }
    Ok(ready)
}

fn request(i: u32, tag: &str) -> GenerationRequest {
    let mut r = GenerationRequest::new(format!("benchmark {tag} scene number {i}"));
    r.upscale = UpscaleSelection::all();
    r
}

/// One provider in one upscale mode: latency one job at a time, then throughput.
async fn series(o: &Options, mode: &str, sim: Option<&Endpoints>) -> Result<Series, AppError> {
    let name = if sim.is_some() {
        "midjourney"
    } else {
        "sandbox"
    };
    let dir = scratch(&format!("{name}-{mode}"))?;
    let mut config = bench_config(&dir);
    let accounts = usize::from(o.accounts);
    if let Some(sim) = sim {
        midjourney_config(
            &mut config,
            sim.api_base.clone(),
            sim.gateway_url.clone(),
            sim.cdn_base.clone(),
            sim.accounts.iter().take(accounts).cloned().collect(),
            mode,
        );
    } else {
        config.default_provider = "sandbox".into();
        let s = &mut config.providers.sandbox;
        s.enabled = true;
        s.size = o.side;
        s.delay_ms = 0;
        s.concurrency = u32::from(o.accounts);
        s.upscale_mode = if mode == "local_split" {
            SandboxUpscaleMode::LocalSplit
        } else {
            SandboxUpscaleMode::Provider
        };
    }
    let providers = wiring::providers(&config)?;
    let app = wiring::open(&config, providers, true).await?;
    if sim.is_some() {
        connect_all(&app).await?;
    }
    let measured = measure(&app, o.jobs, request).await;
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

/// The image work of one grid, apart from everything else: the simulator's drawing and PNG
/// encoding, and the app's pipeline (decode, hash, split, encode, thumbnails, palettes).
fn image_work(side: u32) -> Result<Value, AppError> {
    let painter = SandboxPainter;
    let (mut paint, mut process) = (Vec::new(), Vec::new());
    for i in 0..101 {
        let t = Instant::now();
        let png = painter.grid(&format!("benchmark scene number {i}"), i, side);
        paint.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        pipeline::process_grid(png, pipeline::PngCompression::Balanced)?;
        process.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(json!({
        "paint_grid_png_ms": median(paint),
        "pipeline_grid_ms": median(process),
    }))
}

/// The memory phase's app and simulator, kept until the end of the benchmark: its accounts
/// stay quietly connected instead of reconnecting to a stopped simulator during the timed runs.
pub struct Kept {
    _app: Arc<App>,
    _child: ChildSimulator,
}

/// The simulator as a child process; killed when dropped.
struct ChildSimulator(Child);

impl Drop for ChildSimulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `atelier simulate discord` with `accounts` accounts and reads what it printed.
async fn child_simulator(accounts: u16, side: u32) -> Result<(ChildSimulator, Value), AppError> {
    let exe = std::env::current_exe().map_err(|e| AppError::Internal(e.to_string()))?;
    let mut child = Command::new(exe)
        .args(["--json", "simulate", "discord", "--bind", "127.0.0.1:0"])
        .args(["--accounts", &accounts.to_string()])
        .args(["--side", &side.max(16).to_string(), "--step-ms", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| AppError::Internal(format!("cannot start the simulator: {e}")))?;
    let stdout = child.stdout.take();
    let child = ChildSimulator(child);
    let stdout = stdout.ok_or_else(|| AppError::Internal("no simulator output".into()))?;
    // The summary is pretty-printed JSON: read lines until they parse.
    let read = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            text.push_str(&line.ok()?);
            text.push('\n');
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                return Some(v);
            }
        }
        None
    });
    let summary = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .map_err(|_| AppError::Internal("the simulator did not start within 30s".into()))?
        .map_err(|e| AppError::Internal(e.to_string()))?
        .ok_or_else(|| AppError::Internal("the simulator exited before it was ready".into()))?;
    Ok((child, summary))
}

fn text(v: &Value, key: &str) -> Result<String, AppError> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| AppError::Internal(format!("simulator summary without {key}")))
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS; false where Linux refuses.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn memory_now(child: &ChildSimulator) -> Value {
    let pid = child.0.id().to_string();
    json!({
        "rss_kib": rss_kib(),
        "hwm_kib": status_kib("self", "VmHWM"),
        "threads": status_kib("self", "Threads"),
        "simulator_rss_kib": status_kib(&pid, "VmRSS"),
    })
}

/// RSS of this process with `rss_accounts` connected accounts, before and after jobs.
async fn memory(o: &Options) -> Result<(Value, Kept), AppError> {
    let peak_reset = reset_peak();
    let start = json!({ "rss_kib": rss_kib(), "hwm_kib": status_kib("self", "VmHWM") });
    let (child, summary) = child_simulator(o.rss_accounts, o.side).await?;
    let sim = Endpoints::from_summary(&summary)?;
    if sim.accounts.len() != usize::from(o.rss_accounts) {
        return Err(AppError::Internal(format!(
            "the simulator listed {} accounts, not {}",
            sim.accounts.len(),
            o.rss_accounts
        )));
    }
    let dir = scratch("memory")?;
    let mut config = bench_config(&dir);
    midjourney_config(
        &mut config,
        sim.api_base,
        sim.gateway_url,
        sim.cdn_base,
        sim.accounts,
        "local_split",
    );
    let providers = wiring::providers(&config)?;
    let app = wiring::open(&config, providers, true).await?;
    let opened = memory_now(&child);
    let t = Instant::now();
    let connected_accounts = connect_all(&app).await?;
    let connect_ms = t.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected = memory_now(&child);
    let mut events = app.bus.subscribe();
    let mut ids = Vec::new();
    for i in 0..o.rss_accounts {
        ids.push(
            app.submit(Actor::Operator, request(u32::from(i), "memory"))
                .await?
                .id,
        );
    }
    let workers = app.providers.total_concurrency();
    let t = Instant::now();
    let engine = tokio::spawn(run_workers(app.clone(), workers, Stop::Never));
    let ok = wait_all(&app, &mut events, &ids).await?;
    let jobs_ms = t.elapsed().as_secs_f64() * 1000.0;
    engine.abort();
    let _ = engine.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = memory_now(&child);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        json!({
            "accounts": connected_accounts,
            "peak_reset": peak_reset,
            "start": start,
            "app_opened": opened,
            "connected": connected,
            "connect_ms": connect_ms,
            "jobs": ids.len(),
            "jobs_succeeded": ok,
            "jobs_ms": jobs_ms,
            "after_jobs": after,
        }),
        Kept {
            _app: app,
            _child: child,
        },
    ))
}
