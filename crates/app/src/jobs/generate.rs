//! The generate job: provider → pipeline → store → catalogue, step by step.
//!
//! Each step first looks at what the catalogue already holds, so a job taken over after a crash
//! resumes: a stored grid is not rendered again and a stored upscale is not asked for again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::JobError;
use crate::app::App;
use crate::catalogue::{CatalogueError, Change, Inserted};
use crate::domain::{
    ErrorCode, EventKind, Failure, Generation, GenerationKind, GenerationStatus, Image, ImageId,
    Job, Milestones, Output, Phase, Role,
};
use crate::pipeline::{self, PipelineError, Processed, ProcessedGrid};
use crate::providers::{Input, ProviderError, ProviderJob, Registered, Reporter, UpscaleMode};
use async_trait::async_trait;

impl From<CatalogueError> for JobError {
    fn from(e: CatalogueError) -> Self {
        match e {
            // The generation became terminal under us: canceled by request.
            CatalogueError::Conflict(_) => JobError::Stop,
            e => JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None),
        }
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> Self {
        if e.code.is_retryable() {
            JobError::Retry(e.failure(), e.retry_after)
        } else {
            JobError::Abort(e.failure())
        }
    }
}

fn pipeline_error(e: PipelineError) -> JobError {
    match e {
        // A corrupt delivery is fetched again: providers usually serve a good copy next time.
        PipelineError::Integrity(m) => {
            JobError::Retry(Failure::new(ErrorCode::IntegrityFailed, m), None)
        }
        e => JobError::Abort(Failure::new(ErrorCode::Internal, e.to_string())),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None))?
        .map_err(pipeline_error)
}

/// Runs one generate job to its end.
pub(super) async fn run(app: Arc<App>, job: Job) -> Result<(), JobError> {
    let generation = app.catalogue.generation(job.generation_id).await?;
    if generation.status.is_terminal() {
        return Ok(());
    }
    let reg = app
        .providers
        .get(&generation.provider)
        .cloned()
        .ok_or_else(|| {
            JobError::Abort(Failure::new(
                ErrorCode::ProviderUnavailable,
                format!("provider {:?} is not configured", generation.provider),
            ))
        })?;
    let action = generation.action();
    let parent_refs = match (action, generation.parent_id) {
        (Some(_), Some(parent)) => app.catalogue.generation(parent).await?.provider_refs,
        _ => serde_json::Value::Null,
    };
    let inputs = inputs(&app, &generation).await?;
    let provider = reg.provider.clone();
    let mut run = Run::new(app, generation, reg);
    run.pjob.action = action;
    run.pjob.parent_refs = parent_refs;
    run.pjob.inputs = inputs;
    // Whatever the outcome, even when the worker drops this future (cancel, lost lease) or
    // it panics, the provider gets back what the job held (a pooled account).
    let _release = Release {
        provider,
        job: Some(run.job()),
    };
    run.go().await
}

struct Release {
    provider: Arc<dyn crate::providers::Provider>,
    job: Option<ProviderJob>,
}

impl Drop for Release {
    fn drop(&mut self) {
        let (provider, Some(job)) = (self.provider.clone(), self.job.take()) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { provider.release(&job).await });
        }
    }
}

/// The stored pictures a generation works from (`inputs` in its parameters: image ids).
async fn inputs(app: &App, g: &Generation) -> Result<Vec<Input>, JobError> {
    let Some(ids) = g.parameters.extra.get("inputs").and_then(|v| v.as_array()) else {
        return Ok(Vec::new());
    };
    let mut inputs = Vec::with_capacity(ids.len());
    for id in ids {
        let id: ImageId = id
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| JobError::Abort(Failure::new(ErrorCode::Internal, "bad input id")))?;
        let image = app.catalogue.image(id).await?;
        let bytes = app
            .store
            .get(&image.storage_key, &image.sha256)
            .await
            .map_err(|e| {
                JobError::Abort(Failure::new(ErrorCode::IntegrityFailed, e.to_string()))
            })?;
        inputs.push(Input {
            filename: format!(
                "{id}.{}",
                if image.format == "jpeg" {
                    "jpg"
                } else {
                    image.format.as_str()
                }
            ),
            bytes,
        });
    }
    Ok(inputs)
}

