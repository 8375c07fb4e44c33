//! `atelier bench providers`: what each HTTP provider costs the engine besides the image
//! work, against its simulator in this process with no delays.
//!
//! The same generations (`outputs` separate pictures of `side` pixels, drawn by the same
//! sandbox scenes and PNG encoder on both sides) run through the sandbox's separate-outputs
//! provider, then through each provider against its simulator; the difference of the median
//! latencies is what the provider's path costs on loopback: building and sending the request,
//! the simulator's HTTP work (it shares the cores, so it is counted), reading the answer,
//! decoding base64 or downloading, and the saved references. Rounds alternate the sandbox and
//! the providers, so a slower minute of the machine falls on all of them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::median;
use super::series::{Series, bench_config, measure, scratch};
use crate::config::{Config, ReplicateModel, WorkflowConfig};
use crate::domain::{GenerationRequest, UpscaleSelection};
use crate::error::AppError;
use crate::providers::replicate::params::Kind;
use crate::providers::replicate::provider_name;
use crate::providers::sandbox::Separate;
use crate::providers::{Registered, UpscaleMode};
use crate::secret::Secret;
use crate::{simulators, wiring};

/// The name the benchmark gives the sandbox in the separate-outputs shape.
const SANDBOX: &str = "sandbox-separate";
/// Jobs at once in the throughput part, on every side.
const AT_ONCE: u32 = 2;

pub struct Options {
    /// Jobs per measured series.
    pub jobs: u32,
    /// Side of every picture.
    pub side: u32,
    /// Pictures per generation.
    pub outputs: u8,
    /// Times each side is measured, alternating.
    pub rounds: u32,
}

/// The providers measured, in order.
const PEERS: &[&str] = &["openai", "replicate", "comfyui"];

/// A provider's simulator, running, and how the app reaches it.
struct Peer {
    /// Stops the simulator when dropped.
    _running: Box<dyn std::any::Any + Send>,
    /// Points a configuration's provider at the simulator.
    configure: Box<dyn Fn(&mut Config) + Send + Sync>,
    /// The provider's name, and the request's parameters for `outputs` pictures.
    provider: String,
    extra: Map<String, Value>,
    /// Files it needs (a workflow), removed at the end.
    files: Vec<std::path::PathBuf>,
}

async fn start(name: &str, o: &Options) -> Result<Peer, AppError> {
    match name {
        "openai" => {
            let sim = simulators::openai::start(simulators::openai::Config {
                latency: Duration::ZERO,
                max_side: Some(o.side),
                ..simulators::openai::Config::default()
            })
            .await
            .map_err(AppError::Internal)?;
            let (base, key) = (sim.api_base(), sim.key().to_owned());
            let mut extra = Map::new();
            extra.insert("n".into(), o.outputs.into());
            extra.insert("size".into(), "1024x1024".into());
            extra.insert("output_format".into(), "png".into());
            Ok(Peer {
                _running: Box::new(sim),
                configure: Box::new(move |config| {
                    let p = &mut config.providers.openai;
                    p.enabled = true;
                    p.api_base.clone_from(&base);
                    p.api_key = Secret::new(key.clone());
                    p.model = "gpt-image-1".into();
                    p.concurrency = AT_ONCE;
                    p.queue_size = 10_000;
                }),
                provider: "openai".into(),
                extra,
                files: Vec::new(),
            })
        }
        "replicate" => {
            let sim = simulators::replicate::start(simulators::replicate::Config {
                latency: Duration::ZERO,
                max_side: Some(o.side),
                ..simulators::replicate::Config::default()
            })
            .await
            .map_err(AppError::Internal)?;
            let (base, token) = (sim.api_base(), sim.token().to_owned());
            let mut extra = Map::new();
            extra.insert("num_outputs".into(), o.outputs.into());
            extra.insert("output_format".into(), "png".into());
            Ok(Peer {
                _running: Box::new(sim),
                configure: Box::new(move |config| {
                    let p = &mut config.providers.replicate;
                    p.enabled = true;
                    p.api_base.clone_from(&base);
                    p.api_token = Secret::new(token.clone());
                    p.concurrency = AT_ONCE;
                    p.queue_size = 10_000;
                    // The first poll as soon as may be: what is measured is the engine.
                    p.poll_ms = 1;
                    p.models.insert(
                        "bench".into(),
                        ReplicateModel {
                            model: "black-forest-labs/flux-schnell".into(),
                            kind: Kind::Image,
                            concurrency: None,
                            defaults: Map::new(),
                        },
                    );
                }),
                provider: provider_name("bench"),
                extra,
                files: Vec::new(),
            })
        }
        "comfyui" => {
            let sim = simulators::comfyui::start(simulators::comfyui::Config {
                step: Duration::ZERO,
                max_side: Some(o.side),
                ..simulators::comfyui::Config::default()
            })
            .await
            .map_err(AppError::Internal)?;
            let file = super::tempfile_dir()?.join("comfyui-txt2img.json");
            std::fs::write(&file, simulators::comfyui::workflow_json(false))
                .map_err(|e| AppError::Internal(format!("{}: {e}", file.display())))?;
            let base = sim.api_base();
            let workflow = WorkflowConfig {
                file: file.clone(),
                prompt: "Positive.text".into(),
                seed: Some("3.seed".into()),
                width: Some("5.width".into()),
                height: Some("5.height".into()),
                batch_size: Some("5.batch_size".into()),
                params: [("steps".to_owned(), "3.steps".to_owned())].into(),
                ..WorkflowConfig::default()
            };
            let mut extra = Map::new();
            extra.insert("batch_size".into(), o.outputs.into());
            extra.insert("width".into(), o.side.into());
            extra.insert("height".into(), o.side.into());
            // A few steps, as the fast models have: each is a progress message.
            extra.insert("steps".into(), 4.into());
            Ok(Peer {
                _running: Box::new(sim),
                configure: Box::new(move |config| {
                    let p = &mut config.providers.comfyui;
                    p.enabled = true;
                    p.api_base.clone_from(&base);
                    p.concurrency = AT_ONCE;
                    p.queue_size = 10_000;
                    p.workflows.insert("bench".into(), workflow.clone());
                }),
                provider: "comfyui".into(),
                extra,
                files: vec![file],
            })
        }
        other => Err(AppError::Internal(format!(
            "no benchmark for provider {other}"
        ))),
    }
}

