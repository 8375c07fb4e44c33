//! Recognising and fully decoding an image; the integrity check of the pipeline.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use super::{Limits, PipelineError, PngCompression};

/// The formats Atelier stores.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Png,
    Jpeg,
    Webp,
    /// A clip's container; never a picture ([`Format::sniff`] does not answer it).
    Mp4,
}

/// Whether an MP4's top-level boxes end exactly where the file does: a download cut short
/// ends inside one (the pipeline checks the tables inside them before a clip is stored).
fn mp4_boxes_fill(bytes: &[u8]) -> bool {
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 8) else {
            return false;
        };
        let size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let size = match size {
            // To the end of the file.
            0 => return true,
            // A 64-bit size follows the type.
            1 => match bytes.get(at + 8..at + 16) {
                Some(large) => u64::from_be_bytes(large.try_into().unwrap_or([0; 8])),
                None => return false,
            },
            n => n,
        };
        match usize::try_from(size).ok().filter(|s| *s >= 8) {
            Some(size) => at = at.saturating_add(size),
            None => return false,
        }
    }
    at == bytes.len()
}

impl Format {
    /// Recognises an image by its signature (magic bytes), never by its name.
    pub fn sniff(bytes: &[u8]) -> Result<Self, PipelineError> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Ok(Self::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Ok(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Ok(Self::Webp)
        } else if bytes.is_empty() {
            Err(PipelineError::Integrity("the file is empty".into()))
        } else {
            Err(PipelineError::Integrity(
                "not a PNG, JPEG or WebP image (unrecognised signature)".into(),
            ))
        }
    }

    /// A quick check that the whole file arrived: the format's end marker is in place
    /// (PNG `IEND`, JPEG `EOI`, WebP's RIFF length, the last of an MP4's top-level boxes). It catches truncated downloads without
    /// decoding; the full decode stays the final word.
    pub fn looks_complete(bytes: &[u8]) -> bool {
        const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82];
        match Self::sniff(bytes) {
            Ok(Self::Png) => bytes.ends_with(&IEND),
            // Some encoders pad after EOI; accept a little trailing zero padding.
            Ok(Self::Jpeg) => {
                let end = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
                end >= 1 && bytes[end - 1] == 0xff && bytes[end] == 0xd9
            }
            Ok(Self::Webp) => {
                let riff = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                bytes.len() as u64 == u64::from(riff) + 8
            }
            // `sniff` answers pictures only: an MP4 is told by its `ftyp` box.
            Ok(Self::Mp4) => mp4_boxes_fill(bytes),
            Err(_) => bytes.get(4..8) == Some(b"ftyp") && mp4_boxes_fill(bytes),
        }
    }

    /// Where the image ends: just after PNG's `IEND` chunk, JPEG's `EOI` marker, or WebP's
    /// RIFF length. Whatever follows is not part of the image and is never stored. `None`
    /// when the end is not found (a truncated file: the decoder then says so).
    pub fn image_end(self, bytes: &[u8]) -> Option<usize> {
        match self {
            Self::Png => png_end(bytes),
            Self::Jpeg => jpeg_end(bytes),
            Self::Webp => {
                let riff = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
                let end = usize::try_from(u64::from(riff) + 8).ok()?;
                (end <= bytes.len()).then_some(end)
            }
            Self::Mp4 => Some(bytes.len()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Webp => "webp",
            Self::Mp4 => "mp4",
        }
    }

    /// The file extension used in storage keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Mp4 => "mp4",
        }
    }

    fn image_format(self) -> Result<ImageFormat, PipelineError> {
        match self {
            Self::Png => Ok(ImageFormat::Png),
            Self::Jpeg => Ok(ImageFormat::Jpeg),
            Self::Webp => Ok(ImageFormat::WebP),
            Self::Mp4 => Err(PipelineError::Integrity(
                "an MP4 is a clip, not a picture".into(),
            )),
        }
    }
}

/// Decoded 8-bit pixels, RGB or RGBA, rows packed.
#[derive(Clone, Debug)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    /// 3 (RGB) or 4 (RGBA).
    pub channels: u8,
    pub data: Vec<u8>,
}

