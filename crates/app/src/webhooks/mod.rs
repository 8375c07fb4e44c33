//! Webhooks: a generation's events sent to the URL it was created with, signed the Standard
//! Webhooks way, retried on a schedule, never in the engine's way.
//!
//! - `target.rs`: which URLs and addresses a webhook may reach (the SSRF guard);
//! - `sign.rs`: secrets and signatures;
//! - `send.rs`: one attempt over HTTP (guarded resolver, no redirects, a deadline);
//! - `dispatch.rs`: the node's two loops: deliveries derived from the event feed after the
//!   outbox's cursor, and due deliveries claimed (leased, several nodes at once), attempted a
//!   bounded number at a time and their outcome recorded.
//!
//! The engine never waits for a receiver: its steps write events as always, and deliveries
//! are made from the feed by tasks of their own.

mod dispatch;
pub mod send;
pub mod sign;
pub mod target;

use std::time::Duration;

use crate::secret::Secret;

pub(crate) use dispatch::run;

/// How this process delivers webhooks (`[webhooks]`, checked once).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Signs the operator's deliveries (generations made at the CLI); users have their own.
    pub operator_secret: Option<Secret>,
    /// Lets webhooks reach loopback, private and link-local addresses.
    pub allow_private_targets: bool,
    /// The delay before each retry: attempts are one more than its length.
    pub retry_schedule: Vec<Duration>,
    /// The longest one attempt may take, connection and answer included.
    pub attempt_timeout: Duration,
    /// Attempts this node makes at once.
    pub concurrency: u32,
    /// The longest URL accepted, in characters.
    pub max_url_chars: usize,
    /// How long after a rotation deliveries are signed with the previous secret too.
    pub rotation_overlap: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            operator_secret: None,
            allow_private_targets: false,
            // The Standard Webhooks suggestion: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
            retry_schedule: [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .map(Duration::from_secs)
                .to_vec(),
            attempt_timeout: Duration::from_secs(15),
            concurrency: 8,
            max_url_chars: 2048,
            rotation_overlap: Duration::from_hours(24),
        }
    }
}

impl WebhookSettings {
    /// How long a claim holds a delivery: the attempt and the time to record it.
    pub fn lease(&self) -> Duration {
        self.attempt_timeout + Duration::from_secs(5)
    }
}
