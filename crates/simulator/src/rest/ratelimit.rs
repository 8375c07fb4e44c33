//! Rate-limit headers on every API response, and the `rate-limit` fault's 429s.
//!
//! Buckets are per user and per route (method plus path with minor ids erased, the channel or
//! guild id kept), in fixed one-second windows of [`LIMIT`] requests. The windows are
//! reported honestly in `X-RateLimit-*` but never enforced: only the fault answers 429, so
//! benchmarks are not throttled by the simulator itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;

use crate::faults::Fault;
use crate::ids::{mix, unix_ms};
use crate::sim::{Sim, lock};

/// Requests per bucket and window, as announced.
const LIMIT: u32 = 50;
const WINDOW: Duration = Duration::from_secs(1);
/// Windows remembered before old ones are swept.
const MAX_WINDOWS: usize = 10_000;

/// Fixed windows per (user, bucket).
#[derive(Default)]
pub(crate) struct RateWindows {
    windows: Mutex<HashMap<(String, String), (Instant, u32)>>,
}

impl RateWindows {
    /// Counts a request; returns (remaining, time until the window resets).
    fn hit(&self, who: &str, bucket: &str) -> (u32, Duration) {
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        if windows.len() > MAX_WINDOWS {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = windows
            .entry((who.to_owned(), bucket.to_owned()))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let reset_after = WINDOW.saturating_sub(now.duration_since(entry.0));
        (LIMIT.saturating_sub(entry.1), reset_after)
    }
}

/// The route key: `POST /channels/123/messages/:id` style, the first channel/guild id kept.
fn route_key(method: &str, path: &str) -> String {
    let path = path
        .strip_prefix("/api/v9")
        .or_else(|| path.strip_prefix("/api/v10"))
        .or_else(|| path.strip_prefix("/api"))
        .unwrap_or(path);
    let mut key = format!("{method} ");
    let mut previous = "";
    let mut major_seen = false;
    for segment in path.trim_matches('/').split('/') {
        key.push('/');
        let is_id = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
        if is_id && !major_seen && matches!(previous, "channels" | "guilds") {
            major_seen = true;
            key.push_str(segment);
        } else if is_id {
            key.push_str(":id");
        } else {
            key.push_str(segment);
        }
        previous = segment;
    }
    key
}

/// Middleware for the API routes.
pub(crate) async fn limits(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    sim.stats.count_rest();
    let key = route_key(request.method().as_str(), request.uri().path());
    let bucket = format!(
        "{:08x}{:08x}",
        mix(&[key.as_bytes()]),
        mix(&[b"b", key.as_bytes()])
    );
    let who = request
        .headers()
        .get(header::AUTHORIZATION)
        .map_or(0, |v| mix(&[v.as_bytes()]))
        .to_string();
    let limited = {
        let mut faults = sim.faults();
        faults
            .roll(Fault::RateLimit)
            .then(|| 0.05 + faults.rng(Fault::RateLimit).f64() * 0.45)
    };
    if let Some(retry_after) = limited {
        return too_many(&bucket, retry_after);
    }
    let mut response = next.run(request).await;
    let (remaining, reset_after) = sim.rate.hit(&who, &bucket);
    let reset = (unix_ms() as f64 + reset_after.as_millis() as f64) / 1000.0;
    let headers = response.headers_mut();
    put(headers, "x-ratelimit-limit", LIMIT.to_string());
    put(headers, "x-ratelimit-remaining", remaining.to_string());
    put(headers, "x-ratelimit-reset", format!("{reset:.3}"));
    put(
        headers,
        "x-ratelimit-reset-after",
        format!("{:.3}", reset_after.as_secs_f64()),
    );
    put(headers, "x-ratelimit-bucket", bucket);
    response
}

/// Discord's 429 for a per-user bucket.
fn too_many(bucket: &str, retry_after: f64) -> Response {
    let body = json!({
        "message": "You are being rate limited.",
        "retry_after": (retry_after * 1000.0).round() / 1000.0,
        "global": false,
    });
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    put(
        headers,
        "retry-after",
        format!("{}", retry_after.ceil() as u64),
    );
    put(headers, "x-ratelimit-limit", LIMIT.to_string());
    put(headers, "x-ratelimit-remaining", "0");
    put(
        headers,
        "x-ratelimit-reset-after",
        format!("{retry_after:.3}"),
    );
    put(
        headers,
        "x-ratelimit-reset",
        format!("{:.3}", unix_ms() as f64 / 1000.0 + retry_after),
    );
    put(headers, "x-ratelimit-bucket", bucket);
    put(headers, "x-ratelimit-scope", "user");
    response
}

fn put(headers: &mut HeaderMap, name: &'static str, value: impl AsRef<str>) {
    if let Ok(value) = HeaderValue::from_str(value.as_ref()) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::{RateWindows, route_key};

    #[test]
    fn route_keys_keep_the_major_id() {
        assert_eq!(
            route_key("GET", "/api/v9/channels/12/messages/34"),
            "GET /channels/12/messages/:id"
        );
        assert_eq!(
            route_key("POST", "/api/v10/interactions"),
            "POST /interactions"
        );
        assert_eq!(route_key("GET", "/api/guilds/56"), "GET /guilds/56");
    }

    #[test]
    fn windows_count_down() {
        let windows = RateWindows::default();
        assert_eq!(windows.hit("a", "b").0, 49);
        assert_eq!(windows.hit("a", "b").0, 48);
        assert_eq!(windows.hit("c", "b").0, 49);
    }
}
