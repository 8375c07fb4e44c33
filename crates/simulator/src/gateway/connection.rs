//! One gateway connection: HELLO, then heartbeats, IDENTIFY or RESUME, outgoing dispatches,
//! Discord's close codes, and the gateway faults.
//!
//! Close codes: 4001 unknown opcode, 4002 undecodable payload (or one over 4 MiB), 4003 a
//! payload before IDENTIFY, 4004 bad token, 4005 a second IDENTIFY, 4007 RESUME beyond the
//! session's sequence, 4009 no heartbeat for 1.5 × the interval (the session is then gone),
//! 4012 an API version other than 9 or 10.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::sessions::{ConnHandle, Outgoing, ResumeError};
use super::zlib::ZlibStream;
use crate::faults::Fault;
use crate::sim::Sim;
use crate::state::User;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Payloads waiting for a slow reader before the connection is dropped.
const OUTBOX: usize = 4096;

/// What the handshake's query asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) compress: bool,
    pub(crate) version_ok: bool,
}

/// How handling a payload ends.
enum Flow {
    Continue,
    /// Send this close frame, then end.
    Close(u16, &'static str),
    /// End without a close frame.
    Drop,
}

struct Conn {
    sim: Arc<Sim>,
    socket: Socket,
    zlib: Option<ZlibStream>,
    id: u64,
    /// Set after READY or RESUMED.
    session: Option<String>,
    no_ack: bool,
}

pub(crate) async fn run(sim: Arc<Sim>, socket: Socket, options: Options) {
    sim.stats.count_connection();
    let (tx, rx) = mpsc::channel(OUTBOX);
    let kill = Arc::new(Notify::new());
    let id = sim.sessions.register(ConnHandle {
        tx,
        kill: Arc::clone(&kill),
    });
    let mut conn = Conn {
        sim: Arc::clone(&sim),
        socket,
        zlib: options.compress.then(ZlibStream::new),
        id,
        session: None,
        no_ack: false,
    };
    let flow = if options.version_ok {
        conn.serve(rx, &kill).await
    } else {
        Flow::Close(4012, "Invalid API version")
    };
    sim.sessions.unregister(id);
    match flow {
        Flow::Close(code, reason) => {
            if code == 4009
                && let Some(session) = &conn.session
            {
                sim.sessions.invalidate(session);
            }
            conn.close(code, reason).await;
        }
        Flow::Drop | Flow::Continue => {}
    }
}

impl Conn {
    async fn serve(&mut self, mut rx: mpsc::Receiver<Outgoing>, kill: &Notify) -> Flow {
        let interval = self.sim.config.heartbeat_interval;
        let hello = json!({"op": 10, "d": {"heartbeat_interval": interval.as_millis() as u64,
            "_trace": ["[\"gateway-sim\",{\"micros\":0}]"]}});
        if !self.send(&hello.to_string()).await {
            return Flow::Drop;
        }
        let timeout = interval.mul_f64(1.5);
        let mut deadline = Instant::now() + timeout;
        let mut next_roll = Instant::now() + self.fault_period();
        let shutdown = self.sim.shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let flow = tokio::select! {
                () = kill.notified() => Flow::Drop,
                () = &mut shutdown => Flow::Close(1001, "Simulator shutting down"),
                out = rx.recv() => match out {
                    Some(Outgoing::Payload(payload)) => self.sent(&payload).await,
                    Some(Outgoing::Fault(fault)) => self.apply(fault).await,
                    None => Flow::Drop,
                },
                incoming = self.socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => self.on_payload(text.as_bytes(), &mut deadline, timeout).await,
                    Some(Ok(Message::Binary(bytes))) => self.on_payload(&bytes, &mut deadline, timeout).await,
                    Some(Ok(Message::Close(_))) | None => Flow::Drop,
                    Some(Ok(_)) => Flow::Continue,
                    Some(Err(WsError::Capacity(_))) => Flow::Close(4002, "Error while decoding payload."),
                    Some(Err(error)) => {
                        tracing::debug!(%error, "gateway: read failed");
                        Flow::Drop
                    }
                },
                () = sleep_until(deadline) => Flow::Close(4009, "Session timed out."),
                () = sleep_until(next_roll) => {
                    next_roll = Instant::now() + self.fault_period();
                    let fault = if self.session.is_some() {
                        self.sim.faults().roll_gateway()
                    } else {
                        None
                    };
                    match fault {
                        Some(fault) => self.apply(fault).await,
                        None => Flow::Continue,
                    }
                }
            };
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
    }

    fn fault_period(&self) -> std::time::Duration {
        self.sim
            .faults()
            .settings()
            .every
            .max(std::time::Duration::from_millis(10))
    }

