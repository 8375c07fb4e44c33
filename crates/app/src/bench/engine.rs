//! The engine with the sandbox provider: many generations through the queue, the workers,
//! the catalogue and the store, counted from the first submit to the queue going idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{rss_kib, tempfile_dir};
use crate::app::{App, JobSettings};
use crate::domain::{GenerationRequest, UpscaleSelection};
use crate::error::AppError;
use crate::jobs::{Bus, Stop, run_workers};
use crate::pipeline;
use crate::providers::sandbox::Sandbox;
use crate::providers::{Providers, Registered, UpscaleMode};
use crate::store::{Layout, Store};

pub async fn bench_engine(
    count: u32,
    side: u32,
    concurrency: u32,
) -> Result<serde_json::Value, AppError> {
    let dir = tempfile_dir()?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let db = crate::catalogue::open(&url, true).await?;
    let store = Store::local(&dir.join("images"), &dir.join("tmp"), Layout::Default)?;
    let concurrency = concurrency.max(1);
    let mut providers = Providers::default();
    providers.insert(
        "sandbox",
        Registered {
            provider: Arc::new(Sandbox {
                size: side,
                delay: Duration::ZERO,
            }),
            account: "bench".into(),
            concurrency,
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
        store,
        providers,
        bus: Bus::default(),
        jobs: JobSettings {
            poll: Duration::from_millis(20),
            ..JobSettings::default()
        },
        png: pipeline::PngCompression::Balanced,
        limits: pipeline::Limits::default(),
    });
    let idle_rss = rss_kib();
    let t = Instant::now();
    for i in 0..count {
        let mut r = GenerationRequest::new(format!("benchmark prompt number {i}"));
        r.upscale = UpscaleSelection::all();
        app.submit(r).await?;
    }
    let enqueue = t.elapsed();
    run_workers(app.clone(), concurrency, Stop::UntilIdle).await?;
    let total = t.elapsed();
    let busy_rss = rss_kib();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(serde_json::json!({
        "generations": count,
        "images_per_generation": 5,
        "grid_side": side,
        "concurrency": concurrency,
        "enqueue_ms": enqueue.as_secs_f64() * 1000.0,
        "total_ms": total.as_secs_f64() * 1000.0,
        "generations_per_second": f64::from(count) / total.as_secs_f64(),
        "rss_idle_kib": idle_rss,
        "rss_after_kib": busy_rss,
    }))
}