impl Pixels {
    pub fn rgb(width: u32, height: u32, data: Vec<u8>) -> Self {
        Self {
            width,
            height,
            channels: 3,
            data,
        }
    }

    /// A copy of the `w`×`h` rectangle at (`x`, `y`), which must lie inside.
    #[must_use]
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Self {
        let c = self.channels as usize;
        let stride = self.width as usize * c;
        let mut data = Vec::with_capacity(w as usize * h as usize * c);
        for row in y as usize..(y + h) as usize {
            let start = row * stride + x as usize * c;
            data.extend_from_slice(&self.data[start..start + w as usize * c]);
        }
        Self {
            width: w,
            height: h,
            channels: self.channels,
            data,
        }
    }

    /// PNG with fdeflate's fixed code: the quickest, for images made on the fly.
    pub fn encode_png(&self) -> Result<Vec<u8>, PipelineError> {
        super::png::encode(self, PngCompression::Fast)
    }

    /// PNG at the given compression.
    pub fn encode_png_with(&self, compression: PngCompression) -> Result<Vec<u8>, PipelineError> {
        super::png::encode(self, compression)
    }
}

/// Walks the chunks (length, type, data, CRC) up to `IEND`.
fn png_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 8usize;
    loop {
        let len = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        let end = at
            .checked_add(12)?
            .checked_add(usize::try_from(len).ok()?)?;
        if end > bytes.len() {
            return None;
        }
        if bytes.get(at + 4..at + 8)? == b"IEND" {
            return Some(end);
        }
        at = end;
    }
}

/// Walks the segments up to `EOI`; the entropy-coded data after each `SOS` is skipped up to
/// the next marker (inside it, 0xFF is always followed by 0x00 or a restart marker). An
/// embedded EXIF thumbnail's own `EOI` sits inside a segment and is skipped with it.
fn jpeg_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 2usize;
    loop {
        if *bytes.get(at)? != 0xff {
            return None;
        }
        while *bytes.get(at + 1)? == 0xff {
            at += 1; // fill bytes
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            0xd9 => return Some(at + 2),
            0x01 | 0xd0..=0xd7 => at += 2,
            _ => {
                let len = u16::from_be_bytes(bytes.get(at + 2..at + 4)?.try_into().ok()?);
                at = at + 2 + usize::from(len);
                if marker == 0xda {
                    loop {
                        let next = *bytes.get(at + 1)?;
                        if bytes[at] == 0xff && next != 0 && !(0xd0..=0xd7).contains(&next) {
                            break;
                        }
                        at += 1;
                    }
                }
            }
        }
    }
}

/// Decodes the whole image within the default limits.
pub fn decode(bytes: &[u8]) -> Result<Pixels, PipelineError> {
    decode_within(bytes, &Limits::default())
}

/// Decodes the whole image; truncated or corrupt data is an integrity failure, an image over
/// `limits` is refused before its pixels are allocated.
pub fn decode_within(bytes: &[u8], limits: &Limits) -> Result<Pixels, PipelineError> {
    let format = Format::sniff(bytes)?;
    let pixels = match format {
        Format::Png => decode_png(bytes, limits)?,
        Format::Jpeg | Format::Webp | Format::Mp4 => decode_other(bytes, format, limits)?,
    };
    if pixels.width == 0 || pixels.height == 0 {
        return Err(PipelineError::Integrity("the image has no pixels".into()));
    }
    Ok(pixels)
}

/// The size a PNG declares in its header, read before any decoder runs: a decoder reads the
/// chunks after it (an `iCCP` profile, text) as soon as it starts.
pub(super) fn png_size(bytes: &[u8]) -> Result<(u32, u32), PipelineError> {
    match (bytes.get(12..16), bytes.get(16..20), bytes.get(20..24)) {
        (Some(b"IHDR"), Some(w), Some(h)) => Ok((
            u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
        )),
        _ => Err(PipelineError::Integrity(
            "the PNG is truncated or corrupt (its header chunk is missing)".into(),
        )),
    }
}

