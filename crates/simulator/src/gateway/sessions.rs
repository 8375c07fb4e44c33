//! Gateway sessions and live connections.
//!
//! A session outlives its connection: every dispatch for its user is numbered and kept in a
//! bounded buffer (the last [`BUFFER`] dispatches, none older than [`KEEP`]), whether or not a
//! connection is attached, so a RESUME replays what the client missed, including what was
//! generated while it was away. Everything a connection receives goes through its outbox
//! while the registry lock is held, so replays, RESUMED and new dispatches never interleave.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::faults::Fault;
use crate::sim::lock;

/// Dispatches kept per session for replay.
pub(crate) const BUFFER: usize = 1000;
/// Age after which buffered dispatches, and detached sessions, are dropped.
pub(crate) const KEEP: Duration = Duration::from_mins(5);
/// Detached sessions kept per user; the oldest go first.
const DETACHED_PER_USER: usize = 32;

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Send this serialized payload.
    Payload(Arc<str>),
    /// Apply this gateway fault now.
    Fault(Fault),
}

/// The registry's handle on a connection.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub(crate) tx: mpsc::Sender<Outgoing>,
    /// Tells the connection to drop its socket (outbox overflow, or fault injection).
    pub(crate) kill: Arc<Notify>,
}

struct Buffered {
    seq: u64,
    payload: Arc<str>,
    at: Instant,
}

struct Session {
    user_id: u64,
    seq: u64,
    buffer: VecDeque<Buffered>,
    live: Option<u64>,
    detached_at: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    conns: HashMap<u64, ConnHandle>,
    next_conn: u64,
    /// The most sessions of one user (one token) that were live at once.
    peak_per_user: usize,
}

impl Inner {
    /// Counts `user_id`'s live sessions into the peak; called whenever one goes live.
    fn count_live(&mut self, user_id: u64) {
        let live = self
            .sessions
            .values()
            .filter(|s| s.user_id == user_id && s.live.is_some())
            .count();
        self.peak_per_user = self.peak_per_user.max(live);
    }
}

/// Why a RESUME is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResumeError {
    /// Unknown, expired, someone else's, or missed dispatches already dropped: op 9 false.
    Invalid,
    /// The client claims a sequence number the session never reached: close 4007.
    BadSeq,
}

#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Inner>,
}

impl Sessions {
    pub(crate) fn register(&self, handle: ConnHandle) -> u64 {
        let mut inner = lock(&self.inner);
        inner.next_conn += 1;
        let id = inner.next_conn;
        inner.conns.insert(id, handle);
        id
    }

    /// Forgets a connection and detaches its session (which stays resumable).
    pub(crate) fn unregister(&self, conn: u64) {
        let mut inner = lock(&self.inner);
        inner.conns.remove(&conn);
        for session in inner.sessions.values_mut() {
            if session.live == Some(conn) {
                session.live = None;
                session.detached_at = Some(Instant::now());
            }
        }
    }

    /// Every live connection (for injected faults).
    pub(crate) fn connections(&self) -> Vec<ConnHandle> {
        lock(&self.inner).conns.values().cloned().collect()
    }

    pub(crate) fn live_sessions(&self) -> usize {
        lock(&self.inner)
            .sessions
            .values()
            .filter(|s| s.live.is_some())
            .count()
    }

    /// The most sessions of one user that were live at once: more than one means two
    /// clients (two nodes) drove one account side by side.
    pub(crate) fn peak_per_user(&self) -> usize {
        lock(&self.inner).peak_per_user
    }

    /// Starts a session for `user_id` on `conn` and queues READY (built by `ready` from the
    /// new session id) as its first dispatch.
    pub(crate) fn identify(
        &self,
        conn: u64,
        user_id: u64,
        session_id: String,
        ready: &Value,
    ) -> bool {
        let mut inner = lock(&self.inner);
        sweep(&mut inner, user_id);
        let Some(handle) = inner.conns.get(&conn).cloned() else {
            return false;
        };
        let mut session = Session {
            user_id,
            seq: 0,
            buffer: VecDeque::new(),
            live: Some(conn),
            detached_at: None,
        };
        session.seq += 1;
        let sent = send(&handle, envelope("READY", session.seq, ready));
        inner.sessions.insert(session_id, session);
        inner.count_live(user_id);
        sent
    }

    /// Attaches `conn` to an existing session, replays everything after `seq`, then RESUMED.
    pub(crate) fn resume(
        &self,
        conn: u64,
        user_id: u64,
        session_id: &str,
        seq: u64,
    ) -> Result<usize, ResumeError> {
        let mut inner = lock(&self.inner);
        sweep(&mut inner, user_id);
        let handle = inner
            .conns
            .get(&conn)
            .cloned()
            .ok_or(ResumeError::Invalid)?;
        let previous = {
            let session = inner
                .sessions
                .get_mut(session_id)
                .ok_or(ResumeError::Invalid)?;
            if session.user_id != user_id {
                return Err(ResumeError::Invalid);
            }
            if seq > session.seq {
                return Err(ResumeError::BadSeq);
            }
            // Dispatches after `seq` must all still be buffered.
            let oldest = session.buffer.front().map_or(session.seq + 1, |b| b.seq);
            if seq + 1 < oldest && seq < session.seq {
                return Err(ResumeError::Invalid);
            }
            let mut replayed = 0;
            for entry in session.buffer.iter().filter(|b| b.seq > seq) {
                send(&handle, Arc::clone(&entry.payload));
                replayed += 1;
            }
            session.seq += 1;
            send(&handle, envelope("RESUMED", session.seq, &Value::Null));
            let previous = session.live.replace(conn);
            session.detached_at = None;
            (previous, replayed)
        };
        inner.count_live(user_id);
        // A session resumed elsewhere takes it away from its old connection.
        if let (Some(old), _) = previous
            && old != conn
            && let Some(old) = inner.conns.get(&old)
        {
            old.kill.notify_one();
        }
        Ok(previous.1)
    }

