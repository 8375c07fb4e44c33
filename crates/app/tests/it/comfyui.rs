//! The ComfyUI provider end to end against the ComfyUI simulator on loopback: one image with
//! the prompt, negative prompt, seed and size injected into the graph, a batch, clips (an
//! animated WebP, an MP4), bad parameters refused before any request, a graph the server
//! refuses, the server's health and a proxy's token. Bad workflow files are in
//! `comfyui/config.rs`; faults, cancel and restarts in `comfyui/faults.rs`; the real binary
//! (the simulate command, `kill -9`) in `comfyui/binary.rs`; the official client in
//! `comfyui/python.rs`.

mod binary;
mod config;
mod faults;
mod python;

use std::path::Path;
use std::time::Duration;

use atelier::app::App;
use atelier::config::{ComfyUiConfig, Secret, WorkflowConfig};
use atelier::domain::{
    Actor, EventKind, GenerationId, GenerationRequest, GenerationStatus, MediaKind, Role,
    UpscaleSelection,
};
use atelier::error::AppError;
use atelier::providers::Providers;
use atelier::simulators::comfyui::{self as sim, Running};
use atelier::store::{Layout, Store};

use crate::engine::run_idle;
use crate::support::{TestApp, fast_jobs, test_db};

/// An MP4 workflow: frames from a latent batch, made a video, saved.
pub const VIDEO_GRAPH: &str = r#"{
  "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 6.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0]}},
  "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
  "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 320, "height": 320, "batch_size": 12}},
  "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}, "_meta": {"title": "Prompt"}},
  "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
  "10": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 12.0}},
  "11": {"class_type": "SaveVideo", "inputs": {"video": ["10", 0], "filename_prefix": "video/atelier", "format": "mp4", "codec": "h264"}}
}"#;

/// An app whose one provider is `comfyui`, talking to a simulator started with `config`.
pub struct Rig {
    pub t: TestApp,
    pub sim: Running,
}

/// The simulator's settings for tests: small pictures, quick steps.
pub fn quick(faults: &str) -> sim::Config {
    sim::Config {
        faults: sim::parse_faults(faults).unwrap(),
        step: Duration::from_millis(5),
        slow: Duration::from_millis(1500),
        downtime: Duration::from_millis(300),
        max_side: Some(48),
        ..sim::Config::default()
    }
}

/// The workflows `--write-config` writes (`txt2img`, `clip`) and `video`, in `dir`.
pub fn workflows(dir: &Path) -> ComfyUiConfig {
    let write = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file
    };
    let mut config = ComfyUiConfig {
        enabled: true,
        default_workflow: Some("txt2img".into()),
        ..ComfyUiConfig::default()
    };
    let mut txt2img = WorkflowConfig {
        file: write("txt2img.json", &sim::workflow_json(false)),
        prompt: "Positive.text".into(),
        negative_prompt: Some("Negative.text".into()),
        seed: Some("3.seed".into()),
        width: Some("5.width".into()),
        height: Some("5.height".into()),
        batch_size: Some("5.batch_size".into()),
        ..WorkflowConfig::default()
    };
    txt2img.params.insert("steps".into(), "3.steps".into());
    txt2img
        .params
        .insert("checkpoint".into(), "4.ckpt_name".into());
    let mut clip = WorkflowConfig {
        file: write("clip.json", &sim::workflow_json(true)),
        prompt: "Positive.text".into(),
        seed: Some("3.seed".into()),
        ..WorkflowConfig::default()
    };
    clip.params.insert("frames".into(), "5.batch_size".into());
    clip.params.insert("fps".into(), "9.fps".into());
    let video = WorkflowConfig {
        file: write("video.json", VIDEO_GRAPH),
        prompt: "Prompt.text".into(),
        ..WorkflowConfig::default()
    };
    config.workflows.insert("txt2img".into(), txt2img);
    config.workflows.insert("clip".into(), clip);
    config.workflows.insert("video".into(), video);
    config
}

