//! The catalogue, the job queue and the directory: three small traits over one database.
//!
//! [`Catalogue`] holds generations, images, events and what is known of provider accounts;
//! [`Queue`] holds jobs and their leases, and who holds which provider account; [`Directory`]
//! (`directory.rs`) holds users, their keys and credits, the audit log and idempotent
//! requests. One database implements all three (`sqlite.rs` for the embedded default, `postgres.rs` for several nodes on
//! one server), because a generation is written with
//! its job in one transaction. The rules of a generation's life cycle are the domain's
//! ([`crate::domain::Stage`]); a catalogue only persists their outcome, atomically. Every time
//! the queue compares (due times, leases) is the database's, never the caller's: nodes sharing
//! one database have clocks of their own. The conformance tests in `tests/it/catalogue.rs` run
//! unchanged against every implementation.

mod directory;
mod postgres;
mod sqlite;
mod stored;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::domain::Change;
pub use directory::Directory;
pub use postgres::PgCatalogue;
pub use sqlite::SqliteCatalogue;
pub use webhooks::{Outbox, SecretRecord};

use time::OffsetDateTime;

use crate::domain::{
    Category, Event, Generation, GenerationId, GenerationStatus, Image, ImageId, ImageStatus, Job,
    JobId, JobStatus, Lease, MediaKind, UserId,
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
    /// How long after its creation the job becomes due, by the database's clock (0: at once).
    pub delay_ms: i64,
}

/// Which images to list, newest first. Empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct ImageFilter {
    /// Only this user's (an actor that sees everything leaves it empty).
    pub owner: Option<UserId>,
    pub status: Option<ImageStatus>,
    /// Pictures or clips.
    pub kind: Option<MediaKind>,
    pub category: Option<Category>,
    pub subject: Option<String>,
    pub tag: Option<String>,
    /// The provider of the image's generation.
    pub provider: Option<String>,
    pub generation_id: Option<GenerationId>,
    /// Words found in the prompt of the image's generation, as they are written (no wildcard:
    /// `%` and `_` are themselves), ignoring the case of ASCII letters.
    pub text: Option<String>,
    /// Created at or after.
    pub created_from: Option<OffsetDateTime>,
    /// Created before.
    pub created_until: Option<OffsetDateTime>,
    /// Only images older than this one (ids are time-ordered): the cursor of the next page.
    pub before: Option<ImageId>,
    pub limit: Option<u32>,
}

/// A `LIKE … ESCAPE '\'` pattern that finds `text` anywhere: its own `%`, `_` and `\` are
/// escaped, so a search for `50%` or `a_b` means those characters, not wildcards.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Which generations to list, newest first. Empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct GenerationFilter {
    /// Only this user's (an actor that sees everything leaves it empty).
    pub owner: Option<UserId>,
    pub status: Option<GenerationStatus>,
    pub provider: Option<String>,
    /// Only generations older than this one (ids are time-ordered): the next page's cursor.
    pub before: Option<GenerationId>,
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

/// One event in the feed of all events, by the order the catalogue wrote them.
#[derive(Clone, Debug)]
pub struct FeedEntry {
    /// Increases with every event written, across generations (not gap-free).
    pub position: i64,
    /// The owner of the event's generation.
    pub owner: Option<UserId>,
    pub event: Event,
}

/// Whose events a feed read returns. Empty fields do not filter.
#[derive(Clone, Copy, Debug, Default)]
pub struct FeedFilter {
    pub generation: Option<GenerationId>,
    pub owner: Option<UserId>,
}

/// A generation with everything that belongs to it, as stored: what
/// [`Catalogue::export`] reads and [`Catalogue::import`] writes, to move a deployment from one
/// database to another with its ids, versions, times and event numbers unchanged.
#[derive(Clone, PartialEq, Debug)]
pub struct GenerationRecord {
    pub generation: Generation,
    /// By role.
    pub images: Vec<Image>,
    /// By `seq`.
    pub events: Vec<Event>,
    pub job: Option<Job>,
}

