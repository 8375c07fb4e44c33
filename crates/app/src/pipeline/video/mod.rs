//! Clips, verified before they are stored: an MP4 (H.264) or an animated WebP is parsed
//! (dimensions, frames, duration, codec), its numbers are checked against each other and
//! against the file's length, and its first frame is decoded for the poster thumbnail and the
//! palette. A file that is malformed, truncated, over a limit or that says one thing in its
//! header and another in its frames is refused with a [`VideoError`] naming what is wrong.
//!
//! Bounded: the file is in memory already (held to `max_file_mib` where it arrived), the
//! container's tables are checked against its length before they are walked, a clip has at
//! most [`MAX_FRAMES`] frames, each frame is held to `max_megapixels`, and an animated WebP,
//! whose frames are all decoded, to [`WEBP_PIXEL_BUDGET`] times that in all.

mod avc;
mod mp4;
mod webp;

use super::{Described, Format, Limits, PipelineError, Pixels, Processed, describe};
use crate::domain::Clip;
use crate::store::sha256_hex;

/// Frames a clip may have: ten minutes at 24 frames a second.
pub const MAX_FRAMES: u32 = 14_400;

/// An animated WebP's frames are all decoded (its format has no index to check them
/// against): their pixels together may be this many times `max_megapixels`.
pub const WEBP_PIXEL_BUDGET: u64 = 16;

/// The container a clip arrives in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClipFormat {
    /// An MP4 (ISO base media file) with one H.264 video track.
    Mp4,
    /// An animated WebP.
    WebP,
}

impl ClipFormat {
    fn name(self) -> &'static str {
        match self {
            Self::Mp4 => "an MP4",
            Self::WebP => "an animated WebP",
        }
    }

    /// What the first bytes say the file is.
    fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.get(4..8) == Some(b"ftyp") {
            Some(Self::Mp4)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else {
            None
        }
    }
}

/// Why a clip is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VideoError {
    #[error("the clip is empty")]
    Empty,
    /// Its bytes are not the container it was delivered as.
    #[error("the clip was delivered as {declared} but its bytes are {found}")]
    NotWhatItSays {
        declared: &'static str,
        found: &'static str,
    },
    /// It ends before the data its container points at.
    #[error("the clip is truncated: {0}")]
    Truncated(String),
    /// Its container or its first frame does not parse.
    #[error("the clip is malformed: {0}")]
    Malformed(String),
    /// Its header and its frames disagree (dimensions, frame count, duration).
    #[error("the clip contradicts itself: {0}")]
    Inconsistent(String),
    /// Well formed, but not something Atelier stores (another codec, a fragmented MP4).
    #[error("the clip is not supported: {0}")]
    Unsupported(String),
    /// Over one of the limits; the message says which.
    #[error("{0}")]
    Limit(String),
}

impl VideoError {
    /// The same file would be refused again: retrying the delivery cannot mend it. A
    /// truncated or malformed file may be a bad download, fetched again like a corrupt
    /// picture.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::NotWhatItSays { .. } | Self::Unsupported(_) | Self::Limit(_)
        )
    }
}

/// What a container reader finds: the clip's numbers and its first frame.
struct Read {
    clip: Clip,
    width: u32,
    height: u32,
    poster: Pixels,
    /// The bytes to store: the file up to the container's end.
    end: usize,
}

/// Verifies a clip delivered as `format`, measures it and makes its poster thumbnail.
pub fn process_clip_within(
    mut bytes: Vec<u8>,
    format: ClipFormat,
    limits: &Limits,
) -> Result<Processed, PipelineError> {
    if bytes.is_empty() {
        return Err(VideoError::Empty.into());
    }
    let found = ClipFormat::sniff(&bytes);
    if found != Some(format) {
        return Err(VideoError::NotWhatItSays {
            declared: format.name(),
            found: found.map_or("neither an MP4 nor a WebP", ClipFormat::name),
        }
        .into());
    }
    let read = match format {
        ClipFormat::Mp4 => mp4::read(&bytes, limits)?,
        ClipFormat::WebP => webp::read(&bytes, limits)?,
    };
    if (read.poster.width, read.poster.height) != (read.width, read.height) {
        return Err(VideoError::Inconsistent(format!(
            "the container says {}×{}, its first frame is {}×{}",
            read.width, read.height, read.poster.width, read.poster.height
        ))
        .into());
    }
    bytes.truncate(read.end);
    let sha256 = sha256_hex(&bytes);
    let Described {
        thumbnail,
        palette,
        dominant,
        ..
    } = describe(&read.poster)?;
    Ok(Processed {
        format: match format {
            ClipFormat::Mp4 => Format::Mp4,
            ClipFormat::WebP => Format::Webp,
        },
        width: read.width,
        height: read.height,
        sha256,
        thumbnail,
        palette,
        dominant,
        bytes,
        clip: Some(read.clip),
    })
}

/// Refuses a frame size over `max_megapixels`, in the clip's words.
fn check_frame(limits: &Limits, width: u32, height: u32) -> Result<(), VideoError> {
    if width == 0 || height == 0 {
        return Err(VideoError::Malformed(format!(
            "its frames are {width}×{height} pixels"
        )));
    }
    limits
        .check_pixels(width, height)
        .map_err(|e| VideoError::Limit(format!("a frame of the clip is too large: {e}")))
}

/// Refuses more than [`MAX_FRAMES`] frames.
fn check_frames(frames: u64) -> Result<u32, VideoError> {
    if frames == 0 {
        return Err(VideoError::Malformed("it has no frame".into()));
    }
    u32::try_from(frames)
        .ok()
        .filter(|f| *f <= MAX_FRAMES)
        .ok_or_else(|| {
            VideoError::Limit(format!(
                "the clip has {frames} frames, over the limit of {MAX_FRAMES}"
            ))
        })
}

#[cfg(test)]
mod tests;
