//! The generate job: provider → pipeline → store → catalogue, step by step.
//!
//! Each step first looks at what the catalogue already holds, so a job taken over after a crash
//! resumes: a stored grid is not rendered again, a stored upscale is not asked for again, and
//! a separate output stored already is not stored twice (`outputs.rs`). The provider's declared
//! `Shape` decides the flow: a grid with upscales, or separate outputs.

use std::sync::Arc;

use super::JobError;
use super::outputs::Collect;
use super::reporter::{JobReporter, Shared, Stage};
use super::storing::{insert, picture, process_and_store, processing, save};
use crate::app::App;
use crate::catalogue::{CatalogueError, Change};
use crate::domain::{
    ErrorCode, EventKind, Failure, Generation, GenerationStatus, Image, ImageId, Job, MediaKind,
    Milestones, Output, Phase, Role, makes_video,
};
use crate::pipeline::{self, PipelineError, Processed, ProcessedGrid};
use crate::providers::{Input, ProviderError, ProviderJob, Registered, Shape, UpscaleMode};

impl From<CatalogueError> for JobError {
    fn from(e: CatalogueError) -> Self {
        match e {
            // The generation became terminal under us: canceled by request.
            CatalogueError::Conflict(_) => JobError::Stop,
            e @ CatalogueError::Refused(_) => JobError::Refused(e),
            e => JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None),
        }
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> Self {
        if e.retryable {
            JobError::Retry(e.failure(), e.retry_after)
        } else {
            JobError::Abort(e.failure())
        }
    }
}

pub(super) fn pipeline_error(e: PipelineError) -> JobError {
    match e {
        // A corrupt delivery is fetched again: providers usually serve a good copy next time.
        PipelineError::Integrity(m) => {
            JobError::Retry(Failure::new(ErrorCode::IntegrityFailed, m), None)
        }
        // Over a limit: the same file would be refused again.
        PipelineError::Limit(m) => JobError::Abort(Failure::new(ErrorCode::IntegrityFailed, m)),
        // A clip that is over a limit, unsupported or not what it was said to be is refused
        // again; a truncated or malformed one is fetched again, like a corrupt picture.
        PipelineError::Video(v) if v.is_permanent() => {
            JobError::Abort(Failure::new(ErrorCode::IntegrityFailed, v.to_string()))
        }
        PipelineError::Video(v) => JobError::Retry(
            Failure::new(ErrorCode::IntegrityFailed, v.to_string()),
            None,
        ),
        e => JobError::Abort(Failure::new(ErrorCode::Internal, e.to_string())),
    }
}

pub(super) async fn blocking<T: Send + 'static>(
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
    // Refused before the job is queued (`Providers::serving`); a job queued by an older
    // version, or for a provider configured differently since, still fails cleanly here.
    reg.provider
        .capabilities()
        .serves(&generation.provider, generation.kind, action)
        .map_err(|why| JobError::Abort(Failure::new(ErrorCode::InvalidParameter, why)))?;
    let parent_refs = match (action, generation.parent_id) {
        (Some(_), Some(parent)) => app.catalogue.generation(parent).await?.provider_refs,
        _ => serde_json::Value::Null,
    };
    // An action works from its parent's result, never from the pictures the parent started
    // from (which it keeps in its parameters, and which may have been deleted since).
    let inputs = if action.is_some() {
        Vec::new()
    } else {
        inputs(&app, &generation).await?
    };
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

pub(super) struct Run {
    pub(super) app: Arc<App>,
    pub(super) g: Arc<Generation>,
    pub(super) reg: Registered,
    pub(super) milestones: Milestones,
    /// What the provider's render delivers (its declared capabilities).
    shape: Shape,
    pjob: ProviderJob,
    /// What the run shares with its reporters: the provider's references as last saved, the
    /// progress last recorded and when, the upscales stored.
    pub(super) shared: Arc<Shared>,
    /// This run wrote the `submitted` event (phase `grid_rendering`).
    just_submitted: bool,
    /// This run wrote the step that starts the upscales (with the grid's milestone).
    pub(super) upscales_begun: bool,
}

