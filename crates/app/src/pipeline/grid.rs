//! The grid pipeline, overlapped on two threads: while one thread decodes the grid row by
//! row, the other hashes the input and, as soon as the top half is decoded, starts on the top
//! quadrants; the decoder then joins in on the bottom ones. The grid's own thumbnail is made
//! from the quadrants' thumbnails, so nothing waits for the whole picture but the last step.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::decode::{png_error, png_size};
use super::{
    Described, Format, Limits, PARALLEL_FROM, PipelineError, Pixels, PngCompression, Processed,
    ProcessedGrid, describe, image_only, threads,
};
use crate::store::sha256_hex;

/// [`process_grid_within`] with the default limits.
pub fn process_grid(bytes: Vec<u8>, png: PngCompression) -> Result<ProcessedGrid, PipelineError> {
    process_grid_within(bytes, png, &Limits::default())
}

/// Processes a 2×2 grid: the grid as it came (up to its end), and each quadrant encoded as a
/// PNG of its own.
pub fn process_grid_within(
    bytes: Vec<u8>,
    png: PngCompression,
    limits: &Limits,
) -> Result<ProcessedGrid, PipelineError> {
    let (format, bytes) = image_only(bytes)?;
    let source = Source::open(&bytes, format, limits)?;
    let (width, height, channels) = source.shape();
    if width < 2 || height < 2 || width % 2 != 0 || height % 2 != 0 {
        return Err(PipelineError::NotAGrid(width, height));
    }
    let row_len = width as usize * usize::from(channels);
    let half_len = row_len * (height as usize / 2);
    let mut buf = vec![0u8; half_len * 2];
    let (top, bottom) = buf.split_at_mut(half_len);
    let halves = Halves::default();
    let next = AtomicUsize::new(0);
    let shape = Shape {
        width: width / 2,
        height: height / 2,
        channels,
        row_len,
    };
    let work = || quadrants(&halves, &next, shape, png);

    let parallel = (width as usize * height as usize) >= PARALLEL_FROM && threads() >= 2;
    let (sha256, mut done) = if parallel {
        std::thread::scope(|s| {
            let helper = s.spawn(|| (sha256_hex(&bytes), work()));
            let decoded = source.decode(top, bottom, &halves);
            let mine = work();
            let (sha, theirs) = helper
                .join()
                .map_err(|_| PipelineError::Encode("pipeline thread panicked".into()))?;
            decoded?;
            let mut done = mine?;
            done.extend(theirs?);
            Ok::<_, PipelineError>((sha, done))
        })?
    } else {
        source.decode(top, bottom, &halves)?;
        (sha256_hex(&bytes), work()?)
    };
    done.sort_by_key(|(q, _, _)| *q);
    if done.len() != 4 {
        return Err(PipelineError::Encode("a quadrant task was lost".into()));
    }
    let thumbs: Vec<&Pixels> = done.iter().map(|(_, _, thumb)| thumb).collect();
    let Described {
        thumbnail,
        palette,
        dominant,
        ..
    } = describe(&join_quadrants(&thumbs))?;
    Ok(ProcessedGrid {
        grid: Processed {
            bytes,
            format,
            width,
            height,
            sha256,
            thumbnail,
            palette,
            dominant,
            clip: None,
        },
        quadrants: done.into_iter().map(|(_, p, _)| p).collect(),
    })
}

/// The size of one quadrant, and the grid's row length in bytes.
#[derive(Clone, Copy)]
struct Shape {
    width: u32,
    height: u32,
    channels: u8,
    row_len: usize,
}

/// Takes quadrant tasks until none is left; each waits for its half of the grid. Returns
/// nothing more once decoding has failed (the decoder reports the error).
fn quadrants(
    halves: &Halves<'_>,
    next: &AtomicUsize,
    shape: Shape,
    png: PngCompression,
) -> Result<Vec<(usize, Processed, Pixels)>, PipelineError> {
    let mut done = Vec::new();
    loop {
        let q = next.fetch_add(1, Ordering::Relaxed);
        if q >= 4 {
            return Ok(done);
        }
        let Some(half) = halves.wait(q / 2) else {
            return Ok(done);
        };
        let (processed, thumb) = quadrant(half, q % 2, shape, png)?;
        done.push((q, processed, thumb));
    }
}

/// Cuts the left (`column` 0) or right quadrant out of a half of the grid and processes it as
/// a PNG of its own; also returns its thumbnail's pixels, for the grid's.
fn quadrant(
    half: &[u8],
    column: usize,
    shape: Shape,
    png: PngCompression,
) -> Result<(Processed, Pixels), PipelineError> {
    let q_row = shape.width as usize * usize::from(shape.channels);
    let mut data = Vec::with_capacity(q_row * shape.height as usize);
    for row in half.chunks_exact(shape.row_len) {
        data.extend_from_slice(&row[column * q_row..(column + 1) * q_row]);
    }
    let pixels = Pixels {
        width: shape.width,
        height: shape.height,
        channels: shape.channels,
        data,
    };
    let bytes = pixels.encode_png_with(png)?;
    let sha256 = sha256_hex(&bytes);
    let Described {
        thumbnail,
        palette,
        dominant,
        thumb,
    } = describe(&pixels)?;
    // A small quadrant is its own thumbnail: hand the pixels over instead of a copy.
    let thumb = match thumb {
        std::borrow::Cow::Owned(thumb) => Some(thumb),
        std::borrow::Cow::Borrowed(_) => None,
    };
    let thumb = thumb.unwrap_or(pixels);
    Ok((
        Processed {
            bytes,
            format: Format::Png,
            width: shape.width,
            height: shape.height,
            sha256,
            thumbnail,
            palette,
            dominant,
            clip: None,
        },
        thumb,
    ))
}

