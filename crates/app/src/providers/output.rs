//! What a provider delivers: one output at a time, a picture or a clip, with its bytes and
//! its place among the job's outputs.

use std::fmt;

/// One result of a provider call, as the provider delivered it.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// Which of the call's outputs this is, from 1, in the provider's own order: a grid, a
    /// single picture and an upscale are 1; separate outputs are 1 to N. A resumed job is
    /// delivered the same outputs under the same numbers, so the engine keeps only those it
    /// has not stored yet.
    pub index: u8,
    pub kind: OutputKind,
    pub bytes: Vec<u8>,
}

impl Output {
    /// Picture `index` (PNG, JPEG or WebP).
    pub fn image(index: u8, bytes: Vec<u8>) -> Self {
        Self {
            index,
            kind: OutputKind::Image,
            bytes,
        }
    }

    /// Clip `index` in `format`.
    pub fn video(index: u8, format: VideoFormat, bytes: Vec<u8>) -> Self {
        Self {
            index,
            kind: OutputKind::Video(format),
            bytes,
        }
    }
}

/// The bytes are left out: an output is megabytes.
impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("index", &self.index)
            .field("kind", &self.kind)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// What an output is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutputKind {
    /// A still picture; the pipeline finds its format from its signature.
    Image,
    /// A clip in a container the provider names.
    Video(VideoFormat),
}

/// The container of a clip.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VideoFormat {
    Mp4,
    /// An animated WebP.
    WebP,
}

impl fmt::Display for VideoFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mp4 => "MP4",
            Self::WebP => "animated WebP",
        })
    }
}
