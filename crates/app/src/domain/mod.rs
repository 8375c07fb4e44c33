//! The domain: generations, images, their life cycle and events.
//!
//! Nothing here knows about SQL, HTTP, Discord or the file system. Adapters (catalogue, store,
//! providers, CLI) depend on these types; these types depend on nothing but `std`, `time`,
//! `uuid` and `serde` (for JSON parameters and event payloads).

pub mod action;
mod actor;
mod audit;
pub mod banned;
mod credits;
mod error;
mod event;
mod generation;
mod idempotency;
mod ids;
mod image;
mod job;
mod lifecycle;
mod progress;
pub mod prompt_params;
mod request;
pub mod tags;
mod user;
mod webhook;

pub use action::{Action, ActionName, Motion, Output, makes_video};
pub use actor::Actor;
pub use audit::{AuditAction, AuditEntry};
pub use credits::{
    Credits, CreditsInvalid, Grant, GrantKind, LedgerEntry, LedgerKind, MAX_AMOUNT, MAX_BALANCE,
    Reservation, Settlement, amount_of, note_of,
};
pub use error::{ErrorCode, Failure};
pub use event::{Event, EventKind};
pub use generation::{Generation, GenerationKind, GenerationStatus, Phase};
pub use idempotency::{
    Begun, IDEMPOTENCY_TTL, IdempotencyRecord, IdempotentRequest, KeyInvalid, StoredResponse,
};
pub use ids::{ApiKeyId, GenerationId, ImageId, JobId, UserId};
pub use image::{Category, Clip, Image, ImageStatus, MediaKind, Rgb, Role};
pub use job::{AfterFailure, Job, JobKind, JobStatus, Lease, OnClaim};
pub use lifecycle::{Change, Stage, StepRefused, creation_events};
pub use progress::Milestones;
pub use request::{
    GenerationRequest, Invalid, MAX_CLIENT_REFERENCE_CHARS, MAX_PROMPT_CHARS, Parameters,
    UpscaleSelection, check_client_reference, check_subject,
};
pub use user::{
    AccountInvalid, ApiKey, Email, KEY_PREFIX, SESSION_PREFIX, Session, User, UserRole,
    check_password, key_name, now_ms,
};
pub use webhook::{
    Attempt, Delivery, DeliveryStatus, EventFilter, FilterInvalid, NewDelivery, Next, Subscription,
    WebhookBody, WebhookEvent, next_after, truncated,
};
