//! Clips through the pipeline: the sandbox's MP4 and animated WebP measured, their posters
//! their first frames; and every kind of bad clip refused, in bounded time, with its typed
//! error.

use std::time::{Duration, Instant};

use super::*;
use crate::pipeline::{THUMBNAIL_MAX_SIDE, decode};
use crate::providers::VideoFormat;
use crate::providers::sandbox::{ClipSpec, clip::frames, draw_clip};

fn spec(format: VideoFormat) -> ClipSpec {
    ClipSpec {
        format,
        side: 96,
        frames: 12,
        fps: 12,
    }
}

fn mp4() -> Vec<u8> {
    draw_clip("a slow tide", 3, &spec(VideoFormat::Mp4)).unwrap()
}

fn webp() -> Vec<u8> {
    draw_clip("a slow tide", 3, &spec(VideoFormat::WebP)).unwrap()
}

/// Refused within a second, with `PipelineError::Video`.
fn refused(bytes: Vec<u8>, format: ClipFormat, limits: &Limits) -> VideoError {
    let started = Instant::now();
    let e = process_clip_within(bytes, format, limits).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused in bounded time"
    );
    match e {
        PipelineError::Video(v) => v,
        other => panic!("not a video error: {other:?}"),
    }
}

/// The position of the type of the box `kind`: the last such four bytes (the sandbox writes
/// `moov` last; `avc1` is also a brand in `ftyp`), or the first for `mdat`.
#[allow(clippy::trivially_copy_pass_by_ref)] // box types are read as `b"...."` literals
fn find(bytes: &[u8], kind: &[u8; 4]) -> usize {
    let mut at = bytes.windows(4);
    if kind == b"mdat" {
        at.position(|w| w == kind)
    } else {
        at.rposition(|w| w == kind)
    }
    .unwrap_or_else(|| panic!("no {kind:?} box"))
}

fn mean(p: &Pixels) -> [f64; 3] {
    let c = usize::from(p.channels);
    let n = (p.data.len() / c) as f64;
    let mut sum = [0.0; 3];
    for px in p.data.chunks(c) {
        for (total, v) in sum.iter_mut().zip(px) {
            *total += f64::from(*v);
        }
    }
    sum.map(|s| s / n)
}

/// The thumbnail's mean colour is the first frame's, within compression's error.
fn same_colours(poster: &Pixels, frame: &Pixels) {
    let (a, b) = (mean(poster), mean(frame));
    assert!(
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 12.0),
        "poster {a:?} vs first frame {b:?}"
    );
}

#[test]
fn an_mp4_clip_is_measured_and_its_first_frame_is_the_poster() {
    let bytes = mp4();
    let p = process_clip_within(bytes.clone(), ClipFormat::Mp4, &Limits::default()).unwrap();
    let clip = p.clip.clone().expect("a clip");
    assert_eq!((p.format, p.width, p.height), (Format::Mp4, 96, 96));
    assert_eq!(clip.frames, 12);
    assert_eq!(clip.duration_ms, 1000);
    assert_eq!(clip.codec, "h264");
    assert_eq!(p.bytes, bytes, "stored as delivered");
    assert_eq!(p.sha256, crate::store::sha256_hex(&bytes));
    // The poster is the first frame: its thumbnail's colours are the drawn frame's.
    let thumb = decode(&p.thumbnail).unwrap();
    assert!(thumb.width <= THUMBNAIL_MAX_SIDE && thumb.width == 96);
    let drawn = &frames("a slow tide", 3, &spec(VideoFormat::Mp4))[0];
    same_colours(&thumb, drawn);
}

#[test]
fn an_animated_webp_clip_is_measured_and_its_first_frame_is_the_poster() {
    let bytes = webp();
    let p = process_clip_within(bytes.clone(), ClipFormat::WebP, &Limits::default()).unwrap();
    let clip = p.clip.clone().expect("a clip");
    assert_eq!((p.format, p.width, p.height), (Format::Webp, 96, 96));
    assert_eq!(clip.frames, 12);
    assert!(
        (11 * 83..=1000).contains(&clip.duration_ms),
        "{}",
        clip.duration_ms
    );
    assert_eq!(clip.codec, "vp8");
    assert_eq!(p.bytes, bytes);
    let thumb = decode(&p.thumbnail).unwrap();
    let drawn = &frames("a slow tide", 3, &spec(VideoFormat::WebP))[0];
    same_colours(&thumb, drawn);
}

#[test]
fn bytes_that_are_not_the_declared_container_are_refused() {
    let limits = Limits::default();
    assert_eq!(
        refused(Vec::new(), ClipFormat::Mp4, &limits),
        VideoError::Empty
    );
    let e = refused(webp(), ClipFormat::Mp4, &limits);
    assert!(matches!(e, VideoError::NotWhatItSays { .. }), "{e}");
    assert!(e.is_permanent());
    let e = refused(
        b"hello, not a clip at all".to_vec(),
        ClipFormat::WebP,
        &limits,
    );
    assert!(e.to_string().contains("neither an MP4 nor a WebP"), "{e}");
    // A still WebP picture is not a clip.
    let still = crate::pipeline::Pixels::rgb(32, 32, vec![90; 32 * 32 * 3]);
    let still = crate::pipeline::thumbnail::encode_webp(&still).unwrap();
    let e = refused(still, ClipFormat::WebP, &limits);
    assert!(matches!(e, VideoError::Inconsistent(_)), "{e}");
}

