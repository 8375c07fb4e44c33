//! The image pipeline, run on every image that arrives (from a provider or an import):
//! signature check and full decode (corrupt data never reaches storage), SHA-256, the 2×2 split
//! of a grid, WebP thumbnails, dimensions/format/size, and a five-colour palette.
//!
//! Pure and synchronous: callers run it on a blocking thread. Work is spread over the
//! machine's cores with scoped threads where it pays (hashing beside decoding, and the five
//! encode-thumbnail-palette tasks of a grid).

mod decode;
mod palette;
mod thumbnail;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::domain::Rgb;
use crate::store::sha256_hex;

pub use decode::{Format, Pixels, PngCompression, decode};

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PipelineError {
    /// The bytes are not an image we accept, or do not decode in full.
    #[error("{0}")]
    Integrity(String),
    #[error("a grid must be at least 2×2 pixels with even sides; this one is {0}×{1}")]
    NotAGrid(u32, u32),
    #[error("image encoding failed: {0}")]
    Encode(String),
}

/// One image ready to store: its bytes and everything the catalogue records about it.
#[derive(Clone, Debug)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub sha256: String,
    /// Lossy WebP, longest side at most [`THUMBNAIL_MAX_SIDE`].
    pub thumbnail: Vec<u8>,
    pub palette: Vec<Rgb>,
    pub dominant: Rgb,
}

/// A grid and its four quadrants (top-left, top-right, bottom-left, bottom-right).
#[derive(Clone, Debug)]
pub struct ProcessedGrid {
    pub grid: Processed,
    pub quadrants: Vec<Processed>,
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Below this many bytes (or pixels), a second thread costs more than it saves.
const PARALLEL_FROM: usize = 1 << 20;

/// Decodes and hashes at once: hashing 8 MB is about as long as a tenth of the decode.
fn verify_and_hash(bytes: &[u8]) -> Result<(Pixels, String), PipelineError> {
    if threads() < 2 || bytes.len() < PARALLEL_FROM {
        let pixels = decode(bytes)?;
        return Ok((pixels, sha256_hex(bytes)));
    }
    std::thread::scope(|s| {
        let hash = s.spawn(|| sha256_hex(bytes));
        let pixels = decode(bytes)?;
        let sha = hash
            .join()
            .map_err(|_| PipelineError::Encode("hashing thread panicked".into()))?;
        Ok((pixels, sha))
    })
}

/// Thumbnail and palette of decoded pixels.
fn describe(pixels: &Pixels) -> Result<(Vec<u8>, Vec<Rgb>, Rgb), PipelineError> {
    let thumb = thumbnail::shrink(pixels, THUMBNAIL_MAX_SIDE)?;
    let webp = thumbnail::encode_webp(&thumb)?;
    let (palette, dominant) = palette::palette(&thumb, 5);
    Ok((webp, palette, dominant))
}

/// Processes a single image: verified, measured, described; stored as it came.
pub fn process_image(bytes: Vec<u8>) -> Result<Processed, PipelineError> {
    let format = Format::sniff(&bytes)?;
    let (pixels, sha256) = verify_and_hash(&bytes)?;
    let (thumbnail, palette, dominant) = describe(&pixels)?;
    Ok(Processed {
        format,
        width: pixels.width,
        height: pixels.height,
        sha256,
        thumbnail,
        palette,
        dominant,
        bytes,
    })
}

/// Processes a 2×2 grid: the grid as it came, and each quadrant encoded as a PNG of its own.
pub fn process_grid(bytes: Vec<u8>, png: PngCompression) -> Result<ProcessedGrid, PipelineError> {
    let format = Format::sniff(&bytes)?;
    let (pixels, sha256) = verify_and_hash(&bytes)?;
    if pixels.width < 2 || pixels.height < 2 || pixels.width % 2 != 0 || pixels.height % 2 != 0 {
        return Err(PipelineError::NotAGrid(pixels.width, pixels.height));
    }
    // Task 0 describes the grid; tasks 1–4 cut, encode and describe one quadrant each.
    let next = AtomicUsize::new(0);
    let work = || -> Result<Vec<(usize, Processed)>, PipelineError> {
        let mut done = Vec::new();
        loop {
            let task = next.fetch_add(1, Ordering::Relaxed);
            match task {
                0 => {
                    let (thumbnail, palette, dominant) = describe(&pixels)?;
                    done.push((
                        0,
                        Processed {
                            bytes: Vec::new(),
                            format,
                            width: pixels.width,
                            height: pixels.height,
                            sha256: sha256.clone(),
                            thumbnail,
                            palette,
                            dominant,
                        },
                    ));
                }
                1..=4 => done.push((task, quadrant(&pixels, task - 1, png)?)),
                _ => return Ok(done),
            }
        }
    };
    let pixels_total = pixels.width as usize * pixels.height as usize;
    let mut results = if threads() < 2 || pixels_total < PARALLEL_FROM {
        work()?
    } else {
        std::thread::scope(|s| {
            let other = s.spawn(work);
            let mut mine = work()?;
            let theirs = other
                .join()
                .map_err(|_| PipelineError::Encode("pipeline thread panicked".into()))??;
            mine.extend(theirs);
            Ok::<_, PipelineError>(mine)
        })?
    };
    results.sort_by_key(|(task, _)| *task);
    let mut processed = results.into_iter().map(|(_, p)| p);
    let mut grid = processed
        .next()
        .ok_or_else(|| PipelineError::Encode("grid task lost".into()))?;
    grid.bytes = bytes;
    Ok(ProcessedGrid {
        grid,
        quadrants: processed.collect(),
    })
}

/// Cuts quadrant `q` (0–3, row-major) out of a grid and processes it as a PNG of its own.
fn quadrant(grid: &Pixels, q: usize, png: PngCompression) -> Result<Processed, PipelineError> {
    let (w, h) = (grid.width / 2, grid.height / 2);
    let (x, y) = ((q as u32 % 2) * w, (q as u32 / 2) * h);
    let pixels = grid.crop(x, y, w, h);
    let bytes = pixels.encode_png_with(png)?;
    let sha256 = sha256_hex(&bytes);
    let (thumbnail, palette, dominant) = describe(&pixels)?;
    Ok(Processed {
        bytes,
        format: Format::Png,
        width: w,
        height: h,
        sha256,
        thumbnail,
        palette,
        dominant,
    })
}

#[cfg(test)]
mod tests;
