//! `App`: the use cases shared by every front-end (CLI today; HTTP and MCP next).
//!
//! It ties the catalogue, the store, the providers and the event bus together, and holds no
//! front-end concern: it never prints, parses arguments or speaks HTTP.

mod accounts;
mod actions;
mod import;
mod users;

pub(crate) use accounts::spawn_account_recorder;
pub use accounts::{AccountView, LastKnown, account_views};

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::catalogue::{Catalogue, Change, Directory, ImageFilter, NewJob, Queue};
use crate::domain::{
    ErrorCode, Event, EventKind, Failure, Generation, GenerationId, GenerationKind,
    GenerationRequest, GenerationStatus, Image, ImageId, ImageStatus, JobId, JobStatus, Role,
};
use crate::error::AppError;
use crate::jobs::{Bus, Signal};
use crate::pipeline::Processed;
use crate::providers::Providers;
use crate::store::{KeyContext, Store};

pub use import::ImportRequest;
pub use users::{MAX_PAGE, SESSION_TTL, request_fingerprint, secret_hash};

/// How the queue treats jobs.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub lease: Duration,
    pub max_attempts: u32,
    /// Takeovers of a job whose worker stopped without a word before it is given up.
    pub max_takeovers: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Longest sleep of an idle worker between looks at the queue.
    pub poll: Duration,
    /// This process's id among the nodes sharing the database (`jobs::node_id`): it names the
    /// workers' leases and the account holds.
    pub node: String,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            max_attempts: 5,
            max_takeovers: 10,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_mins(1),
            poll: Duration::from_secs(1),
            node: crate::jobs::node_id(None),
        }
    }
}

pub struct App {
    pub catalogue: Arc<dyn Catalogue>,
    pub queue: Arc<dyn Queue>,
    /// Users, keys, sessions, credits, the audit log, idempotent requests (`users.rs`).
    pub directory: Arc<dyn Directory>,
    /// What generations cost users (`[credits]`).
    pub credits: crate::config::CreditsConfig,
    pub store: Store,
    pub providers: Providers,
    pub bus: Bus,
    pub jobs: JobSettings,
    /// How quadrants cut from grids are compressed.
    pub png: crate::pipeline::PngCompression,
    /// What an image may cost to decode (`[limits]`), for every image stored.
    pub limits: crate::pipeline::Limits,
}

/// A generation with its images, as front-ends show it.
#[derive(Clone, Debug)]
pub struct GenerationWithImages {
    pub generation: Generation,
    pub images: Vec<Image>,
}

impl App {
    /// Checks a request against this process's providers without writing anything.
    pub fn check(&self, request: GenerationRequest) -> Result<GenerationRequest, AppError> {
        let request = request.validated()?;
        let parameters = request.parameters()?;
        self.providers
            .check(&request, &parameters)
            .map_err(AppError::Invalid)?;
        Ok(request)
    }

    fn provider_name(&self, asked: Option<&str>) -> Result<String, AppError> {
        self.providers.resolve(asked).map_err(AppError::Invalid)
    }

    /// Queues a generation: the generation, its job and its first event are written together,
    /// before any provider is called.
    pub async fn submit(&self, request: GenerationRequest) -> Result<Generation, AppError> {
        let request = self.check(request)?;
        let parameters = request.parameters()?;
        let provider = self.provider_name(request.provider.as_deref())?;
        let generation = Generation {
            negative_prompt: request.negative_prompt,
            category: request.category,
            subject: request.subject,
            ..Generation::queued(
                provider,
                GenerationKind::Imagine,
                request.prompt,
                parameters,
            )
        };
        self.enqueue(generation).await
    }

