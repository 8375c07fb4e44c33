//! The engine end to end in one process: life cycle and milestones, retries, failures,
//! cancellation, per-account concurrency, lease takeover and resumption.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use atelier::catalogue::{CatalogueError, Claim, Queue, QueueCounts, Result as CatResult};
use atelier::domain::{
    ErrorCode, EventKind, GenerationId, GenerationRequest, GenerationStatus, Job, JobId, JobStatus,
    Lease, Phase, Role, UpscaleSelection,
};
use atelier::jobs::{Stop, run_workers};
use atelier::providers::sandbox::Sandbox;
use atelier::providers::{Provider, UpscaleMode};

use crate::support::{Scripted, TestApp, app_with, err, fast_jobs, sandbox_app};

pub async fn submit(t: &TestApp, prompt: &str, upscale: &str) -> GenerationId {
    let mut r = GenerationRequest::new(prompt);
    r.upscale = UpscaleSelection::parse(upscale).unwrap();
    t.app
        .submit(atelier::domain::Actor::Operator, r)
        .await
        .unwrap()
        .id
}

pub async fn run_idle(t: &TestApp) {
    tokio::time::timeout(
        Duration::from_secs(30),
        run_workers(t.app.clone(), 3, Stop::UntilIdle),
    )
    .await
    .expect("workers went idle")
    .expect("the catalogue took every write");
}

