//! Importing existing images (e.g. Midjourney grids saved by hand) as generations of kind
//! `import`. Every file is read and verified before anything is written: one bad file and the
//! whole import is refused. Files are read within `[limits]`: regular files only, the size
//! checked before reading and the signature on the first bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{App, GenerationWithImages};
use crate::domain::{
    Actor, Category, Generation, GenerationId, GenerationKind, GenerationRequest, GenerationStatus,
    Parameters, Phase, Role,
};
use crate::error::AppError;
use crate::pipeline::{self, Format, Processed};

/// What the user asked to import.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    pub files: Vec<PathBuf>,
    /// Split each file as a 2×2 grid into four upscales.
    pub grid: bool,
    pub prompt: Option<String>,
    pub category: Option<Category>,
    pub subject: Option<String>,
    /// How quadrants cut from grids are compressed.
    pub png: crate::pipeline::PngCompression,
    /// Largest file read, in bytes (`[limits] max_file_mib`).
    pub max_file_bytes: u64,
    /// What each image may cost to decode.
    pub limits: pipeline::Limits,
}

/// One file, read and processed, ready to store.
pub struct PreparedFile {
    prompt: String,
    grid: Option<Vec<Processed>>,
    image: Processed,
}

/// An import that passed every check.
pub struct PreparedImport {
    files: Vec<PreparedFile>,
    category: Option<Category>,
    subject: Option<String>,
}

impl ImportRequest {
    /// Reads and verifies every file; writes nothing.
    pub async fn prepare(self) -> Result<PreparedImport, AppError> {
        if self.files.is_empty() {
            return Err(AppError::Invalid("give at least one file to import".into()));
        }
        // The prompt and subject follow the same rules as a generation's.
        let mut check =
            GenerationRequest::new(self.prompt.clone().unwrap_or_else(|| "import".into()));
        check.subject = self.subject.clone();
        let checked = check.validated()?;
        let mut files = Vec::with_capacity(self.files.len());
        for path in self.files {
            let shown = path.display().to_string();
            let (grid, png, limits, max) = (self.grid, self.png, self.limits, self.max_file_bytes);
            let read = path.clone();
            let processed = tokio::task::spawn_blocking(move || {
                let bytes = read_image_file(&read, max)?;
                let processed = if grid {
                    pipeline::process_grid_within(bytes, png, &limits)
                        .map(|g| (g.grid, Some(g.quadrants)))
                } else {
                    pipeline::process_image_within(bytes, &limits).map(|i| (i, None))
                };
                processed.map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::Invalid(format!("{shown}: {e}")))?;
            let prompt = match &self.prompt {
                Some(_) => checked.prompt.clone(),
                None => path
                    .file_stem()
                    .map_or_else(|| "import".to_owned(), |s| s.to_string_lossy().into_owned()),
            };
            files.push(PreparedFile {
                prompt,
                image: processed.0,
                grid: processed.1,
            });
        }
        Ok(PreparedImport {
            files,
            category: self.category,
            subject: checked.subject,
        })
    }
}

/// Reads an image file within `max` bytes. Devices, pipes and folders are refused (a FIFO
/// is opened without waiting for a writer), the size is checked before reading, and the
/// signature on the first bytes, so neither `/dev/zero` nor a large file of another kind is
/// ever read in full.
fn read_image_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading waits for a writer unless non-blocking.
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed());
    }
    let cannot = |e: std::io::Error| format!("cannot read it: {e}");
    let file = options.open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a folder"
        } else {
            "a device, pipe or socket"
        };
        return Err(format!("it is {kind}, not a regular file"));
    }
    if meta.len() > max {
        return Err(pipeline::file_too_large("the file", Some(meta.len()), max));
    }
    // At most one byte more than allowed: a file that grew since is caught, not read whole.
    let mut reader = file.take(max + 1);
    let mut head = Vec::with_capacity(16);
    (&mut reader)
        .take(16)
        .read_to_end(&mut head)
        .map_err(cannot)?;
    Format::sniff(&head).map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    bytes.extend_from_slice(&head);
    reader.read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(pipeline::file_too_large("the file", None, max));
    }
    Ok(bytes)
}

