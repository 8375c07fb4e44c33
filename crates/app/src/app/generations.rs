//! Generations: submit, a new version, cancel, read one, list them, their events and their
//! place in the queue.

use std::time::Duration;

use super::{App, GenerationWithImages, slot_of};
use crate::api::GenerationQuery;
use crate::catalogue::{Change, GenerationFilter, NewJob};
use crate::domain::{
    Actor, ErrorCode, Event, EventKind, Failure, Generation, GenerationId, GenerationKind,
    GenerationRequest, GenerationStatus, ImageId, JobId, JobStatus,
};
use crate::error::AppError;
use crate::jobs::Signal;

/// The most generations one page lists.
pub const MAX_PAGE: u32 = 200;

/// One page of generations, newest first, and the cursor of the next (the last one's id).
#[derive(Clone, Debug)]
pub struct GenerationPage {
    pub generations: Vec<Generation>,
    pub next: Option<GenerationId>,
}

/// Where a queued generation stands: how many jobs of its provider account come before it,
/// and, when recent generations of that provider tell, about how long until it ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueuePosition {
    pub ahead: u64,
    pub eta: Option<Duration>,
}

impl App {
    /// Checks a request against this process's providers without writing anything.
    pub fn check(&self, request: GenerationRequest) -> Result<GenerationRequest, AppError> {
        let request = request.validated()?;
        crate::domain::banned::check(&request, &self.banned_words)?;
        let parameters = request.parameters()?;
        self.providers
            .check(&request, &parameters)
            .map_err(AppError::Invalid)?;
        Ok(request)
    }

    pub(crate) fn provider_name(&self, asked: Option<&str>) -> Result<String, AppError> {
        self.providers.resolve(asked).map_err(AppError::Invalid)
    }

    /// Queues a generation for `actor`: the generation, its job and its first event are
    /// written together, before any provider is called.
    pub async fn submit(
        &self,
        actor: Actor,
        request: GenerationRequest,
    ) -> Result<Generation, AppError> {
        self.submit_hooked(actor, request, None).await
    }

    /// [`App::submit`], with the webhook `hook` (URL, filter) already checked.
    pub(crate) async fn submit_hooked(
        &self,
        actor: Actor,
        request: GenerationRequest,
        hook: Option<(String, crate::domain::EventFilter)>,
    ) -> Result<Generation, AppError> {
        let request = self.check(request)?;
        self.check_image_prompts(actor, &request.pictures()).await?;
        let mut parameters = request.parameters()?;
        let provider = self.provider_name(request.provider.as_deref())?;
        // Upscales are a grid's: a provider of separate pictures keeps no selection of them.
        if !self.renders_grid(Some(&provider))? {
            parameters.upscale.clear();
        }
        let generation = Generation {
            negative_prompt: request.negative_prompt,
            category: request.category,
            subject: request.subject,
            client_reference: request.client_reference,
            ..Generation::queued(
                provider,
                GenerationKind::Imagine,
                request.prompt,
                parameters,
            )
        };
        self.enqueue_hooked(actor, generation, hook).await
    }

    /// Writes `generation` (owned by `actor`, else kept as it is) with its job.
    pub(crate) async fn enqueue(
        &self,
        actor: Actor,
        generation: Generation,
    ) -> Result<Generation, AppError> {
        self.enqueue_hooked(actor, generation, None).await
    }

    /// [`App::enqueue`], with the generation's webhook written first.
    /// Refuses, writing nothing, what queuing a `kind` generation for `actor` on `provider`
    /// (else the default) would refuse on admission: the provider's queue full, the caller's
    /// credits short. For a front-end that stores something first (pictures sent inline), so
    /// that such a refusal stores nothing; a submit racing it may still be refused later.
    pub async fn admits(
        &self,
        actor: Actor,
        provider: Option<&str>,
        kind: crate::domain::GenerationKind,
    ) -> Result<(), AppError> {
        let name = self.provider_name(provider)?;
        let reg = self
            .providers
            .get(&name)
            .ok_or_else(|| AppError::Invalid(format!("unknown provider {name:?}")))?;
        self.queue_room(&name, reg, &slot_of(&name, &reg.account))
            .await?;
        self.credits_cover(actor, &name, kind).await
    }