pub async fn scripted(s: &Arc<Scripted>, concurrency: u32, mode: UpscaleMode) -> TestApp {
    let p: Arc<dyn Provider> = s.clone();
    app_with(vec![("scripted", p, concurrency, mode)], fast_jobs()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_follows_the_life_cycle_and_milestones() {
    // Steps 100 ms apart, as a real provider's are: each is recorded.
    let sandbox: Arc<dyn Provider> = Arc::new(Sandbox {
        size: 64,
        delay: Duration::from_millis(700),
    });
    let t = app_with(
        vec![("sandbox", sandbox, 1, UpscaleMode::Provider)],
        fast_jobs(),
    )
    .await;
    let mut live = t.app.local_events();
    let id = submit(&t, "a lighthouse at dawn", "all").await;
    run_idle(&t).await;

    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Succeeded);
    assert_eq!(g.generation.phase, Some(Phase::Completed));
    assert_eq!(g.generation.progress, 100.0);
    let roles: Vec<String> = g.images.iter().map(|i| i.role.to_string()).collect();
    assert_eq!(
        roles,
        ["grid", "upscale_1", "upscale_2", "upscale_3", "upscale_4"]
    );
    for i in &g.images {
        assert!(i.synthetic);
        let bytes = t
            .app
            .store()
            .get(&i.storage_key, &i.sha256)
            .await
            .expect("stored and verified");
        assert_eq!(bytes.len() as u64, i.size_bytes);
        assert_eq!(i.palette.len(), 5);
        assert!(
            t.app
                .store()
                .get(
                    i.thumbnail_key.as_deref().unwrap(),
                    &atelier::store::sha256_hex(b"x")
                )
                .await
                .is_err()
        );
    }
    assert_eq!((g.images[0].width, g.images[1].width), (64, 32));

    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    assert!(
        events.windows(2).all(|w| w[0].progress <= w[1].progress),
        "progress never goes down"
    );
    let at = |kind: EventKind| {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.progress)
            .collect::<Vec<_>>()
    };
    assert_eq!(at(EventKind::Created), [0.0]);
    assert_eq!(at(EventKind::Submitted), [25.0]);
    assert_eq!(at(EventKind::GridCompleted), [50.0]);
    assert_eq!(at(EventKind::UpscaleCompleted), [62.5, 75.0, 87.5, 100.0]);
    assert_eq!(at(EventKind::Completed), [100.0]);
    let rendering: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress && e.phase == Some(Phase::GridRendering))
        .map(|e| e.progress)
        .collect();
    assert!(
        rendering.len() >= 5,
        "several rendering steps: {rendering:?}"
    );
    assert!(rendering.iter().all(|p| (25.0..50.0).contains(p)));
    // The upscales run at once and are stored as they arrive: each index once, in any order.
    let mut indices: Vec<u8> = events.iter().filter_map(|e| e.index).collect();
    indices.sort_unstable();
    assert_eq!(indices, [1, 2, 3, 4]);
    assert_eq!(events.last().unwrap().kind, EventKind::Completed);

    // The bus carried the same events, live.
    let mut seen = Vec::new();
    while let Ok(e) = live.try_recv() {
        if e.generation_id == id {
            seen.push(e.seq);
        }
    }
    assert_eq!(seen, seqs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_upscales_share_the_second_half() {
    let t = sandbox_app().await;
    let two = submit(&t, "two", "1,3").await;
    let none = submit(&t, "none", "none").await;
    run_idle(&t).await;
    let ev = t
        .app
        .events(atelier::domain::Actor::Operator, two, 0)
        .await
        .unwrap();
    let ups: Vec<(Option<u8>, f64)> = ev
        .iter()
        .filter(|e| e.kind == EventKind::UpscaleCompleted)
        .map(|e| (e.index, e.progress))
        .collect();
    // Stored as they arrive: the milestones count them, whichever index comes first.
    assert_eq!(ups.iter().map(|u| u.1).collect::<Vec<_>>(), [75.0, 100.0]);
    let mut indices: Vec<Option<u8>> = ups.iter().map(|u| u.0).collect();
    indices.sort_unstable();
    assert_eq!(indices, [Some(1), Some(3)]);
    let ev = t
        .app
        .events(atelier::domain::Actor::Operator, none, 0)
        .await
        .unwrap();
    let grid = ev
        .iter()
        .find(|e| e.kind == EventKind::GridCompleted)
        .unwrap();
    assert_eq!(grid.progress, 100.0);
    assert_eq!(
        t.app
            .generation(atelier::domain::Actor::Operator, none)
            .await
            .unwrap()
            .images
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_then_succeed() {
    let s = Scripted::new(
        Duration::ZERO,
        vec![Some(err(ErrorCode::QueueFull, "queue is full"))],
    );
    s.corrupt.store(1, Ordering::SeqCst);
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "retry me", "1").await;
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    let job = t.app.queue().job_of(id).await.unwrap();
    // queue_full, then a truncated delivery (integrity_failed), then success.
    assert_eq!((job.attempts, job.status), (3, JobStatus::Succeeded));
    assert!(job.last_error.unwrap().starts_with("integrity_failed"));
    assert_eq!(g.images.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_failures_end_the_generation_at_once() {
    let s = Scripted::new(
        Duration::ZERO,
        vec![Some(err(ErrorCode::BannedPrompt, "banned word: fox"))],
    );
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "a fox", "all").await;
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .generation;
    assert_eq!(g.status, GenerationStatus::Failed);
    let e = g.error.unwrap();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::BannedPrompt, "banned word: fox")
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), 1, "no retry");
    let last = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.kind, last.error.map(|f| f.code)),
        (EventKind::Failed, Some(ErrorCode::BannedPrompt))
    );
    assert_eq!(
        t.app.queue().job_of(id).await.unwrap().status,
        JobStatus::Failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_run_out() {
    let down = || Some(err(ErrorCode::ProviderUnavailable, "gateway down"));
    let s = Scripted::new(Duration::ZERO, vec![down(), down(), down(), down()]);
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "never", "all").await;
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .generation;
    assert_eq!(g.status, GenerationStatus::Failed);
    let e = g.error.unwrap();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert!(
        e.message.contains("gave up after 3 attempts"),
        "{}",
        e.message
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_waiting_generation_ends_it_at_once() {
    let t = sandbox_app().await;
    let id = submit(&t, "cancel me", "all").await;
    let g = t
        .app
        .cancel(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(g.status, GenerationStatus::Canceled);
    run_idle(&t).await;
    assert!(
        t.app
            .generation(atelier::domain::Actor::Operator, id)
            .await
            .unwrap()
            .images
            .is_empty()
    );
    assert_eq!(
        t.app.queue().job_of(id).await.unwrap().status,
        JobStatus::Canceled
    );
    let last = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.kind, EventKind::Canceled);
    assert!(
        t.app
            .cancel(atelier::domain::Actor::Operator, id)
            .await
            .is_err(),
        "already canceled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_running_generation_stops_its_worker() {
    let s = Scripted::new(Duration::from_secs(20), vec![]);
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "slow", "all").await;
    let workers = tokio::spawn(run_workers(t.app.clone(), 1, Stop::UntilIdle));
    for _ in 0..200 {
        if s.running.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.running.load(Ordering::SeqCst),
        1,
        "the provider is working"
    );
    t.app
        .cancel(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), workers)
        .await
        .expect("stopped promptly")
        .unwrap()
        .unwrap();
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .generation;
    assert_eq!(
        (g.status, g.error.map(|e| e.code)),
        (GenerationStatus::Canceled, Some(ErrorCode::Canceled))
    );
    assert_eq!(
        t.app.queue().job_of(id).await.unwrap().status,
        JobStatus::Canceled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_runs_one_job_at_a_time_by_default() {
    // The limit is on jobs (generations) an account holds; the upscales of one job are that
    // job's calls and run at once (see the next test).
    for (concurrency, expected) in [(1, 1), (2, 2)] {
        let s = Scripted::new(Duration::from_millis(150), vec![]);
        let t = scripted(&s, concurrency, UpscaleMode::Provider).await;
        for i in 0..4 {
            submit(&t, &format!("job {i}"), "2,3").await;
        }
        run_idle(&t).await;
        assert_eq!(
            s.max_jobs.load(Ordering::SeqCst),
            expected,
            "concurrency {concurrency}"
        );
        assert!(s.max_running.load(Ordering::SeqCst) <= 2 * expected);
        assert_eq!(s.calls.load(Ordering::SeqCst), 4 * 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_job_is_taken_over_after_its_lease() {
    let t = sandbox_app().await;
    let id = submit(&t, "orphan", "all").await;
    // A worker claims the job and dies without a word.
    let slots = vec!["sandbox:sandbox-account".to_owned()];
    let ghost = Claim {
        worker: "ghost@1",
        lease_ms: 300,
        slots: &slots,
        only: None,
    };
    assert!(t.app.queue().claim(&ghost).await.unwrap().is_some());
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Succeeded);
    assert_eq!(g.images.len(), 5);
    let job = t.app.queue().job_of(id).await.unwrap();
    // The takeover spent no attempt.
    assert_eq!((job.attempts, job.takeovers), (1, 1));
}

/// Workers that claim the job and die without a word, one after another: the first takes it
/// from the queue, each next one takes it over once the lease has run out.
async fn ghosts(t: &TestApp, slot: &str, count: u32) {
    let slots = vec![slot.to_owned()];
    for n in 0..count {
        let worker = format!("ghost@{n}");
        let ghost = Claim {
            worker: &worker,
            lease_ms: 1,
            slots: &slots,
            only: None,
        };
        // Each claims after the one before it lost its lease.
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let claimed = t.app.queue().claim(&ghost).await.unwrap();
        assert!(claimed.is_some(), "ghost {n} claims the job");
    }
    // The last ghost's lease has run out before the real workers look.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_more_often_than_its_attempts_still_finishes() {
    // max_attempts is 3; the job's worker dies five times.
    let t = sandbox_app().await;
    let id = submit(&t, "killed five times", "all").await;
    ghosts(&t, "sandbox:sandbox-account", 5).await;
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    assert_eq!(g.images.len(), 5);
    let job = t.app.queue().job_of(id).await.unwrap();
    assert_eq!((job.attempts, job.takeovers), (1, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_every_time_is_given_up_after_its_takeovers() {
    let s = Scripted::new(Duration::ZERO, vec![]);
    let p: Arc<dyn Provider> = s.clone();
    let jobs = atelier::app::JobSettings {
        max_takeovers: 2,
        ..fast_jobs()
    };
    let t = app_with(vec![("scripted", p, 1, UpscaleMode::Provider)], jobs).await;
    let id = submit(&t, "deadly", "all").await;
    // Three workers died with it: the claim after the third is its third takeover.
    ghosts(&t, "scripted:scripted-account", 3).await;
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .generation;
    assert_eq!(g.status, GenerationStatus::Failed);
    let e = g.error.unwrap();
    assert_eq!(e.code, ErrorCode::Internal);
    assert!(
        e.message.contains("gave up after 3 takeovers")
            && e.message.contains("stopped without recording an end")
            && e.message.contains("max_takeovers = 2"),
        "{}",
        e.message
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), 0, "not run again");
    let job = t.app.queue().job_of(id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts, job.takeovers),
        (JobStatus::Failed, 1, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_job_resumes_without_redoing_stored_steps() {
    // The grid renders; the first upscale fails once; the retry must not render again.
    let s = Scripted::new(
        Duration::ZERO,
        vec![None, Some(err(ErrorCode::Timeout, "slow"))],
    );
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "resume", "all").await;
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Succeeded);
    let grids = g.images.iter().filter(|i| i.role == Role::Grid).count();
    assert_eq!((grids, g.images.len()), (1, 5));
    let job = t.app.queue().job_of(id).await.unwrap();
    assert_eq!(job.attempts, 2);
    // The upscales run at once: the failed one is asked for again, the three others were
    // stored by the first attempt, which waited for them.
    assert_eq!(
        s.calls.load(Ordering::SeqCst),
        6,
        "render once, one upscale twice, the three others once"
    );
    let grid_events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::GridCompleted)
        .count();
    assert_eq!(grid_events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_split_cuts_the_grid_instead_of_calling_the_provider() {
    let s = Scripted::new(Duration::ZERO, vec![]);
    let t = scripted(&s, 1, UpscaleMode::LocalSplit).await;
    let id = submit(&t, "split", "2,4").await;
    run_idle(&t).await;
    assert_eq!(
        s.calls.load(Ordering::SeqCst),
        1,
        "only the grid was asked for"
    );
    let images = t
        .app
        .images(
            atelier::domain::Actor::Operator,
            &atelier::api::ImageQuery {
                generation_id: Some(id),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .images;
    let mut roles: Vec<String> = images.iter().map(|i| i.role.to_string()).collect();
    roles.sort();
    assert_eq!(roles, ["grid", "upscale_2", "upscale_4"]);
    let q = images.iter().find(|i| i.role == Role::Upscale(2)).unwrap();
    assert_eq!((q.width, q.height), (32, 32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_tags_through_the_app() {
    let t = sandbox_app().await;
    let mut r = GenerationRequest::new("the fox king");
    r.subject = Some("Fox King".into());
    r.upscale = UpscaleSelection::none();
    let first = t
        .app
        .submit(atelier::domain::Actor::Operator, r)
        .await
        .unwrap();
    run_idle(&t).await;
    let grid = t
        .app
        .generation(atelier::domain::Actor::Operator, first.id)
        .await
        .unwrap()
        .images
        .remove(0);
    let next = t
        .app
        .new_version(atelier::domain::Actor::Operator, grid.id)
        .await
        .unwrap();
    assert_eq!((next.version, next.parent_id), (2, Some(first.id)));
    assert_eq!(next.prompt, first.prompt);
    run_idle(&t).await;
    assert_eq!(
        t.app
            .generation(atelier::domain::Actor::Operator, next.id)
            .await
            .unwrap()
            .images[0]
            .version,
        2
    );
    let tagged = t
        .app
        .tag(
            atelier::domain::Actor::Operator,
            grid.id,
            &[" Hero ".into(), "cover".into()],
        )
        .await
        .unwrap();
    assert_eq!(tagged.tags, ["cover", "hero"]);
    assert!(
        t.app
            .tag(
                atelier::domain::Actor::Operator,
                grid.id,
                &["no spaces allowed".into()]
            )
            .await
            .is_err()
    );
    assert!(
        t.app
            .tag(atelier::domain::Actor::Operator, grid.id, &[])
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_reporting_in_bursts_does_not_flood_the_catalogue() {
    // The zero-delay sandbox reports 35 percentages in a few milliseconds.
    let t = sandbox_app().await;
    let id = submit(&t, "burst", "all").await;
    run_idle(&t).await;
    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let progress = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress)
        .count();
    // Two phase changes, and at most one report per stage (grid, four upscales) even on a slow
    // machine, where a stage may start more than 50 ms after the last event.
    assert!(progress <= 7, "{progress} progress events were recorded");
    // Every milestone is still there.
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::UpscaleCompleted)
            .count(),
        4
    );
    assert_eq!(events.last().unwrap().kind, EventKind::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_requested_while_nobody_held_the_job_is_honoured_at_claim() {
    let s = Scripted::new(Duration::ZERO, vec![]);
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "cancel the orphan", "all").await;
    let slots = vec!["scripted:scripted-account".to_owned()];
    let ghost = Claim {
        worker: "ghost@1",
        lease_ms: 200,
        slots: &slots,
        only: None,
    };
    assert!(t.app.queue().claim(&ghost).await.unwrap().is_some());
    // The cancel reaches a job whose worker has died.
    t.app
        .cancel(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    run_idle(&t).await;
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .generation;
    assert_eq!(g.status, GenerationStatus::Canceled);
    assert_eq!(
        s.calls.load(Ordering::SeqCst),
        0,
        "the provider was not called again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_image_without_its_event_gets_it_on_resume() {
    // A crash between the grid's row and its milestone event: the resumed job writes the
    // event, once, and does not render again.
    let s = Scripted::new(Duration::ZERO, vec![]);
    let t = scripted(&s, 1, UpscaleMode::Provider).await;
    let id = submit(&t, "half done", "1").await;
    // The crashed run had said `submitted` before it stored anything.
    t.app
        .catalogue()
        .advance(
            id,
            &atelier::catalogue::Change::new(
                EventKind::Submitted,
                GenerationStatus::Submitted,
                25.0,
            ),
        )
        .await
        .unwrap();
    let g = t.app.catalogue().generation(id).await.unwrap();
    let bytes = atelier::providers::sandbox::draw::grid("half done", 1, 64)
        .encode_png()
        .unwrap();
    let processed = atelier::pipeline::process_image(bytes).unwrap();
    let image = t
        .app
        .store_image(&g, Role::Grid, processed, false)
        .await
        .unwrap();
    t.app.catalogue().insert_image(&image).await.unwrap();
    run_idle(&t).await;
    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let grid_events: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::GridCompleted)
        .collect();
    assert_eq!(grid_events.len(), 1);
    assert_eq!(grid_events[0].image_id, Some(image.id));
    assert_eq!(
        s.calls.load(Ordering::SeqCst),
        1,
        "only the upscale was asked for"
    );
    assert_eq!(
        t.app
            .generation(atelier::domain::Actor::Operator, id)
            .await
            .unwrap()
            .generation
            .status,
        GenerationStatus::Succeeded
    );
}

/// A queue whose first claims fail (as when its file is locked or unreadable for a while):
/// every other call goes to the real one.
struct FailingClaims {
    inner: Arc<dyn Queue>,
    failures: std::sync::atomic::AtomicUsize,
    claims: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Queue for FailingClaims {
    async fn claim(&self, claim: &Claim<'_>) -> CatResult<Option<Job>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(CatalogueError::Other("database is locked".into()));
        }
        self.inner.claim(claim).await
    }
    async fn renew(&self, id: JobId, worker: &str, lease_ms: i64) -> CatResult<Lease> {
        self.inner.renew(id, worker, lease_ms).await
    }
    async fn finish(
        &self,
        id: JobId,
        worker: &str,
        status: JobStatus,
        error: Option<&str>,
    ) -> CatResult<bool> {
        self.inner.finish(id, worker, status, error).await
    }
    async fn retry(&self, id: JobId, worker: &str, delay_ms: i64, error: &str) -> CatResult<bool> {
        self.inner.retry(id, worker, delay_ms, error).await
    }
    async fn job_of(&self, generation: GenerationId) -> CatResult<Job> {
        self.inner.job_of(generation).await
    }
    async fn cancel(&self, generation: GenerationId) -> CatResult<Job> {
        self.inner.cancel(generation).await
    }
    async fn counts(&self, slots: &[String]) -> CatResult<QueueCounts> {
        self.inner.counts(slots).await
    }
    async fn ahead(&self, generation: GenerationId) -> CatResult<Option<u64>> {
        self.inner.ahead(generation).await
    }
    async fn next_due(&self, slots: &[String]) -> CatResult<Option<Duration>> {
        self.inner.next_due(slots).await
    }
    fn work_seen(&self) -> u64 {
        self.inner.work_seen()
    }
    async fn wait_for_work(&self, seen: u64, timeout: Duration) {
        self.inner.wait_for_work(seen, timeout).await;
    }
    async fn live_leases(&self) -> CatResult<u64> {
        self.inner.live_leases().await
    }
    async fn hold_account(&self, account: &str, holder: &str, lease_ms: i64) -> CatResult<bool> {
        self.inner.hold_account(account, holder, lease_ms).await
    }
    async fn release_account(&self, account: &str, holder: &str) -> CatResult<()> {
        self.inner.release_account(account, holder).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_claim_is_tried_again_after_a_backoff_kept_in_memory() {
    let sandbox: Arc<dyn Provider> = Arc::new(Sandbox {
        size: 64,
        delay: Duration::ZERO,
    });
    // The app's own queue, behind one whose first claims fail.
    let mut flaky = None;
    let t = crate::support::app_wrapping(
        crate::support::Backend::from_env(),
        vec![("sandbox", sandbox, 1, UpscaleMode::Provider)],
        atelier::app::JobSettings {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(400),
            // Without the backoff, a worker would look again every 10 ms.
            poll: Duration::from_millis(10),
            ..fast_jobs()
        },
        |inner| {
            let q = Arc::new(FailingClaims {
                inner,
                failures: std::sync::atomic::AtomicUsize::new(4),
                claims: std::sync::atomic::AtomicUsize::new(0),
            });
            flaky = Some(q.clone());
            q
        },
    )
    .await;
    let flaky = flaky.expect("the queue was wrapped");
    let id = submit(&t, "claimed at last", "1").await;
    let workers = tokio::spawn(run_workers(t.app.clone(), 1, Stop::UntilIdle));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Failures at 0, about 100 and about 300 ms: the waits doubled (a slower machine only
    // makes fewer claims).
    let early = flaky.claims.load(Ordering::SeqCst);
    assert!(
        early <= 4,
        "{early} claims in 300 ms: the worker did not back off"
    );
    tokio::time::timeout(Duration::from_secs(30), workers)
        .await
        .expect("the job ran once the claims went through")
        .unwrap()
        .expect("no write was refused");
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .generation;
    assert_eq!(g.status, GenerationStatus::Succeeded);
    // The failed claims wrote nothing: the job was claimed once.
    let job = t.app.queue().job_of(id).await.unwrap();
    assert_eq!((job.attempts, job.takeovers, job.last_error), (1, 0, None));
}
