//! Webhooks: which events a generation's webhook receives, what a delivery is, and what one
//! attempt's outcome makes of it (delivered, gone, tried again later or failed for good).
//!
//! A delivery is one event sent to one URL under one id (`msg_…`), the same on every attempt,
//! so a receiver can drop the duplicates a retry may bring. How a URL is judged, how a body is
//! signed and how it is sent are the adapter's (`crate::webhooks`).

use std::time::Duration;

use time::OffsetDateTime;

use super::{EventKind, GenerationId, UserId};

/// A group of events a webhook may ask for: the filter's vocabulary.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum WebhookEvent {
    /// The provider took the generation (`generation.submitted`).
    Started,
    /// Progress reported while it runs (`generation.progress`).
    Progress,
    /// An image is stored: the grid, an upscale or a separate output
    /// (`generation.grid_completed`, `generation.upscale_completed`,
    /// `generation.output_completed`).
    Output,
    Completed,
    Failed,
    Canceled,
}

impl WebhookEvent {
    pub const ALL: [Self; 6] = [
        Self::Started,
        Self::Progress,
        Self::Output,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
    ];

    /// What a webhook receives when it names no events: how each generation ended.
    pub const DEFAULT: [Self; 3] = [Self::Completed, Self::Failed, Self::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Progress => "progress",
            Self::Output => "output",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The group an event belongs to; `None` for `generation.created`, which the request that
    /// creates the generation already answers.
    pub fn of(kind: EventKind) -> Option<Self> {
        match kind {
            EventKind::Created => None,
            EventKind::Submitted => Some(Self::Started),
            EventKind::Progress => Some(Self::Progress),
            EventKind::GridCompleted | EventKind::UpscaleCompleted | EventKind::OutputCompleted => {
                Some(Self::Output)
            }
            EventKind::Completed => Some(Self::Completed),
            EventKind::Failed => Some(Self::Failed),
            EventKind::Canceled => Some(Self::Canceled),
        }
    }
}

/// Which events a webhook receives: a non-empty set of [`WebhookEvent`]s, kept sorted, and
/// the body its deliveries carry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EventFilter(Vec<WebhookEvent>, WebhookBody);

/// What a delivery's body is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum WebhookBody {
    /// The event and the generation (`api::WebhookPayload`).
    #[default]
    Standard,
    /// The generation as a midjourney-proxy task object (`api::mjproxy`): the body the
    /// proxy's `notifyHook` receives, asked for by the `/mj/submit/*` routes.
    MjProxyTask,
}

/// How [`WebhookBody::MjProxyTask`] is kept among the stored event names: not an event name,
/// so no user's filter can ask for it, and a filter stored without it reads as before.
const MJ_PROXY_BODY: &str = "body:mj-proxy";

/// Why a filter is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterInvalid {
    #[error(
        "unknown webhook event {0:?}: expected started, progress, output, completed, failed or canceled"
    )]
    Unknown(String),
    #[error(
        "the webhook event filter is empty: it would deliver nothing (leave it out for the default: completed, failed, canceled)"
    )]
    Empty,
}

impl EventFilter {
    /// The filter from its names, each once; an unknown name or an empty list is refused.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, FilterInvalid> {
        let mut events = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref().trim();
            let e = WebhookEvent::parse(name).ok_or_else(|| FilterInvalid::Unknown(name.into()))?;
            events.push(e);
        }
        if events.is_empty() {
            return Err(FilterInvalid::Empty);
        }
        events.sort();
        events.dedup();
        Ok(Self(events, WebhookBody::Standard))
    }

    /// Every event, delivered as a midjourney-proxy task object: the proxy posts its task on
    /// each change.
    pub fn mj_proxy_task() -> Self {
        Self(WebhookEvent::ALL.to_vec(), WebhookBody::MjProxyTask)
    }

    /// The body its deliveries carry.
    pub fn body(&self) -> WebhookBody {
        self.1
    }

    /// As stored: the names joined by commas (and the body's mark, when not the standard one).
    pub fn stored(&self) -> String {
        let mut names: Vec<&str> = self.0.iter().map(|e| e.as_str()).collect();
        if self.1 == WebhookBody::MjProxyTask {
            names.push(MJ_PROXY_BODY);
        }
        names.join(",")
    }

    /// From what [`EventFilter::stored`] wrote.
    pub fn from_stored(s: &str) -> Result<Self, FilterInvalid> {
        let names: Vec<&str> = s.split(',').collect();
        let task = names.contains(&MJ_PROXY_BODY);
        let events: Vec<&str> = names.into_iter().filter(|n| *n != MJ_PROXY_BODY).collect();
        let mut filter = Self::parse(&events)?;
        if task {
            filter.1 = WebhookBody::MjProxyTask;
        }
        Ok(filter)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|e| e.as_str()).collect()
    }

    /// Whether an event of `kind` is delivered.
    pub fn wants(&self, kind: EventKind) -> bool {
        WebhookEvent::of(kind).is_some_and(|e| self.0.contains(&e))
    }
}

impl Default for EventFilter {
    fn default() -> Self {
        Self(WebhookEvent::DEFAULT.to_vec(), WebhookBody::Standard)
    }
}

