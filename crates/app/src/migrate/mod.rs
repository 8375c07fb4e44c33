//! Moving a deployment up (`atelier migrate`): its generations, with their images, events
//! and jobs, from one catalogue to another, and their blobs from one storage to another.
//!
//! Generic over [`Database`] and [`Store`] on both sides: `SQLite` to `PostgreSQL` and a folder
//! to a bucket in use, `SQLite` to `SQLite` and folder to folder in the tests.
//!
//! Blobs first, rows after: a generation's blobs are copied and verified (`blobs.rs`) before
//! its rows are imported in one transaction, so the target never holds a row whose blob is
//! missing. A generation already in the target had its blobs verified before its rows went in,
//! so it is only compared. That makes a run resumable after anything, `kill -9` included: a
//! second run finds what the first copied, writes nothing for it, and goes on. A generation
//! whose blob is missing or corrupt in the source is refused and reported; the others go on.

mod blobs;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::catalogue::{CatalogueError, Database, GenerationRecord, Imported};
use crate::domain::{GenerationId, JobStatus};
use crate::store::Store;
pub use blobs::BlobError;

/// Generations read from the source at a time.
const PAGE: u32 = 200;

/// What a migration fails with as a whole (a generation's own trouble is a refusal in the
/// report instead).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "{0} job(s) of the source are running under a live lease: stop the workers first \
         (`atelier jobs run`, `atelier generate`), then migrate"
    )]
    WorkersRunning(u64),
    #[error("the source catalogue: {0}")]
    Source(#[source] CatalogueError),
    #[error("the target catalogue: {0}")]
    Target(#[source] CatalogueError),
    #[error("{0}")]
    Blob(#[source] BlobError),
}

/// Where a migration goes, as the user named it (checked by `wiring::migration` before
/// anything is written).
#[derive(Clone, Debug, Default)]
pub struct Destination {
    /// A catalogue URL (`postgres://…`, `sqlite://…`); `None`: the catalogue stays.
    pub database: Option<String>,
    /// `None`: the storage stays.
    pub storage: Option<StorageDestination>,
    /// The target storage's public base URL.
    pub public_base_url: Option<String>,
}

/// A storage to copy blobs into.
#[derive(Clone, Debug)]
pub enum StorageDestination {
    Folder(std::path::PathBuf),
    S3 {
        bucket: String,
        /// A prefix every key goes under; empty for none.
        root: String,
        endpoint: Option<String>,
        region: String,
    },
}

/// Where from, where to.
pub struct Migration {
    pub source: Database,
    pub source_store: Store,
    /// The catalogue to copy rows into; `None` when the catalogue stays (only the storage
    /// moves): then only public URLs are rewritten in the source's own catalogue.
    pub target: Option<Database>,
    /// The source's own store when only the catalogue moves: blobs are then verified in place.
    pub target_store: Store,
    /// Whether the storage moves: the images' public URLs then follow the target's public
    /// base URL, when it has one.
    pub new_storage: bool,
    /// A pause after each generation's blobs, before its rows (test builds use it to
    /// interrupt a run in the middle).
    pub pause: Option<Duration>,
}

/// What a migration did, and what it refused and why.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Generations in the source.
    pub generations: u64,
    /// Written to the target by this run.
    pub generations_copied: u64,
    /// Already in the target, identical (an earlier run copied them), or, when only the
    /// storage moves, kept where they are.
    pub generations_present: u64,
    pub images_copied: u64,
    pub events_copied: u64,
    /// Unfinished jobs copied as pending, to run on the new backend.
    pub jobs_requeued: u64,
    pub blobs_copied: u64,
    /// Already in the target storage with the right bytes: not written again.
    pub blobs_present: u64,
    pub bytes_copied: u64,
    /// Public URLs rewritten to the target storage's.
    pub urls_rewritten: u64,
    pub refused: Vec<Refused>,
}

/// A generation not copied, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Refused {
    pub generation: String,
    pub reason: String,
}

