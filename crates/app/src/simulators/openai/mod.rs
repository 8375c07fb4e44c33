//! A simulator of the OpenAI Images API on loopback (`atelier simulate openai`, the tests):
//! `POST /v1/images/generations` (JSON) and `/v1/images/edits` (multipart), answered in
//! base64 or with image URLs that expire, or streamed as server-sent events with partial
//! images; `GET /v1/models`; bearer keys; OpenAI's error bodies and headers (`x-request-id`,
//! the rate-limit headers, `Retry-After`); requests checked with the provider's own parameter
//! rules; pictures drawn by the sandbox. Faults (`faults.rs`) are dealt to requests in order.
//! `GET /_sim/stats` counts what it was asked, so a test can prove nothing was sent.

mod faults;
pub(crate) mod picture;
mod routes;

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
    /// The one API key it accepts.
    pub key: String,
    pub faults: Vec<Planned>,
    /// Time to make one image (a streamed request's partial images come within it).
    pub latency: Duration,
    /// The delay the `slow` fault adds.
    pub slow: Duration,
    /// The longest edge of the pictures it draws (the size asked is answered in the body and
    /// kept in ratio); `None` draws the size asked.
    pub max_side: Option<u32>,
    /// How long image URLs stay valid (OpenAI: an hour).
    pub url_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            key: "sk-sim-atelier".into(),
            faults: Vec::new(),
            latency: Duration::from_millis(200),
            slow: Duration::from_secs(3),
            max_side: None,
            url_ttl: Duration::from_hours(1),
        }
    }
}

/// What the simulator has been asked, for tests and `/_sim/stats`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Image requests (generations and edits) received, answered or refused.
    pub requests: u64,
    pub generations: u64,
    pub edits: u64,
    /// Images made.
    pub images: u64,
    /// URL downloads served, and refused because the URL had expired.
    pub downloads: u64,
    pub expired: u64,
    /// Requests refused for their key.
    pub unauthorized: u64,
    /// The faults dealt, by name, in order.
    pub faults: Vec<String>,
    /// Each image request's `n` (the last 100), to see what a resumed job asked for.
    pub asked: Vec<u8>,
}

/// A picture behind a URL, until it expires.
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
    hosted: Mutex<std::collections::HashMap<String, Hosted>>,
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

    /// Waits until the simulator stops (a stuck request's end).
    async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// A running simulator.
pub struct Running {
    sim: Arc<Sim>,
    addr: SocketAddr,
    server: JoinHandle<()>,
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
            tracing::error!(%error, "OpenAI simulator: server failed");
        }
    });
    Ok(Running { sim, addr, server })
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`, the API's root as clients are given it.
    pub fn api_base(&self) -> String {
        format!("{}/v1", self.sim.base)
    }

    pub fn key(&self) -> &str {
        &self.sim.config.key
    }

    pub fn stats(&self) -> Stats {
        self.sim.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Deals more faults, after those left.
    pub fn add_faults(&self, more: &[Planned]) {
        if let Ok(mut f) = self.sim.faults.lock() {
            f.extend_from_slice(more);
        }
    }

    /// Stops accepting, ends stuck requests, and waits for the server.
    pub async fn shutdown(self) {
        self.sim.stop.send_replace(true);
        let _ = self.server.await;
    }

    /// An `atelier.toml` whose `[providers.openai]` is this simulator.
    pub fn client_config(&self, model: &str, stream: bool) -> String {
        format!(
            "# Written by `atelier simulate openai`: the OpenAI provider talks to the simulator on\n\
             # {addr}. Start the simulator again with the same --bind to reuse this file.\n\
             default_provider = \"openai\"\n\n\
             [providers.openai]\n\
             enabled = true\n\
             api_base = \"{base}\"\n\
             api_key = \"{key}\"\n\
             account = \"simulator\"\n\
             model = \"{model}\"\n\
             stream = {stream}\n\
             timeout_secs = 30.0\n\
             retry_backoff_ms = 200\n",
            addr = self.addr,
            base = self.api_base(),
            key = self.sim.config.key,
        )
    }
}