/// The webhook a generation was created with: where its events go and which.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Subscription {
    pub generation_id: GenerationId,
    /// Whose secret signs the deliveries (`None`: the operator's, `[webhooks] secret`).
    pub owner: Option<UserId>,
    /// Already checked by the adapter (`webhooks::target`).
    pub url: String,
    pub filter: EventFilter,
}

/// Where a delivery stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or for its next one.
    Pending,
    /// A 2xx answered.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
    /// The receiver answered 410 Gone: no more attempts.
    Gone,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed, Self::Gone]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A delivery to queue: made from one event of a subscribed generation.
#[derive(Clone, PartialEq, Debug)]
pub struct NewDelivery {
    /// `msg_` and 32 hex digits: the `webhook-id` of every attempt.
    pub id: String,
    pub generation_id: GenerationId,
    /// The event's number in its generation: one delivery per event.
    pub seq: u64,
    pub owner: Option<UserId>,
    /// The event's type (`generation.completed`).
    pub event: String,
    pub url: String,
    /// The JSON body, fixed when the delivery is queued so every attempt sends the same bytes.
    pub payload: String,
}

/// A delivery as stored, with its attempts (oldest first) when they were asked for.
#[derive(Clone, PartialEq, Debug)]
pub struct Delivery {
    pub id: String,
    pub generation_id: GenerationId,
    pub seq: u64,
    pub owner: Option<UserId>,
    pub event: String,
    pub url: String,
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<OffsetDateTime>,
    pub log: Vec<Attempt>,
}

/// One attempt: when, how it went, how long it took.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Attempt {
    /// 1, 2, 3…
    pub n: u32,
    pub at: OffsetDateTime,
    /// The receiver's status code, when it answered.
    pub http_status: Option<u16>,
    /// Why no status came (timeout, refused address, connection error), or what a non-2xx meant.
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The start of the receiver's answer, truncated ([`MAX_RESPONSE_CHARS`]).
    pub response: Option<String>,
}

/// How much of a receiver's answer is kept.
pub const MAX_RESPONSE_CHARS: usize = 1024;

/// What follows an attempt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Next {
    Delivered,
    Gone,
    /// Tried again after this delay.
    Retry(Duration),
    Failed,
}

/// What follows attempt number `n` (1 for the first) that got `status` (`None`: no answer):
/// a 2xx delivers, a 410 stops, anything else is tried again after the schedule's `n`th delay
/// or, past its end, fails for good.
pub fn next_after(n: u32, status: Option<u16>, schedule: &[Duration]) -> Next {
    match status {
        Some(200..=299) => Next::Delivered,
        Some(410) => Next::Gone,
        _ => match schedule.get(n.saturating_sub(1) as usize) {
            Some(delay) => Next::Retry(*delay),
            None => Next::Failed,
        },
    }
}

/// `text` cut to at most [`MAX_RESPONSE_CHARS`] characters.
pub fn truncated(text: &str) -> String {
    match text.char_indices().nth(MAX_RESPONSE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_sort_and_refuse_unknown_or_empty_lists() {
        let f = EventFilter::parse(&["completed", "started", "completed"]).unwrap();
        assert_eq!(f.stored(), "started,completed");
        assert_eq!(EventFilter::from_stored(&f.stored()).unwrap(), f);
        assert!(f.wants(EventKind::Submitted));
        assert!(!f.wants(EventKind::Progress));
        assert!(!f.wants(EventKind::Created));
        assert_eq!(
            EventFilter::parse(&["done"]),
            Err(FilterInvalid::Unknown("done".into()))
        );
        assert_eq!(EventFilter::parse::<&str>(&[]), Err(FilterInvalid::Empty));
        let d = EventFilter::default();
        assert!(d.wants(EventKind::Completed) && d.wants(EventKind::Failed));
        assert!(d.wants(EventKind::Canceled) && !d.wants(EventKind::GridCompleted));
        let all = EventFilter::parse(&WebhookEvent::ALL.map(WebhookEvent::as_str)).unwrap();
        for kind in EventKind::ALL {
            assert_eq!(all.wants(kind), kind != EventKind::Created, "{kind:?}");
        }
    }

    #[test]
    fn the_task_body_is_stored_with_the_names_and_cannot_be_asked_for() {
        let t = EventFilter::mj_proxy_task();
        assert_eq!(t.body(), WebhookBody::MjProxyTask);
        let back = EventFilter::from_stored(&t.stored()).unwrap();
        assert_eq!(back, t);
        assert_eq!(EventFilter::default().body(), WebhookBody::Standard);
        assert!(EventFilter::parse(&[MJ_PROXY_BODY]).is_err());
    }

    #[test]
    fn an_attempt_delivers_stops_retries_or_fails() {
        let s = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(next_after(1, Some(204), &s), Next::Delivered);
        assert_eq!(next_after(1, Some(410), &s), Next::Gone);
        assert_eq!(next_after(1, Some(500), &s), Next::Retry(s[0]));
        assert_eq!(next_after(2, None, &s), Next::Retry(s[1]));
        assert_eq!(next_after(3, Some(301), &s), Next::Failed);
        assert_eq!(next_after(1, Some(500), &[]), Next::Failed);
    }

    #[test]
    fn answers_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_RESPONSE_CHARS + 5);
        let cut = truncated(&long);
        assert_eq!(cut.chars().count(), MAX_RESPONSE_CHARS + 1);
        assert_eq!(truncated("ok"), "ok");
    }
}
