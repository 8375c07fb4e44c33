//! Wake-ups across nodes: one task per catalogue `LISTEN`s on the work and events channels
//! and wakes this process's waiters when any node (this one included) commits a change there.
//!
//! sqlx's `PgListener` reconnects by itself only on some I/O errors; a connection ended by the
//! server (`pg_terminate_backend`, a restart) or a database that is down surfaces as an error.
//! So this task drops the listener on any error and builds a new one after a pause, until the
//! catalogue is dropped. Notifications sent while it was away are lost, so it wakes every
//! waiter after each (re)connection: they look again. Waiters also give up at their own
//! timeout, so a listener that cannot connect delays work, never stops it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::catalogue::Wakeups;

/// The channel a job queued, retried, ended or canceled is announced on.
pub(super) const WORK: &str = "atelier_work";
/// The channel new events are announced on.
pub(super) const EVENTS: &str = "atelier_events";

/// What this process's waiters wait on.
#[derive(Default)]
pub(super) struct Wakers {
    pub work: Wakeups,
    pub events: Wakeups,
}

impl Wakers {
    fn all(&self) {
        self.work.wake();
        self.events.wake();
    }
}

/// How long to wait before connecting again after the listener's connection failed.
const RETRY: Duration = Duration::from_millis(500);

/// Listens until aborted. `pool` is the listener's own (one connection).
pub(super) async fn run(pool: PgPool, wakers: Arc<Wakers>) {
    loop {
        match listener(&pool).await {
            Ok(mut listener) => {
                wakers.all();
                while let Ok(n) = listener.recv().await {
                    match n.channel() {
                        WORK => wakers.work.wake(),
                        EVENTS => wakers.events.wake(),
                        _ => {}
                    }
                }
                tracing::debug!("the catalogue's listener lost its connection; reconnecting");
            }
            Err(e) => {
                tracing::debug!(error = %e, "the catalogue's listener cannot connect yet");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([WORK, EVENTS]).await?;
    Ok(listener)
}
