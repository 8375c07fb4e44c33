//! The Replicate provider end to end against the Replicate simulator on loopback: one image,
//! four images, one clip, each stored and verified; the logs' step counter as progress;
//! a version id as the model; bad parameters refused before any request; a refused token
//! disabling the account. Faults and cancels are in `replicate/faults.rs`, the real binary
//! (the simulate command, `kill -9`) in `replicate/binary.rs`, the official Python client in
//! `replicate/python.rs`.

mod binary;
mod faults;
mod python;

use std::collections::BTreeMap;
use std::time::Duration;

use atelier::app::App;
use atelier::config::{ReplicateConfig, ReplicateModel, Secret};
use atelier::domain::{
    Actor, EventKind, GenerationId, GenerationRequest, GenerationStatus, MediaKind, Role,
    UpscaleSelection,
};
use atelier::error::AppError;
use atelier::providers::Providers;
use atelier::providers::replicate::params::Kind;
use atelier::simulators::replicate::{self as sim, Running};
use atelier::store::{Layout, Store};

use crate::engine::run_idle;
use crate::support::{TestApp, fast_jobs, test_db};

/// An app whose providers are `replicate:image` (flux-schnell) and `replicate:video`,
/// talking to a simulator started with `config`.
pub struct Rig {
    pub t: TestApp,
    pub sim: Running,
}

/// The simulator's settings for tests: small pictures, quick predictions.
pub fn quick(faults: &str) -> sim::Config {
    sim::Config {
        faults: sim::parse_faults(faults).unwrap(),
        latency: Duration::from_millis(150),
        slow: Duration::from_millis(1500),
        max_side: Some(48),
        ..sim::Config::default()
    }
}

/// The provider's settings for `running`: quick polls and retries.
pub fn settings(running: &Running) -> ReplicateConfig {
    let mut models = BTreeMap::new();
    models.insert(
        "image".to_owned(),
        ReplicateModel {
            model: "black-forest-labs/flux-schnell".into(),
            kind: Kind::Image,
            concurrency: None,
            defaults: serde_json::Map::new(),
        },
    );
    models.insert(
        "video".to_owned(),
        ReplicateModel {
            model: "wan-video/wan-2.2-t2v-fast".into(),
            kind: Kind::Video,
            concurrency: None,
            defaults: serde_json::json!({"num_frames": 12, "frames_per_second": 6})
                .as_object()
                .cloned()
                .unwrap(),
        },
    );
    ReplicateConfig {
        enabled: true,
        api_base: running.api_base(),
        api_token: Secret::new(running.token()),
        account: "simulator".into(),
        timeout_secs: 10.0,
        poll_ms: 20,
        poll_max_ms: 100,
        retry_backoff_ms: 20,
        models,
        ..ReplicateConfig::default()
    }
}

pub async fn rig(config: sim::Config, tweak: impl FnOnce(&mut ReplicateConfig)) -> Rig {
    let sim = sim::start(config).await.unwrap();
    let mut replicate = settings(&sim);
    tweak(&mut replicate);
    let mut providers = Providers::default();
    for (name, registered) in atelier::providers::replicate::registered(&replicate, 64 << 20) {
        providers.insert(&name, registered);
    }
    providers.set_default("replicate:image");
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("atelier.db").display());
    let db = test_db(dir.path()).await;
    let app = App::builder(db, Store::memory(Layout::Default), providers)
        .jobs(fast_jobs())
        .build();
    Rig {
        t: TestApp {
            app,
            _dir: dir,
            database_url,
        },
        sim,
    }
}

/// A request with these parameters, for `provider`.
pub fn asking(provider: &str, prompt: &str, params: serde_json::Value) -> GenerationRequest {
    let mut r = GenerationRequest::new(prompt);
    r.provider = Some(provider.to_owned());
    r.upscale = UpscaleSelection::none();
    if let serde_json::Value::Object(map) = params {
        r.extra = map;
    }
    r
}

pub async fn submit(rig: &Rig, request: GenerationRequest) -> Result<GenerationId, AppError> {
    rig.t
        .app
        .submit(Actor::Operator, request)
        .await
        .map(|g| g.id)
}

