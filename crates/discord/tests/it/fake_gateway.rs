//! A scriptable fake Discord gateway: a tokio-tungstenite server on 127.0.0.1:0 that
//! compresses what it sends as one zlib stream per connection, like Discord does.
//! Each accepted connection is handed to the test, which plays Discord's side by hand.

use std::time::Duration;

use flate2::{Compress, Compression, FlushCompress};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const WAIT: Duration = Duration::from_secs(5);

pub struct FakeGateway {
    url: String,
    connections: mpsc::Receiver<FakeConn>,
}

impl FakeGateway {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// The same on a given address (a port that refused connections until now).
    pub async fn start_on(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let (tx, connections) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if let Some(conn) = FakeConn::handshake(stream).await
                    && tx.send(conn).await.is_err()
                {
                    break;
                }
            }
        });
        Self { url, connections }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub async fn accept(&mut self) -> FakeConn {
        timeout(WAIT, self.connections.recv())
            .await
            .expect("no connection in time")
            .expect("listener stopped")
    }

    /// True when nobody connects within `wait`.
    pub async fn stays_quiet(&mut self, wait: Duration) -> bool {
        timeout(wait, self.connections.recv()).await.is_err()
    }
}

pub struct FakeConn {
    ws: WebSocketStream<TcpStream>,
    compressor: Compress,
    pub uri: String,
    pub user_agent: String,
    /// Answer the client's heartbeats with op 11 while waiting in `recv`.
    pub auto_ack: bool,
    /// Heartbeat payloads (`d`) seen so far.
    pub heartbeats: Vec<Value>,
}

impl FakeConn {
    async fn handshake(stream: TcpStream) -> Option<Self> {
        let (mut uri, mut user_agent) = (String::new(), String::new());
        let callback = |request: &Request, response: Response| {
            uri = request.uri().to_string();
            request
                .headers()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .clone_into(&mut user_agent);
            Ok(response)
        };
        let ws = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .ok()?;
        Some(Self {
            ws,
            compressor: Compress::new(Compression::default(), true),
            uri,
            user_agent,
            auto_ack: true,
            heartbeats: Vec::new(),
        })
    }

    /// Sends one message as a compressed binary frame.
    pub async fn send(&mut self, payload: Value) {
        let bytes = self.deflate(payload.to_string().as_bytes());
        self.send_raw(Message::binary(bytes)).await;
    }

    /// Sends one message split across two binary frames.
    pub async fn send_split(&mut self, payload: Value) {
        let bytes = self.deflate(payload.to_string().as_bytes());
        let (a, b) = bytes.split_at(bytes.len() / 2);
        self.send_raw(Message::binary(a.to_vec())).await;
        self.send_raw(Message::binary(b.to_vec())).await;
    }

    /// Compresses arbitrary bytes (not necessarily JSON) as one message.
    pub async fn send_compressed(&mut self, raw: &[u8]) {
        let bytes = self.deflate(raw);
        self.send_raw(Message::binary(bytes)).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        // The client may already have hung up in failure tests; that is their assertion.
        let _ = self.ws.send(message).await;
    }

    pub async fn hello(&mut self, interval_ms: u64) {
        self.send(json!({"op": 10, "d": {"heartbeat_interval": interval_ms}}))
            .await;
    }

    pub async fn dispatch(&mut self, name: &str, seq: u64, data: Value) {
        self.send(json!({"op": 0, "s": seq, "t": name, "d": data}))
            .await;
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }

    /// Next payload that is not a heartbeat (heartbeats are recorded and maybe acknowledged).
    pub async fn recv(&mut self) -> Value {
        loop {
            let payload = self.recv_any().await;
            if payload["op"] == 1 {
                self.heartbeats.push(payload["d"].clone());
                if self.auto_ack {
                    self.send(json!({"op": 11})).await;
                }
                continue;
            }
            return payload;
        }
    }

    /// Next JSON payload of any kind.
    pub async fn recv_any(&mut self) -> Value {
        loop {
            let message = timeout(WAIT, self.ws.next())
                .await
                .expect("client sent nothing in time")
                .expect("client hung up")
                .expect("read error");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("client JSON"),
                Message::Close(frame) => panic!("client closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Waits until the client closes; returns its close code (None if it just hung up).
    pub async fn closed_by_client(&mut self) -> Option<u16> {
        loop {
            match timeout(WAIT, self.ws.next())
                .await
                .expect("client kept the socket open")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(text))) => {
                    let payload: Value = serde_json::from_str(&text).expect("client JSON");
                    if payload["op"] == 1 {
                        self.heartbeats.push(payload["d"].clone());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    fn deflate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.compressor.total_in();
            self.compressor
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .expect("compress");
            consumed += usize::try_from(self.compressor.total_in() - before).expect("size");
            if consumed == input.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

pub fn ready(session_id: &str, resume_url: &str) -> Value {
    json!({
        "op": 0, "s": 1, "t": "READY",
        "d": {
            "v": 9,
            "session_id": session_id,
            "resume_gateway_url": resume_url,
            "user": {"id": "42", "username": "painter"},
            "guilds": [],
        },
    })
}
