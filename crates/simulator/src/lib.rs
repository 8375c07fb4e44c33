//! A protocol-faithful Discord + Midjourney simulator on loopback.
//!
//! One HTTP listener serves everything a Midjourney client talks to:
//!
//! - the Discord **gateway** (WebSocket on any path, `?v=9|10&encoding=json[&compress=zlib-stream]`):
//!   HELLO, heartbeats, IDENTIFY → READY, RESUME with replay of missed dispatches, op 7/op 9,
//!   Discord's close codes;
//! - the Discord **REST** API under `/api/v9`, `/api/v10` and `/api` (interactions, the command
//!   index, attachment uploads, channel messages (with uploaded files, served by the CDN),
//!   URL refresh, the start-up reads of channel,
//!   user, guilds and gateway URL) with rate-limit headers, refusing what Discord refuses a
//!   user account (one message by id: 403 / 20002);
//! - the **CDN** (`/attachments/…`, `/ephemeral-attachments/…`) with signed, expiring URLs;
//! - the **Midjourney bot** (and niji・journey): jobs with waiting / progress / final messages,
//!   every button of a grid and of an upscale, image prompts (one on its own CDN must be a
//!   live link, else "Invalid link"), video (`--video` with an image prompt, Animate,
//!   a video grid's clips, Extend, Extend's remix modal), /describe, /blend, /shorten, /info,
//!   /settings,
//!   per-user concurrency with "Job queued" and "Queue full", parameter and moderation errors
//!   ("Pending mod message", an account-level error, for prompts with a `moderated_words` word);
//! - **faults** injected now and then at a seeded rate (dropped sockets, lost heartbeat ACKs,
//!   op 7, op 9, 429s, CDN errors and truncations, deleted progress, lost finals, stuck jobs);
//! - a **control** API ([`Control`], and the same over HTTP under `/_sim/…`).
//!
//! Images and clips are not drawn here: the caller injects a [`Painter`].
//!
//! Invariants: nothing here knows the app or the Discord client (they are dev-dependencies
//! of the tests only); a message is stored before it is dispatched, so the history is never
//! behind the gateway; no input, fault or painter failure panics the server or loses state.
//!
//! # Layout
//!
//! - `sim`: the shared root every handler gets (configuration, world, sessions, CDN, faults,
//!   statistics) and the helpers that post, edit and delete messages.
//! - `state`: users, channels, messages, uploads, modals and job records.
//! - `ids`: snowflakes (the premade accounts' fixed for a seed, so a restart keeps them), job
//!   UUIDs, timestamps.
//! - `commands`: both bots' application commands, ids and versions (rotatable).
//! - `gateway/`: the WebSocket server (upgrade, connection loop, zlib-stream, sessions).
//! - `rest/`: the REST routes (`reads` the start-up reads, `channels` messages, uploads and the
//!   command index, `interactions`), errors, auth and rate-limit headers.
//! - `cdn`: blob storage and URL signatures.
//! - `bot/`: the Midjourney bot (commands, buttons, modals, jobs, messages, images, parameters;
//!   `bot/video.rs` its video jobs, buttons and files).
//! - `faults`, `control`: fault injection and the steering / inspection API.

mod bot;
mod cdn;
mod commands;
mod control;
mod faults;
mod gateway;
mod ids;
mod rest;
mod sim;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use control::{Control, Stats};
pub use faults::{Fault, FaultParseError, Faults};

/// User (= application) id of the Midjourney bot.
pub const MIDJOURNEY_BOT_ID: &str = "936929561302675456";
/// User (= application) id of the niji・journey bot.
pub const NIJI_BOT_ID: &str = "1022952195194359889";

/// Draws the images the simulated bot returns.
pub trait Painter: Send + Sync + 'static {
    /// A PNG 2×2 grid "render" for this prompt and seed, `side` pixels square.
    ///
    /// Called on a blocking thread. Bytes that do not decode as an image make the job fail
    /// with a "Failed" message, as a Midjourney internal error would.
    fn grid(&self, prompt: &str, seed: u32, side: u32) -> Vec<u8>;

    /// A clip for this prompt and seed: a video grid as an animated WebP, or one clip as an
    /// MP4 (H.264), per `kind`. Keep it small (a few frames): the bot only stores and serves
    /// it.
    ///
    /// Called on a blocking thread. The default draws nothing, and an empty clip makes the
    /// job fail with a "Failed" message, as for a grid that does not decode.
    fn clip(&self, prompt: &str, seed: u32, kind: ClipKind) -> Vec<u8> {
        let _ = (prompt, seed, kind);
        Vec::new()
    }
}

/// Which clip a video job delivers (Midjourney's video, since mid-2025).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipKind {
    /// The result of `--video` or Animate: four clips in one animated WebP (about 5 s).
    Grid,
    /// A video grid's clip upscale or an Extend: one MP4 (about 720p).
    Clip,
}

/// Delays of a simulated job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// From the interaction to the first bot message ("Waiting to start", or an error).
    pub before_waiting: Duration,
    /// Between two progress updates, and from the last one to the final message.
    pub step: Duration,
    /// Percentages shown by the progress updates, in order (`0` shows no preview image).
    pub steps: Vec<u8>,
}

impl Default for Timing {
    /// Roughly a fast-mode job scaled down: 0.5 s to start, seven updates 1 s apart.
    fn default() -> Self {
        Self {
            before_waiting: Duration::from_millis(500),
            step: Duration::from_secs(1),
            steps: vec![0, 15, 31, 46, 62, 78, 93],
        }
    }
}