/// Told as the migration goes: the number of generations first, then the report so far after
/// each one.
pub trait Progress {
    fn total(&self, generations: u64);
    fn step(&self, report: &Report);
}

/// Refuses a source whose workers are running: the copy of a job in hand would run twice.
pub async fn check_source(source: &Database) -> Result<(), MigrateError> {
    let live = source
        .queue
        .live_leases()
        .await
        .map_err(MigrateError::Source)?;
    if live > 0 {
        return Err(MigrateError::WorkersRunning(live));
    }
    Ok(())
}

impl Migration {
    /// Copies everything; refusals are in the report.
    pub async fn run(&self, progress: &dyn Progress) -> Result<Report, MigrateError> {
        check_source(&self.source).await?;
        let mut run = Run {
            m: self,
            report: Report::default(),
            in_target: HashSet::new(),
            waiting: HashMap::new(),
        };
        run.report.generations = self.count().await?;
        progress.total(run.report.generations);
        let mut after = None;
        loop {
            let page = self
                .source
                .catalogue
                .export(after, PAGE)
                .await
                .map_err(MigrateError::Source)?;
            let Some(last) = page.last() else { break };
            after = Some(last.generation.id);
            for record in page {
                run.one(record, progress).await?;
            }
        }
        // Children whose parent never arrived: it was refused, or is not in the source.
        for (parent, children) in std::mem::take(&mut run.waiting) {
            for child in children {
                run.refuse(
                    child.generation.id,
                    format!("its parent generation {parent} was not copied"),
                );
            }
        }
        Ok(run.report)
    }

    async fn count(&self) -> Result<u64, MigrateError> {
        let (mut n, mut after) = (0, None);
        loop {
            let page = self
                .source
                .catalogue
                .export(after, PAGE)
                .await
                .map_err(MigrateError::Source)?;
            let Some(last) = page.last() else {
                return Ok(n);
            };
            after = Some(last.generation.id);
            n += page.len() as u64;
        }
    }

    /// The record as the target takes it: unfinished jobs pending and unleased (they run
    /// again on the new backend, resuming from what is stored), public URLs the target's.
    fn prepare(&self, mut r: GenerationRecord) -> GenerationRecord {
        if let Some(job) = r.job.as_mut().filter(|j| !j.status.is_terminal()) {
            job.status = JobStatus::Pending;
            job.lease_owner = None;
            job.lease_expires_at = None;
        }
        if self.new_storage {
            for image in &mut r.images {
                if let Some(url) = self.target_store.url(&image.storage_key) {
                    image.public_url = Some(url);
                }
            }
        }
        r
    }
}

/// One run's state: the report, the generations known to be in the target, and children
/// waiting for their parent (a foreign key: parents go first).
struct Run<'a> {
    m: &'a Migration,
    report: Report,
    in_target: HashSet<GenerationId>,
    waiting: HashMap<GenerationId, Vec<GenerationRecord>>,
}

