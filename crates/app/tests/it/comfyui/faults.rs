//! The simulator's faults against the provider, alone and together: each job completes, or
//! fails with the right typed error, and nothing delivered is lost; a server restart mid-job
//! is survived by submitting the lost prompt again, once; a canceled job stops its prompt on
//! the server.

use std::time::{Duration, Instant};

use atelier::domain::{Actor, GenerationStatus, Role};
use atelier::jobs::{Stop, run_workers};
use atelier::simulators::comfyui::Stats;

use super::{asking, quick, rig, submit, succeeded, until};
use crate::engine::run_idle;

/// Runs one generation with `params` against a simulator dealing `faults`.
async fn through(
    faults: &str,
    params: serde_json::Value,
    tweak: impl FnOnce(&mut atelier::config::ComfyUiConfig),
) -> (atelier::app::GenerationWithImages, Stats) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_tried_again_within_the_job() {
    for (fault, dealt) in [("server-error", 1), ("server-error:3", 3)] {
        let (g, stats) = through(fault, serde_json::json!({"batch_size": 2}), |_| {}).await;
        succeeded(&g, 2);
        assert_eq!(stats.faults.len(), dealt, "{stats:?}");
        assert_eq!(stats.prompts, 1, "{fault}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_waits_for_its_retry_after() {
    let started = Instant::now();
    let (g, stats) = through("rate-limit", serde_json::json!({}), |_| {}).await;
    succeeded(&g, 1);
    assert_eq!((stats.prompts, stats.faults.len()), (1, 1));
    // The proxy said `Retry-After: 1`.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_waited_for() {
    let (g, stats) = through("slow", serde_json::json!({}), |_| {}).await;
    succeeded(&g, 1);
    assert_eq!(stats.prompts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_that_vanish_are_made_again() {
    let (g, stats) = through("vanish", serde_json::json!({"batch_size": 2}), |_| {}).await;
    succeeded(&g, 2);
    // The first prompt's files were gone when fetched: the job submitted it again.
    assert_eq!((stats.prompts, stats.vanished), (2, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_fails_at_once_as_a_banned_prompt() {
    let (g, stats) = through("refusal", serde_json::json!({}), |_| {}).await;
    assert_eq!(g.generation.status, GenerationStatus::Failed);
    let error = g.generation.error.unwrap();
    assert_eq!(error.code.as_str(), "banned_prompt");
    assert!(
        error.message.contains("node 8 (VAEDecode)"),
        "{}",
        error.message
    );
    assert!(error.message.contains("NSFW"), "{}", error.message);
    // Not retried, nothing stored.
    assert_eq!((stats.prompts, stats.failed), (1, 1));
    assert!(g.images.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_prompt_is_interrupted_and_made_again() {
    let (g, stats) = through("stuck", serde_json::json!({}), |c| {
        c.stall_secs = 0.6;
        c.poll_secs = 0.2;
    })
    .await;
    succeeded(&g, 1);
    assert_eq!((stats.prompts, stats.interrupted), (2, 1), "{stats:?}");
    assert!(stats.interrupts >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_job_is_survived() {
    let (g, stats) = through("restart", serde_json::json!({"batch_size": 2}), |_| {}).await;
    succeeded(&g, 2);
    // The restart forgot the prompt: it was submitted again, once.
    assert_eq!(
        (stats.restarts, stats.prompts, stats.executed),
        (1, 2, 1),
        "{stats:?}"
    );
    assert!(stats.sockets >= 2, "the socket was opened again: {stats:?}");
    assert_eq!(g.generation.provider_refs["resubmits"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_lost_twice_fails_the_job() {
    let (g, stats) = through("restart:2", serde_json::json!({}), |_| {}).await;
    assert_eq!(g.generation.status, GenerationStatus::Failed);
    let error = g.generation.error.unwrap();
    assert_eq!(error.code.as_str(), "provider_unavailable");
    assert!(
        error.message.contains("lost the prompt"),
        "{}",
        error.message
    );
    assert_eq!((stats.restarts, stats.prompts), (2, 2), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_prompt_waits_in_the_queue_is_survived() {
    // Steps slow enough to restart the server by hand while the second prompt is queued.
    let mut config = quick("");
    config.step = std::time::Duration::from_millis(40);
    let rig = rig(config, |c| c.concurrency = 2).await;
    let a = submit(&rig, asking("first", serde_json::json!({})))
        .await
        .unwrap();
    let b = submit(&rig, asking("second", serde_json::json!({})))
        .await
        .unwrap();
    let app = rig.t.app.clone();
    let workers = tokio::spawn(run_workers(app, 2, Stop::UntilIdle));
    until(&rig.sim, |s| s.prompts == 2 && s.previews >= 1).await;
    rig.sim.restart();
    tokio::time::timeout(Duration::from_secs(30), workers)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for id in [a, b] {
        succeeded(&rig.t.app.generation(Actor::Operator, id).await.unwrap(), 1);
    }
    assert_eq!(rig.sim.stats().prompts, 4);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_faults_together_still_end_in_every_output() {
    let rig = rig(
        quick("server-error,rate-limit,slow,restart,vanish,server-error"),
        |c| {
            c.max_retries = 5;
        },
    )
    .await;
    let ids = [
        submit(&rig, asking("first", serde_json::json!({"batch_size": 2})))
            .await
            .unwrap(),
        submit(
            &rig,
            asking(
                "second",
                serde_json::json!({"workflow": "clip", "frames": 4}),
            ),
        )
        .await
        .unwrap(),
        submit(&rig, asking("third", serde_json::json!({"batch_size": 3})))
            .await
            .unwrap(),
    ];
    run_idle(&rig.t).await;
    for (id, count) in ids.into_iter().zip([2, 1, 3]) {
        let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
        succeeded(&g, count);
        let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
        assert_eq!(
            roles,
            (1..=count)
                .map(|i| Role::Variant(i as u8))
                .collect::<Vec<_>>()
        );
    }
    let stats = rig.sim.stats();
    assert_eq!(stats.faults.len(), 6, "{stats:?}");
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_canceled_mid_prompt_interrupts_it_on_the_server() {
    let mut config = quick("");
    config.step = Duration::from_millis(200);
    let rig = rig(config, |_| {}).await;
    let id = submit(&rig, asking("a slow fox", serde_json::json!({"steps": 40})))
        .await
        .unwrap();
    let app = rig.t.app.clone();
    let workers = tokio::spawn(run_workers(app, 1, Stop::UntilIdle));
    until(&rig.sim, |s| s.prompts == 1 && s.sockets >= 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    rig.t.app.cancel(Actor::Operator, id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), workers)
        .await
        .expect("the workers stopped without waiting for the prompt")
        .unwrap()
        .unwrap();
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Canceled);
    assert!(g.images.is_empty());
    // The prompt was stopped on the server, not left to run.
    until(&rig.sim, |s| s.interrupted == 1).await;
    let stats = rig.sim.stats();
    assert_eq!(
        (stats.interrupts, stats.deletes, stats.executed),
        (1, 1, 0),
        "{stats:?}"
    );
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_canceled_while_its_prompt_is_queued_deletes_it() {
    let mut config = quick("");
    config.step = Duration::from_millis(100);
    let rig = rig(config, |c| c.concurrency = 2).await;
    let first = submit(&rig, asking("first", serde_json::json!({"steps": 30})))
        .await
        .unwrap();
    let app = rig.t.app.clone();
    let workers = tokio::spawn(run_workers(app, 2, Stop::UntilIdle));
    // The first prompt runs; the second waits behind it on the server.
    until(&rig.sim, |s| s.prompts == 1).await;
    let second = submit(&rig, asking("second", serde_json::json!({})))
        .await
        .unwrap();
    until(&rig.sim, |s| s.prompts == 2).await;
    rig.t.app.cancel(Actor::Operator, second).await.unwrap();
    until(&rig.sim, |s| s.deletes == 1).await;
    tokio::time::timeout(Duration::from_secs(30), workers)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    succeeded(
        &rig.t.app.generation(Actor::Operator, first).await.unwrap(),
        1,
    );
    let g = rig.t.app.generation(Actor::Operator, second).await.unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Canceled);
    let stats = rig.sim.stats();
    // Deleted from the queue, never run, and the running prompt left alone.
    assert_eq!((stats.executed, stats.interrupts), (1, 0), "{stats:?}");
    rig.sim.shutdown().await;
}
