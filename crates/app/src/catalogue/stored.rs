//! Stored text back into domain values, the same for every database: an error code and its
//! message, a category, a phase, a clip's columns, and the error that names a value no build would have written.

use super::{CatalogueError, Result};
use crate::domain::{Category, Clip, ErrorCode, Failure, MediaKind, Phase};

pub(super) fn corrupt(what: &str, value: &str) -> CatalogueError {
    CatalogueError::Other(format!("unreadable {what} {value:?} in the catalogue").into())
}

pub(super) fn failure(code: Option<String>, message: Option<String>) -> Result<Option<Failure>> {
    match code {
        None => Ok(None),
        Some(code) => {
            let parsed: ErrorCode = code.parse().map_err(|_| corrupt("error code", &code))?;
            Ok(Some(Failure::new(parsed, message.unwrap_or_default())))
        }
    }
}

pub(super) fn category(s: Option<String>) -> Result<Option<Category>> {
    s.map(|c| Category::parse(&c).ok_or_else(|| corrupt("category", &c)))
        .transpose()
}

pub(super) fn phase(s: Option<String>) -> Result<Option<Phase>> {
    s.map(|p| Phase::parse(&p).ok_or_else(|| corrupt("phase", &p)))
        .transpose()
}

/// A row's `kind`, `duration_ms`, `frames` and `codec` as the clip they describe: `None` for a
/// picture; a video row missing one of them is corrupt.
pub(super) fn clip(
    kind: &str,
    duration_ms: Option<i64>,
    frames: Option<i64>,
    codec: Option<String>,
) -> Result<Option<Clip>> {
    match MediaKind::parse(kind) {
        Some(MediaKind::Image) => Ok(None),
        Some(MediaKind::Video) => {
            let duration_ms = duration_ms
                .and_then(|d| u64::try_from(d).ok())
                .ok_or_else(|| corrupt("clip duration", &format!("{duration_ms:?}")))?;
            let frames = frames
                .and_then(|f| u32::try_from(f).ok())
                .ok_or_else(|| corrupt("clip frame count", &format!("{frames:?}")))?;
            let codec = codec.ok_or_else(|| corrupt("clip codec", "NULL"))?;
            Ok(Some(Clip {
                duration_ms,
                frames,
                codec,
            }))
        }
        None => Err(corrupt("asset kind", kind)),
    }
}
