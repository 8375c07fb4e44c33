//! The limits every image is held to before it is decoded: its pixels, and the memory its
//! decoder may take besides them. Their errors name the configuration key that changes them.

use super::PipelineError;

/// What an image may cost to decode. Set from `[limits]` in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Width × height of one decoded image.
    pub max_pixels: u64,
    /// Bytes a decoder may allocate besides the pixels: embedded colour profiles (PNG `iCCP`
    /// inflates), text chunks, row buffers.
    pub max_metadata_bytes: u64,
}

/// Defaults, in the configuration's units.
pub const DEFAULT_MAX_MEGAPIXELS: u64 = 40;
pub const DEFAULT_MAX_METADATA_MIB: u64 = 16;
pub const DEFAULT_MAX_FILE_MIB: u64 = 64;

const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_MEGAPIXELS * 1_000_000,
            max_metadata_bytes: DEFAULT_MAX_METADATA_MIB * MIB,
        }
    }
}

impl Limits {
    /// Refuses an image larger than `max_pixels`, before anything is allocated for it.
    pub fn check_pixels(&self, width: u32, height: u32) -> Result<(), PipelineError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels <= self.max_pixels {
            return Ok(());
        }
        Err(PipelineError::Limit(format!(
            "the image is {width}×{height} ({:.1} megapixels), over the limit of {} megapixels \
             ({})",
            pixels as f64 / 1e6,
            self.max_pixels as f64 / 1e6,
            how_to_change("max_megapixels")
        )))
    }

    /// The error of a decoder that wanted more memory besides the pixels than allowed.
    pub fn metadata_exceeded(&self, format: &str) -> PipelineError {
        PipelineError::Limit(format!(
            "decoding the {format} needs more than {} MiB besides its pixels (usually an \
             embedded colour profile or text that inflates to an extreme size), over the limit \
             ({})",
            self.max_metadata_bytes / MIB,
            how_to_change("max_metadata_mib")
        ))
    }

    /// The `png` crate's limit: everything it allocates itself (the caller's pixel buffer is
    /// not counted, and is held to `max_pixels` instead).
    pub(super) fn png(&self) -> png::Limits {
        png::Limits {
            bytes: usize::try_from(self.max_metadata_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// The error of a file or download over the size limit.
pub fn file_too_large(what: &str, size: Option<u64>, max_bytes: u64) -> String {
    let size = size.map_or_else(String::new, |s| {
        format!(" ({:.1} MiB)", s as f64 / MIB as f64)
    });
    format!(
        "{what}{size} is larger than the limit of {} MiB on image files ({})",
        max_bytes / MIB,
        how_to_change("max_file_mib")
    )
}

fn how_to_change(key: &str) -> String {
    format!(
        "raise `{key}` in the `[limits]` section of the configuration, or set ATELIER_LIMITS__{}",
        key.to_uppercase()
    )
}
