//! Reconnect policy: what a close code or a failed connection means, and how long to wait
//! before the next attempt.
//!
//! The rules follow Discord's opcode documentation and what the open-source proxies
//! learned in the field: 4004 means the token is dead, so reconnecting would only get the
//! account flagged; 4007 and 4009 invalidate the session; most other codes leave it
//! resumable.

use std::time::Duration;

use crate::events::FatalReason;

/// What to do after a connection ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Reconnect and RESUME (falls back to IDENTIFY when there is no session).
    Resume,
    /// Forget the session and IDENTIFY again.
    Reidentify,
    /// Stop for good.
    Fatal(FatalReason),
}

/// Maps a close code sent by Discord to the next step.
pub(crate) fn after_close(code: u16, reason: &str) -> Next {
    match code {
        4004 => Next::Fatal(FatalReason::AuthenticationFailed),
        // Invalid shard, sharding required, invalid API version, invalid or disallowed
        // intents: the same request will be refused again.
        4010..=4014 => Next::Fatal(FatalReason::Rejected {
            code,
            reason: reason.to_owned(),
        }),
        // 4006 session no longer valid, 4007 invalid seq, 4009 session timed out.
        4006 | 4007 | 4009 => Next::Reidentify,
        // 4000 unknown error, 4001 unknown opcode, 4002 decode error, 4003 not
        // authenticated, 4005 already authenticated, 4008 rate limited, 1xxx transport
        // closes and anything new: the session may still be alive, so try to resume; if it
        // is not, Discord answers with op 9 and we identify then.
        _ => Next::Resume,
    }
}

/// Delay before connection attempt number `attempts` (0 = first try, no wait):
/// `base × 2^(attempts-1)`, capped.
pub(crate) fn backoff(attempts: u32, base: Duration, cap: Duration) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (attempts - 1).min(20);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// Random wait before re-identifying after a non-resumable op 9; Discord asks for 1-5 s.
/// `max` scales the range (min is a fifth of it) so tests can shrink it.
pub(crate) fn invalid_session_delay(max: Duration) -> Duration {
    let min = max / 5;
    min + max.saturating_sub(min).mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::{Next, after_close, backoff, invalid_session_delay};
    use crate::events::FatalReason;
    use std::time::Duration;

    #[test]
    fn close_codes() {
        assert_eq!(
            after_close(4004, "Authentication failed."),
            Next::Fatal(FatalReason::AuthenticationFailed)
        );
        assert!(matches!(
            after_close(4014, "Disallowed intent(s)."),
            Next::Fatal(FatalReason::Rejected { code: 4014, .. })
        ));
        for code in [4007, 4009] {
            assert_eq!(after_close(code, ""), Next::Reidentify);
        }
        for code in [1000, 1001, 1006, 4000, 4001, 4002, 4003, 4005, 4008, 4999] {
            assert_eq!(after_close(code, ""), Next::Resume, "code {code}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_mins(1));
        let delays: Vec<u64> = (0..9).map(|a| backoff(a, base, cap).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(u32::MAX, base, cap), cap);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_sleep_takes_the_computed_time() {
        let start = tokio::time::Instant::now();
        let delay = backoff(3, Duration::from_secs(1), Duration::from_mins(1));
        tokio::time::sleep(delay).await;
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[test]
    fn invalid_session_delay_stays_in_range() {
        for _ in 0..100 {
            let delay = invalid_session_delay(Duration::from_secs(5));
            assert!((Duration::from_secs(1)..=Duration::from_secs(5)).contains(&delay));
        }
    }
}
