//! Writing PNGs: the quadrants of every grid and the sandbox's renders.
//!
//! The container (chunks, CRCs) is the `png` crate's; what goes into the image data depends on
//! [`PngCompression`], measured on 1024² rendered quadrants in BENCHMARKS.md.

use super::{PipelineError, Pixels, deflate, filter};

/// How hard PNGs are compressed (`[pipeline] png_compression`: `fast`, `balanced`, `small`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PngCompression {
    /// fdeflate's fixed code: about 6 ms a 1024² quadrant, files about 1.25× `balanced`.
    Fast,
    /// Adaptive row filters and a Huffman code fitted to each block, no string matching:
    /// about 9 ms a quadrant, files about the size sharp and Pillow write by default (zlib
    /// level 6, 30–40 ms).
    #[default]
    Balanced,
    /// DEFLATE level 2 (miniz) after adaptive filters: about 35 ms a quadrant, files about
    /// 0.75× `balanced`: for storage that costs more than time.
    Small,
}

/// Encodes 8-bit RGB or RGBA pixels as a PNG.
pub fn encode(p: &Pixels, compression: PngCompression) -> Result<Vec<u8>, PipelineError> {
    let err = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("PNG encoding: {e}"));
    match compression {
        PngCompression::Balanced => {
            let filtered = filter::filter_rows(
                &p.data,
                p.width as usize,
                p.height as usize,
                usize::from(p.channels),
            );
            let idat = deflate::zlib_huffman_only(&filtered);
            let mut out = Vec::with_capacity(idat.len() + 64);
            let mut encoder = png::Encoder::new(&mut out, p.width, p.height);
            encoder.set_color(if p.channels == 4 {
                png::ColorType::Rgba
            } else {
                png::ColorType::Rgb
            });
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| err(&e))?;
            writer
                .write_chunk(png::chunk::IDAT, &idat)
                .map_err(|e| err(&e))?;
            writer.finish().map_err(|e| err(&e))?;
            Ok(out)
        }
        PngCompression::Fast | PngCompression::Small => {
            use image::ImageEncoder;
            use image::codecs::png::{CompressionType, FilterType, PngEncoder};
            let level = if compression == PngCompression::Fast {
                CompressionType::Fast
            } else {
                CompressionType::Level(2)
            };
            let colour = if p.channels == 4 {
                image::ExtendedColorType::Rgba8
            } else {
                image::ExtendedColorType::Rgb8
            };
            let mut out = Vec::with_capacity(p.data.len() / 2);
            PngEncoder::new_with_quality(&mut out, level, FilterType::Adaptive)
                .write_image(&p.data, p.width, p.height, colour)
                .map_err(|e| err(&e))?;
            Ok(out)
        }
    }
}