    async fn on_payload(
        &mut self,
        bytes: &[u8],
        deadline: &mut Instant,
        timeout: std::time::Duration,
    ) -> Flow {
        let Ok(payload) = serde_json::from_slice::<Value>(bytes) else {
            return Flow::Close(4002, "Error while decoding payload.");
        };
        let Some(op) = payload.get("op").and_then(Value::as_u64) else {
            return Flow::Close(4002, "Error while decoding payload.");
        };
        let data = payload.get("d").unwrap_or(&Value::Null);
        match op {
            // Any `d` is accepted: some clients send a counter instead of the sequence.
            1 => {
                *deadline = Instant::now() + timeout;
                if self.no_ack {
                    Flow::Continue
                } else {
                    self.sent(r#"{"op":11,"d":null}"#).await
                }
            }
            2 => self.identify(data),
            6 => self.resume(data).await,
            // Presence, voice state, guild members, lazy guilds and the other user-client ops.
            3 | 4 | 8 | 13 | 14 | 21..=41 if self.session.is_some() => Flow::Continue,
            3 | 4 | 8 | 13 | 14 | 21..=41 => Flow::Close(4003, "Not authenticated."),
            _ if self.session.is_none() => Flow::Close(4003, "Not authenticated."),
            _ => Flow::Close(4001, "Unknown opcode."),
        }
    }

    fn authenticate(&self, data: &Value) -> Result<User, Flow> {
        let Some(token) = data.get("token").and_then(Value::as_str) else {
            return Err(Flow::Close(4002, "Error while decoding payload."));
        };
        self.sim
            .user_for_token(token)
            .ok_or(Flow::Close(4004, "Authentication failed."))
    }

    fn identify(&mut self, data: &Value) -> Flow {
        if self.session.is_some() {
            return Flow::Close(4005, "Already authenticated.");
        }
        let user = match self.authenticate(data) {
            Ok(user) => user,
            Err(flow) => return flow,
        };
        let session_id = self.sim.ids.hex(32);
        let ready = ready(&self.sim, &user, &session_id);
        if !self
            .sim
            .sessions
            .identify(self.id, user.id, session_id.clone(), &ready)
        {
            return Flow::Drop;
        }
        self.sim.stats.count_identify();
        tracing::debug!(user_id = user.id, %session_id, "gateway: READY");
        self.session = Some(session_id);
        Flow::Continue
    }

    async fn resume(&mut self, data: &Value) -> Flow {
        if self.session.is_some() {
            return Flow::Close(4005, "Already authenticated.");
        }
        let user = match self.authenticate(data) {
            Ok(user) => user,
            Err(flow) => return flow,
        };
        let session_id = data
            .get("session_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let seq = data.get("seq").and_then(Value::as_u64).unwrap_or(0);
        match self.sim.sessions.resume(self.id, user.id, session_id, seq) {
            Ok(replayed) => {
                self.sim.stats.count_resume();
                tracing::debug!(user_id = user.id, replayed, "gateway: RESUMED");
                self.session = Some(session_id.to_owned());
                Flow::Continue
            }
            Err(ResumeError::Invalid) => self.sent(r#"{"op":9,"d":false}"#).await,
            Err(ResumeError::BadSeq) => Flow::Close(4007, "Invalid seq."),
        }
    }

    async fn apply(&mut self, fault: Fault) -> Flow {
        tracing::debug!(%fault, conn = self.id, "gateway: fault");
        match fault {
            Fault::DropSocket => Flow::Drop,
            Fault::NoAck => {
                self.no_ack = true;
                Flow::Continue
            }
            Fault::Reconnect => self.sent(r#"{"op":7,"d":null}"#).await,
            Fault::InvalidSession => {
                let resumable = self.sim.faults().rng(Fault::InvalidSession).bool();
                if !resumable && let Some(session) = self.session.take() {
                    self.sim.sessions.invalidate(&session);
                }
                self.sent(&format!(r#"{{"op":9,"d":{resumable}}}"#)).await
            }
            Fault::HeartbeatRequest => self.sent(r#"{"op":1,"d":null}"#).await,
            _ => Flow::Continue,
        }
    }

    async fn sent(&mut self, payload: &str) -> Flow {
        if self.send(payload).await {
            Flow::Continue
        } else {
            Flow::Drop
        }
    }

    async fn send(&mut self, payload: &str) -> bool {
        let message = match &mut self.zlib {
            Some(zlib) => match zlib.message(payload.as_bytes()) {
                Some(bytes) => Message::binary(bytes),
                None => return false,
            },
            None => Message::text(payload),
        };
        self.socket.send(message).await.is_ok()
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
        let _ = self.socket.flush().await;
    }
}

/// READY for a user account: the user, the session, where to resume, and the one guild
/// with the user's channel.
fn ready(sim: &Sim, user: &User, session_id: &str) -> Value {
    json!({
        "v": 9,
        "user": {
            "id": user.id.to_string(),
            "username": user.username,
            "global_name": user.global_name,
            "discriminator": "0",
            "avatar": null,
            "bot": false,
            "verified": true,
            "mfa_enabled": false,
            "email": null,
            "flags": 0,
            "premium_type": 0,
        },
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": sim.ws_base,
        "guilds": [{
            "id": user.guild_id.to_string(),
            "name": format!("{}'s server", user.username),
            "owner_id": user.id.to_string(),
            "channels": [{"id": user.channel_id.to_string(), "type": 0, "name": "midjourney",
                "guild_id": user.guild_id.to_string()}],
            "members": [],
            "roles": [],
        }],
        "private_channels": [],
        "relationships": [],
        "users": [],
        "sessions": [],
        "user_settings": {},
        "read_state": {"entries": [], "partial": false, "version": 0},
        "user_guild_settings": {"entries": [], "partial": false, "version": 0},
        "guild_join_requests": [],
        "connected_accounts": [],
        "country_code": "US",
        "geo_ordered_rtc_regions": [],
        "analytics_token": "",
        "auth_session_id_hash": "",
        "api_code_version": 1,
        "_trace": ["[\"gateway-sim\",{\"micros\":0}]"],
    })
}
