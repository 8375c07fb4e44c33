//! The node's webhook loops, run beside its workers (`App::run_node`).
//!
//! Deriving: the feed after the outbox's cursor is read in batches; each event of a generation
//! with a webhook that wants it becomes a delivery, its body fixed then (so every attempt sends
//! the same bytes under the same id), and the batch's deliveries and the cursor's new position
//! are written in one transaction. A process killed between the two writes nothing, and the
//! next reader (this node restarted, or another) derives the batch again; deliveries already
//! queued by another node are kept as they are.
//!
//! Delivering: due deliveries are claimed with a lease, at most `concurrency` in flight, each
//! attempt in a task of its own; only the lease's holder records the outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};

use super::send::Sender;
use super::sign;
use crate::api::WebhookPayload;
use crate::app::App;
use crate::catalogue::FeedFilter;
use crate::domain::{
    Actor, Attempt, Delivery, GenerationId, NewDelivery, Next, WebhookBody, next_after,
};
use crate::error::AppError;

/// Events read from the feed at once.
const BATCH: u32 = 500;
/// The longest wait between two looks at the feed, or at the due deliveries.
const POLL: Duration = Duration::from_millis(500);
/// After a failed read or write, before trying again.
const BACKOFF: Duration = Duration::from_secs(2);

/// Runs both loops until the future is dropped; never returns.
pub(crate) async fn run(app: &Arc<App>) {
    let settings = app.webhook_settings();
    let sender = match Sender::new(settings.allow_private_targets, settings.attempt_timeout) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            // The node's workers go on; deliveries wait for a process that can send them.
            tracing::error!(error = %e, "webhooks cannot be delivered: the HTTP client does not start");
            return std::future::pending().await;
        }
    };
    let queued = Arc::new(Notify::new());
    tokio::join!(derive(app, &queued), deliver(app, &sender, &queued));
}