impl Run<'_> {
    async fn one(
        &mut self,
        record: GenerationRecord,
        progress: &dyn Progress,
    ) -> Result<(), MigrateError> {
        // Children that waited for this one come right after it, and theirs after them.
        let mut queue = vec![record];
        while let Some(record) = queue.pop() {
            let id = record.generation.id;
            if let Some(parent) = record.generation.parent_id
                && !self.parent_there(parent).await?
            {
                self.waiting.entry(parent).or_default().push(record);
                continue;
            }
            if self.copy(self.m.prepare(record)).await? {
                self.in_target.insert(id);
                queue.extend(self.waiting.remove(&id).unwrap_or_default());
            } else {
                // Its children cannot follow; they are refused with it.
                let mut gone = vec![id];
                while let Some(g) = gone.pop() {
                    for child in self.waiting.remove(&g).unwrap_or_default() {
                        gone.push(child.generation.id);
                        self.refuse(
                            child.generation.id,
                            format!("its parent generation {g} was not copied"),
                        );
                    }
                }
            }
            progress.step(&self.report);
        }
        Ok(())
    }

    /// Whether a parent is in the target already (the catalogue stays: always).
    async fn parent_there(&mut self, parent: GenerationId) -> Result<bool, MigrateError> {
        let Some(target) = &self.m.target else {
            return Ok(true);
        };
        if self.in_target.contains(&parent) {
            return Ok(true);
        }
        match target.catalogue.generation(parent).await {
            Ok(_) => {
                self.in_target.insert(parent);
                Ok(true)
            }
            Err(CatalogueError::NotFound(_)) => Ok(false),
            Err(e) => Err(MigrateError::Target(e)),
        }
    }

    /// One generation: blobs, then rows. False when it was refused.
    async fn copy(&mut self, r: GenerationRecord) -> Result<bool, MigrateError> {
        let id = r.generation.id;
        let there = match &self.m.target {
            Some(target) => match target.catalogue.generation(id).await {
                Ok(_) => true,
                Err(CatalogueError::NotFound(_)) => false,
                Err(e) => return Err(MigrateError::Target(e)),
            },
            None => false,
        };
        // Rows in the target had their blobs verified before they went in.
        if !there {
            for image in &r.images {
                match blobs::copy_image(&self.m.source_store, &self.m.target_store, image).await {
                    Ok(done) => {
                        self.report.blobs_copied += done.copied;
                        self.report.blobs_present += done.present;
                        self.report.bytes_copied += done.bytes;
                    }
                    Err(BlobError::Source(e)) => {
                        self.refuse(id, e.to_string());
                        return Ok(false);
                    }
                    Err(e) => return Err(MigrateError::Blob(e)),
                }
            }
            if let Some(pause) = self.m.pause {
                tokio::time::sleep(pause).await;
            }
        }
        match &self.m.target {
            Some(target) => self.import(target, &r).await,
            None => self.rewrite_urls(&r).await.map(|()| true),
        }
    }

    async fn import(
        &mut self,
        target: &Database,
        r: &GenerationRecord,
    ) -> Result<bool, MigrateError> {
        match target.catalogue.import(r).await {
            Ok(Imported::New) => {
                self.report.generations_copied += 1;
                self.report.images_copied += r.images.len() as u64;
                self.report.events_copied += r.events.len() as u64;
                if r.job.as_ref().is_some_and(|j| !j.status.is_terminal()) {
                    self.report.jobs_requeued += 1;
                }
                Ok(true)
            }
            Ok(Imported::Same) => {
                self.report.generations_present += 1;
                Ok(true)
            }
            Ok(Imported::Different(what)) => {
                self.refuse(
                    r.generation.id,
                    format!("the target already has this generation, but {what}"),
                );
                // It is there: its children may follow.
                Ok(true)
            }
            Err(e) => Err(MigrateError::Target(e)),
        }
    }

    /// When only the storage moves: the catalogue keeps its rows, and its images' public
    /// URLs become the target storage's (when it has a public base URL).
    async fn rewrite_urls(&mut self, r: &GenerationRecord) -> Result<(), MigrateError> {
        let catalogue = &self.m.source.catalogue;
        let stored = catalogue
            .images(&crate::catalogue::ImageFilter {
                generation_id: Some(r.generation.id),
                ..Default::default()
            })
            .await
            .map_err(MigrateError::Source)?;
        for image in &r.images {
            let before = stored.iter().find(|s| s.id == image.id);
            if before.is_some_and(|s| s.public_url != image.public_url) {
                catalogue
                    .set_public_url(image.id, image.public_url.as_deref())
                    .await
                    .map_err(MigrateError::Source)?;
                self.report.urls_rewritten += 1;
            }
        }
        self.report.generations_present += 1;
        Ok(())
    }

    fn refuse(&mut self, id: GenerationId, reason: String) {
        self.report.refused.push(Refused {
            generation: id.to_string(),
            reason,
        });
    }
}
