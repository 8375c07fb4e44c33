//! A fixed set of open `SQLite` connections, each behind an async lock: the writer's one and the
//! readers' few.
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
use tokio::sync::{Mutex, MutexGuard};

pub(super) struct Conns {
    conns: Vec<Mutex<SqliteConnection>>,
    /// Where a caller that finds every connection busy queues: turn by turn.
    next: AtomicUsize,
}

impl Conns {
    /// Opens `n` (at least one) connections with `options`.
    pub(super) async fn open(options: &SqliteConnectOptions, n: usize) -> sqlx::Result<Self> {
        let mut conns = Vec::with_capacity(n.max(1));
        for _ in 0..n.max(1) {
            conns.push(Mutex::new(options.connect().await?));
        }
        Ok(Self {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A free connection, or the next one in turn when all are busy.
    pub(super) async fn get(&self) -> MutexGuard<'_, SqliteConnection> {
        for conn in &self.conns {
            if let Ok(guard) = conn.try_lock() {
                return guard;
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[turn].lock().await
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
        let first = conns.get().await;
        let second = conns.get().await;
        // Two distinct connections: both guards are held at once.
        assert!(!std::ptr::eq(&raw const *first, &raw const *second));
    }

    #[tokio::test]
    async fn when_all_are_busy_a_caller_waits_for_one() {
        let conns = std::sync::Arc::new(memory(1).await);
        let held = conns.get().await;
        let waiter = {
            let conns = conns.clone();
            tokio::spawn(async move {
                let mut conn = conns.get().await;
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
            let mut conn = conns.get().await;
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
        let mut conn = conns.get().await;
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
