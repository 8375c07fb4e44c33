//! Test harness: a deterministic painter, a fast configuration, a client built on our
//! Discord client (`atelier-discord`), and a raw WebSocket peer for misbehaving on purpose.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use atelier_discord::rest::{Component, InteractionContext, SlashCommand};
use atelier_discord::{
    Gateway, GatewayConfig, GatewayEvent, GatewayHandle, RestClient, RestConfig, RestError, Token,
    new_nonce,
};
use atelier_simulator::{Account, Config, MIDJOURNEY_BOT_ID, Painter, Running, Timing};
use futures_util::{SinkExt, StreamExt};
use image::{ImageFormat, Rgba, RgbaImage};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A noisy gradient that depends on the prompt and the seed.
pub struct NoisyPainter;

impl Painter for NoisyPainter {
    fn grid(&self, prompt: &str, seed: u32, side: u32) -> Vec<u8> {
        let salt = prompt.bytes().fold(u64::from(seed), |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
        let mut rng = fastrand::Rng::with_seed(salt);
        let image = RgbaImage::from_fn(side, side, |x, y| {
            Rgba([
                (x * 255 / side) as u8 ^ rng.u8(..32),
                (y * 255 / side) as u8 ^ rng.u8(..32),
                (salt & 0xff) as u8,
                255,
            ])
        });
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }
}

/// Small images and millisecond timings.
pub fn config() -> Config {
    Config {
        image_side: 64,
        timing: Timing {
            before_waiting: Duration::from_millis(5),
            step: Duration::from_millis(5),
            steps: vec![0, 31, 62, 93],
        },
        ..Config::new(Arc::new(NoisyPainter))
    }
}

pub async fn start(config: Config) -> Running {
    atelier_simulator::start(config).await.unwrap()
}

/// A user connected with our Discord client.
pub struct Client {
    pub rest: RestClient,
    pub gateway: GatewayHandle,
    pub events: mpsc::Receiver<GatewayEvent>,
    pub ctx: InteractionContext,
}

pub fn rest_client(sim: &Running, token: &str) -> RestClient {
    let config = RestConfig {
        api_base: sim.api_base(),
        cdn_base: sim.cdn_base(),
        interaction_gap: Duration::ZERO,
        interaction_jitter: Duration::ZERO,
        max_retries: 0,
        ..RestConfig::default()
    };
    RestClient::new(&config, &Token::new(token)).unwrap()
}

pub fn gateway_config(sim: &Running) -> GatewayConfig {
    GatewayConfig {
        url: sim.gateway_url(),
        connect_timeout: Duration::from_secs(2),
        identify_timeout: Duration::from_secs(3),
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(100),
        invalid_session_delay: Duration::from_millis(50),
        ..GatewayConfig::default()
    }
}

impl Client {
    pub async fn connect(sim: &Running, account: &Account) -> Self {
        let (gateway, mut events) =
            Gateway::spawn(gateway_config(sim), Token::new(&account.token), None);
        let session = loop {
            match timeout(WAIT, events.recv()).await.unwrap().unwrap() {
                GatewayEvent::Ready { session, user_id } => {
                    assert_eq!(user_id, account.user_id);
                    break session;
                }
                GatewayEvent::Fatal { reason } => panic!("fatal: {reason}"),
                _ => {}
            }
        };
        let ctx = InteractionContext {
            application_id: MIDJOURNEY_BOT_ID.to_owned(),
            guild_id: Some(account.guild_id.clone()),
            channel_id: account.channel_id.clone(),
            session_id: session.id,
        };
        Self {
            rest: rest_client(sim, &account.token),
            gateway,
            events,
            ctx,
        }
    }

    /// The next dispatch (name, data), skipping state changes.
    pub async fn dispatch(&mut self) -> (String, Value) {
        loop {
            let event = timeout(WAIT, self.events.recv())
                .await
                .expect("no dispatch in time")
                .expect("gateway closed");
            if let GatewayEvent::Dispatch { name, data, .. } = event {
                return (name, data);
            }
        }
    }

