//! A fixed number of `SQLite` connections, each behind an async lock: the writer's one and the
//! readers' few, opened as they are first needed (a command that reads once opens one).
//!
//! Not sqlx's `Pool`: it pings a connection's worker thread each time it hands one out and
//! again each time one comes back, two extra thread round trips around every statement. A
//! `SQLite` connection lives in this process and cannot drop like a socket, so those pings
//! buy nothing; on the engine's hot path they were most of the catalogue's cost.
//!
//! A caller that gives up mid-statement (a dropped future) leaves nothing behind: sqlx queues
//! a dropped transaction's rollback on the connection's worker, which runs its commands in
//! order, so the next holder starts on a clean connection.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::{CatalogueError, db};

pub(super) struct Conns {
    options: SqliteConnectOptions,
    /// Opened when first needed, but for the first: a command that reads once opens one.
    slots: Vec<Mutex<Option<SqliteConnection>>>,
    /// Where a caller that finds every connection busy queues: turn by turn.
    next: AtomicUsize,
}

impl Conns {
    /// Up to `n` (at least one) connections with `options`; the first is opened now, so a
    /// database that cannot be opened fails here.
    pub(super) async fn open(options: &SqliteConnectOptions, n: usize) -> sqlx::Result<Self> {
        let first = connect(options).await?;
        let slots = std::iter::once(Some(first))
            .chain(std::iter::repeat_with(|| None))
            .take(n.max(1))
            .map(Mutex::new)
            .collect();
        Ok(Self {
            options: options.clone(),
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// A free open connection, else a free slot opened now, else the next one in turn when
    /// all are busy.
    pub(super) async fn get(
        &self,
    ) -> Result<MappedMutexGuard<'_, SqliteConnection>, CatalogueError> {
        let mut unopened = None;
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                if guard.is_some() {
                    return self.ready(guard).await;
                }
                unopened.get_or_insert(guard);
            }
        }
        if let Some(guard) = unopened {
            return self.ready(guard).await;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.ready(self.slots[turn].lock().await).await
    }

    /// The guarded connection, opened if it was not yet.
    async fn ready<'a>(
        &self,
        mut guard: MutexGuard<'a, Option<SqliteConnection>>,
    ) -> Result<MappedMutexGuard<'a, SqliteConnection>, CatalogueError> {
        let conn = match guard.take() {
            Some(conn) => conn,
            None => connect(&self.options).await.map_err(db)?,
        };
        Ok(MutexGuard::map(guard, |slot| slot.insert(conn)))
    }
}

/// A new connection. Its set-up (`PRAGMA journal_mode = WAL` and the rest) may find the file
/// busy at once, without `SQLite`'s busy handler being called, while another process is
/// creating it or switching it to WAL: that is waited out, up to the busy timeout.
async fn connect(options: &SqliteConnectOptions) -> sqlx::Result<SqliteConnection> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match options.connect().await {
            Err(sqlx::Error::Database(d))
                if super::is_busy(d.code().as_deref()) && std::time::Instant::now() < deadline =>
            {
                let pause = 10 + u64::from(fastrand::u8(..20));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn memory(n: usize) -> Conns {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").expect("url");
        Conns::open(&options, n).await.expect("open")
    }

    #[tokio::test]
    async fn a_busy_connection_is_passed_over_for_a_free_one() {
        let conns = memory(2).await;
        let first = conns.get().await.expect("open");
        let second = conns.get().await.expect("opened on demand");
        // Two distinct connections: both guards are held at once.
        assert!(!std::ptr::eq(&raw const *first, &raw const *second));
    }

    #[tokio::test]
    async fn when_all_are_busy_a_caller_waits_for_one() {
        let conns = std::sync::Arc::new(memory(1).await);
        let held = conns.get().await.expect("free");
        let waiter = {
            let conns = conns.clone();
            tokio::spawn(async move {
                let mut conn = conns.get().await.expect("free");
                sqlx::query_scalar::<_, i64>("SELECT 7")
                    .fetch_one(&mut *conn)
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.expect("join").expect("query"), 7);
    }

    #[tokio::test]
    async fn a_transaction_dropped_midway_is_rolled_back_before_the_next_holder() {
        let conns = memory(1).await;
        {
            let mut conn = conns.get().await.expect("open");
            sqlx::query("CREATE TABLE t (x INTEGER)")
                .execute(&mut *conn)
                .await
                .expect("create");
            let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .expect("insert");
            // Dropped without commit, as when a caller's future is dropped.
        }
        let mut conn = conns.get().await.expect("open");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        assert_eq!(n, 0);
        // And the connection takes a new transaction.
        let tx = sqlx::Connection::begin(&mut *conn)
            .await
            .expect("begin again");
        tx.commit().await.expect("commit");
    }
}
