//! The webhooks' outbox, kept in the catalogue's database: each user's signing secret, the
//! webhook each generation was created with, the deliveries derived from the event feed and
//! their attempts.
//!
//! Deliveries are derived from the feed after a persisted cursor, not written by the steps
//! they report: the engine's transactions stay as they are, and an event that is committed is
//! delivered, since the cursor only moves in the transaction that queues its deliveries.
//! Queuing is idempotent (one delivery per generation and event number), so nodes deriving the
//! same events at once queue each delivery once, and the cursor only moves forward.
//!
//! An attempt is made by one node at a time: a claim leases the delivery for a while (on the
//! database's clock, like the job queue), and only the lease's holder records the outcome.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::Result;
use crate::domain::{Attempt, Delivery, GenerationId, NewDelivery, Next, Subscription, UserId};

/// A user's signing secrets: the current one, and the one it replaced while receivers move
/// over (deliveries are signed with both for a while after a rotation).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub current: String,
    pub previous: Option<String>,
    /// When `previous` was replaced.
    pub rotated_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("rotated_at", &self.rotated_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait Outbox: Send + Sync {
    // Secrets.

    /// The user's secrets, if they have one.
    async fn webhook_secret(&self, owner: UserId) -> Result<Option<SecretRecord>>;
    /// Keeps `candidate` as the user's secret unless they already have one; returns theirs.
    async fn ensure_webhook_secret(&self, owner: UserId, candidate: &str) -> Result<SecretRecord>;
    /// Makes `new` the user's secret; the one it replaces stays valid as `previous`.
    async fn rotate_webhook_secret(&self, owner: UserId, new: &str) -> Result<SecretRecord>;

    // Subscriptions.

    /// Writes a generation's webhook; written before the generation, so its first event
    /// already finds it.
    async fn subscribe(&self, sub: &Subscription) -> Result<()>;
    /// The webhooks of these generations (those that have one).
    async fn subscriptions(&self, ids: &[GenerationId]) -> Result<Vec<Subscription>>;

    // Deriving deliveries from the feed.

    /// The feed position up to which deliveries are queued.
    async fn webhook_cursor(&self) -> Result<i64>;
    /// Queues `deliveries` (those already queued are left as they are) and moves the cursor
    /// to `position` (never back), in one transaction. Each is due at once.
    async fn queue_deliveries(&self, deliveries: &[NewDelivery], position: i64) -> Result<()>;

    // Attempts.

    /// Leases up to `limit` due deliveries to `owner` for `lease`, oldest due first, skipping
    /// those another claim holds; each comes with its attempts so far counted.
    async fn claim_deliveries(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Delivery>>;
    /// Records an attempt and what follows it, if `owner` still holds the delivery's lease
    /// (false: it ran out and another node may have it; nothing is written).
    async fn record_attempt(
        &self,
        id: &str,
        owner: &str,
        attempt: &Attempt,
        next: Next,
    ) -> Result<bool>;
    /// A generation's deliveries with their attempts, oldest first.
    async fn deliveries(&self, generation: GenerationId) -> Result<Vec<Delivery>>;
}