    /// Reads dispatches until one matches; panics naming `what` if none comes in time.
    pub async fn until(&mut self, what: &str, matches: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(Some(event)) = timeout(left, self.events.recv()).await else {
                panic!("no {what} in time");
            };
            if let GatewayEvent::Dispatch { name, data, .. } = event
                && matches(&name, &data)
            {
                return data;
            }
        }
    }

    pub async fn command(
        &self,
        name: &str,
        options: Value,
        attachments: Value,
    ) -> Result<String, RestError> {
        let nonce = new_nonce();
        let command = SlashCommand {
            name: name.to_owned(),
            options: options.as_array().cloned().unwrap_or_default(),
            attachments: attachments.as_array().cloned().unwrap_or_default(),
        };
        self.rest.slash_command(&self.ctx, &command, &nonce).await?;
        Ok(nonce)
    }

    pub async fn imagine(&self, prompt: &str) -> String {
        self.command(
            "imagine",
            json!([{"type": 3, "name": "prompt", "value": prompt}]),
            json!([]),
        )
        .await
        .unwrap()
    }

    pub async fn press(&self, message: &Value, custom_id: &str) -> Result<String, RestError> {
        let nonce = new_nonce();
        let flags = message["flags"].as_u64().unwrap_or(0);
        let component = Component::button(message["id"].as_str().unwrap(), flags, custom_id);
        self.rest
            .press_component(&self.ctx, &component, &nonce)
            .await?;
        Ok(nonce)
    }

    /// The final message (attachment and buttons) answering `nonce`.
    pub async fn final_for(&mut self, nonce: &str) -> Value {
        self.until("final message", |name, d| {
            name == "MESSAGE_CREATE" && d["nonce"] == nonce && is_final(d)
        })
        .await
    }
}

/// A result: an attachment and buttons, not only a running job's cancel button.
pub fn is_final(message: &Value) -> bool {
    message["attachments"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
        && buttons(message)
            .iter()
            .any(|b| !b.starts_with("MJ::CancelJob::"))
}

/// Every custom id on a message.
pub fn buttons(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|c| c["custom_id"].as_str().map(str::to_owned))
        .collect()
}

pub fn button(message: &Value, prefix: &str) -> String {
    buttons(message)
        .into_iter()
        .find(|b| b.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} button on {message}"))
}

/// A plain HTTP client (reqwest here is built without a default crypto provider).
pub fn http() -> reqwest::Client {
    atelier_discord::install_crypto_provider();
    reqwest::Client::new()
}

pub async fn download(url: &str) -> reqwest::Response {
    http().get(url).send().await.unwrap()
}

pub fn decode(bytes: &[u8]) -> RgbaImage {
    image::load_from_memory(bytes).unwrap().to_rgba8()
}

/// A gateway peer speaking plain JSON text frames.
pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Raw {
    pub async fn connect(sim: &Running, query: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}/?{query}", sim.gateway_url()))
            .await
            .unwrap();
        Self { ws }
    }

    /// The next text payload.
    pub async fn recv(&mut self) -> Value {
        loop {
            match timeout(WAIT, self.ws.next()).await.unwrap() {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    pub async fn send(&mut self, payload: &Value) {
        self.ws
            .send(Message::text(payload.to_string()))
            .await
            .unwrap();
    }

    /// Reads until the close frame and returns its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match timeout(WAIT, self.ws.next()).await.unwrap() {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// HELLO, IDENTIFY, READY; returns READY's `d`.
    pub async fn identify(&mut self, token: &str) -> Value {
        let hello = self.recv().await;
        assert_eq!(hello["op"], 10);
        self.send(&json!({"op": 2, "d": {"token": token, "properties": {"os": "linux"}, "compress": false}}))
            .await;
        let ready = self.recv().await;
        assert_eq!(
            (ready["t"].as_str(), ready["s"].as_u64()),
            (Some("READY"), Some(1))
        );
        ready["d"].clone()
    }
}
