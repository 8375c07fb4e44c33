//! The catalogue: every generation, image, job and event, behind one small trait.
//!
//! `sqlite.rs` implements it for the embedded default; `PostgreSQL` implements the same trait
//! (issue "catalogue on `PostgreSQL`"). The conformance test in `tests/it/catalogue.rs` runs every
//! method and is written to run unchanged against any implementation.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use sqlite::SqliteCatalogue;

use crate::domain::{
    Category, Event, EventKind, Failure, Generation, GenerationId, GenerationStatus, Image,
    ImageId, ImageStatus, Job, JobId, Lease, Phase,
};

/// A catalogue failure. Adapters map `NotFound` to "unknown id" and `Other` to a runtime error.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("catalogue error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The catalogue's storage refused a write (a full disk, a read-only file): trying again at
    /// once cannot help, so workers stop and commands end with it (exit 1).
    #[error("{0}")]
    Refused(Refusal),
}

/// Why the catalogue refused a write, and where: the store's own words, and the place (for a
/// file, its path and the free space on its file system) when the adapter knows it.
#[derive(Debug)]
pub struct Refusal {
    pub reason: String,
    pub location: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(at) => write!(f, "the catalogue {at} refused a write: {}", self.reason),
            None => write!(f, "the catalogue refused a write: {}", self.reason),
        }
    }
}

impl CatalogueError {
    /// A write the catalogue's storage refuses: the command ends instead of retrying.
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused(_))
    }
}

pub type Result<T, E = CatalogueError> = std::result::Result<T, E>;

/// A new job, written in the same transaction as its generation.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: JobId,
    pub slot: String,
    pub concurrency: u32,
    pub max_attempts: u32,
    pub run_at: i64,
}

/// One step of a generation's life cycle: written with its event, atomically.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: EventKind,
    pub status: GenerationStatus,
    pub phase: Option<Phase>,
    /// Raised only: a lower value than the stored one is ignored.
    pub progress: f64,
    pub index: Option<u8>,
    pub image_id: Option<ImageId>,
    pub error: Option<Failure>,
}

impl Change {
    pub fn new(kind: EventKind, status: GenerationStatus, progress: f64) -> Self {
        Self {
            kind,
            status,
            phase: None,
            progress,
            index: None,
            image_id: None,
            error: None,
        }
    }

    #[must_use]
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }
}

/// Which images to list. Empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct ImageFilter {
    pub status: Option<ImageStatus>,
    pub category: Option<Category>,
    pub tag: Option<String>,
    pub generation_id: Option<GenerationId>,
    pub limit: Option<u32>,
}

/// Who claims a job, for how long, and which jobs it may take.
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    pub worker: &'a str,
    pub lease_ms: i64,
    /// The concurrency slots this process serves (`provider:account`).
    pub slots: &'a [String],
    pub only: Option<GenerationId>,
}

/// How many jobs wait and run, for "run until idle" and health output.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct QueueCounts {
    pub pending: u64,
    pub running: u64,
}

/// Outcome of [`Catalogue::insert_image`].
#[derive(Clone, Debug)]
pub enum Inserted {
    New(Image),
    /// The generation already had an image in that role (a retried job): nothing written.
    Existing(Image),
}

impl Inserted {
    pub fn image(&self) -> &Image {
        match self {
            Self::New(i) | Self::Existing(i) => i,
        }
    }
}

#[async_trait]
pub trait Catalogue: Send + Sync {
    // Generations.

