//! The simulator's faults against the provider, alone and together: each job completes, or
//! fails with the right typed error, paying for no prediction it did not need; a generation
//! canceled while its prediction runs ends canceled, and so does the prediction.

use std::time::Duration;

use atelier::domain::{Actor, GenerationStatus};
use atelier::jobs::{Stop, run_workers};

use super::{asking, quick, rig, submit, succeeded};
use crate::engine::run_idle;

/// Runs one generation with `params` on `provider` against a simulator dealing `faults`; the
/// generation, the simulator's statistics and its predictions' statuses.
async fn through(
    faults: &str,
    provider: &str,
    params: serde_json::Value,
    tweak: impl FnOnce(&mut atelier::config::ReplicateConfig),
) -> (
    atelier::app::GenerationWithImages,
    atelier::simulators::replicate::Stats,
    Vec<String>,
) {
    let rig = rig(quick(faults), tweak).await;
    let id = submit(&rig, asking(provider, "a windmill in the rain", params))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    let stats = rig.sim.stats();
    let statuses = rig.sim.statuses().await;
    rig.sim.shutdown().await;
    (g, stats, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_overload_are_tried_again_without_a_second_prediction() {
    for fault in ["server-error", "overloaded", "server-error:2"] {
        let (g, stats, statuses) = through(
            fault,
            "replicate:image",
            serde_json::json!({"num_outputs": 2}),
            |_| {},
        )
        .await;
        succeeded(&g, 2);
        let faults = stats.faults.len() as u64;
        assert_eq!(stats.creates, faults + 1, "{fault}: {stats:?}");
        assert_eq!(statuses, ["succeeded"], "{fault}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_waits_for_its_retry_after() {
    let started = std::time::Instant::now();
    let (g, stats, _) = through(
        "rate-limit",
        "replicate:image",
        serde_json::json!({}),
        |_| {},
    )
    .await;
    succeeded(&g, 1);
    assert_eq!((stats.creates, stats.predictions), (2, 1));
    // The simulator said `Retry-After: 1`.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_longer_than_the_job_waits_sends_it_back_to_the_queue() {
    let (g, stats, _) = through(
        "rate-limit",
        "replicate:image",
        serde_json::json!({}),
        |r| {
            r.max_retry_wait_secs = 0.5;
        },
    )
    .await;
    succeeded(&g, 1);
    assert_eq!((stats.creates, stats.predictions), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_create_is_waited_for() {
    let (g, stats, _) = through("slow", "replicate:image", serde_json::json!({}), |_| {}).await;
    succeeded(&g, 1);
    assert_eq!(stats.predictions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_outputs_are_downloaded_at_once() {
    let (g, stats, _) = through(
        "expiring-urls",
        "replicate:image",
        serde_json::json!({"num_outputs": 3}),
        |_| {},
    )
    .await;
    succeeded(&g, 3);
    assert_eq!(
        (stats.predictions, stats.downloads, stats.expired),
        (1, 3, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_outputs_make_the_prediction_again() {
    let (g, stats, statuses) = through(
        "expired-urls",
        "replicate:image",
        serde_json::json!({"num_outputs": 2}),
        |_| {},
    )
    .await;
    succeeded(&g, 2);
    assert_eq!(stats.predictions, 2, "{stats:?}");
    assert_eq!(stats.expired, 2);
    assert_eq!(statuses, ["succeeded", "succeeded"]);
    // The first prediction is kept as spent, the second as the one that delivered.
    let refs = &g.generation.provider_refs;
    assert_eq!(refs["spent"].as_array().unwrap().len(), 1, "{refs}");
    assert_eq!(refs["predictions"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safety_refusal_fails_at_once_as_a_banned_prompt() {
    let (g, stats, statuses) =
        through("nsfw", "replicate:image", serde_json::json!({}), |_| {}).await;
    assert_eq!(g.generation.status, GenerationStatus::Failed);
    let error = g.generation.error.unwrap();
    assert_eq!(error.code.as_str(), "banned_prompt");
    assert!(
        error.message.contains("NSFW content detected"),
        "{}",
        error.message
    );
    // Not made again, nothing stored.
    assert_eq!(stats.predictions, 1);
    assert_eq!(statuses, ["failed"]);
    assert!(g.images.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_prediction_is_canceled_at_its_deadline_and_made_again() {
    let (g, stats, statuses) = through("stuck", "replicate:image", serde_json::json!({}), |r| {
        r.prediction_timeout_secs = 1.0;
    })
    .await;
    succeeded(&g, 1);
    assert_eq!((stats.predictions, stats.canceled), (2, 1), "{stats:?}");
    assert_eq!(statuses, ["canceled", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_faults_together_still_end_in_every_output() {
    let rig = rig(
        quick("server-error,rate-limit,overloaded,slow,expiring-urls,expired-urls,stuck"),
        |r| {
            r.max_retries = 5;
            r.prediction_timeout_secs = 1.0;
        },
    )
    .await;
    let a = submit(
        &rig,
        asking(
            "replicate:image",
            "first",
            serde_json::json!({"num_outputs": 2}),
        ),
    )
    .await
    .unwrap();
    let b = submit(
        &rig,
        asking("replicate:video", "second", serde_json::json!({})),
    )
    .await
    .unwrap();
    let c = submit(
        &rig,
        asking(
            "replicate:image",
            "third",
            serde_json::json!({"num_outputs": 3}),
        ),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    for (id, outputs) in [(a, 2), (b, 1), (c, 3)] {
        let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
        succeeded(&g, outputs);
    }
    let stats = rig.sim.stats();
    assert_eq!(stats.faults.len(), 7, "{stats:?}");
    // The three refused creates made nothing; the expired and the stuck predictions were
    // made again, once each.
    assert_eq!(stats.predictions, 5, "{stats:?}");
    assert_eq!(stats.canceled, 1);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_canceled_mid_prediction_cancels_the_prediction() {
    let mut config = quick("");
    config.latency = Duration::from_mins(1);
    let rig = rig(config, |_| {}).await;
    let id = submit(
        &rig,
        asking(
            "replicate:image",
            "a slow fox",
            serde_json::json!({"num_outputs": 2}),
        ),
    )
    .await
    .unwrap();
    let workers = tokio::spawn(run_workers(rig.t.app.clone(), 1, Stop::UntilIdle));
    for _ in 0..200 {
        if rig.sim.stats().polls >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.sim.stats().predictions, 1, "the prediction was made");
    rig.t.app.cancel(Actor::Operator, id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(15), workers)
        .await
        .expect("the workers stopped without waiting for the prediction")
        .unwrap()
        .unwrap();
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Canceled);
    assert!(g.images.is_empty());
    let stats = rig.sim.stats();
    assert_eq!(
        (stats.cancels, stats.canceled, stats.predictions),
        (1, 1, 1),
        "{stats:?}"
    );
    assert_eq!(rig.sim.statuses().await, ["canceled"]);
    rig.sim.shutdown().await;
}
