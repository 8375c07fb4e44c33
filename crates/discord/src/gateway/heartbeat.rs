//! Heartbeat timing and zombie detection, kept free of I/O so paused-time tests can drive
//! it directly.
//!
//! The first beat goes out after `interval × jitter` (jitter in `[0, 1)`) so that many
//! clients reconnecting at once do not beat in lockstep; later beats follow at a fixed
//! rate. A beat that is due while the previous one is still un-ACKed means the connection
//! is a zombie: the socket looks open but nothing answers.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest interval accepted from HELLO; a zero or tiny value would make the loop spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval accepted; a huge value would overflow `Instant` arithmetic.
const MAX_INTERVAL: Duration = Duration::from_hours(1);

/// What to do when the heartbeat deadline passes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a heartbeat now.
    Send,
    /// The previous beat was never acknowledged: drop the connection and resume.
    Zombie,
}

#[derive(Debug)]
pub(crate) struct Heartbeater {
    interval: Duration,
    next: Instant,
    awaiting_ack: bool,
    sent_at: Option<Instant>,
    latency: Option<Duration>,
}

impl Heartbeater {
    /// Starts the schedule at `now`; `jitter` is clamped into `[0, 1]`.
    pub(crate) fn new(interval: Duration, jitter: f64, now: Instant) -> Self {
        let interval = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Self {
            interval,
            next: now + interval.mul_f64(jitter),
            awaiting_ack: false,
            sent_at: None,
            latency: None,
        }
    }

    /// When the next scheduled beat is due.
    pub(crate) fn deadline(&self) -> Instant {
        self.next
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Called when [`Heartbeater::deadline`] has passed.
    pub(crate) fn on_due(&mut self, now: Instant) -> Beat {
        if self.awaiting_ack {
            return Beat::Zombie;
        }
        self.awaiting_ack = true;
        self.sent_at = Some(now);
        self.next += self.interval;
        // After a stall (suspended process, slow consumer) do not fire a burst of beats.
        if self.next <= now {
            self.next = now + self.interval;
        }
        Beat::Send
    }

    /// Called on op 11 (`HEARTBEAT_ACK`).
    pub(crate) fn on_ack(&mut self, now: Instant) {
        self.awaiting_ack = false;
        if let Some(sent) = self.sent_at.take() {
            self.latency = Some(now.saturating_duration_since(sent));
        }
    }

    /// Round trip of the last acknowledged beat.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency
    }
}

#[cfg(test)]
mod tests {
    use super::{Beat, Heartbeater};
    use std::time::Duration;
    use tokio::time::{Instant, sleep_until};

    // A whole number of milliseconds after jitter: tokio timers round up to 1 ms.
    const INTERVAL: Duration = Duration::from_secs(40);

    #[tokio::test(start_paused = true)]
    async fn first_beat_is_jittered_then_fixed_rate() {
        let start = Instant::now();
        let mut hb = Heartbeater::new(INTERVAL, 0.25, start);
        sleep_until(hb.deadline()).await;
        assert_eq!(start.elapsed(), INTERVAL.mul_f64(0.25));
        assert_eq!(hb.on_due(Instant::now()), Beat::Send);

        tokio::time::advance(Duration::from_millis(120)).await;
        hb.on_ack(Instant::now());
        assert_eq!(hb.latency(), Some(Duration::from_millis(120)));

        sleep_until(hb.deadline()).await;
        assert_eq!(start.elapsed(), INTERVAL.mul_f64(1.25));
        assert_eq!(hb.on_due(Instant::now()), Beat::Send);
    }

    #[tokio::test(start_paused = true)]
    async fn unacknowledged_beat_is_a_zombie() {
        let mut hb = Heartbeater::new(INTERVAL, 0.0, Instant::now());
        assert_eq!(hb.on_due(Instant::now()), Beat::Send);
        sleep_until(hb.deadline()).await;
        assert_eq!(hb.on_due(Instant::now()), Beat::Zombie);
    }

    #[tokio::test(start_paused = true)]
    async fn stall_does_not_cause_a_burst() {
        let start = Instant::now();
        let mut hb = Heartbeater::new(INTERVAL, 0.0, start);
        assert_eq!(hb.on_due(start), Beat::Send);
        hb.on_ack(start);
        tokio::time::advance(INTERVAL * 5).await;
        assert_eq!(hb.on_due(Instant::now()), Beat::Send);
        assert_eq!(hb.deadline(), Instant::now() + INTERVAL);
    }

    #[test]
    fn silly_inputs_are_clamped() {
        let now = Instant::now();
        let hb = Heartbeater::new(Duration::ZERO, f64::NAN, now);
        assert_eq!(hb.interval(), Duration::from_millis(10));
        assert_eq!(hb.deadline(), now);
        let hb = Heartbeater::new(INTERVAL, 7.0, now);
        assert_eq!(hb.deadline(), now + INTERVAL);
        let hb = Heartbeater::new(Duration::from_millis(u64::MAX), 0.5, now);
        assert_eq!(hb.interval(), Duration::from_hours(1));
    }
}
