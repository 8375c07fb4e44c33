//! What a provider reports during a generate job, turned into catalogue writes: progress
//! events (spaced, and only when the bar rises), notices, the account it took, and its saved
//! references, which every call of the job shares (the upscales run at once); and the outputs
//! a render delivers, handed to the job's task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;

use crate::app::App;
use crate::catalogue::Change;
use crate::domain::{
    ErrorCode, Event, EventKind, Failure, GenerationId, GenerationStatus, Milestones, Phase,
};
use crate::providers::{Output, ProviderError, RefsChange, Reporter};

/// Progress events closer together than this are not recorded: a provider reporting every
/// few milliseconds would otherwise turn each job into dozens of catalogue writes. Milestones
/// (grid stored, each upscale stored) are always recorded.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// What the reporters of one run share with the run.
pub(super) struct Shared {
    /// The provider's references with every change made so far, and how many changes that
    /// is: later calls, and calls running at once, see them.
    refs: std::sync::Mutex<(Value, u64)>,
    /// Held while the references are written, with how many changes the catalogue holds:
    /// the writes of calls running at once go out one at a time, each with all the changes
    /// made so far (a late write of an older copy would drop another call's pending nonce), and
    /// a change that an earlier write already carried needs none of its own.
    saving: tokio::sync::Mutex<u64>,
    /// Whether the grid is stored: upscales made meanwhile wait for it before they store
    /// anything or report progress, so the catalogue follows the life cycle's order.
    grid: tokio::sync::watch::Sender<bool>,
    /// The progress last recorded, and when any event of this run was last written.
    recorded: std::sync::Mutex<(f64, Option<Instant>)>,
    /// Upscales stored so far: the in-flight upscales' progress lies between this many
    /// stored and one more.
    upscales_stored: AtomicU8,
    /// The account the provider took, until a save of the references has written it.
    account: std::sync::Mutex<Option<String>>,
}

impl Shared {
    pub(super) fn new(refs: Value, progress: f64) -> Arc<Self> {
        Arc::new(Self {
            refs: std::sync::Mutex::new((refs, 0)),
            saving: tokio::sync::Mutex::new(0),
            grid: tokio::sync::watch::Sender::new(false),
            recorded: std::sync::Mutex::new((progress, None)),
            upscales_stored: AtomicU8::new(0),
            account: std::sync::Mutex::new(None),
        })
    }

    pub(super) fn refs(&self) -> Value {
        self.refs.lock().map(|r| r.0.clone()).unwrap_or_default()
    }

    /// The grid's row is written: upscales may store theirs.
    pub(super) fn grid_stored(&self) {
        self.grid.send_replace(true);
    }

