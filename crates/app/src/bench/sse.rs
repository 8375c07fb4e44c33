//! `bench sse`: many subscribers to a running server's live feed (`GET /v1/events`), the
//! server's memory per subscriber, and how long an event takes from its commit to the last
//! subscriber.
//!
//! The subscribers are plain connections of this process; each notes when a read brings it an
//! event's `id:` line (the feed position). The first subscriber also reads each event's `at`,
//! the time the engine stamped on it just before writing it, from the same clock (this
//! machine's), so "commit to arrival" is slightly overstated, never understated. Then sandbox
//! generations are asked for one after another through the API; their events fan out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::wire::{Conn, Target, cpu_secs, find, internal, quantile};
use crate::error::AppError;

/// Feed positions tracked; later ones are counted apart (a fresh catalogue stays far below).
const POSITIONS: usize = 1 << 18;
/// Connections being opened at once (the server's listen backlog is not the measurement).
const OPENING: usize = 256;
/// Longest wait, after the last generation, for every subscriber to have every event.
const DRAIN: Duration = Duration::from_mins(1);

pub struct Options {
    pub url: String,
    pub key: String,
    pub subscribers: u32,
    pub generations: u32,
    pub server_pid: u32,
}

/// What the subscribers saw, per feed position.
struct Board {
    /// Nanoseconds since the epoch at which the first and the last subscriber had it.
    first: Vec<AtomicU64>,
    last: Vec<AtomicU64>,
    /// Subscribers that had it.
    count: Vec<AtomicU32>,
    /// Its `at`, from the first subscriber, in nanoseconds since the epoch.
    stamped: Mutex<HashMap<usize, u64>>,
    beyond: AtomicU64,
}

impl Board {
    fn new() -> Self {
        Self {
            first: (0..POSITIONS).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last: (0..POSITIONS).map(|_| AtomicU64::new(0)).collect(),
            count: (0..POSITIONS).map(|_| AtomicU32::new(0)).collect(),
            stamped: Mutex::new(HashMap::new()),
            beyond: AtomicU64::new(0),
        }
    }