    /// Forgets a session (op 9 false, or 4009).
    pub(crate) fn invalidate(&self, session_id: &str) {
        lock(&self.inner).sessions.remove(session_id);
    }

    /// Numbers, buffers and delivers a dispatch to every session of `user_id`.
    pub(crate) fn dispatch(&self, user_id: u64, name: &str, data: &Value) {
        let data = data.to_string();
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let Inner {
            sessions, conns, ..
        } = &mut *inner;
        for session in sessions.values_mut().filter(|s| s.user_id == user_id) {
            session.seq += 1;
            let payload: Arc<str> =
                format!(r#"{{"t":"{name}","s":{},"op":0,"d":{data}}}"#, session.seq).into();
            session.buffer.push_back(Buffered {
                seq: session.seq,
                payload: Arc::clone(&payload),
                at: now,
            });
            while session.buffer.len() > BUFFER
                || session
                    .buffer
                    .front()
                    .is_some_and(|b| now.duration_since(b.at) > KEEP)
            {
                session.buffer.pop_front();
            }
            if let Some(conn) = session.live
                && let Some(handle) = conns.get(&conn)
                && !send(handle, payload)
            {
                // Too slow a reader: Discord drops it; the session stays resumable.
                handle.kill.notify_one();
                session.live = None;
                session.detached_at = Some(now);
            }
        }
    }
}

/// Queues a payload; false when the outbox is full or closed.
fn send(handle: &ConnHandle, payload: Arc<str>) -> bool {
    handle.tx.try_send(Outgoing::Payload(payload)).is_ok()
}

fn envelope(name: &str, seq: u64, data: &Value) -> Arc<str> {
    format!(r#"{{"t":"{name}","s":{seq},"op":0,"d":{data}}}"#).into()
}

/// Drops expired detached sessions, and the oldest detached ones of `user_id` beyond the cap.
fn sweep(inner: &mut Inner, user_id: u64) {
    let now = Instant::now();
    inner
        .sessions
        .retain(|_, s| s.detached_at.is_none_or(|at| now.duration_since(at) < KEEP));
    let mut detached: Vec<(Instant, String)> = inner
        .sessions
        .iter()
        .filter(|(_, s)| s.user_id == user_id)
        .filter_map(|(id, s)| s.detached_at.map(|at| (at, id.clone())))
        .collect();
    if detached.len() > DETACHED_PER_USER {
        detached.sort();
        for (_, id) in detached.iter().take(detached.len() - DETACHED_PER_USER) {
            inner.sessions.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnHandle, Outgoing, ResumeError, Sessions};
    use serde_json::json;
    use std::sync::Arc;
    use tokio::sync::{Notify, mpsc};

    fn conn(sessions: &Sessions) -> (u64, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(64);
        let id = sessions.register(ConnHandle {
            tx,
            kill: Arc::new(Notify::new()),
        });
        (id, rx)
    }

    fn drain(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Outgoing::Payload(p)) = rx.try_recv() {
            out.push(p.to_string());
        }
        out
    }

    #[test]
    fn dispatches_missed_while_detached_are_replayed() {
        let sessions = Sessions::default();
        let (a, mut rx_a) = conn(&sessions);
        assert!(sessions.identify(a, 7, "s".into(), &json!({"v": 9})));
        sessions.dispatch(7, "MESSAGE_CREATE", &json!({"id": "1"}));
        sessions.dispatch(8, "MESSAGE_CREATE", &json!({"id": "other user"}));
        let seen = drain(&mut rx_a);
        assert_eq!(seen.len(), 2);
        assert!(seen[1].contains(r#""s":2"#));
        sessions.unregister(a);
        sessions.dispatch(7, "MESSAGE_UPDATE", &json!({"id": "1"}));

        let (b, mut rx_b) = conn(&sessions);
        assert_eq!(sessions.resume(b, 7, "s", 9), Err(ResumeError::BadSeq));
        assert_eq!(sessions.resume(b, 8, "s", 2), Err(ResumeError::Invalid));
        assert_eq!(sessions.resume(b, 7, "nope", 2), Err(ResumeError::Invalid));
        assert_eq!(sessions.resume(b, 7, "s", 2), Ok(1));
        let replay = drain(&mut rx_b);
        assert!(replay[0].contains("MESSAGE_UPDATE") && replay[0].contains(r#""s":3"#));
        assert!(replay[1].contains("RESUMED") && replay[1].contains(r#""s":4"#));
        sessions.invalidate("s");
        assert_eq!(sessions.resume(b, 7, "s", 4), Err(ResumeError::Invalid));
    }
}
