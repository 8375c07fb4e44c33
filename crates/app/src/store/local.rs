//! The folder store's writes: each blob into a fresh file in the temporary folder, synced,
//! then renamed over its key, all on the calling (blocking) thread.
//!
//! A batch is written in three passes: every file, then every sync, then every rename. On ext4
//! a rename between two syncs opens a new journal transaction, so write–sync–rename per file
//! makes every sync wait for a commit of its own; with the passes apart, the first sync
//! commits the batch and the others find little left to do (ten 20 KB files a batch on this
//! project's VMs: about 260 files a second one by one, 2,600 in passes; see BENCHMARKS.md).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

/// Temporary files are named by process and sequence: unique without a random source, and a
/// file left by a killed process is recognisable by its process id.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Threads a large batch is written with.
const WRITERS: usize = 4;
/// Below this many blobs a batch is written on the calling thread alone.
const SPREAD_FROM: usize = 3;

#[derive(Clone, Debug)]
pub struct Dirs {
    /// The storage root: keys are paths under it.
    pub root: PathBuf,
    /// Outside the root, on the same file system, so that a rename is atomic.
    pub tmp: PathBuf,
}

/// A blob written to its temporary file, not yet in place.
struct Staged<'a> {
    key: &'a str,
    tmp: PathBuf,
    target: PathBuf,
    file: File,
}

impl Dirs {
    /// Writes every blob; a large batch (an import's ten files) is spread over a few threads,
    /// the calling one included, so that their syncs overlap.
    pub fn put_all(&self, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if blobs.len() < SPREAD_FROM {
            return self.put_batch(blobs);
        }
        let per_thread = blobs.len().div_ceil(WRITERS);
        let mut batches = blobs.chunks(per_thread);
        let mine = batches.next_back().unwrap_or_default();
        std::thread::scope(|s| {
            let writers: Vec<_> = batches
                .map(|batch| s.spawn(move || self.put_batch(batch)))
                .collect();
            let written = self.put_batch(mine);
            writers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(StoreError::Io {
                            key: "a batch of blobs".into(),
                            source: std::io::Error::other("a writer thread panicked"),
                        })
                    })
                })
                .fold(written, Result::and)
        })
    }

    /// Writes, syncs, then renames the batch's files, each pass over all of them. On failure
    /// the temporary files not yet renamed are removed; blobs already renamed stay (each is
    /// whole).
    fn put_batch(&self, batch: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut staged: Vec<Staged<'_>> = Vec::with_capacity(batch.len());
        let mut done = 0;
        let result = (|| {
            for (key, bytes) in batch {
                staged.push(self.stage(key, bytes).map_err(|source| io(key, source))?);
            }
            // Synced before the renames: after a power cut a key holds the old or the new
            // blob, never an empty file.
            for s in &staged {
                s.file.sync_all().map_err(|source| io(s.key, source))?;
            }
            for s in &staged {
                std::fs::rename(&s.tmp, &s.target).map_err(|source| io(s.key, source))?;
                done += 1;
            }
            Ok(())
        })();
        if result.is_err() {
            for s in &staged[done..] {
                let _ = std::fs::remove_file(&s.tmp);
            }
        }
        result
    }

    /// Creates the key's folder and writes the bytes to a new temporary file.
    fn stage<'a>(&self, key: &'a str, bytes: &[u8]) -> std::io::Result<Staged<'a>> {
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
        let mut file = match File::create_new(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.tmp)?;
                File::create_new(&tmp)?
            }
            other => other?,
        };
        if let Err(e) = file.write_all(bytes) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Staged {
            key,
            tmp,
            target,
            file,
        })
    }
}

fn io(key: &str, source: std::io::Error) -> StoreError {
    StoreError::Io {
        key: key.to_owned(),
        source,
    }
}
