//! Paused-time tests of bucket waits, global limits, 429 parsing and pacing.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::{Hit, Pacer, RateLimiter, Route};

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).expect("header"));
    }
    map
}

#[test]
fn routes_keep_major_ids_and_erase_minor_ones() {
    let route = Route::new(&Method::GET, "channels/123/messages/456");
    assert_eq!(route.key, "GET channels/123/messages/:id");
    assert_eq!(route.major, "channels/123");
    let route = Route::new(&Method::POST, "interactions");
    assert_eq!(
        (route.key.as_str(), route.major.as_str()),
        ("POST interactions", "")
    );
}

#[tokio::test(start_paused = true)]
async fn empty_bucket_waits_for_reset() {
    let limiter = RateLimiter::default();
    let route = Route::new(&Method::GET, "channels/1/messages");
    let start = Instant::now();
    limiter.acquire(&route).await;
    limiter
        .update(
            &route,
            &headers(&[
                ("x-ratelimit-bucket", "abc"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "2.5"),
            ]),
        )
        .await;
    limiter.acquire(&route).await;
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn remaining_slots_are_booked_before_waiting() {
    let limiter = RateLimiter::default();
    let route = Route::new(&Method::POST, "interactions");
    limiter
        .update(
            &route,
            &headers(&[
                ("x-ratelimit-remaining", "2"),
                ("x-ratelimit-reset-after", "1"),
            ]),
        )
        .await;
    let start = Instant::now();
    limiter.acquire(&route).await;
    limiter.acquire(&route).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    limiter.acquire(&route).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn shared_hash_is_scoped_by_major_parameter() {
    let limiter = RateLimiter::default();
    let a = Route::new(&Method::GET, "channels/1/messages");
    let b = Route::new(&Method::GET, "channels/2/messages");
    let empty = headers(&[
        ("x-ratelimit-bucket", "h"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset-after", "5"),
    ]);
    limiter.update(&a, &empty).await;
    let start = Instant::now();
    limiter.acquire(&b).await;
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "another channel is another bucket"
    );
    limiter.acquire(&a).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn global_429_blocks_every_route() {
    let limiter = RateLimiter::default();
    let hit = Hit::parse(
        &HeaderMap::new(),
        br#"{"message":"You are being rate limited.","retry_after":1.5,"global":true}"#,
    );
    assert_eq!(
        hit,
        Hit {
            retry_after: Duration::from_millis(1500),
            global: true
        }
    );
    limiter
        .hit(&Route::new(&Method::POST, "interactions"), &hit)
        .await;
    let start = Instant::now();
    limiter
        .acquire(&Route::new(&Method::GET, "users/@me"))
        .await;
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
}

#[test]
fn retry_after_falls_back_to_headers_and_rejects_nonsense() {
    let hit = Hit::parse(&headers(&[("retry-after", "3")]), b"not json");
    assert_eq!(hit.retry_after, Duration::from_secs(3));
    let hit = Hit::parse(
        &headers(&[("x-ratelimit-scope", "global")]),
        br#"{"retry_after":-4}"#,
    );
    assert_eq!(
        hit,
        Hit {
            retry_after: Duration::from_secs(1),
            global: true
        }
    );
    let hit = Hit::parse(&HeaderMap::new(), br#"{"retry_after":1e300}"#);
    assert_eq!(hit.retry_after, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn pacer_spaces_interactions_with_bounded_jitter() {
    let pacer = Pacer::new(Duration::from_secs(2), Duration::from_secs(1));
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..4 {
        pacer.wait().await;
        times.push(start.elapsed());
    }
    assert_eq!(times[0], Duration::ZERO);
    for pair in times.windows(2) {
        let gap = pair[1].saturating_sub(pair[0]);
        assert!(
            gap >= Duration::from_secs(2) && gap <= Duration::from_millis(3002),
            "{gap:?}"
        );
    }
}

/// A free slot is taken at once, not at the timer's next tick: the runtime fires even an
/// expired timer only on its next millisecond, a delay every interaction would pay.
#[tokio::test]
async fn a_free_slot_is_taken_without_waiting_for_the_timer() {
    let pacer = Pacer::new(Duration::ZERO, Duration::ZERO);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..3 {
        let mut wait = std::pin::pin!(pacer.wait());
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
}
