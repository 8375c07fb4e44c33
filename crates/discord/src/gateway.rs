//! The gateway: one user-account session kept alive by a spawned task.
//!
//! [`Gateway::spawn`] starts the task and returns a [`GatewayHandle`] plus a receiver of
//! [`GatewayEvent`]s. The task loops over connections: wait (backoff), connect, HELLO,
//! IDENTIFY or RESUME, then read dispatches until the connection ends; the end reason and
//! [`policy`] decide whether to resume, identify again or stop for good. Every connection
//! that ends and will be tried again is reported as [`GatewayEvent::Retrying`] with its
//! reason and the wait before the next attempt, the moment it ends (a refused connection
//! fails at once; only silence waits for `connect_timeout`).
//!
//! Invariant: the task never panics on input and never reconnects after a fatal close
//! (4004 and friends). Back-pressure: when the caller stops draining events the task
//! stops reading the socket (heartbeats continue); Discord eventually drops the
//! connection and the missed dispatches are replayed on resume, so nothing is lost and
//! memory stays bounded.

mod connection;
mod heartbeat;
mod inflate;
mod payloads;
mod policy;

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::events::{FatalReason, GatewayEvent};
use crate::properties::ClientProperties;
use crate::session::Session;
use crate::token::Token;

use policy::Next;

/// Gateway settings; `Default` targets the real Discord gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Base URL, e.g. `wss://gateway.discord.gg` (tests use `ws://127.0.0.1:PORT`). The
    /// version, encoding and compression query is appended.
    pub url: String,
    pub properties: ClientProperties,
    /// Limit for the TCP/TLS/WebSocket handshake and for HELLO to arrive.
    pub connect_timeout: Duration,
    /// Limit from connecting until READY or RESUMED.
    pub identify_timeout: Duration,
    /// First reconnect delay; doubled per failed attempt.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A connection that stayed active this long resets the attempt counter, so a session
    /// that is dropped right after READY still backs off.
    pub stable_after: Duration,
    /// Upper bound of the random wait before re-identifying after a non-resumable op 9
    /// (Discord asks for 1-5 s; the lower bound is a fifth of this).
    pub invalid_session_delay: Duration,
    /// Capacity of the event channel.
    pub event_buffer: usize,
    /// Events held while the channel is full before the socket stops being read.
    pub max_pending_events: usize,
    /// Largest decompressed message accepted; larger ones are logged and skipped.
    pub max_payload: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            url: "wss://gateway.discord.gg".to_owned(),
            properties: ClientProperties::default(),
            connect_timeout: Duration::from_secs(15),
            identify_timeout: Duration::from_secs(45),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_mins(1),
            stable_after: Duration::from_mins(1),
            invalid_session_delay: Duration::from_secs(5),
            event_buffer: 1024,
            max_pending_events: 8192,
            max_payload: 64 * 1024 * 1024,
        }
    }
}

/// Connection state, reported through [`GatewayEvent::StateChanged`] and
/// [`GatewayHandle::state`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not connected; `attempts` consecutive attempts have failed so far.
    Disconnected { attempts: u32 },
    /// Connected, IDENTIFY sent or about to be, READY not yet received.
    Identifying,
    /// Connected, RESUME sent or about to be, RESUMED not yet received.
    Resuming,
    /// READY or RESUMED received; dispatches flow.
    Active,
    /// Stopped for good.
    FatallyClosed { reason: FatalReason },
}

/// Requests from the handle to the task.
#[derive(Debug)]
enum Command {
    Send(String),
    Shutdown,
}

/// Owner's side of a running gateway. Dropping it shuts the gateway down.
#[derive(Debug)]
pub struct GatewayHandle {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<State>,
    session: watch::Receiver<Option<Session>>,
    task: JoinHandle<()>,
}

/// Returned when the gateway task is no longer running.
#[derive(Debug, thiserror::Error)]
#[error("the gateway task has stopped")]
pub struct GatewayClosed;

impl GatewayHandle {
    /// The current connection state.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// A receiver that is notified on every state change.
    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// The current session with its latest sequence number; persist it to resume after a
    /// restart.
    pub fn session(&self) -> Option<Session> {
        self.session.borrow().clone()
    }

