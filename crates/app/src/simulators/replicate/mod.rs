//! A simulator of Replicate's predictions API on loopback (`atelier simulate replicate`, the
//! tests): `POST /v1/predictions` (by version) and `/v1/models/{owner}/{name}/predictions`
//! (official models), `GET /v1/predictions[/{id}]`, `POST /v1/predictions/{id}/cancel`,
//! `GET /v1/account`; bearer tokens; `Prefer: wait`; problem-details errors and the headers
//! Replicate sends (`ratelimit-*`, `Retry-After`, `Preference-Applied`); inputs checked with
//! the provider's own rules (422 with `invalid_fields`). Predictions go `starting`,
//! `processing` (a tqdm step counter in their logs), then end; their outputs are the sandbox's
//! pictures, or clips for a model whose name says `video`, behind URLs that expire. Faults
//! (`faults.rs`) are dealt to creates in order. `GET /_sim/stats` counts what it was asked.

mod faults;
mod predictions;
mod routes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Fault, Planned, parse as parse_faults};

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    /// The one API token it accepts.
    pub token: String,
    pub faults: Vec<Planned>,
    /// Time from create to end (a fifth `starting`, the rest `processing`). Zero ends every
    /// prediction at once (the benchmarks' engine overhead).
    pub latency: Duration,
    /// The delay the `slow` fault adds to a create's answer.
    pub slow: Duration,
    /// The longest edge of the pictures and clips it draws; `None`: full size.
    pub max_side: Option<u32>,
    /// How long output URLs stay valid (Replicate: an hour).
    pub url_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: "r8_sim_atelier".into(),
            faults: Vec::new(),
            latency: Duration::from_millis(800),
            slow: Duration::from_secs(3),
            max_side: None,
            url_ttl: Duration::from_hours(1),
        }
    }
}

/// What the simulator has been asked, for tests and `/_sim/stats`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Stats {
    /// API requests of any kind, answered or refused.
    pub requests: u64,
    /// Prediction creates received (refused ones too), and predictions made.
    pub creates: u64,
    pub predictions: u64,
    /// Prediction reads.
    pub polls: u64,
    /// Cancel requests, and predictions they stopped while running.
    pub cancels: u64,
    pub canceled: u64,
    /// Output downloads served, and refused because the URL had expired.
    pub downloads: u64,
    pub expired: u64,
    /// Requests refused for their token.
    pub unauthorized: u64,
    /// The faults dealt, by name, in order.
    pub faults: Vec<String>,
    /// Each prediction's `num_outputs` (the last 100), to see what a resumed job asked for.
    pub asked: Vec<u8>,
}

/// A file behind an output URL, until it expires.
struct Hosted {
    bytes: Vec<u8>,
    content_type: &'static str,
    until: Instant,
}

pub(crate) struct Sim {
    config: Config,
    base: String,
    faults: Mutex<Vec<Planned>>,
    stats: Mutex<Stats>,
    predictions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<predictions::Job>>>>,
    /// Prediction ids, oldest first (the list endpoint shows the newest first).
    order: Mutex<Vec<String>>,
    hosted: Mutex<HashMap<String, Hosted>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Sim {
    fn fault(&self) -> Option<Fault> {
        let fault = self
            .faults
            .lock()
            .ok()
            .and_then(|mut f| faults::take(&mut f));
        if let Some(f) = fault {
            self.count(|s| s.faults.push(f.name().to_owned()));
        }
        fault
    }

    fn count(&self, change: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            change(&mut s);
        }
    }
}

/// The version id the simulator gives model `owner/name`: 64 hex digits of its name.
pub fn version_of(model: &str) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    sha2::Sha256::digest(format!("atelier-sim:{model}"))
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// A running simulator.
pub struct Running {
    sim: Arc<Sim>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

/// Refuses a model name the provider would refuse (`owner/name`, `owner/name:VERSION` or a
/// 64-hex version id), so a written configuration always loads.
pub fn check_model(model: &str) -> Result<(), String> {
    crate::providers::replicate::ModelRef::parse(model).map(|_| ())
}

/// Starts the simulator and returns once it accepts connections.
pub async fn start(config: Config) -> Result<Running, String> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let sim = Arc::new(Sim {
        faults: Mutex::new(config.faults.clone()),
        base: format!("http://{addr}"),
        config,
        stats: Mutex::default(),
        predictions: Mutex::default(),
        order: Mutex::default(),
        hosted: Mutex::default(),
        stop: tokio::sync::watch::Sender::new(false),
    });
    let router = routes::router(sim.clone());
    let mut stop = sim.stop.subscribe();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "Replicate simulator: server failed");
        }
    });
    Ok(Running { sim, addr, server })
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the root the official clients are given (`base_url`).
    pub fn root(&self) -> String {
        self.sim.base.clone()
    }

    /// `http://ADDR/v1`, the API's root as `[providers.replicate] api_base` takes it.
    pub fn api_base(&self) -> String {
        format!("{}/v1", self.sim.base)
    }

    pub fn token(&self) -> &str {
        &self.sim.config.token
    }

    pub fn stats(&self) -> Stats {
        self.sim.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The status of every prediction, oldest first.
    pub async fn statuses(&self) -> Vec<String> {
        let ids = self.sim.order.lock().map(|o| o.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for id in ids {
            let job = self
                .sim
                .predictions
                .lock()
                .ok()
                .and_then(|p| p.get(&id).cloned());
            if let Some(job) = job {
                let status = job.lock().await.status(self.sim.config.latency);
                out.push(
                    serde_json::to_value(status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                );
            }
        }
        out
    }

    /// Deals more faults, after those left.
    pub fn add_faults(&self, more: &[Planned]) {
        if let Ok(mut f) = self.sim.faults.lock() {
            f.extend_from_slice(more);
        }
    }

    /// Stops accepting, ends waiting requests, and waits for the server.
    pub async fn shutdown(self) {
        self.sim.stop.send_replace(true);
        let _ = self.server.await;
    }

    /// An `atelier.toml` whose `[providers.replicate]` is this simulator, with an image alias
    /// `image` (`model`) and a video alias `video` (`video_model`).
    pub fn client_config(&self, model: &str, video_model: &str) -> String {
        format!(
            "# Written by `atelier simulate replicate`: the Replicate provider talks to the\n\
             # simulator on {addr}. Start it again with the same --bind to reuse this file.\n\
             default_provider = \"replicate:image\"\n\n\
             [providers.replicate]\n\
             enabled = true\n\
             api_base = \"{base}\"\n\
             api_token = \"{token}\"\n\
             account = \"simulator\"\n\
             poll_ms = 100\n\
             poll_max_ms = 500\n\
             retry_backoff_ms = 200\n\n\
             [providers.replicate.models.image]\n\
             model = \"{model}\"\n\n\
             [providers.replicate.models.video]\n\
             model = \"{video_model}\"\n\
             kind = \"video\"\n",
            addr = self.addr,
            base = self.api_base(),
            token = self.sim.config.token,
        )
    }
}
