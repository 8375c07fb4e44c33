//! The domain: generations, images, their life cycle and events.
//!
//! Nothing here knows about SQL, HTTP, Discord or the file system. Adapters (catalogue, store,
//! providers, CLI) depend on these types; these types depend on nothing but `std`, `time`,
//! `uuid` and `serde` (for JSON parameters and event payloads).

pub mod action;
mod actor;
mod error;
mod event;
mod generation;
mod ids;
mod image;
mod job;
mod lifecycle;
mod progress;
pub mod prompt_params;
mod request;
pub mod tags;

pub use action::{Action, ActionName, Output};
pub use actor::Actor;
pub use error::{ErrorCode, Failure};
pub use event::{Event, EventKind};
pub use generation::{Generation, GenerationKind, GenerationStatus, Phase};
pub use ids::{GenerationId, ImageId, JobId, UserId};
pub use image::{Category, Image, ImageStatus, Rgb, Role};
pub use job::{AfterFailure, Job, JobKind, JobStatus, Lease, OnClaim};
pub use lifecycle::{Change, Stage, StepRefused, creation_events};
pub use progress::Milestones;
pub use request::{GenerationRequest, Invalid, MAX_PROMPT_CHARS, Parameters, UpscaleSelection};