/// PNG through the `png` crate, whose own limit then covers everything but the pixels
/// (through `image` it would be the same number as the pixel buffer's).
fn decode_png(bytes: &[u8], limits: &Limits) -> Result<Pixels, PipelineError> {
    let (width, height) = png_size(bytes)?;
    limits.check_pixels(width, height)?;
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits.png());
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| png_error(e, limits))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| PipelineError::Integrity("the PNG's size overflows".into()))?;
    let mut data = vec![0u8; size];
    let info = reader
        .next_frame(&mut data)
        .map_err(|e| png_error(e, limits))?;
    reader.finish().map_err(|e| png_error(e, limits))?;
    data.truncate(info.buffer_size());
    let (width, height) = (info.width, info.height);
    Ok(match info.color_type {
        png::ColorType::Rgb => Pixels::rgb(width, height, data),
        png::ColorType::Rgba => Pixels {
            width,
            height,
            channels: 4,
            data,
        },
        png::ColorType::Grayscale => Pixels::rgb(
            width,
            height,
            data.iter().flat_map(|&g| [g, g, g]).collect(),
        ),
        png::ColorType::GrayscaleAlpha => Pixels {
            width,
            height,
            channels: 4,
            data: data
                .chunks_exact(2)
                .flat_map(|ga| [ga[0], ga[0], ga[0], ga[1]])
                .collect(),
        },
        png::ColorType::Indexed => {
            return Err(PipelineError::Integrity(
                "the PNG's palette could not be expanded".into(),
            ));
        }
    })
}

/// A `png` error as a sentence: its limit named, a bad checksum said plainly.
#[allow(clippy::needless_pass_by_value)] // used as `map_err(|e| png_error(e, limits))`
pub(super) fn png_error(e: png::DecodingError, limits: &Limits) -> PipelineError {
    match e {
        png::DecodingError::LimitsExceeded => limits.metadata_exceeded("PNG"),
        png::DecodingError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            PipelineError::Integrity(
                "the PNG data is truncated or corrupt: it ends before the image does".into(),
            )
        }
        png::DecodingError::Format(f) => {
            let text = f.to_string();
            // The crate prints the chunk's type as a debug structure; name the chunk instead.
            if text.starts_with("CRC error") {
                let chunk = text
                    .split("type: ")
                    .nth(1)
                    .and_then(|t| t.get(..4))
                    .filter(|t| t.bytes().all(|b| b.is_ascii_alphabetic()))
                    .map_or_else(|| "a".to_owned(), |t| format!("its {t}"));
                PipelineError::Integrity(format!(
                    "the PNG is corrupt: the checksum of {chunk} chunk does not match its data"
                ))
            } else {
                PipelineError::Integrity(format!("the PNG data is corrupt ({text})"))
            }
        }
        e => PipelineError::Integrity(format!("the PNG data is truncated or corrupt ({e})")),
    }
}

/// JPEG and WebP through `image`: the size is read first and checked, then the decoder may
/// allocate the pixels and the metadata allowance.
fn decode_other(bytes: &[u8], format: Format, limits: &Limits) -> Result<Pixels, PipelineError> {
    let fail = |e: ImageError| match e {
        ImageError::Limits(_) => limits.metadata_exceeded(&format.as_str().to_uppercase()),
        e => PipelineError::Integrity(format!(
            "the {} data is truncated or corrupt ({e})",
            format.as_str().to_uppercase()
        )),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format()?);
    reader.limits(image_limits(limits.max_metadata_bytes));
    let mut decoder = reader.into_decoder().map_err(fail)?;
    let (width, height) = decoder.dimensions();
    limits.check_pixels(width, height)?;
    decoder
        .set_limits(image_limits(
            decoder
                .total_bytes()
                .saturating_add(limits.max_metadata_bytes),
        ))
        .map_err(fail)?;
    let image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    let (width, height) = (image.width(), image.height());
    Ok(if image.color().has_alpha() {
        Pixels {
            width,
            height,
            channels: 4,
            data: image.into_rgba8().into_raw(),
        }
    } else {
        let rgb = match image {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => other.into_rgb8(),
        };
        Pixels::rgb(width, height, rgb.into_raw())
    })
}

fn image_limits(max_alloc: u64) -> image::Limits {
    let mut l = image::Limits::no_limits();
    l.max_alloc = Some(max_alloc);
    l
}