impl Run {
    fn new(app: Arc<App>, g: Generation, reg: Registered) -> Self {
        let shape = match reg.provider.capabilities().shape {
            // The request may choose how many (OpenAI's `n`).
            Shape::Separate { .. } => Shape::Separate {
                count: reg.provider.outputs(&g.parameters),
            },
            grid @ Shape::GridWithUpscales => grid,
        };
        let milestones = match shape {
            Shape::Separate { count } => Milestones::separate(count),
            Shape::GridWithUpscales => Milestones::new(g.parameters.upscale.len() as u8),
        };
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
            upscales: Vec::new(),
            stored: Vec::new(),
        };
        let shared = Shared::new(g.provider_refs.clone(), g.progress);
        Self {
            app,
            g: Arc::new(g),
            reg,
            milestones,
            shape,
            pjob,
            shared,
            just_submitted: false,
            upscales_begun: false,
        }
    }

    /// The provider's view of the job, with the references saved so far.
    pub(super) fn job(&self) -> ProviderJob {
        let mut job = self.pjob.clone();
        job.refs = self.shared.refs();
        job
    }

    pub(super) async fn step(&self, change: Change) -> Result<(), JobError> {
        self.steps(&[change]).await
    }

    /// Steps that follow one another at once, written together.
    pub(super) async fn steps(&self, changes: &[Change]) -> Result<(), JobError> {
        for event in self.app.catalogue.advance_all(self.g.id, changes).await? {
            self.shared.recorded(&event);
            self.app.bus.publish(event);
        }
        Ok(())
    }

    async fn go(mut self) -> Result<(), JobError> {
        let id = self.g.id;
        // A generation still queued has never run: nothing of it can be stored yet.
        let stored = if self.g.status == GenerationStatus::Queued {
            // Handed to the provider, which starts on the grid: the generation turns
            // `running` with the provider's first progress (or the grid itself).
            self.step(
                Change::new(
                    EventKind::Submitted,
                    GenerationStatus::Submitted,
                    Milestones::SUBMITTED,
                )
                .phase(Phase::GridRendering),
            )
            .await?;
            self.just_submitted = true;
            Vec::new()
        } else {
            self.app.images_of(id).await.map_err(|e| {
                JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None)
            })?
        };
        let has = |role: Role| stored.iter().find(|i| i.role == role).cloned();
        if self.g.kind.makes_prompts() {
            return self.prompts().await;
        }
        if self
            .pjob
            .action
            .is_some_and(|a| a.output() == Output::Single)
        {
            return self.single(has(Role::Variant(1))).await;
        }
        if let Shape::Separate { count } = self.shape {
            self.pjob.stored = stored
                .iter()
                .filter_map(|i| match i.role {
                    Role::Variant(index) if (1..=count).contains(&index) => Some(index),
                    _ => None,
                })
                .collect();
            return self.separate(count, &stored).await;
        }
        let wanted = self.g.parameters.upscale.clone();
        self.record_missing_milestones(&stored, &wanted).await?;
        let missing: Vec<u8> = wanted
            .iter()
            .copied()
            .filter(|i| has(Role::Upscale(*i)).is_none())
            .collect();
        let split = self.splits() && !wanted.is_empty();
        if !split {
            self.pjob.upscales.clone_from(&missing);
        }

        let (png, limits) = (self.app.png, self.app.limits);
        let mut quadrants: Option<Vec<Processed>> = None;
        let mut in_flight = None;
        let grid = if let Some(grid) = has(Role::Grid) {
            self.shared.grid_stored();
            grid
        } else {
            self.rendering().await?;
            let mut rendered = Collect::default();
            self.render(Stage::Render, &mut rendered).await?;
            let output = rendered.one("a grid")?;
            // The provider's upscales need only its grid: they start while this one is
            // processed and stored.
            if !split && !missing.is_empty() {
                in_flight = Some(self.ask_upscales(missing.clone()));
            }
            let image = if split {
                let bytes = picture(output)?;
                let ProcessedGrid { grid, quadrants: q } =
                    blocking(move || pipeline::process_grid_within(bytes, png, &limits)).await?;
                quadrants = Some(q);
                self.save(Role::Grid, grid).await?
            } else {
                let process = processing(output, self.media(), limits)?;
                self.process_and_save(Role::Grid, process).await?
            };
            self.shared.grid_stored();
            let mut steps = vec![self.grid_completed(image.id)];
            if !missing.is_empty() {
                steps.push(self.upscales_begin());
            }
            self.steps(&steps).await?;
            self.upscales_begun = !missing.is_empty();
            image
        };
        let done = (wanted.len() - missing.len()) as u8;
        // The last upscale's milestone is written with the end.
        let last = self
            .upscales(&grid, quadrants, done, missing, in_flight)
            .await?;
        let end = Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
            .phase(Phase::Completed);
        self.steps(&last.into_iter().chain([end]).collect::<Vec<_>>())
            .await?;
        self.metadata().await;
        Ok(())
    }

    /// The library layout keeps a JSON record beside the images. It is derived data: a
    /// failure is logged, not fatal, and the record can be written again from the catalogue.
    pub(super) async fn metadata(&self) {
        if let Err(e) = self.app.write_metadata(self.g.id).await {
            tracing::warn!(generation = %self.g.id, error = %e, "metadata record not written");
        }
    }

    /// What this generation's grid, upscales and single result are: clips for a video
    /// generation (the domain's `makes_video`) on a provider that declares clips, else
    /// pictures (the sandbox draws a picture grid whatever the prompt says).
    pub(super) fn media(&self) -> MediaKind {
        if self.reg.provider.capabilities().video
            && makes_video(self.pjob.action, &self.g.parameters)
        {
            MediaKind::Video
        } else {
            MediaKind::Image
        }
    }

    /// Whether the upscales are cut from the stored grid (`local_split`): only a picture's
    /// can be, a video grid's clips are the provider's to make.
    pub(super) fn splits(&self) -> bool {
        self.reg.upscale_mode == UpscaleMode::LocalSplit && self.media() == MediaKind::Image
    }

    /// An action whose result is one picture or one clip (U1–U4, Upscale Subtle/Creative, a
    /// video grid's clip, Extend): render it, store it, done.
    async fn single(&self, stored: Option<Image>) -> Result<(), JobError> {
        let image = if let Some(image) = stored {
            image
        } else {
            let output = self.render_one().await?.one("this action")?;
            let process = processing(output, self.media(), self.app.limits)?;
            self.process_and_save(Role::Variant(1), process).await?
        };
        let mut done = Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
            .phase(Phase::Completed);
        done.image_id = Some(image.id);
        self.step(done).await?;
        self.metadata().await;
        Ok(())
    }

    /// /describe and /shorten: the provider saves the prompts it found in the generation's
    /// references; no image is made.
    async fn prompts(&self) -> Result<(), JobError> {
        // Such a job stores no picture and its provider tells no progress, so after the
        // `submitted` step (which `rendering` then skips) nothing would make it `running`: it
        // would end without ever having started (`started_at`).
        if self.just_submitted {
            self.step(Change::new(
                EventKind::Progress,
                GenerationStatus::Running,
                Milestones::SUBMITTED,
            ))
            .await?;
        }
        self.render_one().await?;
        self.step(
            Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
                .phase(Phase::Completed),
        )
        .await
    }

    /// The step that starts a render: submitted (25), phase `grid_rendering`; already said by
    /// the `submitted` event when this run wrote it.
    pub(super) async fn rendering(&self) -> Result<(), JobError> {
        if self.just_submitted {
            return Ok(());
        }
        self.step(
            Change::new(
                EventKind::Progress,
                GenerationStatus::Running,
                Milestones::SUBMITTED,
            )
            .phase(Phase::GridRendering),
        )
        .await
    }

    /// Renders what is not a grid (one picture, or the prompts of /describe and /shorten):
    /// 25 → 100.
    async fn render_one(&self) -> Result<Collect, JobError> {
        self.rendering().await?;
        let mut outputs = Collect::default();
        self.render(Stage::Single, &mut outputs).await?;
        Ok(outputs)
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

    /// The step between the grid's milestone and the first upscale's: same progress, phase
    /// `upscales_in_progress`.
    pub(super) fn upscales_begin(&self) -> Change {
        Change::new(
            EventKind::Progress,
            GenerationStatus::Running,
            self.milestones.grid_stored(),
        )
        .phase(Phase::UpscalesInProgress)
    }

    /// The milestone of upscale `index`, the `done`-th stored.
    pub(super) fn upscale_completed(
        &self,
        index: u8,
        done: u8,
        image: crate::domain::ImageId,
    ) -> Change {
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
        // Upscales are stored in the order they arrive: the unrecorded ones come after those
        // whose milestones were written.
        let upscales: Vec<(u8, &Image)> = wanted
            .iter()
            .filter_map(|&index| {
                let image = stored.iter().find(|i| i.role == Role::Upscale(index))?;
                Some((index, image))
            })
            .collect();
        let mut done = upscales.iter().filter(|(_, i)| recorded(i)).count() as u8;
        for (index, image) in upscales {
            if recorded(image) {
                continue;
            }
            done += 1;
            self.step(self.upscale_completed(index, done, image.id))
                .await?;
        }
        Ok(())
    }

    pub(super) fn reporter(&self, stage: Stage) -> JobReporter {
        JobReporter {
            app: self.app.clone(),
            g: self.g.id,
            stage,
            milestones: self.milestones,
            shared: self.shared.clone(),
            outputs: None,
        }
    }

    async fn save(&self, role: Role, p: Processed) -> Result<Image, JobError> {
        save(&self.app, &self.g, self.reg.synthetic, role, p).await
    }

    pub(super) async fn process_and_save(
        &self,
        role: Role,
        process: impl FnOnce() -> Result<Processed, PipelineError> + Send + 'static,
    ) -> Result<Image, JobError> {
        let image =
            process_and_store(&self.app, &self.g, self.reg.synthetic, role, process).await?;
        insert(&self.app, &image).await
    }
}
