//! Wire types of webhooks: the body every delivery sends, a generation's delivery log, and a
//! user's signing secret (shown only to them).

use serde::Serialize;

use super::{EventView, GenerationView, rfc3339};
use crate::domain::{Attempt, Delivery, Event};

/// A generation's webhook as `POST /v1/generations` takes it (`webhook`, `webhook_events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: String,
    /// `started`, `progress`, `output`, `completed`, `failed`, `canceled`; unset: the last three.
    pub events: Option<Vec<String>>,
}

/// The body of a delivery, in the Standard Webhooks shape: `type`, `timestamp`, `data`.
#[derive(Serialize, Debug)]
pub struct WebhookPayload<'a> {
    /// The event's type, as in the event streams (`generation.completed`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the event happened (RFC 3339).
    pub timestamp: String,
    pub data: WebhookData<'a>,
}

#[derive(Serialize, Debug)]
pub struct WebhookData<'a> {
    /// The event, exactly as the event streams send it.
    pub event: EventView,
    /// The generation with its images, as it stood when the delivery was queued.
    pub generation: &'a GenerationView,
}

impl<'a> WebhookPayload<'a> {
    pub fn new(e: &Event, generation: &'a GenerationView) -> Self {
        Self {
            kind: e.kind.as_str(),
            timestamp: rfc3339(e.at),
            data: WebhookData {
                event: EventView::from(e),
                generation,
            },
        }
    }
}

/// One delivery of a generation's webhook, with its attempts.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` header of every attempt.
    pub id: String,
    pub event: String,
    /// The event's number in its generation.
    pub seq: u64,
    pub url: String,
    /// `pending`, `delivered`, `failed` (every attempt failed) or `gone` (410).
    #[schema(value_type = String)]
    pub status: &'static str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct AttemptView {
    pub n: u32,
    pub at: String,
    /// The receiver's status code; absent when it did not answer.
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The start of the receiver's answer.
    pub response: Option<String>,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            n: a.n,
            at: rfc3339(a.at),
            http_status: a.http_status,
            error: a.error.clone(),
            duration_ms: a.duration_ms,
            response: a.response.clone(),
        }
    }
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.clone(),
            event: d.event.clone(),
            seq: d.seq,
            url: d.url.clone(),
            status: d.status.as_str(),
            created_at: rfc3339(d.created_at),
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            attempts: d.log.iter().map(AttemptView::from).collect(),
        }
    }
}

/// A user's signing secret (`GET /v1/me/webhook-secret`, and after a rotation).
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookSecretView {
    /// `whsec_…`: give it to a Standard Webhooks library to verify deliveries.
    pub secret: String,
    /// When the last rotation happened, if any.
    pub rotated_at: Option<String>,
    /// Until when deliveries also carry a signature by the secret this one replaced.
    pub previous_valid_until: Option<String>,
}

impl std::fmt::Debug for WebhookSecretView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecretView")
            .field("secret", &crate::secret::REDACTED)
            .field("rotated_at", &self.rotated_at)
            .finish_non_exhaustive()
    }
}
