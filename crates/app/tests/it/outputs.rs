//! Providers in the other shape, without a network: a render of separate outputs stored as
//! they come (the sandbox's `Separate`), their share of the progress scale and their events, a
//! render resumed after a failure, and what a provider does not declare refused before
//! anything is written (clips are in `video.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use atelier::catalogue::Change;
use atelier::domain::{
    ErrorCode, EventKind, GenerationRequest, GenerationStatus, Phase, Role, UpscaleSelection,
};
use atelier::error::AppError;
use atelier::providers::sandbox::{Separate, draw};
use atelier::providers::{
    Capabilities, Output, Provider, ProviderError, ProviderJob, Reporter, Shape, UpscaleMode,
};

use crate::engine::run_idle;
use crate::support::{TestApp, app_with, fast_jobs};

async fn app_of(name: &str, provider: Arc<dyn Provider>) -> TestApp {
    app_with(
        vec![(name, provider, 1, UpscaleMode::Provider)],
        fast_jobs(),
    )
    .await
}

async fn submit(t: &TestApp, prompt: &str) -> atelier::domain::GenerationId {
    t.app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new(prompt),
        )
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_outputs_share_the_second_half_each_with_its_event() {
    // Steps 100 ms apart, as a real provider's are: the rendering ones are recorded.
    let four: Arc<dyn Provider> = Arc::new(Separate {
        size: 48,
        delay: Duration::from_millis(700),
        count: 4,
    });
    let t = app_of("sandbox", four).await;
    let mut live = t.app.local_events();
    let id = submit(&t, "four apart").await;
    run_idle(&t).await;

    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Succeeded);
    assert_eq!(g.generation.phase, Some(Phase::Completed));
    assert_eq!(g.generation.progress, 100.0);
    let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, (1..=4).map(Role::Variant).collect::<Vec<_>>());
    let mut stored = Vec::new();
    for image in &g.images {
        assert_eq!((image.width, image.height), (48, 48));
        let bytes = t
            .app
            .store()
            .get(&image.storage_key, &image.sha256)
            .await
            .expect("stored and verified");
        assert!(
            !stored.contains(&bytes),
            "two outputs stored the same bytes"
        );
        stored.push(bytes);
    }

    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert!(events.windows(2).all(|w| w[0].progress <= w[1].progress));
    let at = |kind: EventKind| {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.progress)
            .collect::<Vec<_>>()
    };
    assert_eq!(at(EventKind::Submitted), [25.0]);
    assert_eq!(at(EventKind::GridCompleted), Vec::<f64>::new());
    assert_eq!(at(EventKind::UpscaleCompleted), Vec::<f64>::new());
    assert_eq!(at(EventKind::OutputCompleted), [62.5, 75.0, 87.5, 100.0]);
    // Each output's event names it and its image, in the order the provider delivered them.
    let outputs: Vec<(Option<u8>, Option<atelier::domain::ImageId>, Option<Phase>)> = events
        .iter()
        .filter(|e| e.kind == EventKind::OutputCompleted)
        .map(|e| (e.index, e.image_id, e.phase))
        .collect();
    let expected: Vec<_> = g
        .images
        .iter()
        .zip(1..)
        .map(|(i, n)| (Some(n), Some(i.id), Some(Phase::OutputsInProgress)))
        .collect();
    assert_eq!(outputs, expected);
    // The provider's own percentage drove the first half only.
    let rendering: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress && e.phase == Some(Phase::GridRendering))
        .map(|e| e.progress)
        .collect();
    assert!(rendering.len() >= 3, "rendering steps: {rendering:?}");
    assert!(rendering.iter().all(|p| (25.0..50.0).contains(p)));
    let end = events.last().unwrap();
    assert_eq!((end.kind, end.progress), (EventKind::Completed, 100.0));

    let mut seen = Vec::new();
    while let Ok(e) = live.try_recv() {
        if e.generation_id == id {
            seen.push(e.seq);
        }
    }
    assert_eq!(seen, seqs, "the bus carried every event, live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_outputs_split_the_second_half_in_thirds() {
    let three: Arc<dyn Provider> = Arc::new(Separate {
        size: 32,
        delay: Duration::ZERO,
        count: 3,
    });
    let t = app_of("sandbox", three).await;
    let id = submit(&t, "three apart").await;
    run_idle(&t).await;
    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let milestones: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::OutputCompleted)
        .map(|e| e.progress)
        .collect();
    assert_eq!(milestones.len(), 3);
    for (got, want) in milestones
        .iter()
        .zip([50.0 + 50.0 / 3.0, 50.0 + 100.0 / 3.0])
    {
        assert!((got - want).abs() < 1e-9, "{milestones:?}");
    }
    assert_eq!(milestones[2], 100.0);
    assert_eq!(
        events.last().map(|e| e.kind),
        Some(EventKind::Completed),
        "the generation ends after its last output"
    );
}

/// Delivers `count` separate pictures; its first render fails (retryably) after delivering
/// the first `before_failing`; its later renders deliver them all again, as a provider
/// resuming a saved prediction would.
struct Flaky {
    count: u8,
    before_failing: u8,
    renders: AtomicUsize,
}

