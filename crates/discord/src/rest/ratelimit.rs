//! Client-side rate limiting: Discord's per-route buckets, the global limit, and pacing
//! between interactions.
//!
//! Discord tells us the limits in response headers (`X-RateLimit-Bucket`, `-Remaining`,
//! `-Reset-After`); several routes may share a bucket, and buckets are per major
//! parameter (channel or guild). We wait *before* sending when a bucket is known to be
//! empty, so 429s stay rare: too many 401/403/429 responses get the IP banned for a while.
//! Pacing is separate: even within limits, a human does not click every 50 ms, so
//! interactions from one account are spaced by a minimum gap plus jitter.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until};

/// A request's rate-limit identity: the method and path with minor ids erased, plus the
/// major parameter that scopes its bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub key: String,
    pub major: String,
}

impl Route {
    pub(crate) fn new(method: &Method, path: &str) -> Self {
        let mut key = format!("{method} ");
        let mut major = String::new();
        let mut previous = "";
        for segment in path.trim_matches('/').split('/') {
            if !key.ends_with(' ') {
                key.push('/');
            }
            let is_id = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
            if is_id && major.is_empty() && matches!(previous, "channels" | "guilds" | "webhooks") {
                major = format!("{previous}/{segment}");
                key.push_str(segment);
            } else if is_id {
                key.push_str(":id");
            } else {
                key.push_str(segment);
            }
            previous = segment;
        }
        Self { key, major }
    }
}

/// What a 429 response says.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hit {
    pub retry_after: Duration,
    pub global: bool,
}

impl Hit {
    /// Reads `retry_after` from the JSON body (seconds, float), falling back to the
    /// `Retry-After` and `X-RateLimit-Reset-After` headers, then to one second.
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            retry_after: Option<f64>,
            #[serde(default)]
            global: bool,
        }
        let parsed = serde_json::from_slice::<Body>(body).ok();
        let retry_after = parsed
            .as_ref()
            .and_then(|b| b.retry_after)
            .or_else(|| header_f64(headers, "retry-after"))
            .or_else(|| header_f64(headers, "x-ratelimit-reset-after"))
            .and_then(seconds)
            .unwrap_or(Duration::from_secs(1));
        let global = parsed.is_some_and(|b| b.global)
            || header_str(headers, "x-ratelimit-global").is_some_and(|v| v == "true")
            || header_str(headers, "x-ratelimit-scope").is_some_and(|v| v == "global");
        Self {
            retry_after,
            global,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    remaining: u32,
    reset_at: Instant,
}

#[derive(Debug, Default)]
struct Limits {
    /// Route key → Discord's bucket hash.
    hashes: HashMap<String, String>,
    /// Bucket id (hash + major, or the route key before the hash is known) → state.
    buckets: HashMap<String, Bucket>,
    global_until: Option<Instant>,
}

impl Limits {
    fn bucket_id(&self, route: &Route) -> String {
        match self.hashes.get(&route.key) {
            Some(hash) => format!("{hash}:{}", route.major),
            None => route.key.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    limits: Mutex<Limits>,
}

impl RateLimiter {
    /// Waits until a request on `route` may be sent and books a slot in its bucket.
    pub(crate) async fn acquire(&self, route: &Route) {
        loop {
            let wait_until = {
                let mut limits = self.limits.lock().await;
                let now = Instant::now();
                let id = limits.bucket_id(route);
                let global = limits.global_until.filter(|until| *until > now);
                let mut expired = false;
                let bucket_wait = match limits.buckets.get_mut(&id) {
                    // The window passed; the next response will tell the new numbers.
                    Some(b) if b.reset_at <= now => {
                        expired = true;
                        None
                    }
                    Some(b) if b.remaining == 0 => Some(b.reset_at),
                    Some(b) => {
                        if global.is_none() {
                            b.remaining -= 1;
                        }
                        None
                    }
                    None => None,
                };
                if expired {
                    limits.buckets.remove(&id);
                }
                match (global, bucket_wait) {
                    (None, None) => return,
                    (a, b) => a.max(b),
                }
            };
            if let Some(until) = wait_until {
                tracing::debug!(route = %route.key, wait = ?until.saturating_duration_since(Instant::now()), "rest: waiting for rate limit");
                sleep_until(until).await;
            }
        }
    }

    /// Records the limits announced by a response.
    pub(crate) async fn update(&self, route: &Route, headers: &HeaderMap) {
        let remaining = header_str(headers, "x-ratelimit-remaining").and_then(|v| v.parse().ok());
        let reset_after = header_f64(headers, "x-ratelimit-reset-after").and_then(seconds);
        let hash = header_str(headers, "x-ratelimit-bucket");
        let mut limits = self.limits.lock().await;
        if let Some(hash) = hash {
            limits.hashes.insert(route.key.clone(), hash.to_owned());
        }
        if let (Some(remaining), Some(reset_after)) = (remaining, reset_after) {
            let id = limits.bucket_id(route);
            let reset_at = Instant::now() + reset_after;
            limits.buckets.insert(
                id,
                Bucket {
                    remaining,
                    reset_at,
                },
            );
        }
    }

    /// Records a 429 so every later request on the bucket (or all, if global) waits.
    pub(crate) async fn hit(&self, route: &Route, hit: &Hit) {
        let until = Instant::now() + hit.retry_after;
        let mut limits = self.limits.lock().await;
        if hit.global {
            limits.global_until = Some(limits.global_until.map_or(until, |g| g.max(until)));
        } else {
            let id = limits.bucket_id(route);
            limits.buckets.insert(
                id,
                Bucket {
                    remaining: 0,
                    reset_at: until,
                },
            );
        }
    }
}

/// Minimum spacing (plus random jitter) between interactions of one account.
#[derive(Debug)]
pub(crate) struct Pacer {
    gap: Duration,
    jitter: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(gap: Duration, jitter: Duration) -> Self {
        Self {
            gap,
            jitter,
            next: Mutex::new(None),
        }
    }

    /// Books the next free slot and sleeps until it. A slot that is already due is taken
    /// without a timer: the runtime fires even an expired one only at its next millisecond
    /// tick, which would delay every interaction of an idle account.
    pub(crate) async fn wait(&self) {
        let (slot, now) = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.gap + self.jitter.mul_f64(fastrand::f64()));
            (slot, now)
        };
        if slot > now {
            sleep_until(slot).await;
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}

/// Seconds to a duration, rejecting negative, NaN and absurd values (over a day).
fn seconds(value: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| *d <= Duration::from_hours(24))
}

#[cfg(test)]
mod tests;
