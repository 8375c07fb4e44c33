//! Real clips drawn deterministically, for the sandbox and for the simulators of other
//! providers: the quadrant the sandbox would draw for the prompt and seed, sliding sideways
//! one step a frame under a light band that sweeps down, encoded as an H.264 MP4 (`OpenH264`'s
//! encoder, the library that decodes clips' first frames; muxed by `mp4_writer.rs`) or as an
//! animated WebP (libwebp's animation encoder, already built for thumbnails).

use super::draw;
use crate::pipeline::Pixels;
use crate::providers::VideoFormat;

/// How a clip is drawn.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClipSpec {
    pub format: VideoFormat,
    /// Side of the square frames, in pixels: even, 16 to 1024.
    pub side: u32,
    /// Frames, 1 to 240.
    pub frames: u32,
    /// Frames a second, 1 to 60.
    pub fps: u32,
}

/// Why a clip could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("a sandbox clip {0}")]
    Spec(String),
    #[error("encoding the sandbox clip failed: {0}")]
    Encode(String),
}

impl ClipSpec {
    /// Refuses sizes the encoders or the drawing cannot take, naming the allowed ranges.
    pub fn check(&self) -> Result<(), ClipError> {
        if !(16..=1024).contains(&self.side) || !self.side.is_multiple_of(2) {
            return Err(ClipError::Spec(format!(
                "side must be an even number from 16 to 1024, not {}",
                self.side
            )));
        }
        if !(1..=240).contains(&self.frames) {
            return Err(ClipError::Spec(format!(
                "has 1 to 240 frames, not {}",
                self.frames
            )));
        }
        if !(1..=60).contains(&self.fps) {
            return Err(ClipError::Spec(format!(
                "has 1 to 60 frames a second, not {}",
                self.fps
            )));
        }
        Ok(())
    }

    /// Milliseconds one frame lasts (the last rounding down, as the encoders do).
    pub fn frame_ms(&self) -> u32 {
        1000 / self.fps.max(1)
    }
}

/// The clip for `prompt` and `seed`: the same bytes every time.
pub fn draw_clip(prompt: &str, seed: u32, spec: &ClipSpec) -> Result<Vec<u8>, ClipError> {
    spec.check()?;
    let frames = frames(prompt, seed, spec);
    match spec.format {
        VideoFormat::Mp4 => encode_mp4(&frames, spec),
        VideoFormat::WebP => encode_webp(&frames, spec),
    }
}

/// The frames, RGB: the picture slides left by `side / frames` a frame (wrapping round) and
/// a light band moves down.
pub fn frames(prompt: &str, seed: u32, spec: &ClipSpec) -> Vec<Pixels> {
    let side = spec.side as usize;
    let base = draw::quadrant(prompt, seed, spec.side, 1);
    let channels = usize::from(base.channels);
    (0..spec.frames)
        .map(|k| {
            let shift = (k as usize * side / spec.frames as usize) % side;
            let band = k as usize * side / spec.frames as usize;
            let mut data = Vec::with_capacity(side * side * 3);
            for y in 0..side {
                let lit = y.abs_diff(band) < side / 16 + 1;
                for x in 0..side {
                    let at = (y * side + (x + shift) % side) * channels;
                    for c in 0..3 {
                        let v = base.data[at + c];
                        data.push(if lit { v / 2 + 128 } else { v });
                    }
                }
            }
            Pixels::rgb(spec.side, spec.side, data)
        })
        .collect()
}

fn encode_error(e: impl std::fmt::Display) -> ClipError {
    ClipError::Encode(e.to_string())
}

