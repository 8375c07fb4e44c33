//! A render's outputs as they come: the provider delivers each through its reporter, and the
//! job's task takes them one at a time while the render goes on (`Run::render`).
//!
//! A render of separate outputs (`Shape::Separate`) stores each as it arrives, picture or
//! clip, as `variant_<index>`, and writes its `output_completed` milestone (the outputs share the second
//! half of the scale evenly, in the order they are stored); the last one's is written with the
//! end. A resumed job skips the outputs already stored, whose numbers the provider keeps.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::JobError;
use super::generate::Run;
use super::reporter::Stage;
use super::storing::clip_format;
use crate::catalogue::Change;
use crate::domain::{
    ErrorCode, EventKind, Failure, GenerationStatus, Image, ImageId, Milestones, Phase, Role,
};
use crate::pipeline;
use crate::providers::{Output, OutputKind};

/// What the job does with each output of a render, in its own task.
#[async_trait]
pub(super) trait Take: Send {
    async fn take(&mut self, run: &Run, output: Output) -> Result<(), JobError>;
}

/// Keeps the outputs, to use once the render has ended (a grid, one picture).
#[derive(Default)]
pub(super) struct Collect(pub(super) Vec<Output>);

#[async_trait]
impl Take for Collect {
    async fn take(&mut self, _run: &Run, output: Output) -> Result<(), JobError> {
        self.0.push(output);
        Ok(())
    }
}

impl Collect {
    /// The one output (a picture, or a video generation's clip) a render of a grid or of a
    /// single result delivers.
    pub(super) fn one(self, what: &str) -> Result<Output, JobError> {
        let mut outputs = self.0;
        if outputs.len() != 1 {
            return Err(JobError::Abort(Failure::new(
                ErrorCode::Internal,
                format!(
                    "the provider delivered {} outputs for {what}, which is one",
                    outputs.len()
                ),
            )));
        }
        outputs.pop().ok_or_else(|| {
            JobError::Abort(Failure::new(ErrorCode::Internal, "no output delivered"))
        })
    }
}

/// A render of `count` separate outputs, stored as they come.
struct Separate {
    count: u8,
    milestones: Milestones,
    /// The outputs stored, by this run or an earlier one.
    stored: BTreeSet<u8>,
    /// The last output's milestone, unwritten: it goes with the end.
    last: Option<Change>,
}

#[async_trait]
impl Take for Separate {
    async fn take(&mut self, run: &Run, output: Output) -> Result<(), JobError> {
        let index = output.index;
        if !(1..=self.count).contains(&index) {
            return Err(JobError::Abort(Failure::new(
                ErrorCode::Internal,
                format!(
                    "the provider delivered output {index}; this render has outputs 1 to {}",
                    self.count
                ),
            )));
        }
        // A resumed render delivers again what an earlier run stored.
        if self.stored.contains(&index) {
            return Ok(());
        }
        let limits = run.app.limits;
        let bytes = output.bytes;
        let image = match output.kind {
            OutputKind::Image => {
                run.process_and_save(Role::Variant(index), move || {
                    pipeline::process_image_within(bytes, &limits)
                })
                .await?
            }
            // A clip is verified and stored like a picture, with its poster as thumbnail.
            OutputKind::Video(format) => {
                let format = clip_format(format);
                run.process_and_save(Role::Variant(index), move || {
                    pipeline::process_clip_within(bytes, format, &limits)
                })
                .await?
            }
        };
        self.stored.insert(index);
        let change = output_completed(self.milestones, index, self.done(), image.id);
        if self.done() >= self.count {
            self.last = Some(change);
        } else {
            run.step(change).await?;
        }
        Ok(())
    }
}

impl Separate {
    fn done(&self) -> u8 {
        u8::try_from(self.stored.len()).unwrap_or(u8::MAX)
    }
}

/// The milestone of output `index`, the `done`-th stored.
fn output_completed(milestones: Milestones, index: u8, done: u8, image: ImageId) -> Change {
    let mut change = Change::new(
        EventKind::OutputCompleted,
        GenerationStatus::Running,
        milestones.outputs_stored(done),
    )
    .phase(Phase::OutputsInProgress);
    change.index = Some(index);
    change.image_id = Some(image);
    change
}

impl Run {
    /// Runs the provider's render with a reporter for `stage`, handing each output to `take`
    /// in the job's task as it arrives, while the render goes on. The outputs delivered
    /// before the render ended are all taken, even when it failed: the provider did the
    /// work, and a retry finds them stored.
    pub(super) async fn render(&self, stage: Stage, take: &mut dyn Take) -> Result<(), JobError> {
        // One output waits while the one before it is taken: a provider runs at most one
        // output ahead of the store.
        let (sender, mut outputs) = tokio::sync::mpsc::channel(1);
        let mut reporter = self.reporter(stage);
        reporter.outputs = Some(sender);
        let (provider, job) = (self.reg.provider.clone(), self.job());
        // The reporter, and with it the sender, ends with the render: so do the outputs.
        let render = async move { provider.render(&job, &reporter).await };
        let taking = async {
            while let Some(output) = outputs.recv().await {
                take.take(self, output).await?;
            }
            Ok::<(), JobError>(())
        };
        tokio::pin!(render, taking);
        let rendered = tokio::select! {
            rendered = &mut render => rendered,
            // Taking ends first only when an output could not be taken: the job stops.
            taken = &mut taking => {
                taken?;
                return Ok(render.await?);
            }
        };
        match (rendered, taking.await) {
            (Err(e), Ok(()) | Err(JobError::Retry(..))) => Err(e.into()),
            (_, Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    /// A render of `count` separate outputs: those not in `stored` yet are rendered and
    /// stored as they come, then the generation ends.
    pub(super) async fn separate(&self, count: u8, stored: &[Image]) -> Result<(), JobError> {
        let count = count.max(1);
        let mut outputs = Separate {
            count,
            milestones: self.milestones,
            stored: BTreeSet::new(),
            last: None,
        };
        // Outputs stored before a crash, in the order their milestones were written; one
        // stored without its event gets it first.
        let events = if stored.is_empty() {
            Vec::new()
        } else {
            self.app.catalogue.events(self.g.id, 0).await?
        };
        let recorded = |image: &Image| events.iter().any(|e| e.image_id == Some(image.id));
        let mut earlier: Vec<(u8, &Image)> = stored
            .iter()
            .filter_map(|image| match image.role {
                Role::Variant(index) if (1..=count).contains(&index) => Some((index, image)),
                _ => None,
            })
            .collect();
        earlier.sort_by_key(|(index, image)| (!recorded(image), *index));
        for (index, image) in earlier {
            outputs.stored.insert(index);
            if !recorded(image) {
                let done = outputs.done();
                self.step(output_completed(self.milestones, index, done, image.id))
                    .await?;
            }
        }
        if outputs.done() < count {
            // Once an output is stored the bar is past the render's half: a resumed render
            // only adds outputs, as resumed upscales do.
            if outputs.done() == 0 {
                self.rendering().await?;
            }
            self.render(Stage::Render, &mut outputs).await?;
        }
        if outputs.done() < count {
            return Err(JobError::Abort(Failure::new(
                ErrorCode::Internal,
                format!(
                    "the provider's render ended with {} of its {count} outputs delivered",
                    outputs.done()
                ),
            )));
        }
        let end = Change::new(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
            .phase(Phase::Completed);
        self.steps(&outputs.last.into_iter().chain([end]).collect::<Vec<_>>())
            .await?;
        self.metadata().await;
        Ok(())
    }
}
