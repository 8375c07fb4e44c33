//! `bench rate`: latency of one GET at a constant request rate (open loop, as wrk2 and oha's
//! `-q` do), against any server, Atelier or a peer.
//!
//! Request `i` is due at `start + i / rate`, whatever happened to the ones before; connections
//! take the due requests in turn. A request sent late because every connection was still busy
//! is timed from when it was due (a slow server cannot hide its backlog: no coordinated
//! omission); one sent on an idle connection is timed from when it was sent, so the client's
//! own timer (tokio's, with millisecond ticks) adds nothing to the server's figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::wire::{Target, cpu_secs, internal, quantile};
use crate::error::AppError;

pub struct Options {
    pub url: String,
    pub path: String,
    pub key: String,
    pub rate: u32,
    pub seconds: u32,
    pub connections: u32,
    /// A process whose CPU time is reported beside the client's (the server's).
    pub server_pid: Option<u32>,
}

struct Sample {
    latency_us: f64,
    ok: bool,
}

pub async fn bench(o: &Options) -> Result<serde_json::Value, AppError> {
    let target = Target::parse(&o.url)?;
    let request = Arc::new(target.request("GET", &o.path, &o.key, "", None));
    let rate = f64::from(o.rate.max(1));
    let total = u64::from(o.rate.max(1)) * u64::from(o.seconds.max(1));
    // Warm-up: every connection opened and used once before the clock starts.
    let mut conns = Vec::new();
    for _ in 0..o.connections.max(1) {
        let mut c = target.connect().await?;
        let (status, _) = c.exchange(&request).await?;
        if status != 200 {
            return Err(internal(format!(
                "GET {} answers {status}, not 200",
                o.path
            )));
        }
        conns.push(c);
    }
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let cpu = (
        cpu_secs("self"),
        o.server_pid.and_then(|p| cpu_secs(&p.to_string())),
    );
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (next, request) = (next.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                #[allow(clippy::cast_precision_loss)]
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                let late = Instant::now() > due;
                if !late {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let result = conn.exchange(&request).await;
                let from = if late { due } else { sent };
                let ok = matches!(result, Ok((200, _)));
                samples.push(Sample {
                    latency_us: from.elapsed().as_secs_f64() * 1e6,
                    ok,
                });
                if result.is_err() {
                    // This connection is gone: the others carry on with the schedule.
                    break;
                }
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.map_err(internal)?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let client_cpu = cpu_secs("self").zip(cpu.0).map(|(b, a)| b - a);
    let server_cpu = o
        .server_pid
        .and_then(|p| cpu_secs(&p.to_string()))
        .zip(cpu.1)
        .map(|(b, a)| b - a);
    let errors = samples.iter().filter(|s| !s.ok).count();
    let mut ms: Vec<f64> = samples.iter().map(|s| s.latency_us / 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let achieved = samples.len() as f64 / elapsed;
    Ok(serde_json::json!({
        "url": format!("{}{}", o.url, o.path),
        "target_rate": o.rate,
        "achieved_rate": achieved,
        "requests": samples.len(),
        "errors": errors,
        "connections": o.connections,
        "seconds": elapsed,
        "latency_ms": {
            "p50": quantile(&ms, 0.50),
            "p90": quantile(&ms, 0.90),
            "p99": quantile(&ms, 0.99),
            "p999": quantile(&ms, 0.999),
            "max": quantile(&ms, 1.0),
        },
        "client_cpu_secs": client_cpu,
        "server_cpu_secs": server_cpu,
    }))
}
