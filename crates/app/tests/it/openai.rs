//! The OpenAI provider end to end against the OpenAI simulator on loopback: one image, `n`
//! separate outputs, streamed partial images as progress, token usage kept with the
//! generation, /blend as an edit, bad parameters refused before any request, a refused key
//! disabling the account. Faults are in `openai/faults.rs`, the real binary (the simulate
//! command, `kill -9`) in `openai/binary.rs`, the official Python client in `openai/python.rs`.

mod binary;
mod dropin;
mod faults;
mod python;

use std::sync::Arc;
use std::time::Duration;

use atelier::app::App;
use atelier::config::{OpenAiConfig, Secret};
use atelier::domain::{
    Actor, EventKind, GenerationId, GenerationRequest, GenerationStatus, Role, UpscaleSelection,
};
use atelier::error::AppError;
use atelier::providers::Providers;
use atelier::simulators::openai::{self as sim, Running};
use atelier::store::{Layout, Store};

use crate::engine::run_idle;
use crate::support::{TestApp, fast_jobs, test_db};

/// An app whose one provider is `openai`, talking to a simulator started with `config`.
pub struct Rig {
    pub t: TestApp,
    pub sim: Running,
}

/// The simulator's settings for tests: small pictures, quick answers.
pub fn quick(faults: &str) -> sim::Config {
    sim::Config {
        faults: sim::parse_faults(faults).unwrap(),
        latency: Duration::from_millis(60),
        slow: Duration::from_millis(1500),
        max_side: Some(48),
        ..sim::Config::default()
    }
}