/// H.264 with `OpenH264` (one IDR frame, then P frames; no frame skipped), in an MP4.
#[allow(clippy::similar_names)] // the encoder and what it encoded
fn encode_mp4(frames: &[Pixels], spec: &ClipSpec) -> Result<Vec<u8>, ClipError> {
    use openh264::encoder::{Encoder, EncoderConfig, FrameRate, FrameType, RateControlMode};
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    // Every frame kept, at a fixed quality: with rate control on and frame skipping off,
    // OpenH264 warns on stderr at each clip (into the user's terminal).
    let config = EncoderConfig::new()
        .skip_frames(false)
        .rate_control_mode(RateControlMode::Off)
        .max_frame_rate(FrameRate::from_hz(spec.fps as f32));
    let mut encoder = Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
        .map_err(encode_error)?;
    let side = spec.side as usize;
    let mut track = super::mp4_writer::Track::new(spec.side, spec.side, spec.fps);
    for frame in frames {
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(&frame.data, (side, side)));
        let encoded = encoder.encode(&yuv).map_err(encode_error)?;
        let sync = matches!(encoded.frame_type(), FrameType::IDR | FrameType::I);
        let mut units = Vec::new();
        for l in 0..encoded.num_layers() {
            let Some(layer) = encoded.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                if let Some(unit) = layer.nal_unit(n) {
                    units.push(strip_start_code(unit).to_vec());
                }
            }
        }
        track.push(units, sync).map_err(ClipError::Encode)?;
    }
    track.finish().map_err(ClipError::Encode)
}

/// A NAL unit without the start code the encoder writes before it.
fn strip_start_code(unit: &[u8]) -> &[u8] {
    if unit.starts_with(&[0, 0, 0, 1]) {
        &unit[4..]
    } else if unit.starts_with(&[0, 0, 1]) {
        &unit[3..]
    } else {
        unit
    }
}

/// A lossy animated WebP with libwebp.
#[allow(clippy::similar_names)] // the encoder and what it encoded
fn encode_webp(frames: &[Pixels], spec: &ClipSpec) -> Result<Vec<u8>, ClipError> {
    let mut config =
        webp::WebPConfig::new().map_err(|()| encode_error("libwebp has no default config"))?;
    config.lossless = 0;
    config.quality = 75.0;
    let mut encoder = webp::AnimEncoder::new(spec.side, spec.side, &config);
    encoder.set_loop_count(0);
    let step = spec.frame_ms() as i32;
    for (k, frame) in frames.iter().enumerate() {
        encoder.add_frame(webp::AnimFrame::from_rgb(
            &frame.data,
            spec.side,
            spec.side,
            k as i32 * step,
        ));
    }
    let encoded = encoder
        .try_encode()
        .map_err(|e| encode_error(format!("{e:?}")))?;
    Ok(encoded.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: VideoFormat) -> ClipSpec {
        ClipSpec {
            format,
            side: 64,
            frames: 6,
            fps: 12,
        }
    }

    #[test]
    fn clips_repeat_for_the_same_prompt_and_seed_and_differ_otherwise() {
        for format in [VideoFormat::Mp4, VideoFormat::WebP] {
            let a = draw_clip("a tide", 7, &spec(format)).unwrap();
            assert_eq!(
                a,
                draw_clip("a tide", 7, &spec(format)).unwrap(),
                "{format}"
            );
            assert_ne!(
                a,
                draw_clip("a tide", 8, &spec(format)).unwrap(),
                "{format}"
            );
        }
    }

    #[test]
    fn frames_move() {
        let frames = frames("a tide", 1, &spec(VideoFormat::Mp4));
        assert_eq!(frames.len(), 6);
        assert!(frames.windows(2).all(|w| w[0].data != w[1].data));
    }

    #[test]
    fn bad_specs_are_refused_by_name() {
        for (side, frames, fps, word) in [
            (15, 4, 12, "side"),
            (2048, 4, 12, "side"),
            (64, 0, 12, "frames"),
            (64, 241, 12, "frames"),
            (64, 4, 0, "second"),
        ] {
            let bad = ClipSpec {
                format: VideoFormat::Mp4,
                side,
                frames,
                fps,
            };
            let e = draw_clip("x", 1, &bad).unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
    }
}
