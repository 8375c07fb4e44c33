//! Blob storage over Apache `OpenDAL`: the `fs` service (a local folder) by default, an
//! S3-compatible bucket (`s3.rs`), `memory` in tests; the Google Drive mirror plugs in as
//! another service.
//!
//! Keys are opaque to the rest of the system; `layout.rs` decides them. Writes are atomic: a
//! blob is written and synced into a temporary folder beside (not under) the storage root and
//! renamed into place, so a reader never sees a half-written file, even after `kill -9`; in a
//! bucket each blob is one whole-object put. Every read is checked against the SHA-256
//! recorded in the catalogue.
//!
//! The folder store writes with `std::fs` on one blocking thread per batch of blobs
//! (`local.rs`) rather than through `OpenDAL`, whose fs service hands every step of every file
//! (folder, open, write, sync, rename) to a blocking thread of its own: an image's files cost
//! one hand-off instead of a dozen. Reads, deletes and the other services go through `OpenDAL`.

mod layout;
mod local;
mod s3;

use std::path::{Path, PathBuf};

use opendal::{ErrorKind, Operator};
use sha2::{Digest, Sha256};

pub use layout::{KeyContext, Layout};
pub use s3::S3Target;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} is missing from storage")]
    NotFound(String),
    #[error(
        "{key} is corrupt in storage: SHA-256 {actual} does not match the catalogue's {expected}"
    )]
    Corrupt {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("storage error on {key}: {source}")]
    Backend {
        key: String,
        #[source]
        source: opendal::Error,
    },
    #[error("storage error on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open storage at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: opendal::Error,
    },
    /// The bucket's service did not answer as it should (refused, timed out, failed).
    #[error("cannot reach storage ({target}): {cause}")]
    Unreachable {
        target: String,
        /// The deepest cause, such as "Connection refused".
        cause: String,
    },
    /// The service answered, and said the settings are wrong: no such bucket, keys refused.
    #[error("storage ({target}): {reason}: {detail}")]
    Misconfigured {
        target: String,
        reason: &'static str,
        /// What the service said.
        detail: String,
    },
}

impl StoreError {
    /// Whether trying again cannot help until someone changes the storage: permission denied,
    /// a read-only file system, a file where a folder should be (an `Io` error's message names
    /// the path). Root is denied
    /// too, by a read-only mount or outside its user namespace, so this is not only for
    /// unprivileged users.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::NotADirectory
            ),
            Self::Backend { source, .. } | Self::Open { source, .. } => {
                source.kind() == ErrorKind::PermissionDenied
            }
            Self::Misconfigured { .. } => true,
            Self::NotFound(_) | Self::Corrupt { .. } | Self::Unreachable { .. } => false,
        }
    }
}

/// Blobs to write: each key with its bytes.
pub type Blobs = Vec<(String, Vec<u8>)>;