    /// Queues a raw gateway payload (`{"op": op, "d": data}`). It is sent if the
    /// connection is active when the task picks it up, and dropped with a warning
    /// otherwise.
    pub async fn send(&self, op: u8, data: Value) -> Result<(), GatewayClosed> {
        let payload = serde_json::json!({ "op": op, "d": data }).to_string();
        self.commands
            .send(Command::Send(payload))
            .await
            .map_err(|_| GatewayClosed)
    }

    /// Closes the connection (keeping the session resumable), waits for the task and
    /// returns the session to persist.
    pub async fn shutdown(self) -> Option<Session> {
        let _ = self.commands.send(Command::Shutdown).await;
        if let Err(error) = self.task.await {
            tracing::error!(%error, "gateway task failed");
        }
        self.session.borrow().clone()
    }
}

/// Entry point; see the module documentation.
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Starts a gateway task on the current tokio runtime. With `session`, the first
    /// connection tries to RESUME it (falling back to IDENTIFY if Discord refuses).
    pub fn spawn(
        config: GatewayConfig,
        token: Token,
        session: Option<Session>,
    ) -> (GatewayHandle, mpsc::Receiver<GatewayEvent>) {
        crate::install_crypto_provider();
        let (event_tx, event_rx) = mpsc::channel(config.event_buffer.max(1));
        let (command_tx, command_rx) = mpsc::channel(16);
        let (state_tx, state_rx) = watch::channel(State::Disconnected { attempts: 0 });
        let (session_tx, session_rx) = watch::channel(session.clone());
        let runner = Runner {
            // Heartbeats sent while resuming a persisted session must carry its sequence.
            last_seq: session.as_ref().map(|s| s.sequence),
            outbox: Outbox::new(event_tx, config.max_pending_events),
            config,
            token,
            session,
            resume_url_failed: false,
            last_error: None,
            commands: command_rx,
            state: state_tx,
            session_tx,
        };
        let task = tokio::spawn(runner.run());
        let handle = GatewayHandle {
            commands: command_tx,
            state: state_rx,
            session: session_rx,
            task,
        };
        (handle, event_rx)
    }
}

/// Why a connection (or the wait before it) ended.
#[derive(Debug)]
enum Ended {
    /// The owner asked to stop or dropped the handle.
    Shutdown,
    /// The event receiver was dropped; nobody is listening.
    Abandoned,
    /// Apply this policy decision.
    Next(Next),
    /// Non-resumable op 9: identify again after a short random wait.
    InvalidSession,
}

/// The task's state across connections.
struct Runner {
    config: GatewayConfig,
    token: Token,
    session: Option<Session>,
    /// Last sequence number seen on the current session (or during identify).
    last_seq: Option<u64>,
    /// The resume URL could not be reached; resume through the main gateway URL instead.
    resume_url_failed: bool,
    /// Why the current connection (or attempt) ended, for [`GatewayEvent::Retrying`].
    last_error: Option<String>,
    commands: mpsc::Receiver<Command>,
    outbox: Outbox,
    state: watch::Sender<State>,
    session_tx: watch::Sender<Option<Session>>,
}

impl Runner {
    async fn run(mut self) {
        let mut attempts: u32 = 0;
        let mut delay = Duration::ZERO;
        loop {
            self.set_state(State::Disconnected { attempts });
            if !delay.is_zero() {
                tracing::info!(?delay, attempts, "gateway: waiting before reconnecting");
                if let Some(ended) = self.idle(delay).await {
                    return self.finish(&ended).await;
                }
            }
            self.last_error = None;
            let (ended, stable) = self.connection().await;
            tracing::info!(?ended, stable, "gateway: connection ended");
            attempts = if stable {
                0
            } else {
                attempts.saturating_add(1)
            };
            let mut extra_delay = Duration::ZERO;
            match ended {
                Ended::Next(Next::Resume) => {}
                Ended::Next(Next::Reidentify) => self.forget_session(),
                Ended::InvalidSession => {
                    self.forget_session();
                    extra_delay = policy::invalid_session_delay(self.config.invalid_session_delay);
                }
                Ended::Next(Next::Fatal(_)) | Ended::Shutdown | Ended::Abandoned => {
                    return self.finish(&ended).await;
                }
            }
            delay = policy::backoff(attempts, self.config.backoff_base, self.config.backoff_cap)
                + extra_delay;
            // Told at once, before the wait: a refused connection is known the moment it
            // fails, and whoever waits for READY can say why it has not come.
            let reason = self
                .last_error
                .take()
                .unwrap_or_else(|| "the connection ended".to_owned());
            self.outbox.push(GatewayEvent::Retrying {
                attempts,
                reason,
                retry_in: delay,
            });
        }
    }