struct Run {
    app: Arc<App>,
    g: Generation,
    reg: Registered,
    milestones: Milestones,
    pjob: ProviderJob,
    /// The provider's references as last saved: later provider calls of this run see them.
    refs: Arc<std::sync::Mutex<serde_json::Value>>,
    /// When the last event of this run was written: progress events are spaced by
    /// [`PROGRESS_EVERY`] from any event, milestones included.
    last_event: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Run {
    fn new(app: Arc<App>, g: Generation, reg: Registered) -> Self {
        let milestones = Milestones::new(g.parameters.upscale.len() as u8);
        let pjob = ProviderJob {
            generation_id: g.id,
            kind: g.kind,
            prompt: g.prompt.clone(),
            negative_prompt: g.negative_prompt.clone(),
            parameters: g.parameters.clone(),
            account: g.account.clone(),
            refs: g.provider_refs.clone(),
            action: None,
            parent_refs: serde_json::Value::Null,
            inputs: Vec::new(),
        };
        let refs = Arc::new(std::sync::Mutex::new(g.provider_refs.clone()));
        Self {
            app,
            g,
            reg,
            milestones,
            pjob,
            refs,
            last_event: Arc::default(),
        }
    }

    /// The provider's view of the job, with the references saved so far.
    fn job(&self) -> ProviderJob {
        let mut job = self.pjob.clone();
        if let Ok(refs) = self.refs.lock() {
            job.refs = refs.clone();
        }
        job
    }

    async fn step(&self, change: Change) -> Result<(), JobError> {
        let event = self.app.catalogue.advance(self.g.id, &change).await?;
        if let Ok(mut at) = self.last_event.lock() {
            *at = Some(std::time::Instant::now());
        }
        self.app.bus.publish(event);
        Ok(())
    }

    async fn go(self) -> Result<(), JobError> {
        let id = self.g.id;
        if self.g.status == GenerationStatus::Queued {
            self.step(Change::new(
                EventKind::Submitted,
                GenerationStatus::Submitted,
                Milestones::SUBMITTED,
            ))
            .await?;
        }
        let stored =
            self.app.images_of(id).await.map_err(|e| {
                JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None)
            })?;
        let has = |role: Role| stored.iter().find(|i| i.role == role).cloned();
        if self.g.kind == GenerationKind::Describe {
            return self.describe().await;
        }
        if self
            .pjob
            .action
            .is_some_and(|a| a.output() == Output::Single)
        {
            return self.single(has(Role::Variant(1))).await;
        }
        let wanted = self.g.parameters.upscale.clone();
        self.record_missing_milestones(&stored, &wanted).await?;
        let split = self.reg.upscale_mode == UpscaleMode::LocalSplit && !wanted.is_empty();

        let png = self.app.png;
        let mut quadrants: Option<Vec<Processed>> = None;
        let grid = if let Some(grid) = has(Role::Grid) {
            grid
        } else {
            self.step(
                Change::new(
                    EventKind::Progress,
                    GenerationStatus::Running,
                    Milestones::SUBMITTED,
                )
                .phase(Phase::GridRendering),
            )
            .await?;
            let reporter = self.reporter(Stage::Grid);
            let delivery = self.reg.provider.render(&self.job(), &reporter).await?;
            let grid = if split {
                let ProcessedGrid { grid, quadrants: q } =
                    blocking(move || pipeline::process_grid(delivery.bytes, png)).await?;
                quadrants = Some(q);
                grid
            } else {
                blocking(move || pipeline::process_image(delivery.bytes)).await?
            };
            let image = self.save(Role::Grid, grid).await?;
            self.step(self.grid_completed(image.id)).await?;
            image
        };

        let mut done = wanted
            .iter()
            .filter(|i| has(Role::Upscale(**i)).is_some())
            .count() as u8;
        for &index in &wanted {
            if has(Role::Upscale(index)).is_some() {
                continue;
            }
            if done == 0 {
                self.step(
                    Change::new(
                        EventKind::Progress,
                        GenerationStatus::Running,
                        self.milestones.grid_stored(),
                    )
                    .phase(Phase::UpscalesInProgress),
                )
                .await?;
            }
            let processed = match self.reg.upscale_mode {
                UpscaleMode::Provider => {
                    let reporter = self.reporter(Stage::Upscale(done));
                    let delivery = self
                        .reg
                        .provider
                        .upscale(&self.job(), index, &reporter)
                        .await?;
                    blocking(move || pipeline::process_image(delivery.bytes)).await?
                }
                UpscaleMode::LocalSplit => {
                    if quadrants.is_none() {
                        let bytes = self
                            .app
                            .store
                            .get(&grid.storage_key, &grid.sha256)
                            .await
                            .map_err(|e| {
                                JobError::Retry(
                                    Failure::new(ErrorCode::Internal, e.to_string()),
                                    None,
                                )
                            })?;
                        quadrants = Some(
                            blocking(move || pipeline::process_grid(bytes, png))
                                .await?
                                .quadrants,
                        );
                    }
                    quadrants
                        .as_ref()
                        .and_then(|q| q.get(usize::from(index).checked_sub(1)?).cloned())
                        .ok_or_else(|| {
                            JobError::Abort(Failure::new(ErrorCode::Internal, "missing quadrant"))
                        })?
                }
            };
            let image = self.save(Role::Upscale(index), processed).await?;
            done += 1;
            self.step(self.upscale_completed(index, done, image.id))
                .await?;
        }
        self.step(
            Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
                .phase(Phase::Completed),
        )
        .await?;
        // The library layout keeps a JSON record beside the images. It is derived data: a
        // failure is logged, not fatal, and the record can be written again from the catalogue.
        if let Err(e) = self.app.write_metadata(id).await {
            tracing::warn!(generation = %id, error = %e, "metadata record not written");
        }
        Ok(())
    }

