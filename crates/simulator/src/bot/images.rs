//! Image work, always on blocking threads: painting grids through the caller's
//! [`crate::Painter`], cutting quadrants, doubling, progress previews, and a small cache of
//! decoded images. Any job's image can be remade from its record (painter output is
//! deterministic), so evictions never lose anything.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::imageops::FilterType;
use image::{ImageEncoder, ImageReader, RgbaImage};

use crate::sim::{Sim, lock};
use crate::state::ImageSource;

/// Decoded images kept.
const CACHE: usize = 16;
/// Longest side of a progress preview.
const PREVIEW: u32 = 256;

/// An image ready to attach.
pub(crate) struct Encoded {
    pub(crate) bytes: Bytes,
    pub(crate) size: (u32, u32),
}

/// Decoded images by job hash, and their insertion order.
type Cached = (HashMap<String, Arc<RgbaImage>>, VecDeque<String>);

#[derive(Default)]
pub(crate) struct ImageCache {
    map: Mutex<Cached>,
}

impl ImageCache {
    pub(crate) fn get(&self, key: &str) -> Option<Arc<RgbaImage>> {
        lock(&self.map).0.get(key).cloned()
    }

    pub(crate) fn put(&self, key: &str, image: Arc<RgbaImage>) {
        let mut guard = lock(&self.map);
        let (map, order) = &mut *guard;
        if map.insert(key.to_owned(), image).is_none() {
            order.push_back(key.to_owned());
        }
        while order.len() > CACHE {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

/// Paints a grid and keeps it decoded under `hash`; returns the painter's PNG.
pub(crate) fn paint(sim: &Sim, hash: &str, prompt: &str, seed: u32) -> Option<Encoded> {
    let png = sim.config.painter.grid(prompt, seed, sim.config.image_side);
    let image = decode(&png)?;
    let size = image.dimensions();
    sim.bot.images.put(hash, Arc::new(image));
    Some(Encoded {
        bytes: Bytes::from(png),
        size,
    })
}

/// The decoded image of a recorded job, from the cache or remade from its source.
pub(crate) fn resolve(sim: &Sim, hash: &str) -> Option<Arc<RgbaImage>> {
    resolve_depth(sim, hash, 0)
}

fn resolve_depth(sim: &Sim, hash: &str, depth: u8) -> Option<Arc<RgbaImage>> {
    if let Some(image) = sim.bot.images.get(hash) {
        return Some(image);
    }
    if depth > 8 {
        return None;
    }
    let source = sim.world().jobs.get(hash)?.source.clone();
    let image = match source {
        ImageSource::Grid { prompt, seed } => decode(&sim.config.painter.grid(
            &prompt,
            seed,
            sim.config.image_side,
        ))?,
        ImageSource::Quadrant { grid, index } => {
            quadrant(&*resolve_depth(sim, &grid, depth + 1)?, index)
        }
        ImageSource::Doubled { of } => double(&*resolve_depth(sim, &of, depth + 1)?),
        // A clip is no still to cut or double.
        ImageSource::Clip { .. } => return None,
    };
    let image = Arc::new(image);
    sim.bot.images.put(hash, Arc::clone(&image));
    Some(image)
}

/// Quadrant `index` (1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right).
pub(crate) fn quadrant(grid: &RgbaImage, index: u8) -> RgbaImage {
    let (w, h) = (grid.width() / 2, grid.height() / 2);
    let i = u32::from(index.clamp(1, 4) - 1);
    image::imageops::crop_imm(grid, (i % 2) * w, (i / 2) * h, w.max(1), h.max(1)).to_image()
}

/// The image at twice its size.
pub(crate) fn double(image: &RgbaImage) -> RgbaImage {
    image::imageops::resize(
        image,
        image.width() * 2,
        image.height() * 2,
        FilterType::Triangle,
    )
}

pub(crate) fn png(image: &RgbaImage) -> Option<Encoded> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgba8,
        )
        .ok()?;
    Some(Encoded {
        bytes: Bytes::from(out),
        size: image.dimensions(),
    })
}

/// A small WebP of the image, as the progress updates carry.
pub(crate) fn preview(image: &RgbaImage) -> Option<Encoded> {
    let scale = f64::from(PREVIEW) / f64::from(image.width().max(image.height()));
    let small = if scale < 1.0 {
        image::imageops::thumbnail(
            image,
            ((f64::from(image.width()) * scale) as u32).max(1),
            ((f64::from(image.height()) * scale) as u32).max(1),
        )
    } else {
        image.clone()
    };
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(
            small.as_raw(),
            small.width(),
            small.height(),
            image::ExtendedColorType::Rgba8,
        )
        .ok()?;
    Some(Encoded {
        bytes: Bytes::from(out),
        size: small.dimensions(),
    })
}

pub(crate) fn decode(bytes: &[u8]) -> Option<RgbaImage> {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .decode()
        .ok()
        .map(|i| i.to_rgba8())
}

/// Width, height and the average colour of an image.
pub(crate) fn summary(bytes: &[u8]) -> Option<((u32, u32), [u8; 3])> {
    let image = decode(bytes)?;
    let small = image::imageops::thumbnail(&image, 16, 16);
    let mut sum = [0u64; 3];
    for pixel in small.pixels() {
        for (s, c) in sum.iter_mut().zip(pixel.0) {
            *s += u64::from(c);
        }
    }
    let n = u64::from(small.width() * small.height()).max(1);
    Some((image.dimensions(), sum.map(|s| (s / n) as u8)))
}

/// Runs image work on a blocking thread; `None` if it panicked.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::{double, png, preview, quadrant};
    use image::{Rgba, RgbaImage};

    #[test]
    fn quadrants_are_exact_and_previews_small() {
        let grid = RgbaImage::from_fn(8, 8, |x, y| Rgba([x as u8, y as u8, 0, 255]));
        let q4 = quadrant(&grid, 4);
        assert_eq!(q4.dimensions(), (4, 4));
        assert_eq!(q4.get_pixel(0, 0), &Rgba([4, 4, 0, 255]));
        assert_eq!(quadrant(&grid, 2).get_pixel(0, 0), &Rgba([4, 0, 0, 255]));
        assert_eq!(double(&q4).dimensions(), (8, 8));
        let big = RgbaImage::new(1024, 512);
        assert_eq!(preview(&big).expect("webp").size, (256, 128));
        assert!(png(&grid).expect("png").bytes.starts_with(b"\x89PNG"));
    }
}