async fn derive(app: &Arc<App>, queued: &Notify) {
    let mut cursor = Cursor {
        seen: 0,
        saved_at: Instant::now(),
    };
    loop {
        let seen = app.catalogue.events_seen();
        match derive_batch(app, &mut cursor).await {
            Ok((more, made)) => {
                if made {
                    queued.notify_one();
                }
                if !more {
                    app.catalogue.wait_for_events(seen, POLL).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot derive webhook deliveries from the feed; trying again");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}

/// How far this node has read the feed. Passing events that queue nothing is written down
/// only now and then ([`SAVE_EVERY`]): the engine's writes are not joined by one of ours per
/// event, and a restart that reads those events again queues nothing for them either.
struct Cursor {
    seen: i64,
    saved_at: Instant,
}

/// The longest a node keeps to itself a cursor that moved past events queuing nothing.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// Derives one batch: whether the feed may hold more, and whether deliveries were queued.
async fn derive_batch(app: &App, cursor: &mut Cursor) -> Result<(bool, bool), AppError> {
    let saved = app.webhooks.webhook_cursor().await?;
    let from = saved.max(cursor.seen);
    let entries = app
        .catalogue
        .feed(from, &FeedFilter::default(), BATCH)
        .await?;
    let Some(last) = entries.last().map(|e| e.position) else {
        if cursor.seen > saved && cursor.saved_at.elapsed() >= SAVE_EVERY {
            app.webhooks.queue_deliveries(&[], cursor.seen).await?;
            cursor.saved_at = Instant::now();
        }
        return Ok((false, false));
    };
    let mut ids: Vec<GenerationId> = entries.iter().map(|e| e.event.generation_id).collect();
    ids.sort_by_key(GenerationId::as_uuid);
    ids.dedup();
    let subs: HashMap<GenerationId, _> = app
        .webhooks
        .subscriptions(&ids)
        .await?
        .into_iter()
        .map(|s| (s.generation_id, s))
        .collect();
    let mut views = HashMap::new();
    let mut deliveries = Vec::new();
    for entry in &entries {
        let e = &entry.event;
        let Some(sub) = subs.get(&e.generation_id) else {
            continue;
        };
        if !sub.filter.wants(e.kind) {
            continue;
        }
        let g = match views.entry(e.generation_id) {
            std::collections::hash_map::Entry::Occupied(seen) => seen.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(app.generation(Actor::Operator, e.generation_id).await?)
            }
        };
        let payload = match sub.filter.body() {
            WebhookBody::Standard => {
                let view = app.generation_view(g).without_paths();
                serde_json::to_string(&WebhookPayload::new(e, &view))
            }
            // The proxy posts its task object as it stands.
            WebhookBody::MjProxyTask => serde_json::to_string(&app.mj_task(g, None)),
        }
        .map_err(|err| AppError::Internal(format!("a webhook body: {err}")))?;
        deliveries.push(NewDelivery {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            generation_id: e.generation_id,
            seq: e.seq,
            owner: sub.owner,
            event: e.kind.as_str().to_owned(),
            url: sub.url.clone(),
            payload,
        });
    }
    // Deliveries and the cursor past their events in one transaction: a process killed
    // before it commits queues them again when it (or another node) reads the batch again.
    if !deliveries.is_empty() || cursor.saved_at.elapsed() >= SAVE_EVERY {
        app.webhooks.queue_deliveries(&deliveries, last).await?;
        cursor.saved_at = Instant::now();
    }
    cursor.seen = last;
    Ok((entries.len() == BATCH as usize, !deliveries.is_empty()))
}

async fn deliver(app: &Arc<App>, sender: &Arc<Sender>, queued: &Arc<Notify>) {
    let settings = app.webhook_settings();
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1) as usize));
    let owner = format!("{}/webhooks", app.node());
    loop {
        // Wait for room before claiming: a claimed delivery is started at once.
        let Ok(first) = permits.clone().acquire_owned().await else {
            return;
        };
        let free = permits.available_permits() + 1;
        let claimed = match app
            .webhooks
            .claim_deliveries(
                &owner,
                u32::try_from(free).unwrap_or(u32::MAX),
                settings.lease(),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                drop(first);
                tracing::warn!(error = %e, "cannot claim webhook deliveries; trying again");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        let idle = claimed.len() < free;
        let mut first = Some(first);
        for d in claimed {
            let permit = match first.take() {
                Some(p) => p,
                None => match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (app, sender, owner, queued) =
                (app.clone(), sender.clone(), owner.clone(), queued.clone());
            tokio::spawn(async move {
                attempt(&app, &sender, &d, &owner, &queued).await;
                drop(permit);
            });
        }
        drop(first);
        if idle {
            let _ = tokio::time::timeout(POLL, queued.notified()).await;
        }
    }
}

/// One attempt of `d`, recorded.
async fn attempt(app: &App, sender: &Sender, d: &Delivery, owner: &str, queued: &Arc<Notify>) {
    let settings = app.webhook_settings();
    let n = d.attempts + 1;
    let at = crate::domain::now_ms();
    let (status, error, response, duration) = match app.signing_keys(d.owner).await {
        Ok(keys) => {
            let timestamp = OffsetDateTime::now_utc().unix_timestamp();
            let signature = sign::header(&keys, &d.id, timestamp, d.payload.as_bytes());
            let headers = [
                ("webhook-id", d.id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ];
            let sent = sender.send(&d.url, &headers, d.payload.clone()).await;
            (sent.status, sent.error, sent.response, sent.duration)
        }
        Err(e) => (None, Some(e.to_string()), None, Duration::ZERO),
    };
    let next = next_after(n, status, &settings.retry_schedule);
    tracing::info!(
        delivery = %d.id, generation = %d.generation_id, event = %d.event, attempt = n,
        status = ?status, error = error.as_deref().unwrap_or(""), next = ?next,
        "webhook attempt"
    );
    let record = Attempt {
        n,
        at,
        http_status: status,
        error,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        response,
    };
    match app
        .webhooks
        .record_attempt(&d.id, owner, &record, next)
        .await
    {
        Ok(true) => {
            // A retry due before the next look at the queue is claimed on time.
            if let Next::Retry(delay) = next
                && delay < POLL
            {
                let queued = queued.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    queued.notify_one();
                });
            }
        }
        Ok(false) => {
            tracing::warn!(delivery = %d.id, "a webhook attempt outlived its lease; another node may make it again");
        }
        Err(e) => {
            tracing::warn!(delivery = %d.id, error = %e, "cannot record a webhook attempt; it is made again when its lease runs out");
        }
    }
}