    /// An action whose result is one picture (U1–U4, Upscale Subtle/Creative): render it,
    /// store it, done.
    async fn single(&self, stored: Option<Image>) -> Result<(), JobError> {
        let image = if let Some(image) = stored {
            image
        } else {
            let delivery = self.render_one().await?;
            let processed = blocking(move || pipeline::process_image(delivery.bytes)).await?;
            self.save(Role::Variant(1), processed).await?
        };
        let mut done = Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
            .phase(Phase::Completed);
        done.image_id = Some(image.id);
        self.step(done).await?;
        if let Err(e) = self.app.write_metadata(self.g.id).await {
            tracing::warn!(generation = %self.g.id, error = %e, "metadata record not written");
        }
        Ok(())
    }

    /// /describe: the provider reads the picture and saves the prompts it found in the
    /// generation's references; no image is made.
    async fn describe(&self) -> Result<(), JobError> {
        self.render_one().await?;
        self.step(
            Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
                .phase(Phase::Completed),
        )
        .await
    }

    /// Renders what is not a grid (one picture, or /describe's text): 25 → 100.
    async fn render_one(&self) -> Result<crate::providers::Delivery, JobError> {
        self.step(
            Change::new(
                EventKind::Progress,
                GenerationStatus::Running,
                Milestones::SUBMITTED,
            )
            .phase(Phase::GridRendering),
        )
        .await?;
        let reporter = self.reporter(Stage::Single);
        Ok(self.reg.provider.render(&self.job(), &reporter).await?)
    }

    fn grid_completed(&self, image: crate::domain::ImageId) -> Change {
        let mut change = Change::new(
            EventKind::GridCompleted,
            GenerationStatus::Running,
            self.milestones.grid_stored(),
        )
        .phase(Phase::GridCompleted);
        change.image_id = Some(image);
        change
    }

    /// The milestone of upscale `index`, the `done`-th stored.
    fn upscale_completed(&self, index: u8, done: u8, image: crate::domain::ImageId) -> Change {
        let mut change = Change::new(
            EventKind::UpscaleCompleted,
            GenerationStatus::Running,
            self.milestones.upscales_stored(done),
        )
        .phase(Phase::UpscalesInProgress);
        change.index = Some(index);
        change.image_id = Some(image);
        change
    }

    /// A crash between storing an image's row and writing its milestone event leaves the image
    /// without its event; a resumed run writes those events first, in role order.
    async fn record_missing_milestones(
        &self,
        stored: &[Image],
        wanted: &[u8],
    ) -> Result<(), JobError> {
        if stored.is_empty() {
            return Ok(());
        }
        let events = self.app.catalogue.events(self.g.id, 0).await?;
        let recorded = |image: &Image| events.iter().any(|e| e.image_id == Some(image.id));
        if let Some(grid) = stored.iter().find(|i| i.role == Role::Grid && !recorded(i)) {
            self.step(self.grid_completed(grid.id)).await?;
        }
        let mut done = 0u8;
        for &index in wanted {
            let Some(image) = stored.iter().find(|i| i.role == Role::Upscale(index)) else {
                continue;
            };
            done += 1;
            if recorded(image) {
                continue;
            }
            self.step(self.upscale_completed(index, done, image.id))
                .await?;
        }
        Ok(())
    }

