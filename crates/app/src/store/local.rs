//! The folder store's writes: each blob into a fresh file in the temporary folder, synced,
//! then renamed over its key, all on the calling (blocking) thread.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

/// Temporary files are named by process and sequence: unique without a random source, and a
/// file left by a killed process is recognisable by its process id.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Threads a large batch is written with.
const WRITERS: usize = 4;

#[derive(Clone, Debug)]
pub struct Dirs {
    /// The storage root: keys are paths under it.
    pub root: PathBuf,
    /// Outside the root, on the same file system, so that a rename is atomic.
    pub tmp: PathBuf,
}

impl Dirs {
    /// Writes every blob; more than two are spread over a few threads, so that their syncs
    /// overlap (each waits for the disk, not the processor).
    pub fn put_all(&self, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let write = |batch: &[(String, Vec<u8>)]| {
            batch.iter().try_for_each(|(key, bytes)| {
                self.put(key, bytes).map_err(|source| StoreError::Io {
                    key: key.clone(),
                    source,
                })
            })
        };
        if blobs.len() <= 2 {
            return write(blobs);
        }
        let per_thread = blobs.len().div_ceil(WRITERS);
        std::thread::scope(|s| {
            let writers: Vec<_> = blobs
                .chunks(per_thread)
                .map(|batch| s.spawn(move || write(batch)))
                .collect();
            writers.into_iter().try_for_each(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(StoreError::Io {
                        key: "a batch of blobs".into(),
                        source: std::io::Error::other("a writer thread panicked"),
                    })
                })
            })
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        if key.is_empty() || key.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a valid storage key",
            ));
        }
        let target = self.root.join(key);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let name = format!(
            "{}-{}.part",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = self.tmp.join(name);
        let written = (|| {
            let mut file = match std::fs::File::create_new(&tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&self.tmp)?;
                    std::fs::File::create_new(&tmp)?
                }
                other => other?,
            };
            file.write_all(bytes)?;
            // Synced before the rename: after a power cut the key holds the old or the new
            // blob, never an empty file.
            file.sync_all()?;
            std::fs::rename(&tmp, &target)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}