/// Where blobs live, and how to name them.
#[derive(Clone)]
pub struct Store {
    op: Operator,
    /// Set for the folder store: where it writes (and lets the CLI print absolute paths).
    local: Option<local::Dirs>,
    public_base_url: Option<String>,
    layout: Layout,
    /// Set for the S3 store: the bucket, for [`Store::check`].
    target: Option<S3Target>,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl Store {
    /// A folder store. `tmp_dir` must be on the same file system as `root` and outside it.
    pub fn local(root: &Path, tmp_dir: &Path, layout: Layout) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: root.display().to_string(),
            source,
        };
        let builder = opendal::services::Fs::default()
            .root(&root.to_string_lossy())
            .atomic_write_dir(&tmp_dir.to_string_lossy());
        let op = Operator::new(builder).map_err(open_err)?;
        let local_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let tmp = std::fs::canonicalize(tmp_dir).unwrap_or_else(|_| tmp_dir.to_path_buf());
        let dirs = local::Dirs {
            root: local_root,
            tmp,
            unnamed: true,
        };
        let swept = dirs.sweep();
        if swept > 0 {
            tracing::info!(
                files = swept,
                "store: removed temporary files left by stopped processes"
            );
        }
        Ok(Self {
            op,
            local: Some(dirs),
            public_base_url: None,
            layout,
            target: None,
        })
    }

    /// A bucket of an S3-compatible service. Sends nothing: [`Store::check`] does.
    pub fn s3(target: &S3Target, layout: Layout) -> Result<Self, StoreError> {
        Ok(Self {
            op: target.operator()?,
            local: None,
            public_base_url: None,
            layout,
            target: Some(target.clone()),
        })
    }

    /// For a bucket: whether its service answers, the bucket exists and the keys are
    /// accepted (one listing of at most one key). Nothing to check for a folder.
    pub async fn check(&self) -> Result<(), StoreError> {
        match &self.target {
            Some(target) => s3::probe(&self.op, target).await,
            None => Ok(()),
        }
    }

    /// A folder store to read only (a deployment being copied elsewhere): unlike
    /// [`Store::local`] it sweeps nothing and never writes.
    pub fn read_only_folder(root: &Path) -> Result<Self, StoreError> {
        let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
        let op = Operator::new(builder).map_err(|source| StoreError::Open {
            path: root.display().to_string(),
            source,
        })?;
        Ok(Self {
            op,
            local: None,
            public_base_url: None,
            layout: Layout::default(),
            target: None,
        })
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn memory(layout: Layout) -> Self {
        let op = Operator::new(opendal::services::Memory::default())
            .expect("the memory service has no configuration to get wrong");
        Self {
            op,
            local: None,
            public_base_url: None,
            layout,
            target: None,
        }
    }

    #[must_use]
    pub fn with_public_base_url(mut self, base: Option<String>) -> Self {
        self.public_base_url = base.map(|b| b.trim_end_matches('/').to_owned());
        self
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Writes `bytes` at `key`, atomically, replacing what was there.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.put_all(vec![(key.to_owned(), bytes)]).await
    }

    /// Writes several blobs, each atomically, replacing what was there. Each blob is complete
    /// or absent; when one fails, the others may already be in place.
    pub async fn put_all(&self, blobs: Blobs) -> Result<(), StoreError> {
        if let Some(dirs) = &self.local {
            let dirs = dirs.clone();
            return tokio::task::spawn_blocking(move || dirs.put_all(&blobs))
                .await
                .map_err(|e| StoreError::Io {
                    key: "a batch of blobs".into(),
                    source: std::io::Error::other(e.to_string()),
                })?;
        }
        let mut writes = tokio::task::JoinSet::new();
        for (key, bytes) in blobs {
            let op = self.op.clone();
            writes.spawn(async move {
                op.write(&key, bytes)
                    .await
                    .map(|_| ())
                    .map_err(|source| StoreError::Backend { key, source })
            });
        }
        while let Some(done) = writes.join_next().await {
            done.map_err(|e| StoreError::Io {
                key: "a batch of blobs".into(),
                source: std::io::Error::other(e.to_string()),
            })??;
        }
        Ok(())
    }

    /// For a caller already on a blocking thread: the folder store writes the blobs right
    /// there (as [`Store::put_all`] would, without another hand-off) and returns `None`; other
    /// stores write from the runtime, so they get the blobs back to pass to `put_all`.
    pub fn put_all_here(&self, blobs: Blobs) -> Result<Option<Blobs>, StoreError> {
        match &self.local {
            Some(dirs) => dirs.put_all(&blobs).map(|()| None),
            None => Ok(Some(blobs)),
        }
    }

    /// Reads `key` and checks it against the SHA-256 the catalogue recorded.
    pub async fn get(&self, key: &str, expected_sha256: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.read(key).await?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected_sha256) {
            return Err(StoreError::Corrupt {
                key: key.to_owned(),
                expected: expected_sha256.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Reads `key` as it is, unchecked: for blobs the catalogue records no hash of
    /// (thumbnails), which the caller checks otherwise.
    pub async fn read(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .op
            .read(key)
            .await
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => StoreError::NotFound(key.to_owned()),
                _ => StoreError::Backend {
                    key: key.to_owned(),
                    source,
                },
            })?
            .to_vec())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.op
            .delete(key)
            .await
            .map_err(|source| StoreError::Backend {
                key: key.to_owned(),
                source,
            })
    }

    /// The public URL of a key, when a public base URL is configured.
    pub fn url(&self, key: &str) -> Option<String> {
        self.public_base_url
            .as_ref()
            .map(|base| format!("{base}/{}", key.trim_start_matches('/')))
    }

    /// The absolute path of a key, for the folder store.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.local.as_ref().map(|dirs| dirs.root.join(key))
    }
}

#[cfg(test)]
mod tests;
