//! Recognising and fully decoding an image; the integrity check of the pipeline.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::{PipelineError, PngCompression};

/// The formats Atelier stores.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Png,
    Jpeg,
    Webp,
}

/// Larger images are refused before decoding: no provider renders them, and a few bytes
/// claiming such sizes are a decompression bomb.
pub(super) const MAX_SIDE: u32 = 16_384;
pub(super) const MAX_DECODE_BYTES: u64 = 1 << 30;

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
    /// (PNG `IEND`, JPEG `EOI`, WebP's RIFF length). It catches truncated downloads without
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
            Err(_) => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Webp => "webp",
        }
    }

    /// The file extension used in storage keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Webp => ImageFormat::WebP,
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

/// Decodes the whole image; truncated or corrupt data is an integrity failure.
pub fn decode(bytes: &[u8]) -> Result<Pixels, PipelineError> {
    let format = Format::sniff(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| {
        PipelineError::Integrity(format!(
            "the {} data is truncated or corrupt ({e})",
            format.as_str().to_uppercase()
        ))
    })?;
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(PipelineError::Integrity("the image has no pixels".into()));
    }
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
