//! Rate limits: requests per API key (or session, or signed-in token), and sign-in attempts
//! (and refused credentials) per client address, each a GCRA limiter keyed in memory.
//!
//! Limits are per process: several nodes behind a balancer each allow the rate. A limiter
//! forgets keys it has not seen for a while (`forget_idle`, run by the server every minute),
//! so a flood of distinct keys costs memory for a minute, not forever.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use super::Problem;

/// The server's limiters; `None` where the limit is off (0).
pub struct RateLimits {
    per_key: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_key", &self.per_key.is_some())
            .field("per_address", &self.per_address.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// `per_minute` requests a key (with `burst` at once), `sign_in_per_minute` attempts an
    /// address; 0 turns a limit off.
    pub fn new(per_minute: u32, burst: u32, sign_in_per_minute: u32) -> Self {
        let per_key = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        // Sign-in attempts come in small bursts (a typo, a retry); the burst is the minute's
        // allowance, refilled steadily.
        let per_address = NonZeroU32::new(sign_in_per_minute)
            .map(|rate| RateLimiter::keyed(Quota::per_minute(rate)));
        Self {
            per_key,
            per_address,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request made with `token`; a 429 once its key is over the rate.
    pub fn request(&self, token: &str) -> Result<(), Problem> {
        let Some(limiter) = &self.per_key else {
            return Ok(());
        };
        let digest = Sha256::digest(token.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        limiter.check_key(&key).map_err(|until| {
            too_many(
                until.wait_time_from(self.clock.now()),
                "this key made more requests than its rate allows",
            )
        })
    }

    /// Counts one sign-in attempt, or one request with credentials that were refused, from
    /// `address`; a 429 once the address is over the rate.
    pub fn attempt(&self, address: Option<IpAddr>) -> Result<(), Problem> {
        let (Some(limiter), Some(address)) = (&self.per_address, address) else {
            return Ok(());
        };
        limiter.check_key(&address).map_err(|until| {
            too_many(
                until.wait_time_from(self.clock.now()),
                "too many sign-in attempts or refused credentials from this address",
            )
        })
    }

    /// Drops the state of keys and addresses that are back to a full allowance.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_address {
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

    fn config(rate: u32, burst: u32, sign_in: u32) -> (u32, u32, u32) {
        (rate, burst, sign_in)
    }

    impl RateLimits {
        fn from_config((rate, burst, sign_in): (u32, u32, u32)) -> Self {
            Self::new(rate, burst, sign_in)
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_429_with_a_retry_after() {
        let limits = RateLimits::from_config(config(60, 3, 0));
        for _ in 0..3 {
            limits.request("atl_a").expect("within the burst");
        }
        let refused = limits.request("atl_a").expect_err("over the burst");
        assert_eq!(refused.status, 429);
        assert_eq!(refused.code, "rate_limited");
        // Another key has its own allowance.
        limits.request("atl_b").expect("another key");
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = RateLimits::from_config(config(0, 0, 0));
        for _ in 0..1000 {
            limits.request("atl_a").expect("no limit");
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
    }
}
