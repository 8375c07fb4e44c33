//! The folder store's writes: each blob into a new file, synced, then given its key's name,
//! all on the calling (blocking) thread.
//!
//! On Linux the file is created unnamed in its key's folder (`O_TMPFILE`) and linked under
//! its name once whole and synced: nothing half-written ever has a name, a `kill -9` leaves
//! nothing behind (the kernel frees an unnamed file), and the writers of different
//! generations do not queue on one shared folder's lock. Where that is not available (other
//! systems, file systems without `O_TMPFILE`, no `/proc`) and to replace an existing key, the
//! file is written in the temporary folder, outside the root, and renamed over its key.
//!
//! A batch is written in three passes: every file, then every sync, then every link or
//! rename. On ext4 with a journal a rename between two syncs opens a new transaction, so
//! write–sync–rename per file makes every sync wait for a commit of its own; with the passes
//! apart, the first sync commits the batch and the others find little left to do. (Ten 20 KB
//! files a batch, measured on a VM of this project whose ext4 has no journal, where the
//! syncs of a batch share their inode-table and bitmap writes instead: about 260 files a
//! second one by one, 2,600 in passes; see BENCHMARKS.md.)

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// Unnamed files where the system allows (off: always named, as elsewhere).
    pub unnamed: bool,
}

/// A blob written to its new file, not yet in place.
struct Staged<'a> {
    key: &'a str,
    target: PathBuf,
    file: File,
    /// The file's temporary name; `None` for an unnamed file.
    tmp: Option<PathBuf>,
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

    /// Writes, syncs, then names the batch's files, each pass over all of them. On failure
    /// the temporary files not yet in place are removed; blobs already in place stay (each is
    /// whole).
    fn put_batch(&self, batch: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut staged: Vec<Staged<'_>> = Vec::with_capacity(batch.len());
        let mut done = 0;
        let result = (|| {
            for (key, bytes) in batch {
                staged.push(self.stage(key, bytes).map_err(|source| io(key, source))?);
            }
            // Synced before they are named: after a power cut a key holds the old or the new
            // blob, never an empty file.
            for s in &staged {
                s.file.sync_all().map_err(|source| io(s.key, source))?;
            }
            for s in &staged {
                self.place(s).map_err(|source| io(s.key, source))?;
                done += 1;
            }
            Ok(())
        })();
        if result.is_err() {
            for tmp in staged[done..].iter().filter_map(|s| s.tmp.as_ref()) {
                let _ = std::fs::remove_file(tmp);
            }
        }
        result
    }

    /// Creates the key's folder and writes the bytes to a new file: unnamed in that folder
    /// where the system allows, else named in the temporary folder.
    fn stage<'a>(&self, key: &'a str, bytes: &[u8]) -> std::io::Result<Staged<'a>> {
        if key.is_empty() || key.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a valid storage key",
            ));
        }
        let target = self.root.join(key);
        let folder = target.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(folder).map_err(at(folder))?;
        let made = if self.unnamed {
            unnamed::create(folder).map_err(at(folder))?
        } else {
            None
        };
        let (mut file, tmp) = if let Some(file) = made {
            (file, None)
        } else {
            let (file, tmp) = self.in_tmp(|name| File::create_new(name).map_err(at(name)))?;
            (file, Some(tmp))
        };
        if let Err(e) = file.write_all(bytes) {
            if let Some(tmp) = &tmp {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e);
        }
        Ok(Staged {
            key,
            target,
            file,
            tmp,
        })
    }

    /// Removes the temporary files that processes no longer running left behind (a `kill -9`
    /// or a power cut between a write and its rename), and returns how many. Files of live
    /// processes (other workers on the same data folder, this one) and files not named by
    /// this store are left alone; where liveness cannot be told, files a day old go.
    pub fn sweep(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.tmp) else {
            return 0;
        };
        let proc = cfg!(target_os = "linux") && Path::new("/proc/self").is_dir();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(|n| n.split_once('-'))
                .filter(|(_, seq)| seq.parse::<u64>().is_ok())
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id()
                && !alive(pid, &entry, proc)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Runs `build` on a fresh name in the temporary folder, creating the folder if it is
    /// missing, and returns what it made with the name.
    fn in_tmp<T>(
        &self,
        build: impl Fn(&Path) -> std::io::Result<T>,
    ) -> std::io::Result<(T, PathBuf)> {
        let tmp = self.tmp.join(format!(
            "{}-{}.part",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let value = match build(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.tmp).map_err(at(&self.tmp))?;
                build(&tmp)?
            }
            other => other?,
        };
        Ok((value, tmp))
    }

    /// Gives a staged file its key's name, replacing what was there.
    fn place(&self, s: &Staged<'_>) -> std::io::Result<()> {
        if let Some(tmp) = &s.tmp {
            return std::fs::rename(tmp, &s.target).map_err(at(&s.target));
        }
        match unnamed::link(&s.file, &s.target) {
            // A link never replaces: name the file in the temporary folder, then rename it
            // over the key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let ((), tmp) = self.in_tmp(|name| unnamed::link(&s.file, name))?;
                std::fs::rename(&tmp, &s.target)
                    .inspect_err(|_| {
                        let _ = std::fs::remove_file(&tmp);
                    })
                    .map_err(at(&s.target))
            }
            other => other.map_err(at(&s.target)),
        }
    }
}

/// Unnamed files (`O_TMPFILE`), named once whole through `/proc/self/fd`.
#[cfg(target_os = "linux")]
mod unnamed {
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use rustix::io::Errno;

    /// Set once a file system refused unnamed files: named files from then on.
    static REFUSED: AtomicBool = AtomicBool::new(false);

    /// A new unnamed file in `folder`, or `None` where unnamed files cannot be had.
    pub fn create(folder: &Path) -> std::io::Result<Option<File>> {
        static PROC: OnceLock<bool> = OnceLock::new();
        // Linking needs `/proc` (linking by descriptor alone needs a privilege).
        if REFUSED.load(Ordering::Relaxed)
            || !*PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir())
        {
            return Ok(None);
        }
        let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
        match rustix::fs::open(folder, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => Ok(Some(File::from(fd))),
            // The file system (or an old kernel) does not do it.
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                REFUSED.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Names `file` `target`; fails with `AlreadyExists` if `target` exists.
    pub fn link(file: &File, target: &Path) -> std::io::Result<()> {
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(CWD, source.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW)
            .map_err(Into::into)
    }
}

/// Elsewhere every file is named.
#[cfg(not(target_os = "linux"))]
mod unnamed {
    use std::fs::File;
    use std::path::Path;

    pub fn create(_folder: &Path) -> std::io::Result<Option<File>> {
        Ok(None)
    }

    pub fn link(_file: &File, _target: &Path) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

/// Whether the process that named a temporary file may still be writing it: asked of
/// `/proc` where there is one, else guessed from the file's age.
fn alive(pid: u32, file: &std::fs::DirEntry, proc: bool) -> bool {
    if proc {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    let day = std::time::Duration::from_hours(24);
    file.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < day)
}

/// The same error, naming the path it is about (the system's message names none), so that
/// "Permission denied" says where.
fn at(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn io(key: &str, source: std::io::Error) -> StoreError {
    StoreError::Io {
        key: key.to_owned(),
        source,
    }
}