impl App {
    /// Stores prepared files: blobs first, then each generation with its images in one
    /// transaction, so the catalogue never names a missing blob.
    pub async fn import(
        &self,
        actor: Actor,
        prepared: PreparedImport,
    ) -> Result<Vec<GenerationWithImages>, AppError> {
        let mut out = Vec::with_capacity(prepared.files.len());
        for file in prepared.files {
            let now = OffsetDateTime::now_utc();
            let id = GenerationId::new();
            let version = self
                .catalogue
                .next_version(prepared.category, prepared.subject.as_deref(), None)
                .await?;
            let generation = Generation {
                id,
                owner: actor.owner(),
                provider: "import".into(),
                account: None,
                kind: GenerationKind::Import,
                parent_id: None,
                prompt: file.prompt,
                negative_prompt: None,
                parameters: Parameters::default(),
                category: prepared.category,
                subject: prepared.subject.clone(),
                client_reference: None,
                version,
                status: GenerationStatus::Succeeded,
                phase: Some(Phase::Completed),
                progress: 100.0,
                error: None,
                provider_refs: serde_json::json!({}),
                created_at: now,
                started_at: Some(now),
                completed_at: Some(now),
            };
            let mut parts: Vec<(Role, Processed)> = Vec::new();
            match file.grid {
                Some(quadrants) => {
                    parts.push((Role::Grid, file.image));
                    for (i, q) in quadrants.into_iter().enumerate() {
                        parts.push((Role::Upscale(i as u8 + 1), q));
                    }
                }
                None => parts.push((Role::Variant(1), file.image)),
            }
            // All the files in one batch: the folder store writes them at once.
            let (mut images, mut blobs) = (Vec::with_capacity(parts.len()), Vec::new());
            for (role, p) in parts {
                let (image, files) = self.image_and_blobs(&generation, role, p, false);
                images.push(image);
                blobs.extend(files);
            }
            self.store.put_all(blobs).await?;
            let created = self
                .catalogue
                .create_generation(&generation, None, &images)
                .await?;
            let done = self.generation(actor, created.id).await?;
            self.write_record(&done).await?;
            out.push(done);
        }
        Ok(out)
    }
}

impl App {
    /// Pictures a client sent inline (base64 in a request), stored as `actor`'s imports, one
    /// generation each, so the use cases that take stored images (/blend, /describe, image
    /// prompts) take them. Every picture is verified and held to `[limits]` before anything is
    /// written.
    pub async fn import_pictures(
        &self,
        actor: Actor,
        pictures: Vec<Vec<u8>>,
        prompt: &str,
    ) -> Result<Vec<crate::domain::ImageId>, AppError> {
        let prepared = self.prepare_pictures(pictures, prompt).await?;
        self.import_prepared(actor, prepared).await
    }

    /// Pictures sent inline, each verified and held to `[limits]`; writes nothing, so a caller
    /// can check the rest of its request before [`App::import_prepared`] stores them.
    pub async fn prepare_pictures(
        &self,
        pictures: Vec<Vec<u8>>,
        prompt: &str,
    ) -> Result<PreparedImport, AppError> {
        let mut files = Vec::with_capacity(pictures.len());
        for (i, bytes) in pictures.into_iter().enumerate() {
            let limits = self.limits;
            let image = tokio::task::spawn_blocking(move || {
                pipeline::process_image_within(bytes, &limits).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::Invalid(format!("picture {}: {e}", i + 1)))?;
            files.push(PreparedFile {
                prompt: prompt.to_owned(),
                grid: None,
                image,
            });
        }
        Ok(PreparedImport {
            files,
            category: None,
            subject: None,
        })
    }

    /// Stores pictures [`App::prepare_pictures`] verified as `actor`'s imports: their image
    /// ids, in order.
    pub async fn import_prepared(
        &self,
        actor: Actor,
        prepared: PreparedImport,
    ) -> Result<Vec<crate::domain::ImageId>, AppError> {
        let done = self.import(actor, prepared).await?;
        Ok(done
            .iter()
            .filter_map(|g| g.images.first().map(|i| i.id))
            .collect())
    }
}
