//! Following events as they are written: one generation's (`App::follow`, which ends with
//! the generation) or the whole feed's (`App::follow_feed`), each from a point the caller
//! names, with no gap and no duplicate between what was stored before and what comes live.
//!
//! The catalogue is the only source: one task per process (the [`Hub`]) reads the feed after
//! every wake-up the catalogue gives (this process's writes, `NOTIFY` from other nodes, or the
//! poll for other processes on one `SQLite` file) and hands each entry to every follower, so
//! ten thousand followers cost one read per wake-up, not ten thousand. A follower subscribes
//! to the hub first and reads the catalogue second: whatever was committed before its read is
//! in the read, and whatever the hub reads later reaches it live. Duplicates are dropped by
//! number; a follower that falls behind the hub (a full channel) reads the catalogue again.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::OnceCell;
use tokio::sync::broadcast::{self, error::RecvError};

use super::App;
use crate::catalogue::{Catalogue, FeedEntry, FeedFilter};
use crate::domain::{Actor, Event, GenerationId};
use crate::error::AppError;

/// Entries a slow follower may fall behind the hub before it reads the catalogue again.
const CHANNEL: usize = 4096;
/// Feed entries read at once.
const BATCH: u32 = 500;
/// Longest wait between two reads of the feed when no wake-up comes: how late the hub may
/// hear of events written by another process on the same `SQLite` file.
const POLL: Duration = Duration::from_millis(200);

/// The process's one reader of the event feed.
pub(super) struct Hub {
    catalogue: Arc<dyn Catalogue>,
    live: OnceCell<Arc<Live>>,
}

struct Live {
    tx: broadcast::Sender<Arc<FeedEntry>>,
}

impl Hub {
    pub(super) fn new(catalogue: Arc<dyn Catalogue>) -> Self {
        Self {
            catalogue,
            live: OnceCell::new(),
        }
    }

    /// A receiver of every entry written after this call returns. The reading task starts
    /// with the first follower, at the feed's end as it stands then, and stops with the app.
    async fn subscribe(&self) -> Result<broadcast::Receiver<Arc<FeedEntry>>, AppError> {
        let live = self
            .live
            .get_or_try_init(|| async {
                let start = self.catalogue.feed_end().await?;
                let live = Arc::new(Live {
                    tx: broadcast::channel(CHANNEL).0,
                });
                tokio::spawn(read_feed(
                    self.catalogue.clone(),
                    Arc::downgrade(&live),
                    start,
                ));
                Ok::<_, AppError>(live)
            })
            .await?;
        Ok(live.tx.subscribe())
    }
}

