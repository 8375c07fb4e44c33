//! One gateway connection: connect, HELLO, IDENTIFY or RESUME, then the read loop.
//!
//! Everything waits in a single `select!`: owner commands, room in the event channel,
//! the heartbeat deadline, the identify deadline and the socket. Each arm either goes on
//! or returns why the connection [`Ended`]; the outer loop in `gateway.rs` decides what
//! happens next.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::heartbeat::{Beat, Heartbeater};
use super::inflate::{Inflated, ZlibStream};
use super::policy::{Next, after_close};
use super::{Command, Ended, Runner, State, deliver, payloads};
use crate::events::{self, GatewayEvent, Incoming, ReadyInfo};
use crate::session::Session;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Close code we send when leaving: anything but 1000/1001 keeps the session resumable.
const CLOSE_KEEP_SESSION: u16 = 4000;
/// Deadline for our close handshake; a zombie peer will not answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What woke the connection loop.
enum Step {
    Command(Option<Command>),
    Beat,
    Timeout,
    Message(Option<Result<Message, tungstenite::Error>>),
}

/// Per-connection state.
struct Conn {
    ws: Socket,
    inflater: ZlibStream,
    heartbeat: Option<Heartbeater>,
    active_since: Option<Instant>,
    resuming: bool,
    write_timeout: Duration,
    /// Why a write ended the connection (the runner takes it when the connection ends).
    lost: Option<String>,
}

impl Conn {
    async fn send(&mut self, payload: String) -> Result<(), Ended> {
        match timeout(self.write_timeout, self.ws.send(Message::text(payload))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(%error, "gateway: write failed");
                self.lost = Some(format!("the connection failed while sending: {error}"));
                Err(Ended::Next(Next::Resume))
            }
            Err(_) => {
                tracing::warn!("gateway: write timed out");
                self.lost = Some(format!("a send took longer than {:?}", self.write_timeout));
                Err(Ended::Next(Next::Resume))
            }
        }
    }
}

impl Runner {
    /// Runs one connection to its end. The flag says whether it stayed active long enough
    /// to reset the backoff.
    pub(super) async fn connection(&mut self) -> (Ended, bool) {
        let resuming = self.session.is_some();
        let base = match &self.session {
            Some(session) if !self.resume_url_failed => session.resume_url.clone(),
            _ => self.config.url.clone(),
        };
        self.set_state(if resuming {
            State::Resuming
        } else {
            State::Identifying
        });
        let started = Instant::now();
        let ws = match self.connect(&base).await {
            Ok(ws) => ws,
            Err(ended) => {
                if resuming && matches!(ended, Ended::Next(Next::Resume)) {
                    self.resume_url_failed = true;
                }
                return (ended, false);
            }
        };
        let mut conn = Conn {
            ws,
            inflater: ZlibStream::new(self.config.max_payload),
            heartbeat: None,
            active_since: None,
            resuming,
            write_timeout: self.config.connect_timeout,
            lost: None,
        };
        let ended = self.drive(&mut conn, started).await;
        if let Some(lost) = conn.lost.take() {
            self.last_error.get_or_insert(lost);
        }
        let frame = CloseFrame {
            code: CloseCode::from(CLOSE_KEEP_SESSION),
            reason: "".into(),
        };
        // Errors are expected here (the peer may already be gone); nothing to do about them.
        let _ = timeout(CLOSE_TIMEOUT, conn.ws.close(Some(frame))).await;
        let stable = conn
            .active_since
            .is_some_and(|since| since.elapsed() >= self.config.stable_after);
        (ended, stable)
    }