impl GenerationRecord {
    /// What differs first between this (stored) record and a given one, in words; `None` when equal.
    pub fn first_difference(&self, given: &GenerationRecord) -> Option<String> {
        let stored = self;
        if stored.generation != given.generation {
            return Some("its generation row differs".into());
        }
        if stored.images.len() != given.images.len() {
            return Some(format!(
                "it has {} images here, {} in the copy",
                stored.images.len(),
                given.images.len()
            ));
        }
        if let Some((s, _)) = stored
            .images
            .iter()
            .zip(&given.images)
            .find(|(s, g)| s != g)
        {
            return Some(format!("its image {} differs", s.role));
        }
        if stored.events.len() != given.events.len() {
            return Some(format!(
                "it has {} events here, {} in the copy",
                stored.events.len(),
                given.events.len()
            ));
        }
        if let Some((s, _)) = stored
            .events
            .iter()
            .zip(&given.events)
            .find(|(s, g)| s != g)
        {
            return Some(format!("its event {} differs", s.seq));
        }
        (stored.job != given.job).then(|| "its job differs".to_owned())
    }
}

/// Outcome of [`Catalogue::import`].
#[derive(Clone, PartialEq, Debug)]
pub enum Imported {
    /// Written, all of it.
    New,
    /// The generation was already there, exactly as given: nothing written.
    Same,
    /// The generation was already there, otherwise (what differs first): nothing written.
    Different(String),
}

/// What a process last recorded about a provider account's health.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccountRecord {
    pub provider: String,
    pub account: String,
    pub health: String,
    pub reason: Option<String>,
    pub at: time::OffsetDateTime,
}

#[async_trait]
pub trait Catalogue: Send + Sync {
    // Generations.

    /// Writes the generation, its job (when given), its images (imports arrive with theirs)
    /// and its creation events ([`crate::domain::creation_events`]) in one transaction. The
    /// version is assigned here when `generation.version` is 0 (see
    /// [`Catalogue::next_version`]), for the generation and its images.
    async fn create_generation(
        &self,
        generation: &Generation,
        job: Option<&NewJob>,
        images: &[Image],
    ) -> Result<Generation>;
    async fn generation(&self, id: GenerationId) -> Result<Generation>;
    /// Generations by `filter`, newest first.
    async fn generations(&self, filter: &GenerationFilter) -> Result<Vec<Generation>>;
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
    /// Applies several steps in order, in one transaction, as
    /// [`crate::domain::Stage::apply_all`] decides from the generation as stored (locked
    /// meanwhile), and returns their events. Nothing is written when the generation is
    /// already terminal (`Conflict`).
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
    /// A generation's images, in no particular order: the status read's query, on the
    /// (generation, role) index (the general filter of [`Catalogue::images`] scans the table).
    async fn generation_images(&self, id: GenerationId) -> Result<Vec<Image>>;
    /// A generation and its images (in no particular order), as [`Catalogue::generation`] and
    /// [`Catalogue::generation_images`] read them: the status read. A catalogue that can read
    /// both in one round trip does.
    async fn generation_with_images(&self, id: GenerationId) -> Result<(Generation, Vec<Image>)> {
        let generation = self.generation(id).await?;
        Ok((generation, self.generation_images(id).await?))
    }
    async fn set_image_status(&self, id: ImageId, status: ImageStatus) -> Result<Image>;
    /// Marks an image a favourite, or public (readable by anyone with its URL), or not; an
    /// unset mark stays as it is. Both in one write.
    async fn set_image_marks(
        &self,
        id: ImageId,
        favourite: Option<bool>,
        public: Option<bool>,
    ) -> Result<Image>;
    /// Files an image under another category or subject: an unset one stays, a subject of
    /// `Some(None)` is cleared. One write.
    async fn set_image_labels(
        &self,
        id: ImageId,
        category: Option<Category>,
        subject: Option<Option<&str>>,
    ) -> Result<Image>;
    /// Removes an image's row (its blobs are the caller's to delete, after). `NotFound` when
    /// there is none.
    async fn delete_image(&self, id: ImageId) -> Result<()>;
    /// Points an image at a new public URL (its blob moved to another storage).
    async fn set_public_url(&self, id: ImageId, url: Option<&str>) -> Result<()>;
    /// Adds tags (kept unique and sorted); returns the image as stored.
    async fn add_tags(&self, id: ImageId, tags: &[String]) -> Result<Image>;

    // Events.

