//! An MP4 clip: its container parsed with `mp4parse` (Mozilla's parser, written for hostile
//! files), its one H.264 track's tables checked against each other and against the file's
//! length, and its first frame decoded with `OpenH264` for the poster.
// MP4's table names differ by one letter (`stsc`, `stco`, `stsz`); the variables keep them.
#![allow(clippy::similar_names)]

use std::io::Cursor;

use mp4parse::{CodecType, SampleEntry, Track, TrackType, VideoCodecSpecific};
use openh264::decoder::Decoder;

use super::avc::{AvcConfig, coded_size, sample_to_annex_b};
use super::{Limits, Pixels, Read, VideoError, check_frame, check_frames};
use crate::domain::Clip;

/// Samples fed to the decoder before it must have given the first frame.
const FIRST_FRAME_WITHIN: usize = 16;

fn parse_error(e: mp4parse::Error) -> VideoError {
    match e {
        mp4parse::Error::UnexpectedEOF => {
            VideoError::Truncated("the container ends inside a box".into())
        }
        mp4parse::Error::MoovMissing => {
            VideoError::Malformed("it has no movie header (moov box)".into())
        }
        mp4parse::Error::Unsupported(what) => VideoError::Unsupported(what.to_owned()),
        mp4parse::Error::OutOfMemory => {
            VideoError::Limit("its container's tables do not fit in memory".into())
        }
        e => VideoError::Malformed(format!("its container does not parse ({e})")),
    }
}

pub(super) fn read(bytes: &[u8], limits: &Limits) -> Result<Read, VideoError> {
    let context = mp4parse::read_mp4(&mut Cursor::new(bytes)).map_err(parse_error)?;
    if context.mvex.is_some() {
        return Err(VideoError::Unsupported(
            "a fragmented MP4 (its frames are in movie fragments); only whole MP4s are stored"
                .into(),
        ));
    }
    let track = context
        .tracks
        .iter()
        .find(|t| t.track_type == TrackType::Video)
        .ok_or_else(|| VideoError::Malformed("it has no video track".into()))?;
    let Some(SampleEntry::Video(entry)) = track.stsd.as_ref().and_then(|d| d.descriptions.first())
    else {
        return Err(VideoError::Malformed(
            "its video track has no video sample description".into(),
        ));
    };
    let avcc = match (&entry.codec_type, &entry.codec_specific) {
        (CodecType::H264, VideoCodecSpecific::AVCConfig(avcc)) => AvcConfig::parse(avcc)?,
        (CodecType::H264, _) => {
            return Err(VideoError::Malformed(
                "its H.264 track has no configuration (avcC)".into(),
            ));
        }
        (codec, _) => {
            return Err(VideoError::Unsupported(format!(
                "its video is {codec:?}; Atelier stores H.264 MP4s"
            )));
        }
    };
    let (width, height) = (u32::from(entry.width), u32::from(entry.height));
    check_frame(limits, width, height)?;
    // The decoder allocates for the size the parameter sets declare, not the container's.
    for sps in &avcc.sps {
        let (coded_w, coded_h) = coded_size(sps)?;
        check_frame(limits, coded_w, coded_h)?;
        if coded_w < width || coded_h < height || coded_w - width >= 32 || coded_h - height >= 32 {
            return Err(VideoError::Inconsistent(format!(
                "the container says {width}×{height}, its H.264 stream codes {coded_w}×{coded_h}"
            )));
        }
    }
    let samples = samples(track, bytes.len())?;
    let frames = check_frames(samples.len() as u64)?;
    let duration_ms = duration_ms(track, frames)?;
    let poster = first_frame(&avcc, bytes, &samples)?;
    Ok(Read {
        clip: Clip {
            duration_ms,
            frames,
            codec: "h264".into(),
        },
        width,
        height,
        poster,
        end: bytes.len(),
    })
}

/// Where one sample lies in the file.
struct Span {
    start: usize,
    end: usize,
}