    async fn enqueue(&self, mut generation: Generation) -> Result<Generation, AppError> {
        let reg = self.providers.get(&generation.provider).ok_or_else(|| {
            AppError::Invalid(format!("unknown provider {:?}", generation.provider))
        })?;
        generation.account = Some(reg.account.clone());
        let slot = slot_of(&generation.provider, &reg.account);
        if let Some(limit) = reg.queue_limit {
            let counts = self.queue.counts(std::slice::from_ref(&slot)).await?;
            if counts.pending + counts.running >= u64::from(limit) {
                return Err(AppError::Conflict(format!(
                    "queue full: {} already has {limit} jobs queued or running, as many as its accounts take (concurrency + queue_size); nothing was queued, try again later",
                    generation.provider
                )));
            }
        }
        let job = NewJob {
            id: JobId::new(),
            slot,
            concurrency: reg.concurrency,
            max_attempts: self.jobs.max_attempts,
            delay_ms: 0,
        };
        let created = self
            .catalogue
            .create_generation(&generation, Some(&job), &[])
            .await?;
        self.bus.publish(Event {
            generation_id: created.id,
            seq: 1,
            kind: EventKind::Created,
            at: created.created_at,
            status: created.status,
            phase: None,
            progress: 0.0,
            index: None,
            image_id: None,
            error: None,
        });
        Ok(created)
    }

    /// A new version of an image's generation: same prompt and parameters, next version.
    /// A seed the user chose is kept; one the provider drew is drawn anew.
    pub async fn new_version(&self, image: ImageId) -> Result<Generation, AppError> {
        let source = self.catalogue.image(image).await?;
        let parent = self.catalogue.generation(source.generation_id).await?;
        if parent.kind == GenerationKind::Import {
            return Err(AppError::Invalid(format!(
                "image {image} was imported, not generated: there is no generation to run again"
            )));
        }
        self.provider_name(Some(&parent.provider))?;
        self.enqueue(parent.child()).await
    }

    /// Cancels a generation: at once when it waits, through its worker when it runs.
    pub async fn cancel(&self, id: GenerationId) -> Result<Generation, AppError> {
        let generation = self.catalogue.generation(id).await?;
        if generation.status.is_terminal() {
            return Err(AppError::Invalid(format!(
                "generation {id} is already {}",
                generation.status.as_str()
            )));
        }
        let job = self.queue.cancel(id).await?;
        let ended = |e: crate::catalogue::CatalogueError| match e {
            // It ended between the check above and now.
            crate::catalogue::CatalogueError::Conflict(m) => AppError::Invalid(m),
            e => e.into(),
        };
        if job.status == JobStatus::Canceled {
            let mut change = Change::new(
                EventKind::Canceled,
                GenerationStatus::Canceled,
                generation.progress,
            );
            change.error = Some(Failure::new(ErrorCode::Canceled, "canceled by request"));
            let event = self.catalogue.advance(id, &change).await.map_err(ended)?;
            self.bus.publish(event);
        } else {
            self.bus.signal(Signal::Cancel(id));
        }
        Ok(self.catalogue.generation(id).await?)
    }

    pub async fn generation(&self, id: GenerationId) -> Result<GenerationWithImages, AppError> {
        let generation = self.catalogue.generation(id).await?;
        let images = self.images_of(id).await?;
        Ok(GenerationWithImages { generation, images })
    }

    pub async fn images_of(&self, id: GenerationId) -> Result<Vec<Image>, AppError> {
        let mut images = self
            .catalogue
            .images(&ImageFilter {
                generation_id: Some(id),
                ..ImageFilter::default()
            })
            .await?;
        images.sort_by_key(|i| i.role.to_string());
        Ok(images)
    }

    pub async fn image(&self, id: ImageId) -> Result<Image, AppError> {
        Ok(self.catalogue.image(id).await?)
    }

    pub async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<Image>, AppError> {
        Ok(self.catalogue.images(filter).await?)
    }

    pub async fn set_image_status(
        &self,
        id: ImageId,
        status: ImageStatus,
    ) -> Result<Image, AppError> {
        Ok(self.catalogue.set_image_status(id, status).await?)
    }

    /// Adds tags, by the domain's rules (`domain::tags`): trimmed, lower-cased, 1–64
    /// characters of letters, digits, `-`, `_`, `:`, at most 32 on an image.
    pub async fn tag(&self, id: ImageId, tags: &[String]) -> Result<Image, AppError> {
        let tags = crate::domain::tags::normalise(tags)?;
        let image = self.catalogue.image(id).await?;
        crate::domain::tags::merged(&image.tags, &tags)?;
        Ok(self.catalogue.add_tags(id, &tags).await?)
    }