/// The four quadrant thumbnails side by side again: the grid at their scale.
fn join_quadrants(q: &[&Pixels]) -> Pixels {
    let (w, h, c) = (q[0].width, q[0].height, usize::from(q[0].channels));
    let row = w as usize * c;
    let mut data = Vec::with_capacity(row * 2 * h as usize * 2);
    for pair in q.chunks(2) {
        for y in 0..h as usize {
            for p in pair {
                data.extend_from_slice(&p.data[y * row..(y + 1) * row]);
            }
        }
    }
    Pixels {
        width: w * 2,
        height: h * 2,
        channels: q[0].channels,
        data,
    }
}

/// The halves of the grid as they become ready; `failed` once decoding stopped short.
#[derive(Default)]
struct Halves<'a> {
    ready: Mutex<HalvesState<'a>>,
    changed: Condvar,
}

#[derive(Default)]
struct HalvesState<'a> {
    halves: [Option<&'a [u8]>; 2],
    failed: bool,
}

impl<'a> Halves<'a> {
    fn publish(&self, index: usize, half: &'a [u8]) {
        if let Ok(mut state) = self.ready.lock() {
            state.halves[index] = Some(half);
        }
        self.changed.notify_all();
    }

    fn fail(&self) {
        if let Ok(mut state) = self.ready.lock() {
            state.failed = true;
        }
        self.changed.notify_all();
    }

    /// Half `index` (0 top, 1 bottom) once decoded; `None` if decoding failed.
    fn wait(&self, index: usize) -> Option<&'a [u8]> {
        let mut state = self.ready.lock().ok()?;
        loop {
            if let Some(half) = state.halves[index] {
                return Some(half);
            }
            if state.failed {
                return None;
            }
            state = self.changed.wait(state).ok()?;
        }
    }
}

/// Where the pixels come from: a PNG read row by row, or any other image decoded whole.
enum Source<'b> {
    Rows(Box<png::Reader<Cursor<&'b [u8]>>>, Limits),
    Whole(Pixels),
}

impl<'b> Source<'b> {
    fn open(bytes: &'b [u8], format: Format, limits: &Limits) -> Result<Self, PipelineError> {
        if format == Format::Png
            && let Some(reader) = png_rows(bytes, limits)?
        {
            return Ok(Self::Rows(Box::new(reader), *limits));
        }
        Ok(Self::Whole(super::decode_within(bytes, limits)?))
    }

    fn shape(&self) -> (u32, u32, u8) {
        match self {
            Self::Rows(reader, _) => {
                let info = reader.info();
                let channels = if info.color_type == png::ColorType::Rgba {
                    4
                } else {
                    3
                };
                (info.width, info.height, channels)
            }
            Self::Whole(p) => (p.width, p.height, p.channels),
        }
    }

    /// Fills `top` then `bottom`, publishing each as soon as it is complete. On failure the
    /// waiting threads are released and the error returned.
    fn decode<'h>(
        self,
        top: &'h mut [u8],
        bottom: &'h mut [u8],
        halves: &Halves<'h>,
    ) -> Result<(), PipelineError> {
        let result = self.fill(top, bottom, halves);
        if result.is_err() {
            halves.fail();
        }
        result
    }

    fn fill<'h>(
        self,
        top: &'h mut [u8],
        bottom: &'h mut [u8],
        halves: &Halves<'h>,
    ) -> Result<(), PipelineError> {
        match self {
            Self::Whole(p) => {
                let (t, b) = p.data.split_at(top.len());
                top.copy_from_slice(t);
                bottom.copy_from_slice(b);
            }
            Self::Rows(mut reader, limits) => {
                read_rows(&mut reader, top, &limits)?;
                halves.publish(0, top);
                read_rows(&mut reader, bottom, &limits)?;
                reader.finish().map_err(|e| png_error(e, &limits))?;
                halves.publish(1, bottom);
                return Ok(());
            }
        }
        halves.publish(0, top);
        halves.publish(1, bottom);
        Ok(())
    }
}

/// Decodes rows until `half` is full.
fn read_rows(
    reader: &mut png::Reader<Cursor<&[u8]>>,
    half: &mut [u8],
    limits: &Limits,
) -> Result<(), PipelineError> {
    let row_len = reader.info().width as usize * reader.info().color_type.samples();
    for row in half.chunks_exact_mut(row_len) {
        if reader
            .read_row(row)
            .map_err(|e| png_error(e, limits))?
            .is_none()
        {
            return Err(PipelineError::Integrity(
                "the PNG data ends before its last row".into(),
            ));
        }
    }
    Ok(())
}

/// A row reader for the PNGs that need no conversion (8-bit RGB or RGBA, not interlaced, no
/// transparency chunk); `None` for the others, which are decoded whole. The size is checked
/// before the decoder starts: it reads the chunks after the header at once.
fn png_rows<'b>(
    bytes: &'b [u8],
    limits: &Limits,
) -> Result<Option<png::Reader<Cursor<&'b [u8]>>>, PipelineError> {
    let (width, height) = png_size(bytes)?;
    limits.check_pixels(width, height)?;
    let reader = png::Decoder::new_with_limits(Cursor::new(bytes), limits.png())
        .read_info()
        .map_err(|e| png_error(e, limits))?;
    let info = reader.info();
    let plain = matches!(info.color_type, png::ColorType::Rgb | png::ColorType::Rgba)
        && info.bit_depth == png::BitDepth::Eight
        && !info.interlaced
        && info.trns.is_none();
    Ok(plain.then_some(reader))
}
