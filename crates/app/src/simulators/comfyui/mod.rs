//! A simulator of a ComfyUI server on loopback (`atelier simulate comfyui`, the tests):
//! `POST /prompt` with ComfyUI's graph validation (`node_errors`), the WebSocket `/ws` with the
//! real message sequence (`status`, `execution_start`, `execution_cached`, `executing`,
//! `progress`, binary previews, `executed`, `execution_success` / `_error` / `_interrupted`),
//! `/history`, `/view`, `/queue` (list, delete), `/interrupt`, `/object_info`,
//! `/system_stats`. One prompt runs at a time, its graph of common nodes "executed" by drawing
//! with the sandbox: pictures for `SaveImage`, clips for `SaveAnimatedWEBP` and `SaveVideo`.
//! Faults (`faults.rs`) include a restart that forgets the queue and drops every socket.
//! `GET /_sim/stats` counts what it was asked, so a test can prove what was (not) sent.

mod execute;
mod faults;
pub mod nodes;
mod routes;
mod templates;
pub mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Frame;

pub use faults::{Fault, Planned, parse as parse_faults};
pub use templates::workflow_json;

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub faults: Vec<Planned>,
    /// Time one sampler step takes (zero: as fast as it can draw).
    pub step: Duration,
    /// The delay the `slow` fault adds.
    pub slow: Duration,
    /// How long after it is written a file of a `vanish` prompt is gone.
    pub vanish_after: Duration,
    /// How long a restart answers 502.
    pub downtime: Duration,
    /// The longest edge of the pictures and clips it draws (the graph's size is kept in
    /// ratio); `None` draws the size asked (clips at most 1024).
    pub max_side: Option<u32>,
    /// A bearer token every request must carry, as a proxy in front of ComfyUI demands.
    pub token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: Vec::new(),
            step: Duration::from_millis(50),
            slow: Duration::from_secs(3),
            vanish_after: Duration::ZERO,
            downtime: Duration::from_millis(500),
            max_side: None,
            token: None,
        }
    }
}

/// What the simulator has been asked, for tests and `/_sim/stats`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Stats {
    /// API requests (every route but `/ws` and `/_sim`).
    pub requests: u64,
    /// `POST /prompt`: accepted (queued), and refused (400).
    pub prompts: u64,
    pub refused: u64,
    /// Prompts that ran to success, failed, were interrupted, or were lost to a restart.
    pub executed: u64,
    pub failed: u64,
    pub interrupted: u64,
    /// WebSocket connections opened.
    pub sockets: u64,
    /// `POST /interrupt` calls, and prompt ids `POST /queue` was asked to delete.
    pub interrupts: u64,
    pub deletes: u64,
    /// Files written by save nodes, files served by `/view`, and `/view` 404s of vanished files.
    pub files: u64,
    pub views: u64,
    pub vanished: u64,
    /// Binary preview frames sent.
    pub previews: u64,
    pub restarts: u64,
    /// Requests refused for their token.
    pub unauthorized: u64,
    /// The faults dealt, by name, in order.
    pub faults: Vec<String>,
    /// The prompt ids accepted, in order (the last 100).
    pub prompt_ids: Vec<String>,
}

/// A queued prompt: `[number, prompt_id, prompt, extra_data, outputs]` on the wire.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    number: f64,
    prompt_id: String,
    prompt: serde_json::Map<String, Value>,
    extra_data: Value,
    outputs: Vec<String>,
}

impl Item {
    fn wire(&self) -> Value {
        serde_json::json!([
            self.number,
            self.prompt_id,
            self.prompt,
            self.extra_data,
            self.outputs
        ])
    }

    fn client(&self) -> Option<String> {
        self.extra_data["client_id"].as_str().map(str::to_owned)
    }
}