    /// Writes the generation, its job (when given), its images (imports arrive with theirs)
    /// and its `generation.created` event (seq 1) in one transaction; a generation created
    /// already succeeded also gets its `generation.completed` event. The version is assigned
    /// here when `generation.version` is 0 (see [`Catalogue::next_version`]), for the
    /// generation and its images.
    async fn create_generation(
        &self,
        generation: &Generation,
        job: Option<&NewJob>,
        images: &[Image],
    ) -> Result<Generation>;
    async fn generation(&self, id: GenerationId) -> Result<Generation>;
    /// The version a new generation takes: one more than the highest of the same category and
    /// subject when it has a subject, else one more than its parent's, else 1.
    async fn next_version(
        &self,
        category: Option<Category>,
        subject: Option<&str>,
        parent: Option<GenerationId>,
    ) -> Result<u32>;
    /// Applies one life-cycle step and appends its event; returns the event as stored.
    /// Refused with `Conflict` when the generation is already terminal.
    async fn advance(&self, id: GenerationId, change: &Change) -> Result<Event> {
        let mut events = self.advance_all(id, std::slice::from_ref(change)).await?;
        events
            .pop()
            .ok_or_else(|| CatalogueError::Other("the step wrote no event".into()))
    }
    /// Applies several steps in order, in one write, as many calls of [`Catalogue::advance`]
    /// would (each judged after the ones before it), and returns their events. Only the last
    /// step may end the generation. Nothing is written when the generation is already terminal.
    async fn advance_all(&self, id: GenerationId, changes: &[Change]) -> Result<Vec<Event>>;
    /// Saves the provider's references, and with them the provider account that took the
    /// generation when given (a pool chooses at run time).
    async fn set_provider_refs(
        &self,
        id: GenerationId,
        refs: &serde_json::Value,
        account: Option<&str>,
    ) -> Result<()>;

    // Images.

    /// Idempotent per (generation, role).
    async fn insert_image(&self, image: &Image) -> Result<Inserted>;
    async fn image(&self, id: ImageId) -> Result<Image>;
    async fn images(&self, filter: &ImageFilter) -> Result<Vec<Image>>;
    async fn set_image_status(&self, id: ImageId, status: ImageStatus) -> Result<Image>;
    /// Adds tags (kept unique and sorted); returns the image as stored.
    async fn add_tags(&self, id: ImageId, tags: &[String]) -> Result<Image>;

    // Jobs.

    /// Leases the next runnable job among `slots` (and of generation `only`, when given):
    /// pending and due, or running with an expired lease, in a slot with fewer live leases
    /// than its concurrency. Claiming a pending job raises its `attempts`; taking over a
    /// running one whose lease expired raises its `takeovers` instead (its worker stopped
    /// without a word; that is no provider failure).
    async fn claim_job(&self, claim: &Claim<'_>, now: i64) -> Result<Option<Job>>;
    async fn renew_lease(&self, id: JobId, worker: &str, now: i64, lease_ms: i64) -> Result<Lease>;
    /// Ends a job held by `worker` with a terminal status; false when the lease was lost.
    async fn finish_job(
        &self,
        id: JobId,
        worker: &str,
        status: crate::domain::JobStatus,
        error: Option<&str>,
    ) -> Result<bool>;
    /// Gives a job back to the queue to run again at `run_at`; false when the lease was lost.
    async fn retry_job(&self, id: JobId, worker: &str, run_at: i64, error: &str) -> Result<bool>;
    async fn job_of(&self, generation: GenerationId) -> Result<Job>;
    /// Cancels a pending job at once, or flags a running one for its worker. Returns the job.
    async fn cancel_job(&self, generation: GenerationId) -> Result<Job>;
    /// Unfinished jobs among `slots`.
    async fn queue_counts(&self, slots: &[String]) -> Result<QueueCounts>;
    /// The earliest `run_at` or lease expiry among unfinished jobs of `slots`: when work may
    /// next appear.
    async fn next_wakeup(&self, slots: &[String]) -> Result<Option<i64>>;

    // Events.

    /// Events of one generation with `seq > after`, in order.
    async fn events(&self, id: GenerationId, after: u64) -> Result<Vec<Event>>;

    // Settings kept with the data.

    async fn meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
}

/// Opens the catalogue named by a URL (`sqlite:…`). `create` false refuses to make a new one.
pub async fn open(url: &str, create: bool) -> Result<Arc<dyn Catalogue>> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteCatalogue::open(url, create).await?));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Err(CatalogueError::Other(
            "PostgreSQL catalogues are not supported by this build yet".into(),
        ));
    }
    Err(CatalogueError::Other(
        format!("unsupported database URL scheme in {:?}", scheme_of(url)).into(),
    ))
}

fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or(url, |(s, _)| s)
}
