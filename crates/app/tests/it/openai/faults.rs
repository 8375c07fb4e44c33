//! The simulator's faults against the provider, alone and together: each job completes, or
//! fails with the right typed error, and nothing delivered is lost; a job canceled while its
//! request hangs ends canceled with nothing stored.

use std::time::Duration;

use atelier::domain::{Actor, GenerationStatus, Role};
use atelier::jobs::{Stop, run_workers};

use super::{asking, quick, rig, submit, view};
use crate::engine::run_idle;

/// Runs one generation with `params` against a simulator dealing `faults`; its status, error
/// code and the simulator's statistics.
async fn through(
    faults: &str,
    params: serde_json::Value,
    tweak: impl FnOnce(&mut atelier::config::OpenAiConfig),
) -> (
    atelier::app::GenerationWithImages,
    atelier::simulators::openai::Stats,
) {
    let rig = rig(quick(faults), tweak).await;
    let id = submit(&rig, asking("a windmill in the rain", params))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    let stats = rig.sim.stats();
    rig.sim.shutdown().await;
    (g, stats)
}

fn succeeded(g: &atelier::app::GenerationWithImages, images: usize) {
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    assert_eq!(g.images.len(), images);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_overload_are_tried_again_within_the_job() {
    for fault in ["server-error", "overloaded", "server-error:2"] {
        let (g, stats) = through(fault, serde_json::json!({"n": 2}), |_| {}).await;
        succeeded(&g, 2);
        let faults = stats.faults.len() as u64;
        assert_eq!(stats.requests, faults + 1, "{fault}: {stats:?}");
        // Only the request that succeeded made pictures.
        assert_eq!(stats.images, 2, "{fault}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_waits_for_its_retry_after() {
    let started = std::time::Instant::now();
    let (g, stats) = through("rate-limit", serde_json::json!({}), |_| {}).await;
    succeeded(&g, 1);
    assert_eq!(stats.requests, 2);
    // The simulator said `Retry-After: 1`.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_longer_than_the_job_waits_sends_it_back_to_the_queue() {
    // Retry-After (1 s) is more than this provider waits inside a job: the job is retried by
    // the engine after it, on its next attempt.
    let (g, stats) = through("rate-limit", serde_json::json!({}), |o| {
        o.max_retry_wait_secs = 0.5;
    })
    .await;
    succeeded(&g, 1);
    assert_eq!(stats.requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_waited_for() {
    let (g, stats) = through("slow", serde_json::json!({}), |_| {}).await;
    succeeded(&g, 1);
    assert_eq!(stats.requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_request_times_out_and_is_sent_again() {
    let (g, stats) = through("stuck", serde_json::json!({}), |o| o.timeout_secs = 1.0).await;
    succeeded(&g, 1);
    assert_eq!(stats.requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_urls_are_downloaded_at_once() {
    // dall-e models answer with URLs; these expire a second after the answer.
    let (g, stats) = through(
        "expiring-urls",
        serde_json::json!({"model": "dall-e-2", "n": 3, "size": "256x256"}),
        |_| {},
    )
    .await;
    succeeded(&g, 3);
    assert_eq!((stats.requests, stats.downloads, stats.expired), (1, 3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_url_fails_the_download_and_the_job_asks_again() {
    let (g, stats) = through(
        "expired-urls",
        serde_json::json!({"model": "dall-e-3", "response_format": "url"}),
        |_| {},
    )
    .await;
    succeeded(&g, 1);
    assert_eq!((stats.requests, stats.expired, stats.downloads), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safety_refusal_fails_at_once_as_a_banned_prompt() {
    let (g, stats) = through("refusal", serde_json::json!({}), |_| {}).await;
    assert_eq!(g.generation.status, GenerationStatus::Failed);
    let error = g.generation.error.unwrap();
    assert_eq!(error.code.as_str(), "banned_prompt");
    assert!(error.message.contains("safety system"), "{}", error.message);
    assert!(error.message.contains("request req_"), "{}", error.message);
    // Not retried, nothing stored.
    assert_eq!(stats.requests, 1);
    assert!(g.images.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_keeps_what_it_delivered_and_asks_only_for_the_rest() {
    let (g, stats) = through(
        "broken-stream",
        serde_json::json!({"n": 4, "stream": true, "partial_images": 1}),
        |_| {},
    )
    .await;
    succeeded(&g, 4);
    let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, (1..=4).map(Role::Variant).collect::<Vec<_>>());
    // The first request's two images were kept: the retry paid for two only.
    assert_eq!(stats.asked, vec![4, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_faults_together_still_end_in_every_image() {
    let rig = rig(
        quick("server-error,rate-limit,overloaded,slow,expiring-urls,broken-stream"),
        |o| o.max_retries = 5,
    )
    .await;
    let a = submit(&rig, asking("first", serde_json::json!({"n": 2})))
        .await
        .unwrap();
    let b = submit(
        &rig,
        asking("second", serde_json::json!({"model": "dall-e-2", "n": 2})),
    )
    .await
    .unwrap();
    let c = submit(
        &rig,
        asking("third", serde_json::json!({"n": 2, "stream": true})),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    for id in [a, b, c] {
        let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
        assert_eq!(
            g.generation.status,
            GenerationStatus::Succeeded,
            "{:?}",
            g.generation.error
        );
        assert_eq!(g.images.len(), 2);
    }
    let stats = rig.sim.stats();
    assert!(stats.faults.len() >= 5, "{stats:?}");
    // Usage is kept for every generation a GPT image model drew.
    assert!(
        view(&rig.t.app, a).await["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_canceled_while_its_request_hangs_ends_canceled() {
    let mut config = quick("slow");
    config.slow = Duration::from_secs(30);
    let rig = rig(config, |_| {}).await;
    let id = submit(&rig, asking("a slow fox", serde_json::json!({"n": 2})))
        .await
        .unwrap();
    let app = rig.t.app.clone();
    let workers = tokio::spawn(run_workers(app, 1, Stop::UntilIdle));
    for _ in 0..200 {
        if rig.sim.stats().requests == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.sim.stats().requests, 1, "the request went out");
    rig.t.app.cancel(Actor::Operator, id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), workers)
        .await
        .expect("the workers stopped without waiting for the answer")
        .unwrap()
        .unwrap();
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Canceled);
    assert!(g.images.is_empty());
    assert_eq!(rig.sim.stats().requests, 1);
    rig.sim.shutdown().await;
}
