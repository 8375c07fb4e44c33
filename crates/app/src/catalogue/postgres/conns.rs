//! The queue's own few connections, for its one-statement calls (claim, renew, finish, finish
//! and claim, retry), which every job makes and a busy node makes hundreds of times a second.
//!
//! Not sqlx's `Pool`: it pings each connection it takes back, a round trip on a spawned task
//! after every call, which on a busy queue is one more wake-up of the server and of the client
//! per statement. A statement here needs no ping: sqlx sends nothing on a
//! connection before it has read the answers of what was sent on it before, so one left by a
//! caller that gave up mid-statement is drained by its next use, and a lone statement commits
//! or rolls back by itself, holding no lock afterwards. Transactions stay on the pool, whose
//! ping also sends a dropped transaction's rollback at once.
//!
//! A connection whose call failed below SQL (lost, refused, garbled) or whose session the
//! server ended (a `FATAL` error: terminated, shut down) is closed, and the next caller opens
//! another; so is one idle for [`IDLE_FOR`], which a pooler or `idle_session_timeout` may have
//! ended meanwhile. With the database down each call fails after [`super::ACQUIRE_TIMEOUT`] at
//! most, like the pool's.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgSeverity};
use sqlx::{ConnectOptions, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{ACQUIRE_TIMEOUT, db, other};
use crate::catalogue::{CatalogueError, Result};

/// How long a connection may sit unused before it is closed rather than used (the pool's
/// default is ten minutes; servers and poolers end idle sessions after a few).
pub(super) const IDLE_FOR: Duration = Duration::from_mins(2);

pub(super) struct Conns {
    options: PgConnectOptions,
    /// Open connections nobody holds, each with when it was given back, the last on top.
    idle: std::sync::Mutex<Vec<(PgConnection, Instant)>>,
    /// One permit per connection there may be.
    permits: Semaphore,
}

impl Conns {
    /// Up to `n` connections with `options`, opened as they are first needed.
    pub(super) fn new(options: PgConnectOptions, n: usize) -> Self {
        Self {
            options,
            idle: std::sync::Mutex::new(Vec::with_capacity(n)),
            permits: Semaphore::new(n.max(1)),
        }
    }

    /// An idle connection, else a new one if there is room, else the first given back.
    pub(super) async fn get(&self) -> Result<Held<'_>> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| other("timed out waiting for a queue connection"))?
            .map_err(other)?;
        let idle = {
            let mut idle = self.lock();
            // The oldest are at the bottom: drop those idle too long, keep the rest.
            idle.retain(|(_, since)| since.elapsed() < IDLE_FOR);
            idle.pop().map(|(conn, _)| conn)
        };
        let conn = match idle {
            Some(conn) => conn,
            None => tokio::time::timeout(ACQUIRE_TIMEOUT, self.options.connect())
                .await
                .map_err(|_| other("timed out connecting to the database"))?
                .map_err(db)?,
        };
        Ok(Held {
            conns: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PgConnection, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection of [`Conns`], given back when dropped.
pub(super) struct Held<'a> {
    conns: &'a Conns,
    /// `None` once closed after a failure.
    conn: Option<PgConnection>,
    _permit: SemaphorePermit<'a>,
}

impl Held<'_> {
    pub(super) fn conn(&mut self) -> Result<&mut PgConnection> {
        self.conn
            .as_mut()
            .ok_or_else(|| other("the queue connection was closed after a failure"))
    }

    /// The error of a call on this connection. One that came from below SQL, or that ended
    /// the session, closes it: the connection may be lost or out of step with the server.
    pub(super) fn failed(&mut self, e: sqlx::Error) -> CatalogueError {
        let sound = match &e {
            sqlx::Error::Database(d) => d
                .try_downcast_ref::<PgDatabaseError>()
                .is_none_or(|d| session_lives(d.severity(), d.code())),
            sqlx::Error::RowNotFound
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. } => true,
            _ => false,
        };
        if !sound {
            // Dropped, not closed politely: the server ends the session when the socket goes.
            self.conn = None;
        }
        db(e)
    }
}

/// Whether a server error leaves its session usable: not one that ends it (`FATAL`,
/// `PANIC`), nor a connection exception (class 08) or an operator's intervention (57P:
/// terminated, shutting down, starting up).
fn session_lives(severity: PgSeverity, code: &str) -> bool {
    !matches!(severity, PgSeverity::Fatal | PgSeverity::Panic)
        && !code.starts_with("08")
        && !code.starts_with("57P")
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.conns.lock().push((conn, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_end_the_session_close_the_connection() {
        assert!(
            session_lives(PgSeverity::Error, "23505"),
            "a unique violation"
        );
        assert!(session_lives(PgSeverity::Error, "40P01"), "a deadlock");
        assert!(!session_lives(PgSeverity::Fatal, "57P01"), "terminated");
        assert!(
            !session_lives(PgSeverity::Error, "57P03"),
            "cannot connect now"
        );
        assert!(
            !session_lives(PgSeverity::Error, "08006"),
            "connection failure"
        );
        assert!(!session_lives(PgSeverity::Panic, "XX000"));
    }
}