impl Timing {
    /// No delays and no progress updates: waiting, then the final message (benchmarks).
    pub fn instant() -> Self {
        Self {
            before_waiting: Duration::ZERO,
            step: Duration::ZERO,
            steps: Vec::new(),
        }
    }

    /// The default steps with every delay set to `delay` (tests).
    pub fn quick(delay: Duration) -> Self {
        Self {
            before_waiting: delay,
            step: delay,
            ..Self::default()
        }
    }
}

/// Simulator settings; [`Config::new`] gives the defaults.
#[derive(Clone)]
pub struct Config {
    /// Where to listen (default `127.0.0.1:0`, an ephemeral loopback port).
    pub bind: SocketAddr,
    /// Accounts created at start, each with its own token, user, guild and channel.
    pub accounts: usize,
    /// An unknown non-empty token gets its own user on the fly (default true), so clients
    /// configured with any token work.
    pub accept_any_token: bool,
    /// Tokens refused with close code 4004 on the gateway and 401 on REST.
    pub revoked_tokens: Vec<String>,
    pub faults: Faults,
    pub timing: Timing,
    /// Jobs running at once per user before "Job queued" (default 3).
    pub mj_concurrency: usize,
    /// Jobs queued per user before "Queue full" (default 10).
    pub mj_queue: usize,
    /// Lifetime of signed CDN URLs (default 24 h).
    pub cdn_ttl: Duration,
    /// Words that get a prompt refused with "Banned prompt detected" (whole words, any case).
    pub banned_words: Vec<String>,
    /// Words that get the account a "Pending mod message" instead of a job (default
    /// `moderated`): how tests meet an account-level error.
    pub moderated_words: Vec<String>,
    /// Side of a grid in pixels (default 1024).
    pub image_side: u32,
    /// Sent in HELLO (default 41.25 s). A connection silent for 1.5× this is closed (4009).
    pub heartbeat_interval: Duration,
    pub painter: Arc<dyn Painter>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("accounts", &self.accounts)
            .field("accept_any_token", &self.accept_any_token)
            .field("revoked_tokens", &self.revoked_tokens.len())
            .field("faults", &self.faults)
            .field("timing", &self.timing)
            .field("mj_concurrency", &self.mj_concurrency)
            .field("mj_queue", &self.mj_queue)
            .field("cdn_ttl", &self.cdn_ttl)
            .field("banned_words", &self.banned_words)
            .field("moderated_words", &self.moderated_words)
            .field("image_side", &self.image_side)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults, drawing with `painter`.
    pub fn new(painter: Arc<dyn Painter>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            accounts: 2,
            accept_any_token: true,
            revoked_tokens: Vec::new(),
            faults: Faults::default(),
            timing: Timing::default(),
            mj_concurrency: 3,
            mj_queue: 10,
            cdn_ttl: Duration::from_hours(24),
            banned_words: vec!["banned".to_owned(), "gore".to_owned()],
            moderated_words: vec!["moderated".to_owned()],
            image_side: 1024,
            heartbeat_interval: Duration::from_millis(41_250),
            painter,
        }
    }
}

/// One simulated Discord account, ready to be configured into a client.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub token: String,
    pub user_id: String,
    pub username: String,
    pub guild_id: String,
    pub channel_id: String,
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Starts the simulator on `config.bind` and returns once it accepts connections.
pub async fn start(config: Config) -> Result<Running, SimError> {
    if config.image_side < 2 || config.image_side > 8192 {
        return Err(SimError::Config(format!(
            "image_side must be within 2..=8192, got {}",
            config.image_side
        )));
    }
    if !(0.0..=1.0).contains(&config.faults.rate) {
        return Err(SimError::Config(format!(
            "fault rate must be within 0..=1, got {}",
            config.faults.rate
        )));
    }
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.bind,
        source,
    })?;
    let sim = sim::Sim::new(config, addr);
    let router = rest::router(Arc::clone(&sim));
    let stopping = sim.shutdown_signal();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stopping)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "simulator: server failed");
        }
    });
    tracing::info!(%addr, "simulator: listening");
    Ok(Running { sim, server })
}

/// A running simulator. Dropping it without [`Running::shutdown`] leaves it running until
/// the runtime ends.
pub struct Running {
    sim: Arc<sim::Sim>,
    server: JoinHandle<()>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.sim.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.sim.addr
    }

    /// `http://ADDR/api/v9`.
    pub fn api_base(&self) -> String {
        format!("{}/api/v9", self.sim.http_base)
    }

    /// `ws://ADDR`; clients append `?v=9&encoding=json[&compress=zlib-stream]`.
    pub fn gateway_url(&self) -> String {
        self.sim.ws_base.clone()
    }

    /// `http://ADDR`: attachment URLs start with it.
    pub fn cdn_base(&self) -> String {
        self.sim.http_base.clone()
    }

    /// The pre-made accounts, in creation order.
    pub fn accounts(&self) -> Vec<Account> {
        self.sim.premade_accounts()
    }

    /// A handle to steer and observe the simulator.
    pub fn control(&self) -> Control {
        Control::new(Arc::clone(&self.sim))
    }

    /// Closes every connection, stops the jobs and the listener.
    pub async fn shutdown(self) {
        self.sim.begin_shutdown();
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