pub async fn rig(config: sim::Config, tweak: impl FnOnce(&mut OpenAiConfig)) -> Rig {
    let sim = sim::start(config).await.unwrap();
    let mut openai = OpenAiConfig {
        enabled: true,
        api_base: sim.api_base(),
        api_key: Secret::new(sim.key()),
        account: "simulator".into(),
        timeout_secs: 10.0,
        retry_backoff_ms: 20,
        ..OpenAiConfig::default()
    };
    tweak(&mut openai);
    let mut providers = Providers::default();
    providers.insert(
        "openai",
        atelier::providers::openai::registered(&openai, 64 << 20),
    );
    providers.set_default("openai");
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

/// A request with these OpenAI parameters.
pub fn asking(prompt: &str, params: serde_json::Value) -> GenerationRequest {
    let mut r = GenerationRequest::new(prompt);
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

/// The generation's JSON view, as the CLI and the API show it.
pub async fn view(app: &Arc<App>, id: GenerationId) -> serde_json::Value {
    let g = app.generation(Actor::Operator, id).await.unwrap();
    serde_json::to_value(app.generation_view(&g)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_image_is_stored_with_the_tokens_it_cost() {
    let rig = rig(quick(""), |_| {}).await;
    let id = submit(
        &rig,
        asking(
            "a lighthouse at dusk",
            serde_json::json!({"size": "1536x1024", "quality": "low"}),
        ),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    assert_eq!(g.generation.account.as_deref(), Some("simulator"));
    let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, vec![Role::Variant(1)]);
    // Drawn at most 48 on the long edge, in the ratio asked.
    assert_eq!((g.images[0].width, g.images[0].height), (48, 32));
    assert!(!g.images[0].synthetic);
    let v = view(&rig.t.app, id).await;
    let usage = &v["usage"];
    assert!(usage["total_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap())
    );
    // Low quality at 1536x1024: 272 tokens a megapixel.
    assert_eq!(usage["output_tokens"], 408);
    assert_eq!(rig.sim.stats().requests, 1);
    assert_eq!(rig.sim.stats().asked, vec![1]);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_images_are_n_separate_outputs_each_with_its_milestone() {
    let rig = rig(quick(""), |_| {}).await;
    let id = submit(&rig, asking("four owls", serde_json::json!({"n": 4})))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    let roles: Vec<Role> = g.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, (1..=4).map(Role::Variant).collect::<Vec<_>>());
    let sums: std::collections::BTreeSet<&str> =
        g.images.iter().map(|i| i.sha256.as_str()).collect();
    assert_eq!(sums.len(), 4, "four different pictures");
    let events = rig.t.app.events(Actor::Operator, id, 0).await.unwrap();
    let milestones: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::OutputCompleted)
        .map(|e| e.progress)
        .collect();
    assert_eq!(milestones, vec![62.5, 75.0, 87.5, 100.0]);
    // One request paid for the four.
    assert_eq!(rig.sim.stats().asked, vec![4]);
    assert_eq!(
        view(&rig.t.app, id).await["usage"]["output_tokens"],
        4 * 1056
    );
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_partial_images_are_the_renders_progress() {
    let mut config = quick("");
    // Three partial images 150 ms apart per picture: progress events are recorded between.
    config.latency = Duration::from_millis(600);
    let rig = rig(config, |o| {
        o.stream = true;
        o.partial_images = 3;
    })
    .await;
    let id = submit(
        &rig,
        asking("a streamed comet", serde_json::json!({"n": 2})),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    assert_eq!(g.images.len(), 2);
    let events = rig.t.app.events(Actor::Operator, id, 0).await.unwrap();
    let rendering: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress && e.progress > 25.0 && e.progress < 50.0)
        .map(|e| e.progress)
        .collect();
    assert!(
        rendering.len() >= 3,
        "partial images made progress: {events:#?}"
    );
    assert!(rendering.windows(2).all(|w| w[0] < w[1]), "{rendering:?}");
    // Each completed event carried its usage: both are summed.
    assert_eq!(
        view(&rig.t.app, id).await["usage"]["output_tokens"],
        2 * 1056
    );
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_before_any_request() {
    let rig = rig(quick(""), |o| o.model = "gpt-image-2".into()).await;
    let refused = [
        (serde_json::json!({"size": "1000x1000"}), "multiples of 16"),
        (serde_json::json!({"size": "3072x1008"}), "3:1"),
        (serde_json::json!({"size": "4096x2304"}), "3840"),
        (serde_json::json!({"size": "1008x640"}), "655360"),
        (
            serde_json::json!({"background": "transparent"}),
            "transparent",
        ),
        (serde_json::json!({"n": 11}), "'n'"),
        (serde_json::json!({"quality": "hd"}), "quality"),
        (
            serde_json::json!({"output_compression": 50}),
            "output_compression",
        ),
        (serde_json::json!({"output_format": "gif"}), "output_format"),
        (serde_json::json!({"moderation": "off"}), "moderation"),
        (serde_json::json!({"partial_images": 2}), "stream"),
        (serde_json::json!({"model": "dall-e-3", "n": 2}), "dall-e-3"),
        (
            serde_json::json!({"model": "dall-e-2", "size": "1024x1536"}),
            "size",
        ),
        (serde_json::json!({"stylize": 100}), "stylize"),
    ];
    for (params, words) in refused {
        let e = submit(&rig, asking("a fox", params.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Invalid(_)), "{params}: {e:?}");
        assert!(e.to_string().contains(words), "{params}: {e}");
    }
    let mut seeded = asking("a fox", serde_json::json!({}));
    seeded.seed = Some(4);
    assert!(
        submit(&rig, seeded)
            .await
            .unwrap_err()
            .to_string()
            .contains("seed")
    );
    let e = submit(&rig, asking("a fox --ar 16:9", serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("aspect ratio"), "{e}");
    // Nothing was written, nothing was sent.
    let listed = rig
        .t
        .app
        .generations(Actor::Operator, &atelier::api::GenerationQuery::default())
        .await
        .unwrap();
    assert!(listed.generations.is_empty());
    assert_eq!(rig.sim.stats().requests, 0);
    // And the free sizes the rules allow go through.
    let id = submit(
        &rig,
        asking("a fox", serde_json::json!({"size": "1536x864"})),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Succeeded);
    assert_eq!((g.images[0].width, g.images[0].height), (48, 27));
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_the_job_and_disables_the_account() {
    // One request at a time: the second job starts after the first found the key refused.
    let rig = rig(quick(""), |o| {
        o.api_key = Secret::new("sk-wrong");
        o.concurrency = 1;
    })
    .await;
    let before = rig.t.app.accounts(None).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].status.health, "idle");
    let first = submit(&rig, asking("a fox", serde_json::json!({})))
        .await
        .unwrap();
    let second = submit(&rig, asking("a hare", serde_json::json!({})))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    for id in [first, second] {
        let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
        assert_eq!(g.generation.status, GenerationStatus::Failed);
        let error = g.generation.error.unwrap();
        assert_eq!(error.code.as_str(), "provider_unavailable");
        assert!(!error.message.contains("sk-wrong"), "{}", error.message);
    }
    let after = rig.t.app.accounts(None).await.unwrap();
    assert_eq!(after[0].status.health, "disabled");
    let reason = after[0].status.reason.clone().unwrap();
    assert!(reason.contains("API key"), "{reason}");
    assert!(!reason.contains("sk-wrong"), "{reason}");
    // The second job failed on the disabled account without a request; none was retried.
    assert_eq!(rig.sim.stats().unauthorized, 1);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_check_lists_the_models_with_the_key() {
    let rig = rig(quick(""), |_| {}).await;
    let checked = rig
        .t
        .app
        .accounts(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(checked[0].provider, "openai");
    assert_eq!(checked[0].status.health, "ready");
    assert_eq!(checked[0].status.name, "simulator");
    // No image request was made.
    assert_eq!(rig.sim.stats().requests, 0);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blend_is_an_edit_of_its_pictures() {
    let rig = rig(quick(""), |_| {}).await;
    let id = submit(&rig, asking("two birds", serde_json::json!({"n": 2})))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    let images: Vec<_> = g.images.iter().map(|i| i.id).collect();
    let blend = rig
        .t
        .app
        .blend(
            Actor::Operator,
            &images,
            Some("landscape"),
            &UpscaleSelection::none(),
            None,
        )
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let b = rig
        .t
        .app
        .generation(Actor::Operator, blend.id)
        .await
        .unwrap();
    assert_eq!(
        b.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        b.generation.error
    );
    assert_eq!(b.images.len(), 1);
    // "landscape" is 1536x1024 for gpt-image-1.
    assert_eq!((b.images[0].width, b.images[0].height), (48, 32));
    let stats = rig.sim.stats();
    assert_eq!((stats.generations, stats.edits), (1, 1));
    // The edit billed its two input pictures.
    let usage = view(&rig.t.app, blend.id).await["usage"].clone();
    assert_eq!(usage["input_tokens_details"]["image_tokens"], 130);
    rig.sim.shutdown().await;
}