    async fn connect(&mut self, base: &str) -> Result<Socket, Ended> {
        let url = payloads::gateway_url(base);
        let mut request = match url.as_str().into_client_request() {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(%error, %url, "gateway: invalid URL");
                return Err(self.lost(format!("invalid gateway URL {base}: {error}")));
            }
        };
        let headers = request.headers_mut();
        let props = &self.config.properties;
        for (name, value) in [
            ("user-agent", props.user_agent.as_str()),
            ("accept-language", props.system_locale.as_str()),
            ("cache-control", "no-cache"),
            ("pragma", "no-cache"),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        tracing::debug!(%url, "gateway: connecting");
        let connect = timeout(
            self.config.connect_timeout,
            tokio_tungstenite::connect_async_with_config(request, None, true),
        );
        tokio::pin!(connect);
        // The arms only pick the outcome: `self.lost` needs `&mut self`, which the
        // borrowing select futures would not allow inside them.
        let result = loop {
            tokio::select! {
                result = &mut connect => break result,
                command = self.commands.recv() => match command {
                    Some(Command::Send(_)) => tracing::warn!("gateway: not connected; payload dropped"),
                    Some(Command::Shutdown) | None => return Err(Ended::Shutdown),
                },
            }
        };
        match result {
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(error)) => {
                tracing::warn!(%error, %url, "gateway: connect failed");
                Err(self.lost(format!(
                    "cannot connect to {base}: {}",
                    connect_error(&error)
                )))
            }
            Err(_) => {
                tracing::warn!(%url, "gateway: connect timed out");
                Err(self.lost(format!(
                    "cannot connect to {base}: no answer within {:?}",
                    self.config.connect_timeout
                )))
            }
        }
    }

    async fn drive(&mut self, conn: &mut Conn, started: Instant) -> Ended {
        let hello_deadline = started + self.config.connect_timeout;
        let ready_deadline = started + self.config.identify_timeout;
        loop {
            let beat_at = conn.heartbeat.as_ref().map(Heartbeater::deadline);
            let phase_deadline = if conn.heartbeat.is_none() {
                hello_deadline.min(ready_deadline)
            } else {
                ready_deadline
            };
            let waiting = conn.active_since.is_none();
            // Arms only pick the step; acting on it needs `&mut self`, which the
            // borrowing select futures would not allow inside the arms.
            let step = tokio::select! {
                command = self.commands.recv() => Step::Command(command),
                permit = self.outbox.tx.reserve(), if self.outbox.has_pending() => match permit {
                    Ok(permit) => {
                        deliver(&mut self.outbox.queue, permit);
                        continue;
                    }
                    Err(_) => return Ended::Abandoned,
                },
                () = sleep_until(beat_at.unwrap_or(phase_deadline)), if beat_at.is_some() => Step::Beat,
                () = sleep_until(phase_deadline), if waiting => Step::Timeout,
                message = conn.ws.next(), if self.outbox.has_room() => Step::Message(message),
            };
            let outcome = match step {
                Step::Command(Some(Command::Send(payload))) if conn.active_since.is_some() => {
                    conn.send(payload).await.err()
                }
                Step::Command(Some(Command::Send(_))) => {
                    tracing::warn!("gateway: not active; payload dropped");
                    None
                }
                Step::Command(Some(Command::Shutdown) | None) => Some(Ended::Shutdown),
                Step::Beat => self.beat(conn).await.err(),
                Step::Timeout => {
                    tracing::warn!(
                        hello = conn.heartbeat.is_some(),
                        "gateway: no READY/RESUMED in time"
                    );
                    Some(if conn.heartbeat.is_none() {
                        self.lost(format!(
                            "connected, but no HELLO came within {:?}",
                            self.config.connect_timeout
                        ))
                    } else {
                        self.lost(format!(
                            "connected, but no READY or RESUMED came within {:?}",
                            self.config.identify_timeout
                        ))
                    })
                }
                Step::Message(message) => self.on_message(conn, message).await,
            };
            if let Some(ended) = outcome {
                return ended;
            }
        }
    }

    async fn beat(&mut self, conn: &mut Conn) -> Result<(), Ended> {
        let Some(heartbeat) = conn.heartbeat.as_mut() else {
            return Ok(());
        };
        match heartbeat.on_due(Instant::now()) {
            Beat::Zombie => {
                let interval = heartbeat.interval();
                tracing::warn!(
                    ?interval,
                    "gateway: heartbeat not acknowledged; zombie connection"
                );
                Err(self.lost(format!(
                    "a heartbeat was not acknowledged within {interval:?}"
                )))
            }
            Beat::Send => conn.send(payloads::heartbeat(self.last_seq)).await,
        }
    }

    async fn on_message(
        &mut self,
        conn: &mut Conn,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Option<Ended> {
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::warn!(%error, "gateway: read failed");
                return Some(self.lost(format!("the connection failed: {error}")));
            }
            None => {
                tracing::warn!("gateway: stream ended without a close frame");
                return Some(self.lost("the connection closed without a close frame".to_owned()));
            }
        };
        match message {
            Message::Binary(bytes) => match conn.inflater.push(&bytes) {
                Ok(Inflated::Partial) => None,
                Ok(Inflated::Message(payload)) => self.on_payload(conn, &payload).await,
                Ok(Inflated::Oversized { size }) => {
                    tracing::warn!(size, "gateway: oversized message skipped");
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "gateway: cannot decompress; reconnecting");
                    Some(self.lost(format!("cannot decompress the stream: {error}")))
                }
            },
            Message::Text(text) if text.len() > self.config.max_payload => {
                tracing::warn!(size = text.len(), "gateway: oversized message skipped");
                None
            }
            Message::Text(text) => self.on_payload(conn, text.as_bytes()).await,
            Message::Close(frame) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                });
                tracing::warn!(code, %reason, "gateway: closed by Discord");
                self.last_error.get_or_insert_with(|| {
                    if reason.is_empty() {
                        format!("Discord closed the connection with code {code}")
                    } else {
                        format!("Discord closed the connection with code {code}: {reason}")
                    }
                });
                Some(Ended::Next(after_close(code, &reason)))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    async fn on_payload(&mut self, conn: &mut Conn, bytes: &[u8]) -> Option<Ended> {
        let incoming = match events::decode(bytes) {
            Ok(incoming) => incoming,
            Err(error) => {
                tracing::warn!(%error, size = bytes.len(), "gateway: malformed payload ignored");
                return None;
            }
        };
        match incoming {
            Incoming::Hello { interval } => self.on_hello(conn, interval).await.err(),
            Incoming::HeartbeatAck => {
                if let Some(heartbeat) = conn.heartbeat.as_mut() {
                    heartbeat.on_ack(Instant::now());
                    tracing::trace!(latency = ?heartbeat.latency(), "gateway: heartbeat ACK");
                }
                None
            }
            Incoming::HeartbeatRequest => conn.send(payloads::heartbeat(self.last_seq)).await.err(),
            Incoming::Reconnect => {
                tracing::info!("gateway: Discord asked us to reconnect");
                Some(self.lost("Discord asked to reconnect (op 7)".to_owned()))
            }
            Incoming::InvalidSession { resumable } => {
                tracing::info!(resumable, "gateway: invalid session");
                self.last_error
                    .get_or_insert_with(|| "Discord invalidated the session (op 9)".to_owned());
                Some(if resumable {
                    Ended::Next(Next::Resume)
                } else {
                    Ended::InvalidSession
                })
            }
            Incoming::Ready(ready) => {
                self.on_ready(conn, ready);
                None
            }
            Incoming::Resumed { seq } => {
                self.on_resumed(conn, seq);
                None
            }
            Incoming::Dispatch { name, seq, data } => {
                self.track_seq(seq);
                self.outbox.push(GatewayEvent::Dispatch { name, seq, data });
                None
            }
            Incoming::Unknown { op } => {
                tracing::debug!(op, "gateway: unknown opcode ignored");
                None
            }
        }
    }

    async fn on_hello(&mut self, conn: &mut Conn, interval: Duration) -> Result<(), Ended> {
        if conn.heartbeat.is_some() {
            tracing::debug!("gateway: repeated HELLO ignored");
            return Ok(());
        }
        conn.heartbeat = Some(Heartbeater::new(interval, fastrand::f64(), Instant::now()));
        let payload = match (&self.session, conn.resuming) {
            (Some(session), true) => payloads::resume(&self.token, session),
            _ => payloads::identify(&self.token, &self.config.properties),
        };
        conn.send(payload).await
    }

    fn on_ready(&mut self, conn: &mut Conn, ready: ReadyInfo) {
        self.track_seq(ready.seq);
        let resume_url = ready
            .resume_url
            .filter(|url| url.starts_with("wss://") || url.starts_with("ws://"))
            .unwrap_or_else(|| self.config.url.clone());
        let session = Session {
            id: ready.session_id,
            sequence: self.last_seq.unwrap_or(0),
            resume_url,
        };
        tracing::info!(user_id = %ready.user_id, "gateway: READY");
        self.session = Some(session.clone());
        self.resume_url_failed = false;
        self.publish_session();
        conn.active_since = Some(Instant::now());
        self.set_state(State::Active);
        self.outbox.push(GatewayEvent::Ready {
            session,
            user_id: ready.user_id,
        });
    }

    fn on_resumed(&mut self, conn: &mut Conn, seq: Option<u64>) {
        self.track_seq(seq);
        let Some(session) = self.session.clone() else {
            tracing::warn!("gateway: RESUMED without a session ignored");
            return;
        };
        tracing::info!(sequence = session.sequence, "gateway: RESUMED");
        self.resume_url_failed = false;
        conn.active_since = Some(Instant::now());
        self.set_state(State::Active);
        self.outbox.push(GatewayEvent::Resumed { session });
    }

    fn track_seq(&mut self, seq: Option<u64>) {
        let Some(seq) = seq else { return };
        self.last_seq = Some(seq);
        if let Some(session) = self.session.as_mut() {
            session.sequence = seq;
            self.session_tx.send_modify(|published| {
                if let Some(published) = published {
                    published.sequence = seq;
                }
            });
        }
    }
}

/// A failed WebSocket connection in a few words: a refusal or an HTTP answer instead of an
/// upgrade says more than tungstenite's wording.
fn connect_error(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        tungstenite::Error::Io(io) => io.to_string(),
        tungstenite::Error::Http(response) => {
            format!("HTTP {} instead of a WebSocket upgrade", response.status())
        }
        other => other.to_string(),
    }
}