#[async_trait]
impl Provider for Flaky {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shape: Shape::Separate { count: self.count },
            video: false,
            negative_prompt: false,
            actions: &[],
            describe: false,
            shorten: false,
            blend: false,
            image_prompts: false,
        }
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let first = self.renders.fetch_add(1, Ordering::SeqCst) == 0;
        for index in 1..=self.count {
            if first && index > self.before_failing {
                return Err(ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    "the service went away mid-render",
                ));
            }
            let pixels = draw::quadrant(&job.prompt, 3, 32, index);
            let bytes = pixels.encode_png().unwrap();
            report.output(Output::image(index, bytes)).await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_delivered_before_a_failure_are_kept_and_not_stored_twice() {
    let flaky = Arc::new(Flaky {
        count: 4,
        before_failing: 2,
        renders: AtomicUsize::new(0),
    });
    let t = app_of("flaky", flaky.clone()).await;
    let id = submit(&t, "kept apart").await;
    run_idle(&t).await;

    assert_eq!(flaky.renders.load(Ordering::SeqCst), 2, "one retry");
    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Succeeded);
    let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, (1..=4).map(Role::Variant).collect::<Vec<_>>());
    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let outputs: Vec<(Option<u8>, f64)> = events
        .iter()
        .filter(|e| e.kind == EventKind::OutputCompleted)
        .map(|e| (e.index, e.progress))
        .collect();
    assert_eq!(
        outputs,
        [
            (Some(1), 62.5),
            (Some(2), 75.0),
            (Some(3), 87.5),
            (Some(4), 100.0)
        ],
        "the first two stored by the failed attempt, once each"
    );
    assert!(events.windows(2).all(|w| w[0].progress <= w[1].progress));
    // The failure was told as a retry, not as the end.
    assert!(
        events
            .iter()
            .filter(|e| e.kind.is_terminal())
            .all(|e| e.kind == EventKind::Completed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_stored_without_its_event_gets_it_first_when_the_job_resumes() {
    let four: Arc<dyn Provider> = Arc::new(Separate {
        size: 32,
        delay: Duration::ZERO,
        count: 4,
    });
    let t = app_of("sandbox", four).await;
    let id = submit(&t, "resumed apart").await;
    // A first run stored output 2's blobs and row, then died before writing its milestone.
    let submitted = Change::new(EventKind::Submitted, GenerationStatus::Submitted, 25.0)
        .phase(Phase::GridRendering);
    t.app.catalogue().advance(id, &submitted).await.unwrap();
    let g = t.app.catalogue().generation(id).await.unwrap();
    let bytes = draw::quadrant("an earlier run", 7, 32, 2)
        .encode_png()
        .unwrap();
    let processed = atelier::pipeline::process_image(bytes).unwrap();
    let earlier = t
        .app
        .store_image(&g, Role::Variant(2), processed, true)
        .await
        .unwrap();
    t.app.catalogue().insert_image(&earlier).await.unwrap();
    run_idle(&t).await;

    let g = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Succeeded);
    let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, (1..=4).map(Role::Variant).collect::<Vec<_>>());
    assert_eq!(g.images[1].id, earlier.id, "the stored output was kept");
    let events = t
        .app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let outputs: Vec<(Option<u8>, f64)> = events
        .iter()
        .filter(|e| e.kind == EventKind::OutputCompleted)
        .map(|e| (e.index, e.progress))
        .collect();
    assert_eq!(
        outputs,
        [
            (Some(2), 62.5),
            (Some(1), 75.0),
            (Some(3), 87.5),
            (Some(4), 100.0)
        ],
        "the stored one's milestone first, then the rest as they came"
    );
    let first = events
        .iter()
        .position(|e| e.kind == EventKind::OutputCompleted)
        .unwrap();
    assert!(
        events[first..]
            .iter()
            .all(|e| e.phase != Some(Phase::GridRendering)),
        "no render step after an output is stored"
    );
    assert!(events.windows(2).all(|w| w[0].progress <= w[1].progress));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_provider_does_not_declare_is_refused_before_anything_is_written() {
    let two: Arc<dyn Provider> = Arc::new(Separate {
        size: 32,
        delay: Duration::ZERO,
        count: 2,
    });
    let t = app_of("two", two).await;
    let written = async || t.app.catalogue().feed_end().await.unwrap();
    let mut with_negative = GenerationRequest::new("no fog");
    with_negative.negative_prompt = Some("fog".into());
    let refused = t
        .app
        .submit(atelier::domain::Actor::Operator, with_negative)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, AppError::Invalid(m) if m.contains("takes no negative prompt")),
        "{refused:?}"
    );
    assert_eq!(written().await, 0, "nothing written");

    let id = submit(&t, "acted on").await;
    run_idle(&t).await;
    let before = written().await;
    let images = t
        .app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .unwrap()
        .images;
    let first = images[0].id;
    let refused = t
        .app
        .act(
            atelier::domain::Actor::Operator,
            first,
            "reroll",
            &UpscaleSelection::all(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, AppError::Invalid(m) if m.contains("does not play reroll")),
        "{refused:?}"
    );
    let refused = t
        .app
        .describe(atelier::domain::Actor::Operator, first, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, AppError::Invalid(m) if m.contains("does not describe")),
        "{refused:?}"
    );
    let refused = t
        .app
        .blend(
            atelier::domain::Actor::Operator,
            &[first, images[1].id],
            None,
            &UpscaleSelection::all(),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, AppError::Invalid(m) if m.contains("does not blend")),
        "{refused:?}"
    );
    assert_eq!(
        written().await,
        before,
        "no generation or event was written"
    );
    let all = t
        .app
        .images(
            atelier::domain::Actor::Operator,
            &atelier::api::ImageQuery::default(),
        )
        .await
        .unwrap()
        .images;
    assert_eq!(all.len(), 2, "only the first generation's outputs");
}