    /// Events of one generation with `seq > after`, in order.
    async fn events(&self, id: GenerationId, after: u64) -> Result<Vec<Event>>;
    /// Events written after feed position `after` (of the generations `filter` names), in the
    /// order they were written, at most `limit`. Position 0 is before the first event.
    async fn feed(&self, after: i64, filter: &FeedFilter, limit: u32) -> Result<Vec<FeedEntry>>;
    /// The feed position of the last event written (0 when there is none): where a follower
    /// that wants only new events starts.
    async fn feed_end(&self) -> Result<i64>;
    /// How many wake-ups for new events this catalogue has heard: read it before reading the
    /// feed, and give it to [`Catalogue::wait_for_events`].
    fn events_seen(&self) -> u64;
    /// Resolves when events may have been written by any process since `events_seen` read
    /// `seen` (at once if that has already happened), or after `timeout`: a follower's wait
    /// between reads of the feed.
    async fn wait_for_events(&self, seen: u64, timeout: Duration);

    // Provider accounts.

    /// Records an account's health as a process saw it; the latest record wins.
    async fn record_account(&self, record: &AccountRecord) -> Result<()>;
    async fn account_record(&self, provider: &str, account: &str) -> Result<Option<AccountRecord>>;

    // Moving a deployment.

    /// Up to `limit` generations with their images, events and job, in id order, after
    /// `after` (from the first when `None`): pages of a whole catalogue.
    async fn export(
        &self,
        after: Option<GenerationId>,
        limit: u32,
    ) -> Result<Vec<GenerationRecord>>;
    /// Writes a generation exactly as given (ids, version, times, event numbers, its job's
    /// state) in one transaction. Nothing is written when the generation already exists:
    /// then `Same` or `Different` says whether it matches. Its parent must already be there
    /// (`NotFound` naming it otherwise). The job's creation and update times become the
    /// database's now: they are the queue's own bookkeeping.
    async fn import(&self, record: &GenerationRecord) -> Result<Imported>;

    // Settings kept with the data.

    async fn meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
}

/// The job queue: leases, retries, cancellation, and exclusive holds on provider accounts.
/// Times it compares are the database's; callers give durations only.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Leases the next runnable job among the claim's slots (and of generation `only`, when
    /// given) for `lease_ms`: pending and due, or running with an expired lease, in a slot
    /// with fewer live leases than its concurrency. Claiming a pending job raises its
    /// `attempts`; taking over a running one whose lease expired raises its `takeovers`
    /// instead (its worker stopped without a word; that is no provider failure).
    async fn claim(&self, claim: &Claim<'_>) -> Result<Option<Job>>;
    /// Extends a held lease to `lease_ms` from now; tells whether cancellation was asked.
    async fn renew(&self, id: JobId, worker: &str, lease_ms: i64) -> Result<Lease>;
    /// Ends a job held by `worker` with a terminal status; false when the lease was lost.
    async fn finish(
        &self,
        id: JobId,
        worker: &str,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<bool>;
    /// [`Queue::finish`] for `claim.worker`, then [`Queue::claim`]: the worker's next job as
    /// it ends one. A database that can does both in one trip, and passes the ended job's
    /// place in its slot straight to the next job there; this default makes the two calls.
    /// The bool is `finish`'s. An error may come after the finish was recorded (here, where
    /// the claim is a second call), never before it was tried.
    async fn finish_and_claim(
        &self,
        id: JobId,
        status: JobStatus,
        error: Option<&str>,
        claim: &Claim<'_>,
    ) -> Result<(bool, Option<Job>)> {
        let done = self.finish(id, claim.worker, status, error).await?;
        Ok((done, self.claim(claim).await?))
    }
    /// Gives a job back to the queue to run again `delay_ms` from now; false when the lease
    /// was lost.
    async fn retry(&self, id: JobId, worker: &str, delay_ms: i64, error: &str) -> Result<bool>;
    async fn job_of(&self, generation: GenerationId) -> Result<Job>;
    /// Cancels a pending job at once, or flags a running one for its worker. Returns the job.
    async fn cancel(&self, generation: GenerationId) -> Result<Job>;
    /// Unfinished jobs among `slots`.
    async fn counts(&self, slots: &[String]) -> Result<QueueCounts>;
    /// For a generation whose job is pending: how many pending jobs of its slot come before
    /// it, in the order claims take them. `None` once it is no longer pending.
    async fn ahead(&self, generation: GenerationId) -> Result<Option<u64>>;
    /// How long until work may next appear among `slots` without anyone queueing it: the
    /// earliest due time or lease expiry of their unfinished jobs, from now (zero when past).
    async fn next_due(&self, slots: &[String]) -> Result<Option<Duration>>;
    /// How many wake-ups for work this queue has heard: read it before looking at the queue,
    /// and give it to [`Queue::wait_for_work`].
    fn work_seen(&self) -> u64;
    /// Resolves when work may have appeared for any process's workers (a job queued, retried
    /// or ended, which frees a slot) since `work_seen` read `seen` (at once if that has
    /// already happened), or after `timeout`.
    async fn wait_for_work(&self, seen: u64, timeout: Duration);

    /// How many jobs are running under a lease that has not expired by the database's clock:
    /// a worker is at them now.
    async fn live_leases(&self) -> Result<u64>;

    // Provider accounts, each held by one node at a time.

    /// Takes or renews `holder`'s exclusive hold on `account` for `lease_ms`; false while
    /// another holder's hold is live.
    async fn hold_account(&self, account: &str, holder: &str, lease_ms: i64) -> Result<bool>;
    /// Lets go of a hold, if `holder` has it.
    async fn release_account(&self, account: &str, holder: &str) -> Result<()>;
}

/// A count of wake-ups (an event count): a waiter reads it before it looks, then waits for it
/// to move, so a wake-up between its look and its wait is never slept through.
#[derive(Debug)]
pub struct Wakeups(tokio::sync::watch::Sender<u64>);

impl Default for Wakeups {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(0))
    }
}

