//! The grid pipeline alone: decode, hash, split, encode, thumbnails and palettes of one
//! provider-like 2048² grid, repeated.

use std::path::Path;
use std::time::Instant;

use super::median;
use crate::error::AppError;
use crate::pipeline;
use crate::providers::sandbox::draw;

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

pub fn bench_pipeline(
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