    fn reporter(&self, stage: Stage) -> JobReporter {
        let start = match stage {
            Stage::Grid | Stage::Single => Milestones::SUBMITTED,
            Stage::Upscale(before) => self.milestones.upscales_stored(before),
        };
        JobReporter {
            app: self.app.clone(),
            g: self.g.id,
            stage,
            milestones: self.milestones,
            last: AtomicU64::new(start.to_bits()),
            last_at: self.last_event.clone(),
            refs: self.refs.clone(),
        }
    }

    /// Stores the blobs, then the catalogue row: a row never points at a missing blob, and a
    /// crash in between leaves only blobs that the retry overwrites.
    async fn save(&self, role: Role, p: Processed) -> Result<Image, JobError> {
        let image = self
            .app
            .store_image(&self.g, role, p, self.reg.synthetic)
            .await
            .map_err(|e| JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None))?;
        match self.app.catalogue.insert_image(&image).await? {
            Inserted::New(i) | Inserted::Existing(i) => Ok(i),
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Grid,
    /// The one picture of a single-image action, 25 → 100.
    Single,
    /// An upscale, with how many were stored before it.
    Upscale(u8),
}

/// Progress events closer together than this are not recorded: a provider reporting every
/// few milliseconds would otherwise turn each job into dozens of catalogue writes. Milestones
/// (grid stored, each upscale stored) are always recorded.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Turns the provider's percentages into generation progress events (only when it rises).
struct JobReporter {
    app: Arc<App>,
    g: crate::domain::GenerationId,
    stage: Stage,
    milestones: Milestones,
    last: AtomicU64,
    last_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    refs: Arc<std::sync::Mutex<serde_json::Value>>,
}

#[async_trait]
impl Reporter for JobReporter {
    async fn progress(&self, percent: f64) {
        let (overall, phase) = match self.stage {
            Stage::Grid => (self.milestones.rendering(percent), Phase::GridRendering),
            Stage::Single => {
                let p = if percent.is_finite() {
                    percent.clamp(0.0, 99.0)
                } else {
                    0.0
                };
                (
                    Milestones::SUBMITTED + (100.0 - Milestones::SUBMITTED) * p / 100.0,
                    Phase::GridRendering,
                )
            }
            Stage::Upscale(before) => {
                let from = self.milestones.upscales_stored(before);
                let to = self.milestones.upscales_stored(before + 1);
                let p = if percent.is_finite() {
                    percent.clamp(0.0, 99.0)
                } else {
                    0.0
                };
                (from + (to - from) * p / 100.0, Phase::UpscalesInProgress)
            }
        };
        let last = f64::from_bits(self.last.load(Ordering::Relaxed));
        if overall <= last {
            return;
        }
        {
            let Ok(mut last_at) = self.last_at.lock() else {
                return;
            };
            if last_at.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                return;
            }
            *last_at = Some(std::time::Instant::now());
        }
        self.last.store(overall.to_bits(), Ordering::Relaxed);
        let change =
            Change::new(EventKind::Progress, GenerationStatus::Running, overall).phase(phase);
        match self.app.catalogue.advance(self.g, &change).await {
            Ok(event) => self.app.bus.publish(event),
            Err(e) => tracing::warn!(generation = %self.g, error = %e, "progress not recorded"),
        }
    }

    async fn save_refs(&self, refs: serde_json::Value) {
        if let Ok(mut current) = self.refs.lock() {
            current.clone_from(&refs);
        }
        if let Err(e) = self.app.catalogue.set_provider_refs(self.g, &refs).await {
            tracing::warn!(generation = %self.g, error = %e, "provider references not saved");
        }
    }

    async fn notice(&self, notice: Failure) {
        let phase = match self.stage {
            Stage::Upscale(_) => Phase::UpscalesInProgress,
            Stage::Grid | Stage::Single => Phase::GridRendering,
        };
        let progress = f64::from_bits(self.last.load(Ordering::Relaxed));
        let mut change =
            Change::new(EventKind::Progress, GenerationStatus::Running, progress).phase(phase);
        change.error = Some(notice);
        match self.app.catalogue.advance(self.g, &change).await {
            Ok(event) => self.app.bus.publish(event),
            Err(e) => tracing::warn!(generation = %self.g, error = %e, "notice not recorded"),
        }
    }

    async fn account(&self, name: &str) {
        if let Err(e) = self.app.catalogue.set_account(self.g, name).await {
            tracing::warn!(generation = %self.g, error = %e, "provider account not saved");
        }
    }
}