    /// Writes the generation's JSON record (the generation with its images, as the API shows
    /// it) where the storage layout keeps one; does nothing for layouts that keep none.
    pub async fn write_metadata(&self, id: GenerationId) -> Result<(), AppError> {
        if !self.store.layout().keeps_metadata() {
            return Ok(());
        }
        self.write_record(&self.generation(id).await?).await
    }

    async fn write_record(&self, g: &GenerationWithImages) -> Result<(), AppError> {
        let ctx = KeyContext {
            generation_id: g.generation.id,
            category: g.generation.category,
            subject: g.generation.subject.as_deref(),
            version: g.generation.version,
            created_at: g.generation.created_at,
        };
        let Some(key) = self.store.layout().metadata_key(&ctx) else {
            return Ok(());
        };
        let view = crate::api::GenerationView::of(g, &self.store);
        let json =
            serde_json::to_vec_pretty(&view).map_err(|e| AppError::Internal(e.to_string()))?;
        self.store.put(&key, json).await?;
        Ok(())
    }

    pub async fn events(&self, id: GenerationId, after: u64) -> Result<Vec<Event>, AppError> {
        Ok(self.catalogue.events(id, after).await?)
    }

    /// Events of every generation (or of `generation`) written by any process after feed
    /// position `after`, in the order they were written, at most `limit`.
    pub async fn feed(
        &self,
        after: i64,
        generation: Option<GenerationId>,
        limit: u32,
    ) -> Result<Vec<crate::catalogue::FeedEntry>, AppError> {
        Ok(self.catalogue.feed(after, generation, limit).await?)
    }

    /// The feed position of the last event written: where a follower of new events starts.
    pub async fn feed_end(&self) -> Result<i64, AppError> {
        Ok(self.catalogue.feed_end().await?)
    }

    /// How many wake-ups for new events this process has heard: read before reading the feed.
    pub fn events_seen(&self) -> u64 {
        self.catalogue.events_seen()
    }

    /// Waits until events may have been written, by any process, since `events_seen` read
    /// `seen`, or `timeout` has passed.
    pub async fn wait_for_events(&self, seen: u64, timeout: Duration) {
        self.catalogue.wait_for_events(seen, timeout).await;
    }
}

impl App {
    /// Writes an image's thumbnail and the image, and returns its catalogue row (not yet
    /// inserted). Keys depend only on the generation, so a retry overwrites, never duplicates.
    pub async fn store_image(
        &self,
        g: &Generation,
        role: Role,
        p: Processed,
        synthetic: bool,
    ) -> Result<Image, AppError> {
        let (image, blobs) = self.image_and_blobs(g, role, p, synthetic);
        // The row that names the blobs is written only after both are stored.
        self.store.put_all(blobs).await?;
        Ok(image)
    }

    /// An image's catalogue row and the blobs (thumbnail, image) to store before inserting it.
    pub(crate) fn image_and_blobs(
        &self,
        g: &Generation,
        role: Role,
        p: Processed,
        synthetic: bool,
    ) -> (Image, Vec<(String, Vec<u8>)>) {
        let ctx = KeyContext {
            generation_id: g.id,
            category: g.category,
            subject: g.subject.as_deref(),
            version: g.version,
            created_at: g.created_at,
        };
        let layout = *self.store.layout();
        let key = layout.image_key(&ctx, role, p.format.extension());
        let thumb = layout.thumbnail_key(&ctx, role);
        let size = p.bytes.len() as u64;
        let image = Image {
            id: ImageId::new(),
            generation_id: g.id,
            owner: None,
            role,
            public_url: self.store.url(&key),
            storage_key: key.clone(),
            thumbnail_key: Some(thumb.clone()),
            width: p.width,
            height: p.height,
            format: p.format.as_str().to_owned(),
            size_bytes: size,
            sha256: p.sha256,
            dominant: Some(p.dominant),
            palette: p.palette,
            category: g.category,
            subject: g.subject.clone(),
            version: g.version,
            status: ImageStatus::Draft,
            favourite: false,
            public: false,
            tags: Vec::new(),
            synthetic,
            created_at: OffsetDateTime::now_utc(),
        };
        (image, vec![(thumb, p.thumbnail), (key, p.bytes)])
    }
}

pub(crate) fn slot_of(provider: &str, account: &str) -> String {
    format!("{provider}:{account}")
}
