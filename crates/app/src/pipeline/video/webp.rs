//! An animated WebP clip, read with `image-webp` (the decoder the `image` crate uses): its
//! canvas, frames and their durations from the container, then every frame decoded, since
//! the format has no index to check frames against; the first is the poster.

use std::io::Cursor;

use image_webp::{DecodingError, WebPDecoder};

use super::{Limits, Pixels, Read, VideoError, WEBP_PIXEL_BUDGET, check_frame, check_frames};
use crate::domain::Clip;

fn decode_error(e: DecodingError) -> VideoError {
    match e {
        DecodingError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            VideoError::Truncated("a frame ends past the end of the file".into())
        }
        DecodingError::MemoryLimitExceeded => {
            VideoError::Limit("decoding a frame needs more memory than the limits allow".into())
        }
        e => VideoError::Malformed(format!("it does not decode as WebP ({e})")),
    }
}

pub(super) fn read(bytes: &[u8], limits: &Limits) -> Result<Read, VideoError> {
    // The RIFF header's length is the file's: shorter is a cut download; bytes after it are
    // not part of the clip and are not stored.
    let riff = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let end = usize::try_from(u64::from(riff) + 8).unwrap_or(usize::MAX);
    if end > bytes.len() {
        return Err(VideoError::Truncated(format!(
            "its header says {end} bytes, the file has {}",
            bytes.len()
        )));
    }
    let bytes = &bytes[..end];
    let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(decode_error)?;
    if !decoder.is_animated() {
        return Err(VideoError::Inconsistent(
            "it is a still WebP picture, not an animation".into(),
        ));
    }
    let (width, height) = decoder.dimensions();
    check_frame(limits, width, height)?;
    let frames = check_frames(u64::from(decoder.num_frames()))?;
    let pixels = u64::from(width) * u64::from(height);
    let budget = limits.max_pixels.saturating_mul(WEBP_PIXEL_BUDGET);
    if pixels.saturating_mul(u64::from(frames)) > budget {
        return Err(VideoError::Limit(format!(
            "the clip's {frames} frames of {width}×{height} are over the limit of {} megapixels \
             in all ({WEBP_PIXEL_BUDGET} times [limits] max_megapixels)",
            budget / 1_000_000
        )));
    }
    decoder.set_memory_limit(
        usize::try_from(limits.max_metadata_bytes.saturating_add(pixels * 8)).unwrap_or(usize::MAX),
    );
    let declared = decoder.loop_duration();
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| VideoError::Limit("its canvas does not fit in memory".into()))?;
    let mut canvas = vec![0; size];
    let mut poster = None;
    let mut duration_ms = 0u64;
    for _ in 0..frames {
        duration_ms += u64::from(decoder.read_frame(&mut canvas).map_err(decode_error)?);
        if poster.is_none() {
            poster = Some(canvas.clone());
        }
    }
    if duration_ms != declared {
        return Err(VideoError::Inconsistent(format!(
            "its frames' headers say {declared} ms, its frames last {duration_ms} ms"
        )));
    }
    let data = poster.ok_or_else(|| VideoError::Malformed("it has no frame".into()))?;
    let channels = if decoder.has_alpha() { 4 } else { 3 };
    Ok(Read {
        clip: Clip {
            duration_ms,
            frames,
            codec: if decoder.is_lossy() { "vp8" } else { "vp8l" }.into(),
        },
        width,
        height,
        poster: Pixels {
            width,
            height,
            channels,
            data,
        },
        end,
    })
}
