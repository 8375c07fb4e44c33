//! Rate limits: requests per user (whichever key, session or token signs them), sign-in
//! attempts per client address, and requests with refused credentials per client address,
//! each a GCRA limiter keyed in memory.
//!
//! Limits are per process: several nodes behind a balancer each allow the rate. A limiter
//! forgets keys it has not seen for a while (`forget_idle`, run by the server every minute),
//! so a flood of distinct keys costs memory for a minute, not forever.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::Problem;
use crate::domain::Actor;

/// The server's limiters; `None` where the limit is off (0).
pub struct RateLimits {
    per_user: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    refused: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_user", &self.per_user.is_some())
            .field("per_address", &self.per_address.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// `per_minute` requests a key (with `burst` at once), `sign_in_per_minute` attempts an
    /// address; 0 turns a limit off.
    pub fn new(per_minute: u32, burst: u32, sign_in_per_minute: u32) -> Self {
        let per_user = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        // Sign-in attempts come in small bursts (a typo, a retry); the burst is the minute's
        // allowance, refilled steadily.
        let per_address = NonZeroU32::new(sign_in_per_minute)
            .map(|rate| RateLimiter::keyed(Quota::per_minute(rate)));
        // Refused credentials: a client with a stale key retries a few times; a guesser makes
        // thousands. Ten times the sign-in rate, apart from it, so one cannot lock out the other.
        let refused = NonZeroU32::new(sign_in_per_minute.saturating_mul(10))
            .map(|rate| RateLimiter::keyed(Quota::per_minute(rate)));
        Self {
            per_user,
            per_address,
            refused,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request by `actor`; a 429 once they are over the rate. The limit is the
    /// user's, whatever proves who they are: new sessions or tokens bring no new allowance.
    /// The operator (a server without keys, on loopback) is not limited.
    pub fn request(&self, actor: Actor) -> Result<(), Problem> {
        let (Some(limiter), Some(user)) = (&self.per_user, actor.owner()) else {
            return Ok(());
        };
        limiter
            .check_key(user.as_uuid().as_bytes())
            .map_err(|until| {
                too_many(
                    until.wait_time_from(self.clock.now()),
                    "this user made more requests than their rate allows",
                )
            })
    }

    /// Counts one request whose credentials were refused, from `address`; a 429 once the
    /// address is over its allowance (guessing keys or tokens is slowed; sign-in has its own).
    pub fn refused(&self, address: Option<IpAddr>) -> Result<(), Problem> {
        let (Some(limiter), Some(address)) = (&self.refused, address) else {
            return Ok(());
        };
        limiter.check_key(&address).map_err(|until| {
            too_many(
                until.wait_time_from(self.clock.now()),
                "too many requests with refused credentials from this address",
            )
        })
    }

    /// Counts one sign-in attempt from `address`; a 429 once the address is over the rate.
    pub fn attempt(&self, address: Option<IpAddr>) -> Result<(), Problem> {
        let (Some(limiter), Some(address)) = (&self.per_address, address) else {
            return Ok(());
        };
        limiter.check_key(&address).map_err(|until| {
            too_many(
                until.wait_time_from(self.clock.now()),
                "too many sign-in attempts from this address",
            )
        })
    }

    /// Drops the state of keys and addresses that are back to a full allowance.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_user {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in [&self.per_address, &self.refused].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn too_many(wait: std::time::Duration, detail: &str) -> Problem {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Problem::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{detail}; try again in {} s", secs.max(1)),
    )
    .retry_after(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    fn config(rate: u32, burst: u32, sign_in: u32) -> (u32, u32, u32) {
        (rate, burst, sign_in)
    }

    impl RateLimits {
        fn from_config((rate, burst, sign_in): (u32, u32, u32)) -> Self {
            Self::new(rate, burst, sign_in)
        }
    }

    #[test]
    fn a_user_gets_their_burst_then_429_with_a_retry_after() {
        let limits = RateLimits::from_config(config(60, 3, 0));
        let (a, b) = (Actor::User(UserId::new()), Actor::Admin(UserId::new()));
        for _ in 0..3 {
            limits.request(a).expect("within the burst");
        }
        let refused = limits.request(a).expect_err("over the burst");
        assert_eq!(refused.status, 429);
        assert_eq!(refused.code, "rate_limited");
        // Another user has their own allowance; the operator has no limit.
        limits.request(b).expect("another user");
        for _ in 0..10 {
            limits.request(Actor::Operator).expect("the operator");
        }
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = RateLimits::from_config(config(0, 0, 0));
        for _ in 0..1000 {
            limits
                .request(Actor::User(UserId::new()))
                .expect("no limit");
            limits
                .attempt(Some(IpAddr::from([127, 0, 0, 1])))
                .expect("no limit");
        }
    }

    #[test]
    fn sign_in_attempts_are_limited_per_address() {
        let limits = RateLimits::from_config(config(0, 0, 2));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        limits.attempt(a).expect("first");
        limits.attempt(a).expect("second");
        assert_eq!(limits.attempt(a).expect_err("third").status, 429);
        limits
            .attempt(Some(IpAddr::from([10, 0, 0, 2])))
            .expect("another address");
        // Refused credentials are counted apart: sign-in stays open to this address.
        limits.refused(a).expect("its own allowance");
    }
}