    /// Waits until the grid is stored; false if the run ended first.
    pub(super) fn wait_for_grid(&self) -> impl Future<Output = bool> + Send + 'static {
        let mut grid = self.grid.subscribe();
        async move { grid.wait_for(|stored| *stored).await.is_ok() }
    }

    /// An event of the run was written (a step, or a reporter's progress).
    pub(super) fn recorded(&self, event: &Event) {
        if let Ok(mut r) = self.recorded.lock() {
            *r = (r.0.max(event.progress), Some(Instant::now()));
        }
    }

    fn progress(&self) -> f64 {
        self.recorded.lock().map_or(0.0, |r| r.0)
    }

    pub(super) fn set_upscales_stored(&self, n: u8) {
        self.upscales_stored.store(n, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
pub(super) enum Stage {
    /// A render (the grid, or separate outputs): 25 → 50 following the provider.
    Render,
    /// The one picture of a single-image action, 25 → 100.
    Single,
    /// An upscale, one of those in flight: between the milestones of the upscales stored so
    /// far and one more.
    Upscale,
}

/// Turns one provider call's reports into catalogue writes for generation `g`.
pub(super) struct JobReporter {
    pub(super) app: Arc<App>,
    pub(super) g: GenerationId,
    pub(super) stage: Stage,
    pub(super) milestones: Milestones,
    pub(super) shared: Arc<Shared>,
    /// Where a render's outputs go: to the job's task, one waiting at most. `None` for an
    /// upscale, which returns its picture.
    pub(super) outputs: Option<tokio::sync::mpsc::Sender<Output>>,
}

/// A provider's percentage for a stage that ends before 100 %: at most 99.
fn clamped(percent: f64) -> f64 {
    if percent.is_finite() {
        percent.clamp(0.0, 99.0)
    } else {
        0.0
    }
}

impl JobReporter {
    /// The generation's progress and phase for the provider's `percent` of this stage.
    fn overall(&self, percent: f64) -> (f64, Phase) {
        match self.stage {
            Stage::Render => (self.milestones.rendering(percent), Phase::GridRendering),
            Stage::Single => (
                Milestones::SUBMITTED + (100.0 - Milestones::SUBMITTED) * clamped(percent) / 100.0,
                Phase::GridRendering,
            ),
            // Asked for while the grid is processed: nothing to show before the grid is stored.
            Stage::Upscale if !*self.shared.grid.borrow() => (0.0, Phase::UpscalesInProgress),
            Stage::Upscale => {
                let stored = self.shared.upscales_stored.load(Ordering::Relaxed);
                let from = self.milestones.upscales_stored(stored);
                let to = self.milestones.upscales_stored(stored.saturating_add(1));
                (
                    from + (to - from).max(0.0) * clamped(percent) / 100.0,
                    Phase::UpscalesInProgress,
                )
            }
        }
    }

    async fn record(&self, change: &Change, what: &str) {
        match self.app.catalogue.advance(self.g, change).await {
            Ok(event) => {
                self.shared.recorded(&event);
                self.app.bus.publish(event);
            }
            Err(e) => tracing::warn!(generation = %self.g, error = %e, "{what} not recorded"),
        }
    }
}

#[async_trait]
impl Reporter for JobReporter {
    async fn progress(&self, percent: f64) {
        let (overall, phase) = self.overall(percent);
        {
            let Ok(mut recorded) = self.shared.recorded.lock() else {
                return;
            };
            let (last, at) = *recorded;
            if overall <= last || at.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                return;
            }
            // Booked now, so reporters running at once do not all write the same step.
            *recorded = (overall, Some(Instant::now()));
        }
        let change =
            Change::new(EventKind::Progress, GenerationStatus::Running, overall).phase(phase);
        self.record(&change, "progress").await;
    }

    async fn output(&self, output: Output) -> Result<(), ProviderError> {
        let Some(outputs) = &self.outputs else {
            return Err(ProviderError::new(
                ErrorCode::Internal,
                "an upscale returns its picture; only a render delivers outputs",
            ));
        };
        outputs.send(output).await.map_err(|_| {
            ProviderError::new(
                ErrorCode::Internal,
                "the job takes no more outputs: it is ending",
            )
        })
    }

    fn refs(&self) -> Value {
        self.shared.refs()
    }

    async fn update_refs(&self, change: RefsChange<'_>) -> Result<(), ProviderError> {
        let poisoned = || ProviderError::unsaved("a lock was poisoned");
        let mine = {
            let mut refs = self.shared.refs.lock().map_err(|_| poisoned())?;
            change(&mut refs.0);
            refs.1 += 1;
            refs.1
        };
        let mut written = self.shared.saving.lock().await;
        // A write made while this one waited carried its change too.
        if *written >= mine {
            return Ok(());
        }
        let (value, changes) = self.shared.refs.lock().map_err(|_| poisoned())?.clone();
        let account = self.shared.account.lock().map_err(|_| poisoned())?.clone();
        self.app
            .catalogue
            .set_provider_refs(self.g, &value, account.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(generation = %self.g, error = %e, "provider references not saved");
                ProviderError::unsaved(e)
            })?;
        *written = changes;
        if let Ok(mut pending) = self.shared.account.lock()
            && *pending == account
        {
            *pending = None;
        }
        Ok(())
    }

    async fn notice(&self, notice: Failure) {
        let phase = match self.stage {
            Stage::Upscale => Phase::UpscalesInProgress,
            Stage::Render | Stage::Single => Phase::GridRendering,
        };
        let mut change = Change::new(
            EventKind::Progress,
            GenerationStatus::Running,
            self.shared.progress(),
        )
        .phase(phase);
        change.error = Some(notice);
        self.record(&change, "notice").await;
    }

    async fn account(&self, name: &str) {
        if let Ok(mut pending) = self.shared.account.lock() {
            *pending = Some(name.to_owned());
        }
    }
}