    /// Refuses a generation its provider's queue has no room for.
    async fn queue_room(
        &self,
        provider: &str,
        reg: &crate::providers::Registered,
        slot: &str,
    ) -> Result<(), AppError> {
        if let Some(limit) = reg.queue_limit {
            let counts = self.queue.counts(&[slot.to_owned()]).await?;
            if counts.pending + counts.running >= u64::from(limit) {
                return Err(AppError::QueueFull(format!(
                    "queue full: {provider} already has {limit} jobs queued or running, as many as its accounts take (concurrency + queue_size); nothing was queued, try again later"
                )));
            }
        }
        Ok(())
    }

    pub(super) async fn enqueue_hooked(
        &self,
        actor: Actor,
        mut generation: Generation,
        hook: Option<(String, crate::domain::EventFilter)>,
    ) -> Result<Generation, AppError> {
        let reg = self.providers.get(&generation.provider).ok_or_else(|| {
            AppError::Invalid(format!("unknown provider {:?}", generation.provider))
        })?;
        generation.owner = actor.owner().or(generation.owner);
        generation.account = Some(reg.account.clone());
        let slot = slot_of(&generation.provider, &reg.account);
        self.queue_room(&generation.provider, reg, &slot).await?;
        let job = NewJob {
            id: JobId::new(),
            slot,
            concurrency: reg.concurrency,
            max_attempts: self.jobs.max_attempts,
            delay_ms: 0,
        };
        // Before the generation, so its first event finds it; one left by a failure below
        // names a generation that never comes, and is never read.
        if let Some(hook) = hook {
            self.subscribe(actor, generation.id, hook).await?;
        }
        // The cost is held before the generation exists and settled by its last step (in the
        // same transaction); a crash between the two is swept (`App::run_node`).
        let held = self
            .reserve_credits(actor, generation.id, &generation.provider, generation.kind)
            .await?;
        let created = match self
            .catalogue
            .create_generation(&generation, Some(&job), &[])
            .await
        {
            Ok(created) => created,
            Err(e) => {
                if held.is_some()
                    && let Err(release) = self.release_credits(generation.id).await
                {
                    tracing::warn!(error = %release, "credits held for a generation that was not created stay held until the sweep");
                }
                return Err(e.into());
            }
        };
        self.audit_work(
            actor,
            crate::domain::AuditAction::Generate,
            format!("generation:{}", created.id),
            serde_json::json!({"provider": created.provider, "kind": created.kind.as_str()}),
        )
        .await;
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
    pub async fn new_version(&self, actor: Actor, image: ImageId) -> Result<Generation, AppError> {
        let source = self.visible_image(actor, image).await?;
        let parent = self.catalogue.generation(source.generation_id).await?;
        if parent.kind == GenerationKind::Import {
            return Err(AppError::Invalid(format!(
                "image {image} was imported, not generated: there is no generation to run again"
            )));
        }
        self.provider_name(Some(&parent.provider))?;
        self.enqueue(actor, parent.child()).await
    }

    /// Cancels a generation: at once when it waits, through its worker when it runs.
    pub async fn cancel(&self, actor: Actor, id: GenerationId) -> Result<Generation, AppError> {
        let generation = self.visible_generation(actor, id).await?;
        if generation.status.is_terminal() {
            return Err(AppError::WrongState(format!(
                "generation {id} is already {}",
                generation.status.as_str()
            )));
        }
        let job = self.queue.cancel(id).await?;
        let ended = |e: crate::catalogue::CatalogueError| match e {
            // It ended between the check above and now.
            crate::catalogue::CatalogueError::Conflict(m) => AppError::WrongState(m),
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
            // An earlier attempt may have left the service working for it (a prediction).
            self.cancel_at_provider(&generation).await;
        } else {
            self.bus.signal(Signal::Cancel(id));
        }
        Ok(self.catalogue.generation(id).await?)
    }

    /// Tells a canceled generation's provider, so the service stops (and stops billing) what
    /// it still runs for it, found by the references its job saved; at most ten seconds.
    pub(crate) async fn cancel_at_provider(&self, generation: &Generation) {
        let Some(registered) = self.providers.get(&generation.provider) else {
            return;
        };
        let told = registered.provider.cancel(&generation.provider_refs);
        if tokio::time::timeout(Duration::from_secs(10), told)
            .await
            .is_err()
        {
            tracing::warn!(generation = %generation.id, "the provider did not take the cancel within 10 s");
        }
    }

    /// A generation with its images.
    pub async fn generation(
        &self,
        actor: Actor,
        id: GenerationId,
    ) -> Result<GenerationWithImages, AppError> {
        let (generation, images) = self.catalogue.generation_with_images(id).await?;
        Ok(GenerationWithImages {
            generation: super::visible_to(actor, generation)?,
            images: super::images::in_role_order(images),
        })
    }

    /// Generations `actor` may see, newest first, by `query`, at most [`MAX_PAGE`] a page
    /// (50 unless asked).
    pub async fn generations(
        &self,
        actor: Actor,
        query: &GenerationQuery,
    ) -> Result<GenerationPage, AppError> {
        let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let filter = GenerationFilter {
            owner: actor.scope(),
            status: query.status,
            provider: query.provider.clone(),
            before: query.before,
            limit: Some(limit),
        };
        let generations = self.catalogue.generations(&filter).await?;
        let next = (generations.len() == limit as usize)
            .then(|| generations.last().map(|g| g.id))
            .flatten();
        Ok(GenerationPage { generations, next })
    }

    /// Where a queued generation stands; `None` once it has started (or ended).
    pub async fn queue_position(
        &self,
        actor: Actor,
        id: GenerationId,
    ) -> Result<Option<QueuePosition>, AppError> {
        let g = self.visible_generation(actor, id).await?;
        self.queue_position_of(&g).await
    }

    /// Where generation `g`, read for an actor who may see it, stands while queued (the status
    /// read's second half, without reading the generation again).
    pub async fn queue_position_of(
        &self,
        g: &Generation,
    ) -> Result<Option<QueuePosition>, AppError> {
        let id = g.id;
        if g.status != GenerationStatus::Queued {
            return Ok(None);
        }
        let Some(ahead) = self.queue.ahead(id).await? else {
            return Ok(None);
        };
        let eta = self.typical_duration(&g.provider).await?.map(|typical| {
            let at_once = self
                .providers
                .get(&g.provider)
                .map_or(1, |r| r.concurrency.max(1));
            // Its own run, after the ones ahead have gone through `at_once` at a time.
            typical.mul_f64((ahead / u64::from(at_once) + 1) as f64)
        });
        Ok(Some(QueuePosition { ahead, eta }))
    }

    /// The median run time of the provider's last finished generations, if any.
    async fn typical_duration(&self, provider: &str) -> Result<Option<Duration>, AppError> {
        let recent = self
            .catalogue
            .generations(&GenerationFilter {
                status: Some(GenerationStatus::Succeeded),
                provider: Some(provider.to_owned()),
                limit: Some(20),
                ..GenerationFilter::default()
            })
            .await?;
        let mut runs: Vec<Duration> = recent
            .iter()
            .filter_map(|g| {
                let d = g.completed_at? - g.started_at?;
                Duration::try_from(d).ok()
            })
            .collect();
        runs.sort();
        Ok(runs.get(runs.len() / 2).copied())
    }

    /// The generation's events after number `after`, oldest first.
    pub async fn events(
        &self,
        actor: Actor,
        id: GenerationId,
        after: u64,
    ) -> Result<Vec<Event>, AppError> {
        self.visible_generation(actor, id).await?;
        Ok(self.catalogue.events(id, after).await?)
    }
}
