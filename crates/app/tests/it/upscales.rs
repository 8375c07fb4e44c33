//! The upscales of one job run at once: they overlap, are stored in the order they arrive
//! with milestones that only rise, and a fatal failure does not wait for the others.

use std::sync::atomic::Ordering;
use std::time::Duration;

use atelier::domain::{ErrorCode, EventKind, GenerationStatus};
use atelier::providers::UpscaleMode;

use crate::engine::{run_idle, scripted, submit};
use crate::support::{Scripted, err};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upscales_run_at_once_and_are_stored_in_the_order_they_arrive() {
    // Upscale 2 arrives first, then 4, 3 and 1.
    let ms = Duration::from_millis;
    let s = Scripted::staggered(ms(20), vec![], [ms(320), ms(80), ms(240), ms(160)]);
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "four at once", "all").await;
    run_idle(&t).await;
    assert_eq!(
        t.app
            .generation(atelier::domain::Actor::Operator, id)
            .await
            .unwrap()
            .generation
            .status,
        GenerationStatus::Succeeded
    );
    assert_eq!(
        s.max_running.load(Ordering::SeqCst),
        4,
        "the calls overlapped"
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), 5);
    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert!(events.windows(2).all(|w| w[0].progress <= w[1].progress));
    let stored: Vec<(Option<u8>, f64)> = events
        .iter()
        .filter(|e| e.kind == EventKind::UpscaleCompleted)
        .map(|e| (e.index, e.progress))
        .collect();
    assert_eq!(
        stored,
        [
            (Some(2), 62.5),
            (Some(4), 75.0),
            (Some(3), 87.5),
            (Some(1), 100.0)
        ]
    );
    assert_eq!(events.last().unwrap().kind, EventKind::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_upscale_failure_ends_the_job_without_waiting_for_the_others() {
    // The grid, then upscale 1 fails at once for good while 2–4 would take seconds.
    let ms = Duration::from_millis;
    let s = Scripted::staggered(
        Duration::ZERO,
        vec![None, Some(err(ErrorCode::BannedPrompt, "banned upscale"))],
        [ms(0), ms(5000), ms(5000), ms(5000)],
    );
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "one bad quadrant", "all").await;
    let started = std::time::Instant::now();
    run_idle(&t).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited for the others"
    );
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .generation;
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::BannedPrompt));
}