pub async fn bench(o: &Options) -> Result<Value, AppError> {
    let mut peers = Vec::new();
    for name in PEERS {
        peers.push(start(name, o).await?);
    }
    let mut sandbox = Vec::new();
    let mut measured: Vec<Vec<Series>> = peers.iter().map(|_| Vec::new()).collect();
    for round in 0..o.rounds.max(1) {
        sandbox.push(series(o, &format!("sandbox-{round}"), None).await?);
        for (peer, runs) in peers.iter().zip(&mut measured) {
            runs.push(series(o, &format!("{}-{round}", peer.provider), Some(peer)).await?);
        }
    }
    let base = median(sandbox.iter().map(|s| s.latency_ms).collect());
    let mut report = Map::new();
    report.insert("side".into(), o.side.into());
    report.insert("outputs".into(), o.outputs.into());
    report.insert("jobs".into(), o.jobs.into());
    report.insert("sandbox".into(), rounds(&sandbox));
    for (peer, runs) in peers.iter().zip(&measured) {
        let latency = median(runs.iter().map(|s| s.latency_ms).collect());
        report.insert(
            peer.provider.clone(),
            json!({
                "rounds": rounds(runs),
                "overhead_ms_per_job": latency - base,
                "over_sandbox": latency / base,
            }),
        );
    }
    for file in peers.iter().flat_map(|p| &p.files) {
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_dir(super::tempfile_dir()?);
    Ok(Value::Object(report))
}

fn rounds(runs: &[Series]) -> Value {
    json!({
        "median_ms_per_job": median(runs.iter().map(|s| s.latency_ms).collect()),
        "each": runs.iter().map(|s| s.report.clone()).collect::<Vec<_>>(),
    })
}

/// One series on a fresh data directory: the sandbox (`peer` none) or a provider.
async fn series(o: &Options, name: &str, peer: Option<&Peer>) -> Result<Series, AppError> {
    let dir = scratch(name)?;
    let mut config = bench_config(&dir);
    // The sandbox stays registered (the default provider must exist) but serves nothing.
    config.providers.sandbox.enabled = true;
    config.default_provider = "sandbox".into();
    if let Some(peer) = peer {
        (peer.configure)(&mut config);
    }
    let mut providers = wiring::providers(&config)?;
    if peer.is_none() {
        providers.insert(
            SANDBOX,
            Registered {
                provider: Arc::new(Separate {
                    size: o.side,
                    delay: Duration::ZERO,
                    count: o.outputs,
                }),
                account: "local".into(),
                concurrency: AT_ONCE,
                upscale_mode: UpscaleMode::LocalSplit,
                synthetic: true,
                accounts: None,
                queue_limit: None,
            },
        );
    }
    let app = wiring::open(&config, providers, true).await?;
    let (provider, extra) = peer.map_or_else(
        || (SANDBOX.to_owned(), Map::new()),
        |p| (p.provider.clone(), p.extra.clone()),
    );
    let measured = measure(&app, o.jobs, |i, tag| {
        let mut r = GenerationRequest::new(format!("benchmark {tag} scene number {i}"));
        r.provider = Some(provider.clone());
        r.upscale = UpscaleSelection::none();
        r.extra.clone_from(&extra);
        r
    })
    .await;
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    measured
}