    fn arrived(&self, position: usize, at: u64) {
        if position >= POSITIONS {
            self.beyond.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.first[position].fetch_min(at, Ordering::Relaxed);
        self.last[position].fetch_max(at, Ordering::Relaxed);
        self.count[position].fetch_add(1, Ordering::Relaxed);
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn rss_mib(pid: u32) -> Result<f64, AppError> {
    let kib = super::status_kib(&pid.to_string(), "VmRSS")
        .ok_or_else(|| internal(format!("cannot read the memory of process {pid}")))?;
    #[allow(clippy::cast_precision_loss)]
    Ok(kib as f64 / 1024.0)
}

/// Opens one subscription and reads until its answer's head has come.
async fn open(target: &Target, request: &[u8]) -> Result<Conn, AppError> {
    let mut conn = target.connect().await?;
    conn.stream.write_all(request).await.map_err(internal)?;
    let head = tokio::time::timeout(super::wire::ANSWER_TIMEOUT, conn.head())
        .await
        .map_err(|_| internal("a subscription got no answer within 30 s"))??;
    if head.status != 200 {
        return Err(internal(format!(
            "GET /v1/events answers {}, not 200",
            head.status
        )));
    }
    conn.buf.drain(..head.body_start);
    Ok(conn)
}

/// Reads one subscription's events until the connection ends.
async fn follow(mut conn: Conn, board: Arc<Board>, stamps: bool) {
    let mut position = None;
    loop {
        if conn.fill().await.is_err() {
            return;
        }
        let at = now_ns();
        let mut consumed = 0;
        while let Some(end) = find(&conn.buf[consumed..], b"\n") {
            let line = &conn.buf[consumed..consumed + end];
            consumed += end + 1;
            if let Some(id) = line.strip_prefix(b"id: ") {
                position = std::str::from_utf8(id)
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok());
                if let Some(p) = position {
                    board.arrived(p, at);
                }
            } else if stamps
                && let (Some(p), Some(data)) = (position, line.strip_prefix(b"data: "))
                && let Some(stamp) = stamp_of(data)
                && let Ok(mut stamped) = board.stamped.lock()
            {
                stamped.insert(p, stamp);
            }
        }
        conn.buf.drain(..consumed);
    }
}

/// An event's `at`, in nanoseconds since the epoch.
fn stamp_of(data: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let at = time::OffsetDateTime::parse(
        v.get("at")?.as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    u64::try_from(at.unix_timestamp_nanos()).ok()
}

pub async fn bench(o: &Options) -> Result<serde_json::Value, AppError> {
    let target = Target::parse(&o.url)?;
    let n = o.subscribers.max(1);
    let board = Arc::new(Board::new());
    let subscribe = Arc::new(target.request(
        "GET",
        "/v1/events",
        &o.key,
        "Accept: text/event-stream\r\n",
        None,
    ));
    let rss_before = rss_mib(o.server_pid)?;

    // Every subscriber connected, OPENING at a time.
    let opened = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut opening = Vec::new();
    for _ in 0..n {
        let (gate, target, subscribe) = (gate.clone(), target.clone(), subscribe.clone());
        opening.push(tokio::spawn(async move {
            let _turn = gate.acquire_owned().await.map_err(internal)?;
            open(&target, &subscribe).await
        }));
    }
    let mut followers = Vec::new();
    for (i, o) in opening.into_iter().enumerate() {
        let conn = o.await.map_err(internal)??;
        followers.push(tokio::spawn(follow(conn, board.clone(), i == 0)));
    }
    let connect_secs = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = rss_mib(o.server_pid)?;

    // Events: sandbox generations, one after another.
    let pid = o.server_pid.to_string();
    let cpu_before = (cpu_secs("self"), cpu_secs(&pid));
    let started_ns = now_ns();
    let mut poster = target.connect().await?;
    for g in 0..o.generations.max(1) {
        let body = format!(r#"{{"prompt": "a lighthouse at dawn, bench {g}"}}"#);
        let post = target.request(
            "POST",
            "/v1/generations",
            &o.key,
            "Prefer: wait=60\r\n",
            Some(&body),
        );
        let (status, answer) = poster.exchange(&post).await?;
        if status != 201 {
            return Err(internal(format!(
                "POST /v1/generations answers {status}: {}",
                String::from_utf8_lossy(&answer)
            )));
        }
    }
    // Until every subscriber has every event of the run (or the drain times out).
    let drain_start = Instant::now();
    let positions = loop {
        let positions: Vec<usize> = board
            .stamped
            .lock()
            .map_err(internal)?
            .iter()
            .filter(|(_, at)| **at >= started_ns)
            .map(|(p, _)| *p)
            .collect();
        let complete = positions
            .iter()
            .all(|p| board.count[*p].load(Ordering::Relaxed) >= n);
        if complete || drain_start.elapsed() > DRAIN {
            break positions;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let client_cpu = cpu_secs("self").zip(cpu_before.0).map(|(b, a)| b - a);
    let server_cpu = cpu_secs(&pid).zip(cpu_before.1).map(|(b, a)| b - a);
    let rss_after = rss_mib(o.server_pid)?;
    let client_rss = super::rss_kib().map(|k| k / 1024);
    for f in &followers {
        f.abort();
    }

    let stamped = board.stamped.lock().map_err(internal)?.clone();
    let (mut to_last, mut to_first) = (Vec::new(), Vec::new());
    let mut incomplete = 0;
    for p in &positions {
        let at = stamped.get(p).copied().unwrap_or(0);
        if board.count[*p].load(Ordering::Relaxed) < n {
            incomplete += 1;
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let ms = |t: u64| t.saturating_sub(at) as f64 / 1e6;
        to_last.push(ms(board.last[*p].load(Ordering::Relaxed)));
        to_first.push(ms(board.first[*p].load(Ordering::Relaxed)));
    }
    to_last.sort_by(f64::total_cmp);
    to_first.sort_by(f64::total_cmp);
    let per = |mib: f64| mib * 1024.0 / f64::from(n);
    Ok(serde_json::json!({
        "subscribers": n,
        "connect_secs": connect_secs,
        "server_rss_mib": {
            "before": rss_before,
            "connected": rss_connected,
            "after_events": rss_after,
        },
        "kib_per_subscriber": {
            "connected": per(rss_connected - rss_before),
            "after_events": per(rss_after - rss_before),
        },
        "generations": o.generations.max(1),
        "events": positions.len(),
        "events_missed_by_some": incomplete,
        "deliveries": to_last.len() * usize::try_from(n).unwrap_or(usize::MAX),
        "commit_to_last_subscriber_ms": {
            "p50": quantile(&to_last, 0.5),
            "p90": quantile(&to_last, 0.9),
            "p99": quantile(&to_last, 0.99),
            "max": quantile(&to_last, 1.0),
        },
        "commit_to_first_subscriber_ms": {
            "p50": quantile(&to_first, 0.5),
            "p99": quantile(&to_first, 0.99),
        },
        "event_phase_cpu_secs": { "client": client_cpu, "server": server_cpu },
        "client_rss_mib": client_rss,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_stamp_is_read_from_its_data() {
        let data = br#"{"position": 3, "at": "2026-12-07T01:02:03.000456789Z", "type": "queued"}"#;
        assert_eq!(stamp_of(data), Some(1_796_605_323_000_456_789));
        assert_eq!(stamp_of(b"{\"at\": \"yesterday\"}"), None);
        assert_eq!(stamp_of(b"not json"), None);
    }

    #[test]
    fn the_board_keeps_first_last_and_count() {
        let b = Board::new();
        b.arrived(5, 20);
        b.arrived(5, 10);
        b.arrived(5, 30);
        b.arrived(POSITIONS, 1);
        assert_eq!(b.first[5].load(Ordering::Relaxed), 10);
        assert_eq!(b.last[5].load(Ordering::Relaxed), 30);
        assert_eq!(b.count[5].load(Ordering::Relaxed), 3);
        assert_eq!(b.beyond.load(Ordering::Relaxed), 1);
    }
}
