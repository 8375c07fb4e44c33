//! Stored text back into domain values, the same for every database: an error code and its
//! message, a category, a phase, and the error that names a value no build would have written.

use super::{CatalogueError, Result};
use crate::domain::{Category, ErrorCode, Failure, Phase};

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
