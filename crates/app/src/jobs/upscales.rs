//! The upscale half of a generate job: the upscales not stored yet, cut from the grid
//! (`local_split`) or asked of the provider, all at once (Midjourney's U1–U4 are separate jobs
//! for Midjourney, which runs a few per account and queues the rest).
//!
//! Provider calls run concurrently, each in its own task that also processes and stores its
//! image; the job's own task writes the milestones, one at a time, in the order the upscales
//! are stored, so events stay gap-free and progress only rises (62.5, 75, 87.5, 100 for four,
//! whichever index comes first; each `upscale_completed` event names its index).
//! They are asked for as soon as the provider has delivered the grid, while the job processes
//! and stores it, but store nothing before the grid's row is written.

use tokio::task::JoinSet;

use super::JobError;
use super::generate::{Run, blocking};
use super::reporter::Stage;
use super::storing::{insert, process_and_store, processing, store_all};
use crate::catalogue::Change;
use crate::domain::{ErrorCode, Failure, Image, Role};
use crate::pipeline::{self, Processed};

type Outcome = Result<(u8, Image), JobError>;

/// The provider's upscales of one job: those asked for, and those still to ask for.
pub(super) struct InFlight {
    running: JoinSet<Outcome>,
    waiting: std::vec::IntoIter<u8>,
    at_once: usize,
}

impl Run {
    /// Asks the provider for the `missing` upscales, at most its `upscales_at_once` at a time.
    pub(super) fn ask_upscales(&self, missing: Vec<u8>) -> InFlight {
        let mut in_flight = InFlight {
            running: JoinSet::new(),
            waiting: missing.into_iter(),
            at_once: self.reg.provider.upscales_at_once().max(1),
        };
        self.top_up(&mut in_flight);
        in_flight
    }

    fn top_up(&self, in_flight: &mut InFlight) {
        while in_flight.running.len() < in_flight.at_once {
            let Some(index) = in_flight.waiting.next() else {
                break;
            };
            in_flight.running.spawn(self.upscale_task(index));
        }
    }

    /// Makes and stores the `missing` upscales (those of `in_flight` already asked for); `done`
    /// were stored before this run. Returns the last one's milestone, unwritten, for the caller
    /// to write with the step that follows it.
    pub(super) async fn upscales(
        &self,
        grid: &Image,
        quadrants: Option<Vec<Processed>>,
        done: u8,
        missing: Vec<u8>,
        in_flight: Option<InFlight>,
    ) -> Result<Option<Change>, JobError> {
        self.shared.set_upscales_stored(done);
        if missing.is_empty() {
            return Ok(None);
        }
        // A grid stored by this run wrote this step with its milestone.
        if done == 0 && !self.upscales_begun {
            self.step(self.upscales_begin()).await?;
        }
        if self.splits() {
            self.split_upscales(grid, quadrants, done, missing).await
        } else {
            let in_flight = in_flight.unwrap_or_else(|| self.ask_upscales(missing));
            self.provider_upscales(done, in_flight).await
        }
    }

    /// Writes the milestone of upscale `index`, the `done`-th stored.
    /// The last of the generation's upscales is not written but returned, for the caller to
    /// write with the step that follows it (the end).
    async fn stored(&self, index: u8, done: u8, image: &Image) -> Result<Option<Change>, JobError> {
        self.shared.set_upscales_stored(done);
        let change = self.upscale_completed(index, done, image.id);
        if usize::from(done) >= self.g.parameters.upscale.len() {
            return Ok(Some(change));
        }
        self.step(change).await?;
        Ok(None)
    }

    /// Asks the provider for every missing upscale at once (at most its
    /// `upscales_at_once`), and stores each as it arrives. After a retryable failure no
    /// other is started, but those in flight are awaited and stored: the provider did the
    /// work, and the retry then asks only for the rest. A fatal failure ends the job at once
    /// (the tasks in flight are aborted with the set).
    async fn provider_upscales(
        &self,
        mut done: u8,
        mut in_flight: InFlight,
    ) -> Result<Option<Change>, JobError> {
        let mut retry: Option<JobError> = None;
        let mut last = None;
        loop {
            if retry.is_none() {
                self.top_up(&mut in_flight);
            }
            let Some(joined) = in_flight.running.join_next().await else {
                break;
            };
            let outcome = joined.unwrap_or_else(|e| {
                Err(JobError::Retry(
                    Failure::new(ErrorCode::Internal, format!("an upscale task failed: {e}")),
                    None,
                ))
            });
            match outcome {
                Ok((index, image)) => {
                    done += 1;
                    last = self.stored(index, done, &image).await?;
                }
                Err(e @ JobError::Retry(..)) => {
                    retry.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        retry.map_or(Ok(last), Err)
    }

    /// One upscale from the provider, processed and stored (blobs, then its row); the
    /// milestone is the job task's to write.
    fn upscale_task(&self, index: u8) -> impl Future<Output = Outcome> + Send + 'static {
        let provider = self.reg.provider.clone();
        let job = self.job();
        let reporter = self.reporter(Stage::Upscale);
        let grid_stored = self.shared.wait_for_grid();
        let (app, g, synthetic) = (self.app.clone(), self.g.clone(), self.reg.synthetic);
        let media = self.media();
        async move {
            let output = provider.upscale(&job, index, &reporter).await?;
            let process = processing(output, media, app.limits)?;
            let image =
                process_and_store(&app, &g, synthetic, Role::Upscale(index), process).await?;
            // The grid's row first: a crash in between then resumes in the life cycle's order.
            // (Blobs without a row are harmless: a retry writes the same keys again.)
            if !grid_stored.await {
                return Err(JobError::Retry(
                    Failure::new(ErrorCode::Internal, "the grid was not stored"),
                    None,
                ));
            }
            let image = insert(&app, &image).await?;
            Ok((index, image))
        }
    }

    /// Cuts the missing upscales from the grid: the quadrants processed with it, or the
    /// stored grid's when this run did not render it.
    async fn split_upscales(
        &self,
        grid: &Image,
        quadrants: Option<Vec<Processed>>,
        mut done: u8,
        missing: Vec<u8>,
    ) -> Result<Option<Change>, JobError> {
        let quadrants = if let Some(q) = quadrants {
            q
        } else {
            let bytes = self
                .app
                .store
                .get(&grid.storage_key, &grid.sha256)
                .await
                .map_err(JobError::from)?;
            let (png, limits) = (self.app.png, self.app.limits);
            blocking(move || pipeline::process_grid_within(bytes, png, &limits))
                .await?
                .quadrants
        };
        let mut cut = Vec::with_capacity(missing.len());
        for &index in &missing {
            let processed = quadrants
                .get(usize::from(index).wrapping_sub(1))
                .cloned()
                .ok_or_else(|| {
                    JobError::Abort(Failure::new(ErrorCode::Internal, "missing quadrant"))
                })?;
            cut.push((Role::Upscale(index), processed));
        }
        // Every quadrant's files in one batch, then the rows and milestones in order.
        let images = store_all(&self.app, &self.g, self.reg.synthetic, cut).await?;
        let mut last = None;
        for (index, image) in missing.into_iter().zip(images) {
            let image = insert(&self.app, &image).await?;
            done += 1;
            last = self.stored(index, done, &image).await?;
        }
        Ok(last)
    }
}