/// Every sample's place, from the chunk offsets (`stco`), samples per chunk (`stsc`) and sizes
/// (`stsz`); each must lie within the file. Counted before anything is allocated for them.
fn samples(track: &Track, file_len: usize) -> Result<Vec<Span>, VideoError> {
    let missing = |table: &str| VideoError::Malformed(format!("its video track has no {table}"));
    let stsc = track
        .stsc
        .as_ref()
        .ok_or_else(|| missing("sample-to-chunk table"))?;
    let stco = track
        .stco
        .as_ref()
        .ok_or_else(|| missing("chunk offsets"))?;
    let stsz = track.stsz.as_ref().ok_or_else(|| missing("sample sizes"))?;
    let chunks = stco.offsets.len() as u64;
    // Samples per chunk, run by run: a run lasts until the next one's first chunk.
    let mut runs = Vec::new();
    let mut total = 0u64;
    for (i, run) in stsc.samples.iter().enumerate() {
        let first = u64::from(run.first_chunk);
        let next = stsc
            .samples
            .get(i + 1)
            .map_or(chunks + 1, |n| u64::from(n.first_chunk));
        if first == 0 || next < first || next > chunks + 1 {
            return Err(VideoError::Malformed(
                "its sample-to-chunk table points outside its chunks".into(),
            ));
        }
        total =
            total.saturating_add((next - first).saturating_mul(u64::from(run.samples_per_chunk)));
        runs.push((first, next, run.samples_per_chunk));
    }
    let count = check_frames(total)?;
    let sizes = &stsz.sample_sizes;
    if stsz.sample_size == 0 && sizes.len() as u64 != u64::from(count) {
        return Err(VideoError::Inconsistent(format!(
            "its chunks hold {count} samples, its size table lists {}",
            sizes.len()
        )));
    }
    let mut spans = Vec::with_capacity(count as usize);
    for (first, next, per_chunk) in runs {
        for chunk in first..next {
            let mut at = stco.offsets[(chunk - 1) as usize];
            for _ in 0..per_chunk {
                let size = if stsz.sample_size == 0 {
                    sizes[spans.len()]
                } else {
                    stsz.sample_size
                };
                let end = at.saturating_add(u64::from(size));
                if end > file_len as u64 {
                    return Err(VideoError::Truncated(format!(
                        "frame {} ends at byte {end}, past the file's {file_len} bytes",
                        spans.len() + 1
                    )));
                }
                spans.push(Span {
                    start: at as usize,
                    end: end as usize,
                });
                at = end;
            }
        }
    }
    Ok(spans)
}

/// The clip's length from its frames' durations (`stts`), checked against the track header's.
fn duration_ms(track: &Track, frames: u32) -> Result<u64, VideoError> {
    let timescale = track
        .timescale
        .map(|t| t.0)
        .filter(|t| *t > 0)
        .ok_or_else(|| VideoError::Malformed("its video track has no time scale".into()))?;
    let stts = track
        .stts
        .as_ref()
        .ok_or_else(|| VideoError::Malformed("its video track has no frame durations".into()))?;
    let (mut counted, mut ticks, mut longest) = (0u64, 0u64, 0u64);
    for run in &stts.samples {
        counted = counted.saturating_add(u64::from(run.sample_count));
        ticks = ticks.saturating_add(u64::from(run.sample_count) * u64::from(run.sample_delta));
        longest = longest.max(u64::from(run.sample_delta));
    }
    if counted != u64::from(frames) {
        return Err(VideoError::Inconsistent(format!(
            "it has {frames} frames but durations for {counted}"
        )));
    }
    if let Some(declared) = track.duration.map(|d| d.0) {
        // Writers differ on the last frame's duration: allow one frame and a tenth of a second.
        if declared.abs_diff(ticks) > longest + timescale / 10 {
            return Err(VideoError::Inconsistent(format!(
                "its header says it lasts {} ms, its frames last {} ms",
                declared.saturating_mul(1000) / timescale,
                ticks.saturating_mul(1000) / timescale
            )));
        }
    }
    Ok(ticks.saturating_mul(1000) / timescale)
}

/// The first frame, decoded: the parameter sets and samples fed in order until a picture
/// comes out.
fn first_frame(avcc: &AvcConfig, bytes: &[u8], samples: &[Span]) -> Result<Pixels, VideoError> {
    let bad = |e: openh264::Error| {
        VideoError::Malformed(format!("its first frame does not decode as H.264 ({e})"))
    };
    let mut decoder = Decoder::new().map_err(bad)?;
    let mut input = avcc.annex_b();
    for span in samples.iter().take(FIRST_FRAME_WITHIN) {
        input.extend(sample_to_annex_b(
            &bytes[span.start..span.end],
            avcc.length_size,
        )?);
        if let Some(yuv) = decoder.decode(&input).map_err(bad)? {
            return Ok(to_rgb(&yuv));
        }
        input.clear();
    }
    let rest = decoder.flush_remaining().map_err(bad)?;
    rest.first()
        .map(to_rgb)
        .ok_or_else(|| VideoError::Malformed("no frame decodes from its first samples".into()))
}

fn to_rgb(yuv: &openh264::decoder::DecodedYUV<'_>) -> Pixels {
    use openh264::formats::YUVSource;
    let (w, h) = yuv.dimensions();
    let mut data = vec![0; w * h * 3];
    yuv.write_rgb8(&mut data);
    Pixels::rgb(w as u32, h as u32, data)
}
