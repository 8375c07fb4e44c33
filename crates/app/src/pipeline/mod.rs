//! The image pipeline, run on every image that arrives (from a provider or an import):
//! signature check and full decode (corrupt data never reaches storage), SHA-256, the 2×2 split
//! of a grid, WebP thumbnails, dimensions/format/size, and a five-colour palette; clips
//! (`video/`) are verified and given the first frame's thumbnail and palette.
//!
//! Pure and synchronous: callers run it on a blocking thread. Work is spread over the
//! machine's cores with scoped threads where it pays (hashing beside decoding; a grid's
//! quadrants beside its decoding, `grid.rs`).

mod decode;
mod deflate;
mod filter;
mod grid;
mod limits;
mod palette;
mod png;
mod thumbnail;
mod video;

use crate::domain::{Clip, Rgb};
use crate::store::sha256_hex;

pub use decode::{Format, Pixels, decode, decode_within};
pub use grid::{process_grid, process_grid_within};
pub use limits::{
    DEFAULT_MAX_FILE_MIB, DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_METADATA_MIB, Limits, file_too_large,
};
pub use png::PngCompression;
pub use video::{ClipFormat, MAX_FRAMES, VideoError, WEBP_PIXEL_BUDGET, process_clip_within};

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PipelineError {
    /// The bytes are not an image we accept, or do not decode in full.
    #[error("{0}")]
    Integrity(String),
    /// The image is over one of the [`Limits`]; the message names it and how to change it.
    #[error("{0}")]
    Limit(String),
    #[error("a grid must be at least 2×2 pixels with even sides; this one is {0}×{1}")]
    NotAGrid(u32, u32),
    #[error("image encoding failed: {0}")]
    Encode(String),
    /// A clip refused: malformed, truncated, contradicting itself, unsupported or too large.
    #[error(transparent)]
    Video(#[from] VideoError),
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
    /// A clip's length, frames and codec (its thumbnail and palette are its first frame's);
    /// `None` for a picture.
    pub clip: Option<Clip>,
}

/// A grid and its four quadrants (top-left, top-right, bottom-left, bottom-right).
#[derive(Clone, Debug)]
pub struct ProcessedGrid {
    pub grid: Processed,
    pub quadrants: Vec<Processed>,
}

/// The cores this process may use, read once: `available_parallelism` reads the cgroup's
/// files on every call (a dozen system calls), and the engine asks for every image.
pub(crate) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// Below this many bytes (or pixels), a second thread costs more than it saves.
pub(super) const PARALLEL_FROM: usize = 1 << 20;

/// Decodes and hashes at once: hashing 8 MB is about as long as a tenth of the decode.
fn verify_and_hash(bytes: &[u8], limits: &Limits) -> Result<(Pixels, String), PipelineError> {
    if bytes.len() < PARALLEL_FROM || threads() < 2 {
        let pixels = decode_within(bytes, limits)?;
        return Ok((pixels, sha256_hex(bytes)));
    }
    std::thread::scope(|s| {
        let hash = s.spawn(|| sha256_hex(bytes));
        let pixels = decode_within(bytes, limits)?;
        let sha = hash
            .join()
            .map_err(|_| PipelineError::Encode("hashing thread panicked".into()))?;
        Ok((pixels, sha))
    })
}

/// What the pipeline says of decoded pixels besides their size.
struct Described<'a> {
    /// Lossy WebP thumbnail.
    thumbnail: Vec<u8>,
    palette: Vec<Rgb>,
    dominant: Rgb,
    /// The thumbnail's pixels: the pixels themselves when small enough.
    thumb: std::borrow::Cow<'a, Pixels>,
}

/// Thumbnail and palette of decoded pixels.
fn describe(pixels: &Pixels) -> Result<Described<'_>, PipelineError> {
    let thumb = thumbnail::shrink(pixels, THUMBNAIL_MAX_SIDE)?;
    let thumbnail = thumbnail::encode_webp(&thumb)?;
    let (palette, dominant) = palette::palette(&thumb, 5);
    Ok(Described {
        thumbnail,
        palette,
        dominant,
        thumb,
    })
}

/// [`process_image_within`] with the default limits.
pub fn process_image(bytes: Vec<u8>) -> Result<Processed, PipelineError> {
    process_image_within(bytes, &Limits::default())
}

/// Processes a single image: verified, measured, described; stored as it came, up to the
/// image's end (bytes after it are dropped).
pub fn process_image_within(bytes: Vec<u8>, limits: &Limits) -> Result<Processed, PipelineError> {
    let (format, bytes) = image_only(bytes)?;
    let (pixels, sha256) = verify_and_hash(&bytes, limits)?;
    let Described {
        thumbnail,
        palette,
        dominant,
        ..
    } = describe(&pixels)?;
    Ok(Processed {
        format,
        width: pixels.width,
        height: pixels.height,
        sha256,
        thumbnail,
        palette,
        dominant,
        bytes,
        clip: None,
    })
}

/// The format, and the bytes without whatever follows the image's end.
fn image_only(mut bytes: Vec<u8>) -> Result<(Format, Vec<u8>), PipelineError> {
    let format = Format::sniff(&bytes)?;
    if let Some(end) = format.image_end(&bytes) {
        bytes.truncate(end);
    }
    Ok((format, bytes))
}

#[cfg(test)]
mod tests;