pub async fn rig(config: sim::Config, tweak: impl FnOnce(&mut ComfyUiConfig)) -> Rig {
    let sim = sim::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut comfy = workflows(dir.path());
    comfy.api_base = sim.api_base();
    comfy.account = "simulator".into();
    comfy.timeout_secs = 10.0;
    comfy.retry_backoff_ms = 20;
    comfy.poll_secs = 0.5;
    tweak(&mut comfy);
    comfy.check().unwrap();
    let mut providers = Providers::default();
    providers.insert(
        "comfyui",
        atelier::providers::comfyui::registered(&comfy, 64 << 20).unwrap(),
    );
    providers.set_default("comfyui");
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

/// A request with these ComfyUI parameters.
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

pub fn succeeded(g: &atelier::app::GenerationWithImages, images: usize) {
    assert_eq!(
        g.generation.status,
        GenerationStatus::Succeeded,
        "{:?}",
        g.generation.error
    );
    assert_eq!(g.images.len(), images);
}

/// The simulator's history entry of a prompt, over HTTP as any client reads it.
pub async fn history(rig: &Rig, prompt_id: &str) -> serde_json::Value {
    let url = format!("{}/history/{prompt_id}", rig.sim.api_base());
    let all: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    all[prompt_id].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_image_is_made_from_the_workflow_with_the_inputs_filled_in() {
    // Steps slow enough for the engine to record their progress.
    let mut config = quick("");
    config.step = Duration::from_millis(150);
    let rig = rig(config, |_| {}).await;
    let mut request = asking(
        "a lighthouse at dusk",
        serde_json::json!({"width": 768, "height": 512, "steps": 6}),
    );
    request.negative_prompt = Some("fog".into());
    request.seed = Some(4242);
    let id = submit(&rig, request).await.unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    succeeded(&g, 1);
    assert_eq!(g.generation.account.as_deref(), Some("simulator"));
    assert_eq!(g.images[0].role, Role::Variant(1));
    assert_eq!(g.images[0].kind(), MediaKind::Image);
    // Drawn at most 48 on the long edge, in the ratio asked.
    assert_eq!((g.images[0].width, g.images[0].height), (48, 32));
    assert!(!g.images[0].synthetic);
    let refs = &g.generation.provider_refs;
    assert_eq!(refs["workflow"], "txt2img");
    assert_eq!(refs["seed"], 4242);
    assert_eq!(refs["confirmed"], true);
    // The graph the server ran has the request in it.
    let entry = history(&rig, refs["prompt_id"].as_str().unwrap()).await;
    let graph = &entry["prompt"][2];
    assert_eq!(graph["6"]["inputs"]["text"], "a lighthouse at dusk");
    assert_eq!(graph["7"]["inputs"]["text"], "fog");
    assert_eq!(graph["3"]["inputs"]["seed"], 4242);
    assert_eq!(graph["3"]["inputs"]["steps"], 6);
    assert_eq!(
        (
            graph["5"]["inputs"]["width"].as_u64(),
            graph["5"]["inputs"]["height"].as_u64()
        ),
        (Some(768), Some(512))
    );
    assert_eq!(entry["status"]["status_str"], "success");
    // Progress came from the sampler's steps.
    let events = rig.t.app.events(Actor::Operator, id, 0).await.unwrap();
    let rendering = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress && e.progress > 0.0 && e.progress < 50.0)
        .count();
    assert!(rendering >= 2, "{events:#?}");
    let stats = rig.sim.stats();
    assert_eq!(
        (stats.prompts, stats.views, stats.executed),
        (1, 1, 1),
        "{stats:?}"
    );
    assert!(stats.previews >= 1);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_seed_is_drawn_and_kept_when_none_is_given() {
    let rig = rig(quick(""), |_| {}).await;
    let a = submit(&rig, asking("twin owls --no fog", serde_json::json!({})))
        .await
        .unwrap();
    let b = submit(&rig, asking("twin owls --no fog", serde_json::json!({})))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let ga = rig.t.app.generation(Actor::Operator, a).await.unwrap();
    let gb = rig.t.app.generation(Actor::Operator, b).await.unwrap();
    succeeded(&ga, 1);
    succeeded(&gb, 1);
    // The template's fixed seed would have made the same picture twice.
    assert_ne!(
        ga.generation.provider_refs["seed"],
        gb.generation.provider_refs["seed"]
    );
    assert_ne!(ga.images[0].sha256, gb.images[0].sha256);
    // The prompt's inline parameters are not text for the encoder: `--no` is the negative.
    let entry = history(
        &rig,
        ga.generation.provider_refs["prompt_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(entry["prompt"][2]["6"]["inputs"]["text"], "twin owls");
    assert_eq!(entry["prompt"][2]["7"]["inputs"]["text"], "fog");
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_as_many_separate_outputs() {
    let rig = rig(quick(""), |_| {}).await;
    let id = submit(
        &rig,
        asking("four lanterns", serde_json::json!({"batch_size": 4})),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    succeeded(&g, 4);
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
    let stats = rig.sim.stats();
    assert_eq!((stats.prompts, stats.files, stats.views), (1, 4, 4));
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_are_stored_as_clips() {
    let rig = rig(quick(""), |_| {}).await;
    let webp = submit(
        &rig,
        asking(
            "a tide coming in",
            serde_json::json!({"workflow": "clip", "frames": 6, "fps": 6}),
        ),
    )
    .await
    .unwrap();
    let mp4 = submit(
        &rig,
        asking("a kite", serde_json::json!({"workflow": "video"})),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, webp).await.unwrap();
    succeeded(&g, 1);
    let image = &g.images[0];
    assert_eq!(image.kind(), MediaKind::Video);
    assert_eq!(image.format, "webp");
    let clip = image.clip.as_ref().expect("catalogued as a clip");
    assert_eq!(clip.frames, 6);
    assert!(
        (900..=1000).contains(&clip.duration_ms),
        "{}",
        clip.duration_ms
    );
    let g = rig.t.app.generation(Actor::Operator, mp4).await.unwrap();
    succeeded(&g, 1);
    let image = &g.images[0];
    assert_eq!(image.kind(), MediaKind::Video);
    assert_eq!(image.format, "mp4");
    let clip = image.clip.as_ref().unwrap();
    assert_eq!(
        (clip.frames, clip.duration_ms, clip.codec.as_str()),
        (12, 1000, "h264")
    );
    assert_eq!((image.width, image.height), (48, 48));
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_before_any_request() {
    let rig = rig(quick(""), |_| {}).await;
    let refused = [
        (
            serde_json::json!({"workflow": "upscale"}),
            "clip, txt2img, video",
        ),
        (serde_json::json!({"width": 500}), "multiple of 8"),
        (serde_json::json!({"height": 32768}), "multiple of 8"),
        (serde_json::json!({"batch_size": 0}), "1 to 16"),
        (
            serde_json::json!({"steps": "many"}),
            "steps must be an integer",
        ),
        (
            serde_json::json!({"cfg": 7}),
            "not a parameter of workflow \"txt2img\"",
        ),
        (
            serde_json::json!({"workflow": "clip", "batch_size": 2}),
            "batch_size",
        ),
        (
            serde_json::json!({"workflow": "video", "width": 64}),
            "no width",
        ),
        (serde_json::json!({"workflow": 3}), "workflow must be"),
    ];
    for (params, words) in refused {
        let e = submit(&rig, asking("a fox", params.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Invalid(_)), "{params}: {e:?}");
        assert!(e.to_string().contains(words), "{params}: {e}");
    }
    let mut negative = asking("a fox", serde_json::json!({"workflow": "video"}));
    negative.negative_prompt = Some("blur".into());
    let e = submit(&rig, negative).await.unwrap_err();
    assert!(e.to_string().contains("negative prompt"), "{e}");
    let mut seeded = asking("a fox", serde_json::json!({"workflow": "video"}));
    seeded.seed = Some(3);
    assert!(
        submit(&rig, seeded)
            .await
            .unwrap_err()
            .to_string()
            .contains("--seed")
    );
    let e = submit(
        &rig,
        asking("a fox --ar 16:9", serde_json::json!({"workflow": "video"})),
    )
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
    // An aspect ratio keeps the template's area.
    let id = submit(&rig, asking("a wide fox --ar 16:9", serde_json::json!({})))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    succeeded(&g, 1);
    assert_eq!((g.images[0].width, g.images[0].height), (48, 27));
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_the_server_refuses_fails_with_its_reasons() {
    let rig = rig(quick(""), |_| {}).await;
    let id = submit(
        &rig,
        asking(
            "a fox",
            serde_json::json!({"checkpoint": "missing.safetensors"}),
        ),
    )
    .await
    .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Failed);
    let error = g.generation.error.unwrap();
    assert_eq!(error.code.as_str(), "invalid_parameter");
    assert!(
        error
            .message
            .contains("node 4 (CheckpointLoaderSimple): Value not in list"),
        "{}",
        error.message
    );
    let stats = rig.sim.stats();
    // Refused once, not tried again.
    assert_eq!((stats.prompts, stats.refused), (0, 1));
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_check_asks_the_server_and_a_proxys_token_is_sent() {
    let rig = rig(quick(""), |_| {}).await;
    let checked = rig
        .t
        .app
        .accounts(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(checked[0].provider, "comfyui");
    assert_eq!(checked[0].status.health, "ready");
    assert_eq!(checked[0].status.name, "simulator");
    assert_eq!(checked[0].status.channel_id, rig.sim.api_base());
    assert_eq!(rig.sim.stats().prompts, 0);
    rig.sim.shutdown().await;

    // Behind a proxy that wants a token: the right one works, a wrong one disables the server.
    let guarded = sim::Config {
        token: Some("tok-sim".into()),
        ..quick("")
    };
    let rig = self::rig(guarded.clone(), |c| c.token = Some(Secret::new("tok-sim"))).await;
    let id = submit(&rig, asking("a guarded fox", serde_json::json!({})))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    succeeded(&rig.t.app.generation(Actor::Operator, id).await.unwrap(), 1);
    assert_eq!(rig.sim.stats().unauthorized, 0);
    rig.sim.shutdown().await;

    let rig = self::rig(guarded, |c| c.token = Some(Secret::new("tok-wrong"))).await;
    let id = submit(&rig, asking("a refused fox", serde_json::json!({})))
        .await
        .unwrap();
    run_idle(&rig.t).await;
    let g = rig.t.app.generation(Actor::Operator, id).await.unwrap();
    assert_eq!(g.generation.status, GenerationStatus::Failed);
    let error = g.generation.error.unwrap();
    assert!(
        error.message.contains("refused the token"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("tok-wrong"), "{}", error.message);
    let accounts = rig.t.app.accounts(None).await.unwrap();
    assert_eq!(accounts[0].status.health, "disabled");
    assert!(!format!("{accounts:?}").contains("tok-wrong"));
    rig.sim.shutdown().await;
}

/// Waits until `check` holds for the simulator's statistics.
pub async fn until(sim: &Running, check: impl Fn(&sim::Stats) -> bool) {
    for _ in 0..500 {
        if check(&sim.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never came: {:?}", sim.stats());
}