    /// Notes why the connection ends (the first reason wins) and asks for a resume.
    fn lost(&mut self, reason: String) -> Ended {
        self.last_error.get_or_insert(reason);
        Ended::Next(Next::Resume)
    }

    /// Sleeps for `delay` while still serving commands and delivering queued events.
    async fn idle(&mut self, delay: Duration) -> Option<Ended> {
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => return None,
                command = self.commands.recv() => match command {
                    Some(Command::Send(_)) => tracing::warn!("gateway: not connected; payload dropped"),
                    Some(Command::Shutdown) | None => return Some(Ended::Shutdown),
                },
                permit = self.outbox.tx.reserve(), if self.outbox.has_pending() => match permit {
                    Ok(permit) => deliver(&mut self.outbox.queue, permit),
                    Err(_) => return Some(Ended::Abandoned),
                },
            }
        }
    }

    async fn finish(&mut self, ended: &Ended) {
        if let Ended::Next(Next::Fatal(reason)) = ended {
            tracing::error!(%reason, "gateway: fatal close, not reconnecting");
            self.set_state(State::FatallyClosed {
                reason: reason.clone(),
            });
            self.outbox.push(GatewayEvent::Fatal {
                reason: reason.clone(),
            });
            // Deliver everything, including the fatal event, unless nobody listens.
            while let Some(event) = self.outbox.queue.pop_front() {
                if self.outbox.tx.send(event).await.is_err() {
                    break;
                }
            }
        } else {
            self.set_state(State::Disconnected { attempts: 0 });
            // Shutting down: hand over what fits without waiting on a caller who may have
            // stopped reading.
            while let Some(event) = self.outbox.queue.pop_front() {
                if self.outbox.tx.try_send(event).is_err() {
                    break;
                }
            }
        }
    }

    fn forget_session(&mut self) {
        self.session = None;
        self.last_seq = None;
        self.session_tx.send_replace(None);
    }

    fn set_state(&mut self, state: State) {
        if *self.state.borrow() == state {
            return;
        }
        tracing::debug!(?state, "gateway: state");
        self.state.send_replace(state.clone());
        self.outbox.push(GatewayEvent::StateChanged(state));
    }

    fn publish_session(&mut self) {
        self.session_tx.send_replace(self.session.clone());
    }
}

/// Events waiting for room in the channel.
struct Outbox {
    tx: mpsc::Sender<GatewayEvent>,
    queue: VecDeque<GatewayEvent>,
    max_pending: usize,
}

impl Outbox {
    fn new(tx: mpsc::Sender<GatewayEvent>, max_pending: usize) -> Self {
        Self {
            tx,
            queue: VecDeque::new(),
            max_pending: max_pending.max(1),
        }
    }

    fn push(&mut self, event: GatewayEvent) {
        self.queue.push_back(event);
    }

    fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether the socket may be read; false applies back-pressure.
    fn has_room(&self) -> bool {
        self.queue.len() < self.max_pending
    }
}

/// Moves the oldest queued event into a reserved channel slot. A free function because the
/// permit borrows the sender while the queue is borrowed mutably.
fn deliver(queue: &mut VecDeque<GatewayEvent>, permit: mpsc::Permit<'_, GatewayEvent>) {
    if let Some(event) = queue.pop_front() {
        permit.send(event);
    }
}
