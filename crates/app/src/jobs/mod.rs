//! The job engine: a durable queue in the catalogue, workers that lease jobs and renew their
//! lease while they run, retries with backoff, cancellation, and the event bus.
//!
//! A job is written (with its generation) before any provider is called. Workers claim with a
//! lease; a crashed worker's lease runs out and another worker takes the job over. The generate
//! job is idempotent step by step (grid, then each upscale), so a takeover resumes where the
//! catalogue says the generation stands and never stores an image twice.
//!
//! - `worker`: claims, lease renewal, retries with backoff, cancellation;
//! - `generate`: one generation, step by step (the grid, single pictures, /describe);
//! - `upscales`: its upscales, asked of the provider at once and stored as they arrive;
//! - `outputs`: a render's outputs as they come (separate outputs stored as they arrive);
//! - `storing`: where its images go (blobs, then rows; clips refused for now);
//! - `reporter`: what the provider reports (progress, notices, saved references);
//! - `bus`: the in-process event bus and wake-ups;
//! - `node`: this process as a node (its id, its holds on provider accounts).

mod bus;
mod generate;
mod node;
mod outputs;
mod reporter;
mod storing;
mod upscales;
mod worker;

pub use bus::{Bus, Signal};
pub use node::{QueueHolds, hold_accounts, node_id, release_accounts};
pub use worker::{Stop, Worker, run_node, run_workers};

use std::time::Duration;

use crate::domain::Failure;

/// How a job run ended, when it did not succeed.
#[derive(Debug)]
pub enum JobError {
    /// Try again later (after `after`, else the backoff).
    Retry(Failure, Option<Duration>),
    /// Give up: the generation fails with this.
    Abort(Failure),
    /// The generation was ended elsewhere (canceled): stop without writing.
    Stop,
    /// The catalogue refused a write (a full disk, a read-only file): record nothing (it
    /// would be refused too) and stop the workers; the job stays leased, to be taken over.
    Refused(crate::catalogue::CatalogueError),
}