pub fn succeeded(g: &atelier::app::GenerationWithImages, outputs: usize) {
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    assert_eq!(g.images.len(), outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_image_is_stored_verified_with_the_prediction_in_its_references() {
    let rig = rig(quick(""), |_| {}).await;
    let id = submit(
        &rig,
        asking(
            "replicate:image",
            "a lighthouse at dusk --ar 3:2",
            serde_json::json!({"output_format": "png", "num_inference_steps": 4}),
        ),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    succeeded(&g, 1);
    assert_eq!(g.generation.account.as_deref(), Some("simulator"));
    assert_eq!(g.images[0].role, Role::Variant(1));
    assert_eq!(g.images[0].format, "png");
    // Drawn at most 48 on the long edge, in the ratio asked.
    assert_eq!((g.images[0].width, g.images[0].height), (48, 32));
    assert!(!g.images[0].synthetic);
    let refs = &g.generation.provider_refs;
    assert_eq!(refs["predictions"], 1, "{refs}");
    assert_eq!(refs["model"], "black-forest-labs/flux-schnell");
    assert!(refs["prediction"].as_str().unwrap().len() == 26, "{refs}");
    let stats = rig.sim.stats();
    assert_eq!(
        (stats.creates, stats.predictions, stats.downloads),
        (1, 1, 1)
    );
    assert_eq!(stats.asked, vec![1]);
    assert_eq!(rig.sim.statuses().await, ["succeeded"]);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_images_are_four_outputs_of_one_prediction_and_its_steps_are_progress() {
    let mut config = quick("");
    // Long enough for several polls while the steps are counted.
    config.latency = Duration::from_millis(900);
    let rig = rig(config, |_| {}).await;
    let id = submit(
        &rig,
        asking(
            "replicate:image",
            "four owls",
            serde_json::json!({"num_outputs": 4, "num_inference_steps": 20, "output_format": "jpg", "output_quality": 70}),
        ),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    succeeded(&g, 4);
    let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, (1..=4).map(Role::Variant).collect::<Vec<_>>());
    assert!(g.images.iter().all(|i| i.format == "jpeg"));
    let sums: std::collections::BTreeSet<&str> =
        g.images.iter().map(|i| i.sha256.as_str()).collect();
    assert_eq!(sums.len(), 4, "four different pictures");
    let events = rig.t.app.events(Actor::Operator, id, 0).await.unwrap();
    let rendering: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress && e.progress > 0.0 && e.progress < 50.0)
        .map(|e| e.progress)
        .collect();
    assert!(
        rendering.len() >= 2,
        "the step counter made progress: {events:#?}"
    );
    assert!(rendering.windows(2).all(|w| w[0] < w[1]), "{rendering:?}");
    let milestones: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::OutputCompleted)
        .map(|e| e.progress)
        .collect();
    assert_eq!(milestones, vec![62.5, 75.0, 87.5, 100.0]);
    let stats = rig.sim.stats();
    assert_eq!(stats.asked, vec![4]);
    assert!(stats.polls >= 2, "{stats:?}");
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_model_delivers_one_verified_clip() {
    let rig = rig(quick(""), |_| {}).await;
    let id = submit(
        &rig,
        asking(
            "replicate:video",
            "a comet over the sea",
            serde_json::json!({"seed": 5}),
        ),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    succeeded(&g, 1);
    let clip = &g.images[0];
    assert_eq!(clip.kind(), MediaKind::Video, "{clip:?}");
    assert_eq!(clip.format, "mp4");
    let measured = clip.clip.as_ref().unwrap();
    // The alias's defaults: 12 frames at 6 a second.
    assert_eq!(measured.frames, 12);
    assert_eq!(measured.duration_ms, 2000, "{measured:?}");
    assert_eq!(measured.codec, "h264");
    assert_eq!((clip.width, clip.height), (48, 48));
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_id_is_created_by_version_and_prefer_wait_saves_the_polls() {
    let version = sim::version_of("stability-ai/sdxl");
    let rig = rig(quick(""), |r| {
        r.wait_secs = 5;
        r.models.insert(
            "sdxl".into(),
            ReplicateModel {
                model: version.clone(),
                kind: Kind::Image,
                concurrency: Some(1),
                defaults: serde_json::json!({"guidance_scale": 7.5})
                    .as_object()
                    .cloned()
                    .unwrap(),
            },
        );
    })
    .await;
    let id = submit(
        &rig,
        asking(
            "replicate:sdxl",
            "a red fox",
            serde_json::json!({"num_outputs": 2, "negative_prompt": "blur"}),
        ),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    succeeded(&g, 2);
    assert_eq!(g.generation.provider_refs["model"], version);
    let stats = rig.sim.stats();
    // The create waited for the end: no poll was needed.
    assert_eq!((stats.creates, stats.polls), (1, 0), "{stats:?}");
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_before_any_request() {
    let rig = rig(quick(""), |_| {}).await;
    let refused = [
        (
            "replicate:image",
            serde_json::json!({"num_outputs": 5}),
            "num_outputs",
        ),
        (
            "replicate:image",
            serde_json::json!({"num_inference_steps": 0}),
            "greater than or equal to 1",
        ),
        (
            "replicate:image",
            serde_json::json!({"steps": 101}),
            "less than or equal to 100",
        ),
        (
            "replicate:image",
            serde_json::json!({"guidance": 25}),
            "guidance",
        ),
        (
            "replicate:image",
            serde_json::json!({"prompt_strength": 1.5}),
            "prompt_strength",
        ),
        (
            "replicate:image",
            serde_json::json!({"output_format": "gif"}),
            "webp, png, jpg",
        ),
        (
            "replicate:image",
            serde_json::json!({"output_quality": 0}),
            "output_quality",
        ),
        (
            "replicate:image",
            serde_json::json!({"aspect_ratio": "5:3"}),
            "aspect_ratio",
        ),
        (
            "replicate:image",
            serde_json::json!({"disable_safety_checker": "maybe"}),
            "true or false",
        ),
        (
            "replicate:image",
            serde_json::json!({"lora_scale": 0.5}),
            "lora_weights",
        ),
        (
            "replicate:image",
            serde_json::json!({"lora_weights": "x y"}),
            "LoRA",
        ),
        (
            "replicate:image",
            serde_json::json!({"stylize": 100}),
            "stylize",
        ),
        (
            "replicate:video",
            serde_json::json!({"num_outputs": 2}),
            "video models",
        ),
        (
            "replicate:video",
            serde_json::json!({"num_frames": 500}),
            "num_frames",
        ),
    ];
    for (provider, params, words) in refused {
        let e = submit(&rig, asking(provider, "a fox", params.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Invalid(_)), "{params}: {e:?}");
        assert!(e.to_string().contains(words), "{params}: {e}");
    }
    let e = submit(
        &rig,
        asking("replicate:image", "a fox --ar 7:3", serde_json::json!({})),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("aspect_ratio"), "{e}");
    let e = submit(
        &rig,
        asking("replicate:nope", "a fox", serde_json::json!({})),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("replicate:image"), "{e}");
    // Nothing was written, nothing was sent.
    let listed = rig
        .t
        .app
        .generations(Actor::Operator, &atelier::api::GenerationQuery::default())
        .await
        .unwrap();
    assert!(listed.generations.is_empty());
    assert_eq!(rig.sim.stats().requests, 0);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_job_and_disables_the_account() {
    let rig = rig(quick(""), |r| {
        r.api_token = Secret::new("r8_wrong");
        r.concurrency = 1;
    })
    .await;
    let accounts = rig.t.app.accounts(None).await.unwrap();
    assert_eq!(accounts.len(), 2, "one account, shown under each alias");
    assert!(accounts.iter().all(|a| a.status.health == "idle"));
    let first = submit(
        &rig,
        asking("replicate:image", "a fox", serde_json::json!({})),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let second = submit(
        &rig,
        asking("replicate:video", "a hare", serde_json::json!({})),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    for id in [first, second] {
        let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
        assert_eq!(g.generation.status, GenerationStatus::Failed);
        let error = g.generation.error.unwrap();
        assert_eq!(error.code.as_str(), "provider_unavailable");
        assert!(!error.message.contains("r8_wrong"), "{}", error.message);
    }
    let after = rig.t.app.accounts(None).await.unwrap();
    for a in &after {
        assert_eq!(a.status.health, "disabled", "{a:?}");
        let reason = a.status.reason.clone().unwrap();
        assert!(reason.contains("API token"), "{reason}");
        assert!(!reason.contains("r8_wrong"), "{reason}");
    }
    // The second job failed on the disabled account without a request.
    assert_eq!(rig.sim.stats().unauthorized, 1);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_check_asks_whose_the_token_is() {
    let rig = rig(quick(""), |_| {}).await;
    let checked = rig
        .t
        .app
        .accounts(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let providers: Vec<&str> = checked.iter().map(|a| a.provider.as_str()).collect();
    assert_eq!(providers, ["replicate:image", "replicate:video"]);
    assert!(
        checked
            .iter()
            .all(|a| a.status.health == "ready" && a.status.name == "simulator")
    );
    assert_eq!(rig.sim.stats().creates, 0);
    rig.sim.shutdown().await;
}
