//! Thumbnails: a fast convolution downscale and lossy WebP (libwebp; `image` only writes
//! lossless WebP, several times larger for rendered images).

use std::borrow::Cow;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{PipelineError, Pixels};

const WEBP_QUALITY: f32 = 80.0;
/// libwebp's effort (0–6). On rendered 512 px thumbnails method 1 is as small as the default
/// 4 (within 3 %) in a quarter of the time (5 ms against 20 ms here; see BENCHMARKS.md).
const WEBP_METHOD: i32 = 1;

/// Scales `src` down so that its longest side is at most `max_side`; never scales up (a
/// small picture is its own thumbnail, borrowed rather than copied).
pub fn shrink(src: &Pixels, max_side: u32) -> Result<Cow<'_, Pixels>, PipelineError> {
    let longest = src.width.max(src.height);
    if longest <= max_side {
        return Ok(Cow::Borrowed(src));
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let w = ((f64::from(src.width) * scale).round() as u32).max(1);
    let h = ((f64::from(src.height) * scale).round() as u32).max(1);
    let pixel_type = if src.channels == 4 {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let view = ImageRef::new(src.width, src.height, &src.data, pixel_type)
        .map_err(|e| PipelineError::Encode(format!("thumbnail source: {e}")))?;
    let mut dst = Image::new(w, h, pixel_type);
    // Bilinear over the whole source footprint: smooth enough at 1/4 scale, and several times
    // cheaper than Lanczos on 2048² inputs.
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&view, &mut dst, &options)
        .map_err(|e| PipelineError::Encode(format!("thumbnail resize: {e}")))?;
    Ok(Cow::Owned(Pixels {
        width: w,
        height: h,
        channels: src.channels,
        data: dst.into_vec(),
    }))
}

/// Lossy WebP at quality 80.
pub fn encode_webp(p: &Pixels) -> Result<Vec<u8>, PipelineError> {
    let encoder = if p.channels == 4 {
        webp::Encoder::from_rgba(&p.data, p.width, p.height)
    } else {
        webp::Encoder::from_rgb(&p.data, p.width, p.height)
    };
    let mut config = webp::WebPConfig::new()
        .map_err(|()| PipelineError::Encode("libwebp has no default configuration".into()))?;
    config.quality = WEBP_QUALITY;
    config.method = WEBP_METHOD;
    let out = encoder
        .encode_advanced(&config)
        .map_err(|e| PipelineError::Encode(format!("WebP encoding failed: {e:?}")))?;
    if out.is_empty() {
        return Err(PipelineError::Encode(
            "WebP encoder produced nothing".into(),
        ));
    }
    Ok(out.to_vec())
}
