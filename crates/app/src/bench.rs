//! `atelier bench`: measures the grid pipeline and the engine on this machine and prints
//! medians (benchmarks report, they never assert; see BENCHMARKS.md).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, JobSettings};
use crate::cli::Out;
use crate::cli::args::BenchArgs;
use crate::config::Config;
use crate::domain::{GenerationRequest, UpscaleSelection};
use crate::error::AppError;
use crate::jobs::{Bus, Stop, run_workers};
use crate::pipeline;
use crate::providers::sandbox::{Sandbox, draw};
use crate::providers::{Providers, Registered, UpscaleMode};
use crate::store::{Layout, Store};

pub async fn run(_config: &Config, args: BenchArgs, out: &Out) -> Result<u8, AppError> {
    let mut report = serde_json::Map::new();
    report.insert(
        "cores".into(),
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .into(),
    );
    if matches!(args.what.as_str(), "pipeline" | "all") {
        let (runs, save) = (args.runs.max(3), args.save_grid.clone());
        for (name, png) in [
            ("pipeline", pipeline::PngCompression::Balanced),
            ("pipeline_fast_png", pipeline::PngCompression::Fast),
        ] {
            let save = save.clone();
            let r = tokio::task::spawn_blocking(move || bench_pipeline(runs, save.as_deref(), png))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))??;
            report.insert(name.into(), r);
        }
    }
    if matches!(args.what.as_str(), "engine" | "all") {
        report.insert(
            "engine".into(),
            bench_engine(
                args.generations.max(10),
                args.side.clamp(16, 2048) & !1,
                args.concurrency,
            )
            .await?,
        );
    }
    let value = serde_json::Value::Object(report);
    out.result(&value, || {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    });
    Ok(0)
}

/// A provider-like grid: the sandbox drawing at 2048², PNG at zlib's default level (what
/// Midjourney's CDN serves is of this kind and size).
pub fn realistic_grid() -> Result<Vec<u8>, AppError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let pixels = draw::grid("a lighthouse on a cliff at dawn, oil painting", 1234, 2048);
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Default, FilterType::Adaptive)
        .write_image(&pixels.data, 2048, 2048, image::ExtendedColorType::Rgb8)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(png)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_pipeline(
    runs: u32,
    save: Option<&Path>,
    png: pipeline::PngCompression,
) -> Result<serde_json::Value, AppError> {
    let grid = realistic_grid()?;
    if let Some(path) = save {
        std::fs::write(path, &grid)
            .map_err(|e| AppError::Invalid(format!("{}: {e}", path.display())))?;
    }
    let mut times = Vec::new();
    let mut output_bytes = 0;
    let mut quadrant_bytes = 0;
    let mut thumb_bytes = 0;
    for _ in 0..runs {
        let input = grid.clone();
        let t = Instant::now();
        let done = pipeline::process_grid(input, png)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        quadrant_bytes = done.quadrants.iter().map(|q| q.bytes.len()).sum::<usize>();
        thumb_bytes = done.grid.thumbnail.len()
            + done
                .quadrants
                .iter()
                .map(|q| q.thumbnail.len())
                .sum::<usize>();
        output_bytes = quadrant_bytes + thumb_bytes;
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(serde_json::json!({
        "input_bytes": grid.len(),
        "runs": runs,
        "median_ms": median(times.clone()),
        "min_ms": min,
        "max_ms": times.iter().copied().fold(0.0, f64::max),
        "quadrant_png_bytes": quadrant_bytes,
        "thumbnail_webp_bytes": thumb_bytes,
        "output_bytes": output_bytes,
    }))
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn bench_engine(
    count: u32,
    side: u32,
    concurrency: u32,
) -> Result<serde_json::Value, AppError> {
    let dir = tempfile_dir()?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let catalogue = crate::catalogue::open(&url, true).await?;
    let store = Store::local(&dir.join("images"), &dir.join("tmp"), Layout::Default)?;
    let concurrency = concurrency.max(1);
    let mut providers = Providers::default();
    providers.insert(
        "sandbox",
        Registered {
            provider: Arc::new(Sandbox {
                size: 128,
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
        catalogue,
        store,
        providers,
        bus: Bus::default(),
        jobs: JobSettings {
            poll: Duration::from_millis(20),
            ..JobSettings::default()
        },
        png: pipeline::PngCompression::Balanced,
    });
    let idle_rss = rss_kib();
    let t = Instant::now();
    for i in 0..count {
        let mut r = GenerationRequest::new(format!("benchmark prompt number {i}"));
        r.upscale = UpscaleSelection::all();
        app.submit(r).await?;
    }
    let enqueue = t.elapsed();
    run_workers(app.clone(), concurrency, Stop::UntilIdle).await;
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

fn tempfile_dir() -> Result<std::path::PathBuf, AppError> {
    let dir = std::env::temp_dir().join(format!("atelier-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(dir)
}
