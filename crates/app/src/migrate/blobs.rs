//! One image's blobs from the source storage to the target, each verified on arrival: the
//! image against the SHA-256 the catalogue recorded (read back from the target), the
//! thumbnail, which has no recorded hash, against the hash of what was read from the source.
//! A blob the target already holds with the right bytes is not written again.

use crate::domain::Image;
use crate::store::{Store, StoreError, sha256_hex};

/// What copying one image's blobs did.
#[derive(Clone, Copy, Default, Debug)]
#[allow(clippy::struct_field_names)]
pub struct Copied {
    pub copied: u64,
    pub present: u64,
    pub bytes: u64,
}

impl Copied {
    fn add(&mut self, other: Self) {
        self.copied += other.copied;
        self.present += other.present;
        self.bytes += other.bytes;
    }
}

/// Why an image's blobs were not copied.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The source cannot give the blob as recorded (missing, corrupt, unreadable): this
    /// generation is refused, the others go on.
    #[error("{0}")]
    Source(StoreError),
    /// The target failed to take or give back a blob: nothing else would fare better.
    #[error("the target storage: {0}")]
    Target(StoreError),
    /// The target gave back other bytes than were written.
    #[error("{key} read back from the target storage does not match what was written")]
    Mismatch { key: String },
}

/// Copies `image`'s blob and thumbnail from `source` to `target` unless already there.
pub async fn copy_image(
    source: &Store,
    target: &Store,
    image: &Image,
) -> Result<Copied, BlobError> {
    let mut done = copy_checked(source, target, &image.storage_key, &image.sha256).await?;
    if let Some(thumb) = &image.thumbnail_key {
        done.add(copy_thumbnail(source, target, thumb).await?);
    }
    Ok(done)
}

/// A blob whose SHA-256 the catalogue recorded.
async fn copy_checked(
    source: &Store,
    target: &Store,
    key: &str,
    sha256: &str,
) -> Result<Copied, BlobError> {
    match target.get(key, sha256).await {
        Ok(_) => return Ok(present()),
        Err(StoreError::NotFound(_) | StoreError::Corrupt { .. }) => {}
        Err(e) => return Err(BlobError::Target(e)),
    }
    let bytes = source.get(key, sha256).await.map_err(BlobError::Source)?;
    let n = bytes.len() as u64;
    target.put(key, bytes).await.map_err(BlobError::Target)?;
    match target.get(key, sha256).await {
        Ok(_) => Ok(copied(n)),
        Err(StoreError::Corrupt { .. } | StoreError::NotFound(_)) => Err(BlobError::Mismatch {
            key: key.to_owned(),
        }),
        Err(e) => Err(BlobError::Target(e)),
    }
}

/// A thumbnail: checked against the hash of the source's bytes.
async fn copy_thumbnail(source: &Store, target: &Store, key: &str) -> Result<Copied, BlobError> {
    let bytes = source.read(key).await.map_err(BlobError::Source)?;
    let sha256 = sha256_hex(&bytes);
    match target.read(key).await {
        Ok(there) if sha256_hex(&there) == sha256 => return Ok(present()),
        Ok(_) | Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(BlobError::Target(e)),
    }
    let n = bytes.len() as u64;
    target.put(key, bytes).await.map_err(BlobError::Target)?;
    match target.get(key, &sha256).await {
        Ok(_) => Ok(copied(n)),
        Err(StoreError::Corrupt { .. } | StoreError::NotFound(_)) => Err(BlobError::Mismatch {
            key: key.to_owned(),
        }),
        Err(e) => Err(BlobError::Target(e)),
    }
}

fn present() -> Copied {
    Copied {
        present: 1,
        ..Copied::default()
    }
}

fn copied(bytes: u64) -> Copied {
    Copied {
        copied: 1,
        bytes,
        ..Copied::default()
    }
}