impl Wakeups {
    pub fn seen(&self) -> u64 {
        *self.0.borrow()
    }

    pub fn wake(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Until the count is no longer `seen`, or `timeout`.
    pub async fn wait(&self, seen: u64, timeout: Duration) {
        let mut rx = self.0.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|n| *n != seen)).await;
    }
}

/// A catalogue, its queue and its directory, on one database.
#[derive(Clone)]
pub struct Database {
    pub catalogue: Arc<dyn Catalogue>,
    pub queue: Arc<dyn Queue>,
    pub directory: Arc<dyn Directory>,
    /// The webhooks' secrets, subscriptions and deliveries (`webhooks.rs`).
    pub webhooks: Arc<dyn Outbox>,
}

impl Database {
    /// The three parts of one implementation.
    pub fn of<T: Catalogue + Queue + Directory + Outbox + 'static>(db: T) -> Self {
        let db = Arc::new(db);
        Self {
            catalogue: db.clone(),
            queue: db.clone(),
            directory: db.clone(),
            webhooks: db,
        }
    }
}

/// Opens a catalogue only to read it, writing nothing at all (a source to copy from). An
/// `SQLite` file must already be at this build's schema.
pub async fn open_read_only(url: &str) -> Result<Database> {
    if url.starts_with("sqlite:") {
        return Ok(Database::of(SqliteCatalogue::open_read_only(url).await?));
    }
    // Other databases are only read by the caller; their migrations are serialised and
    // leave an up-to-date schema untouched.
    open(url, false).await
}

/// Opens the catalogue named by a URL (`sqlite:…`, `postgres://…`, `postgresql://…`). `create` false refuses to make a new one.
pub async fn open(url: &str, create: bool) -> Result<Database> {
    if url.starts_with("sqlite:") {
        return Ok(Database::of(SqliteCatalogue::open(url, create).await?));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Ok(Database::of(PgCatalogue::open(url, create).await?));
    }
    Err(CatalogueError::Other(
        format!("unsupported database URL scheme in {:?}", scheme_of(url)).into(),
    ))
}

/// Whether a catalogue URL names an in-memory `SQLite` database (`sqlite::memory:`,
/// `sqlite://:memory:`, the URI form `sqlite:file::memory:`, `sqlite:` with no file, or
/// `mode=memory`), which lives only as long as the process.
pub(crate) fn in_memory(url: &str) -> bool {
    let Some(rest) = url.trim().strip_prefix("sqlite:") else {
        return false;
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.trim_start_matches("//");
    let path = path.strip_prefix("file:").unwrap_or(path);
    path.is_empty()
        || path == ":memory:"
        || query
            .split('&')
            .any(|kv| kv.eq_ignore_ascii_case("mode=memory"))
}

fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or(url, |(s, _)| s)
}