/// The hub's task: reads the feed after `position` whenever events may have been written,
/// until the app (the last strong reference to `live`) is gone.
async fn read_feed(catalogue: Arc<dyn Catalogue>, live: Weak<Live>, mut position: i64) {
    let mut failures = 0u32;
    loop {
        let seen = catalogue.events_seen();
        match catalogue
            .feed(position, &FeedFilter::default(), BATCH)
            .await
        {
            Ok(batch) => {
                failures = 0;
                let Some(live) = live.upgrade() else { return };
                let full = batch.len() == BATCH as usize;
                for entry in batch {
                    position = entry.position;
                    // No follower is fine: they read the catalogue when they come.
                    let _ = live.tx.send(Arc::new(entry));
                }
                if full {
                    continue;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "cannot read the event feed; followers wait");
                let backoff = POLL.saturating_mul(failures.min(25));
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        if live.strong_count() == 0 {
            return;
        }
        catalogue.wait_for_events(seen, POLL).await;
    }
}

/// One generation's events from a number on, ending with its last (completed, failed or
/// canceled). Get it from [`App::follow`].
pub struct Following {
    catalogue: Arc<dyn Catalogue>,
    id: GenerationId,
    live: broadcast::Receiver<Arc<FeedEntry>>,
    /// The number of the last event handed out.
    last: u64,
    ready: VecDeque<Event>,
    ended: bool,
}

impl Following {
    /// The next event; `None` after the generation's last.
    pub async fn next(&mut self) -> Option<Result<Event, AppError>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                self.last = e.seq;
                if e.kind.is_terminal() {
                    self.ended = true;
                    self.ready.clear();
                }
                return Some(Ok(e));
            }
            if self.ended {
                return None;
            }
            match self.live.recv().await {
                Ok(entry) if entry.event.generation_id == self.id => {
                    let seq = entry.event.seq;
                    if seq == self.last + 1 {
                        self.ready.push_back(entry.event.clone());
                    } else if seq > self.last + 1
                        && let Err(e) = self.catch_up().await
                    {
                        return Some(Err(e));
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    if let Err(e) = self.catch_up().await {
                        return Some(Err(e));
                    }
                }
                // The app is gone: nothing more will be read.
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Reads what was stored after the last event handed out (after a gap or a lag).
    async fn catch_up(&mut self) -> Result<(), AppError> {
        self.ready = self.catalogue.events(self.id, self.last).await?.into();
        Ok(())
    }

    /// The same, as a stream (for server-sent events).
    pub fn into_stream(self) -> impl Stream<Item = Result<Event, AppError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut f| async move { f.next().await.map(|e| (e, f)) })
    }
}

/// The feed of events (of every generation an actor may see), from a position on; it never
/// ends by itself. Get it from [`App::follow_feed`].
pub struct FollowingFeed {
    catalogue: Arc<dyn Catalogue>,
    filter: FeedFilter,
    live: broadcast::Receiver<Arc<FeedEntry>>,
    /// The position of the last entry handed out.
    last: i64,
    ready: VecDeque<FeedEntry>,
    /// Whether the stored entries after `last` may not all be in `ready` yet.
    behind: bool,
}

impl FollowingFeed {
    /// The next entry; `None` only when the app is gone.
    pub async fn next(&mut self) -> Option<Result<FeedEntry, AppError>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                self.last = e.position;
                return Some(Ok(e));
            }
            if self.behind {
                match self.catalogue.feed(self.last, &self.filter, BATCH).await {
                    Ok(batch) => {
                        self.behind = batch.len() == BATCH as usize;
                        self.ready = batch.into();
                        continue;
                    }
                    Err(e) => return Some(Err(e.into())),
                }
            }
            match self.live.recv().await {
                Ok(entry) => {
                    if entry.position > self.last && self.wants(&entry) {
                        self.ready.push_back((*entry).clone());
                    }
                }
                Err(RecvError::Lagged(_)) => self.behind = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn wants(&self, e: &FeedEntry) -> bool {
        self.filter
            .generation
            .is_none_or(|g| g == e.event.generation_id)
            && self.filter.owner.is_none_or(|o| Some(o) == e.owner)
    }

    /// The same, as a stream (for server-sent events).
    pub fn into_stream(self) -> impl Stream<Item = Result<FeedEntry, AppError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut f| async move { f.next().await.map(|e| (e, f)) })
    }
}

impl App {
    /// Follows generation `id` from after its event number `after` (0: from its first event)
    /// to its last event: the stored ones first, then each as it is written, by any node.
    pub async fn follow(
        &self,
        actor: Actor,
        id: GenerationId,
        after: u64,
    ) -> Result<Following, AppError> {
        let live = self.hub.subscribe().await?;
        // The status is read before the events: a generation that had ended then has its last
        // event among them, or at or before `after`.
        let generation = self.visible_generation(actor, id).await?;
        let ready: VecDeque<Event> = self.catalogue.events(id, after).await?.into();
        let ended = generation.status.is_terminal() && !ready.iter().any(|e| e.kind.is_terminal());
        Ok(Following {
            catalogue: self.catalogue.clone(),
            id,
            live,
            last: after,
            ready,
            ended,
        })
    }

    /// Follows the feed of events from after position `after` (0: from the first; see
    /// [`App::feed_end`] for "from now"), of every generation `actor` may see, or of one.
    pub async fn follow_feed(
        &self,
        actor: Actor,
        after: i64,
        generation: Option<GenerationId>,
    ) -> Result<FollowingFeed, AppError> {
        if let Some(id) = generation {
            self.visible_generation(actor, id).await?;
        }
        let live = self.hub.subscribe().await?;
        Ok(FollowingFeed {
            catalogue: self.catalogue.clone(),
            filter: FeedFilter {
                generation,
                owner: actor.scope(),
            },
            live,
            last: after,
            ready: VecDeque::new(),
            behind: true,
        })
    }

    /// Feed entries after position `after` (of every generation `actor` may see, or of one),
    /// in the order written, at most `limit`.
    pub async fn feed(
        &self,
        actor: Actor,
        after: i64,
        generation: Option<GenerationId>,
        limit: u32,
    ) -> Result<Vec<FeedEntry>, AppError> {
        if let Some(id) = generation {
            self.visible_generation(actor, id).await?;
        }
        let filter = FeedFilter {
            generation,
            owner: actor.scope(),
        };
        Ok(self.catalogue.feed(after, &filter, limit).await?)
    }

    /// The feed position of the last event written: where a follower of new events starts.
    pub async fn feed_end(&self) -> Result<i64, AppError> {
        Ok(self.catalogue.feed_end().await?)
    }
}