/// A written file.
struct File {
    bytes: Vec<u8>,
    gone_at: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct State {
    number: f64,
    pending: Vec<Item>,
    running: Option<Item>,
    /// The running prompt's interrupt was asked for.
    interrupt: bool,
    /// The running node, for a client that connects again.
    last_node: Option<String>,
    history: Vec<(String, Value)>,
    files: HashMap<String, File>,
    counters: HashMap<String, u32>,
    sockets: HashMap<String, mpsc::UnboundedSender<Frame>>,
    /// Bumped by each restart: work of an earlier life is dropped.
    epoch: u64,
    down_until: Option<Instant>,
}

pub(crate) struct Sim {
    config: Config,
    faults: Mutex<Vec<Planned>>,
    stats: Mutex<Stats>,
    state: Mutex<State>,
    work: Notify,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Sim {
    fn fault(&self, requests: bool) -> Option<Fault> {
        let fault = self
            .faults
            .lock()
            .ok()
            .and_then(|mut f| faults::take(&mut f, requests));
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

    fn with<T>(&self, change: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut s| change(&mut s))
    }

    /// Waits until the simulator stops.
    async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Sends a message to one client, if it is connected (else it is lost, as in ComfyUI).
    fn send(&self, client: Option<&str>, frame: Frame) {
        let Some(client) = client else { return };
        self.with(|s| {
            if let Some(socket) = s.sockets.get(client) {
                let _ = socket.send(frame);
            }
        });
    }

    fn send_json(&self, client: Option<&str>, kind: &str, data: &Value) {
        let text = serde_json::json!({"type": kind, "data": data}).to_string();
        self.send(client, Frame::text(text));
    }

    /// Tells every client how many prompts remain.
    fn broadcast_status(&self) {
        self.with(|s| {
            let remaining = s.pending.len() + usize::from(s.running.is_some());
            let text = serde_json::json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}}).to_string();
            for socket in s.sockets.values() {
                let _ = socket.send(Frame::text(text.clone()));
            }
        });
    }

    /// Restarts the server: every socket drops, the queue, the running prompt and the
    /// history are forgotten; written files stay (they are on disk).
    fn restart(&self) {
        self.with(|s| {
            s.epoch += 1;
            s.pending.clear();
            s.running = None;
            s.interrupt = false;
            s.last_node = None;
            s.history.clear();
            s.sockets.clear();
            s.number = 0.0;
            s.down_until = Some(Instant::now() + self.config.downtime);
        });
        self.count(|s| s.restarts += 1);
        self.work.notify_waiters();
    }
}

/// A running simulator.
pub struct Running {
    sim: Arc<Sim>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    executor: JoinHandle<()>,
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
        config,
        stats: Mutex::default(),
        state: Mutex::default(),
        work: Notify::new(),
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
            tracing::error!(%error, "ComfyUI simulator: server failed");
        }
    });
    let executor = tokio::spawn(execute::run(sim.clone()));
    Ok(Running {
        sim,
        addr,
        server,
        executor,
    })
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the server's root as clients are given it.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
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

    /// Restarts the server now (see the `restart` fault).
    pub fn restart(&self) {
        self.sim.restart();
    }

    /// Stops accepting, ends the sockets and the running prompt, and waits for both tasks.
    pub async fn shutdown(self) {
        self.sim.stop.send_replace(true);
        self.sim.with(|s| s.sockets.clear());
        self.sim.work.notify_waiters();
        let _ = self.server.await;
        let _ = self.executor.await;
    }

    /// Writes `atelier.toml` at `path` and, beside it, the workflows it names: `txt2img`
    /// (the default: prompt, negative prompt, seed, size, batch size, steps and cfg named)
    /// and `clip` (an animated WebP of `frames` frames).
    pub fn write_config(&self, path: &Path) -> Result<(), String> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("atelier");
        let write = |name: &str, text: &str| {
            let file = dir.join(name);
            std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))
        };
        let image = format!("{stem}.comfyui-txt2img.json");
        let clip = format!("{stem}.comfyui-clip.json");
        write(&image, &templates::workflow_json(false))?;
        write(&clip, &templates::workflow_json(true))?;
        let config = format!(
            "# Written by `atelier simulate comfyui`: the ComfyUI provider talks to the simulator on\n\
             # {addr}. Start the simulator again with the same --bind to reuse this file.\n\
             default_provider = \"comfyui\"\n\n\
             [providers.comfyui]\n\
             enabled = true\n\
             api_base = \"{base}\"\n\
             account = \"simulator\"\n\
             default_workflow = \"txt2img\"\n\
             retry_backoff_ms = 200\n\
             poll_secs = 2.0\n\n\
             [providers.comfyui.workflows.txt2img]\n\
             file = \"{image}\"\n\
             prompt = \"Positive.text\"\n\
             negative_prompt = \"Negative.text\"\n\
             seed = \"3.seed\"\n\
             width = \"5.width\"\n\
             height = \"5.height\"\n\
             batch_size = \"5.batch_size\"\n\
             params = {{ steps = \"3.steps\", cfg = \"3.cfg\" }}\n\n\
             [providers.comfyui.workflows.clip]\n\
             file = \"{clip}\"\n\
             prompt = \"Positive.text\"\n\
             seed = \"3.seed\"\n\
             width = \"5.width\"\n\
             height = \"5.height\"\n\
             params = {{ frames = \"5.batch_size\", fps = \"9.fps\" }}\n",
            addr = self.addr,
            base = self.api_base(),
        );
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("atelier.toml");
        write(name, &config)
    }
}