#[test]
fn truncated_clips_are_refused_at_every_length() {
    let limits = Limits::default();
    for (bytes, format) in [(mp4(), ClipFormat::Mp4), (webp(), ClipFormat::WebP)] {
        for cut in [
            12,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 9,
            bytes.len() - 1,
        ] {
            let e = refused(bytes[..cut].to_vec(), format, &limits);
            assert!(
                matches!(e, VideoError::Truncated(_) | VideoError::Malformed(_)),
                "{format:?} cut at {cut}: {e}"
            );
            assert!(!e.is_permanent(), "a cut download is fetched again");
        }
    }
}

#[test]
fn garbage_inside_a_valid_container_is_refused() {
    let limits = Limits::default();
    // The frames' data overwritten: the container parses, the first frame does not decode.
    let mut bytes = mp4();
    let mdat = find(&bytes, b"mdat") + 4;
    for b in &mut bytes[mdat..mdat + 400] {
        *b = 0xff;
    }
    let e = refused(bytes, ClipFormat::Mp4, &limits);
    assert!(matches!(e, VideoError::Malformed(_)), "{e}");
    // The WebP's first frame's data overwritten.
    let mut bytes = webp();
    let vp8 = find(&bytes, b"VP8 ") + 8;
    for b in &mut bytes[vp8..vp8 + 64] {
        *b = 0x5a;
    }
    let e = refused(bytes, ClipFormat::WebP, &limits);
    assert!(matches!(e, VideoError::Malformed(_)), "{e}");
}

#[test]
fn clips_whose_headers_lie_are_refused() {
    let limits = Limits::default();
    // The sample entry says 320 pixels wide; the H.264 stream codes 96.
    let mut bytes = mp4();
    let avc1 = find(&bytes, b"avc1") + 4 + 24;
    bytes[avc1..avc1 + 2].copy_from_slice(&320u16.to_be_bytes());
    let e = refused(bytes, ClipFormat::Mp4, &limits);
    assert!(matches!(e, VideoError::Inconsistent(_)), "{e}");
    assert!(e.to_string().contains("320"), "{e}");
    // The media header says an hour; the frames last a second.
    let mut bytes = mp4();
    let mdhd = find(&bytes, b"mdhd") + 4 + 16;
    bytes[mdhd..mdhd + 4].copy_from_slice(&(12_000u32 * 3600).to_be_bytes());
    let e = refused(bytes, ClipFormat::Mp4, &limits);
    assert!(e.to_string().contains("lasts"), "{e}");
    // The durations table counts more frames than the chunks hold.
    let mut bytes = mp4();
    let stts = find(&bytes, b"stts") + 4 + 8;
    bytes[stts..stts + 4].copy_from_slice(&13u32.to_be_bytes());
    let e = refused(bytes, ClipFormat::Mp4, &limits);
    assert!(matches!(e, VideoError::Inconsistent(_)), "{e}");
    // A chunk offset past the end of the file.
    let mut bytes = mp4();
    let stco = find(&bytes, b"stco") + 4 + 8;
    bytes[stco..stco + 4].copy_from_slice(&(u32::MAX - 8).to_be_bytes());
    let e = refused(bytes, ClipFormat::Mp4, &limits);
    assert!(matches!(e, VideoError::Truncated(_)), "{e}");
}

#[test]
fn huge_clips_are_refused_before_they_are_decoded() {
    let limits = Limits::default();
    // 60000×60000 frames declared: over max_megapixels.
    let mut bytes = mp4();
    let avc1 = find(&bytes, b"avc1") + 4 + 24;
    bytes[avc1..avc1 + 4].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]);
    let e = refused(bytes, ClipFormat::Mp4, &limits);
    assert!(matches!(e, VideoError::Limit(_)), "{e}");
    assert!(e.is_permanent());
    // A billion samples in one chunk: refused by count, nothing allocated for them.
    let mut bytes = mp4();
    let stsc = find(&bytes, b"stsc") + 4 + 8 + 4;
    bytes[stsc..stsc + 4].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    let e = refused(bytes, ClipFormat::Mp4, &limits);
    assert!(matches!(e, VideoError::Limit(_)), "{e}");
    // An animated WebP whose frames together are over the budget.
    let tight = Limits {
        max_pixels: 96 * 96 / 2,
        ..Limits::default()
    };
    let e = refused(webp(), ClipFormat::WebP, &tight);
    assert!(matches!(e, VideoError::Limit(_)), "{e}");
    let budget = Limits {
        max_pixels: 96 * 96,
        ..Limits::default()
    };
    let long = draw_clip(
        "long",
        1,
        &ClipSpec {
            format: VideoFormat::WebP,
            side: 96,
            frames: u32::try_from(WEBP_PIXEL_BUDGET).unwrap() + 1,
            fps: 12,
        },
    )
    .unwrap();
    let e = refused(long, ClipFormat::WebP, &budget);
    assert!(e.to_string().contains("in all"), "{e}");
}

#[test]
fn another_codec_is_refused_as_unsupported() {
    let mut bytes = mp4();
    let avc1 = find(&bytes, b"avc1");
    bytes[avc1..avc1 + 4].copy_from_slice(b"hvc1");
    let e = refused(bytes, ClipFormat::Mp4, &Limits::default());
    assert!(
        matches!(e, VideoError::Unsupported(_) | VideoError::Malformed(_)),
        "{e}"
    );
}

#[test]
fn a_download_cut_short_does_not_look_complete() {
    use crate::pipeline::Format;
    for whole in [mp4(), webp()] {
        assert!(Format::looks_complete(&whole));
        for cut in [whole.len() - 1, whole.len() / 2, 12] {
            assert!(!Format::looks_complete(&whole[..cut]), "{cut} bytes");
        }
    }
}
