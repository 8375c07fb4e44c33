//! Webhooks over a real socket: `atelier serve` as a process delivering to receivers the test
//! runs on 127.0.0.1. Signatures are checked twice: by an HMAC written here from its
//! definition (not the crate the server uses), and by the Standard Webhooks reference library
//! from `PyPI` (`standardwebhooks`, installed by scripts/test.sh into `target/test-peers/`,
//! named by `ATELIER_TEST_WEBHOOK_VERIFIER`). The outbox's claim is checked on `SQLite` and
//! `PostgreSQL` in `outbox`.

mod outbox;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::http::{Server, client};
use crate::support::DataDir;

/// Everything on loopback, retried quickly.
const FAST: &str = "[webhooks]\nallow_private_targets = true\nretry_schedule_secs = [0.2, 0.2, 0.2]\nattempt_timeout_secs = 5\n";

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Clone, Default)]
struct Script {
    got: Arc<Mutex<Vec<Received>>>,
    /// Status codes to answer, in turn; 200 once they run out.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

/// A webhook receiver on a free loopback port.
pub struct Receiver {
    pub addr: SocketAddr,
    script: Script,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(s): State<Script>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    s.got.lock().unwrap().push(Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let code = s.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

impl Receiver {
    pub async fn start(answers: &[u16]) -> Self {
        Self::on("127.0.0.1:0", answers).await
    }

    async fn on(addr: &str, answers: &[u16]) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Script::default();
        script.answers.lock().unwrap().extend(answers);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(script.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, script, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn got(&self) -> Vec<Received> {
        self.script.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived, at most `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let t = Instant::now();
        loop {
            let got = self.got();
            if got.len() >= n || t.elapsed() > within {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HMAC-SHA256 from its definition (RFC 2104), independent of the server's `hmac` crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Whether one of the request's signatures is `secret`'s.
pub fn signed_by(r: &Received, secret: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64");
    let expected = b64.encode(hmac_sha256(
        &key,
        format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes(),
    ));
    r.signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// Checks every request with the Standard Webhooks reference library (Python).
pub fn verified_by_the_reference_library(got: &[Received], secret: &str) {
    let python = std::env::var("ATELIER_TEST_WEBHOOK_VERIFIER")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ATELIER_TEST_WEBHOOK_VERIFIER is not set: run scripts/test.sh, or set it to a \
                 Python with the standardwebhooks package (pip install standardwebhooks)"
            )
        });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("got.json");
    let list: Vec<Value> = got
        .iter()
        .map(|r| {
            json!({"id": r.id, "timestamp": r.timestamp, "signature": r.signature, "body": r.body})
        })
        .collect();
    std::fs::write(&file, serde_json::to_vec(&list).unwrap()).unwrap();
    let script = r"
import json, sys
from standardwebhooks.webhooks import Webhook
wh = Webhook(sys.argv[2])
got = json.load(open(sys.argv[1]))
for r in got:
    wh.verify(r['body'], {'webhook-id': r['id'], 'webhook-timestamp': r['timestamp'],
                          'webhook-signature': r['signature']})
print(len(got))
";
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&file)
        .arg(secret)
        .output()
        .unwrap_or_else(|e| panic!("{python} runs: {e}"));
    assert!(
        out.status.success(),
        "the reference library refused a delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        got.len().to_string()
    );
}

/// A user and their API key, made at the CLI.
pub fn key_for(data: &DataDir, email: &str) -> String {
    let out = data.run(&["user", "add", email]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = data.run(&["key", "create", "--user", email]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn secret_of(http: &reqwest::Client, s: &Server, key: &str) -> String {
    let r = http
        .get(s.url("/v1/me/webhook-secret"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    v["secret"].as_str().expect("a secret").to_owned()
}

/// Creates a generation (waiting for its end) and returns it.
async fn create(http: &reqwest::Client, s: &Server, key: &str, body: Value) -> Value {
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(key)
        .header("prefer", "wait=30")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

async fn log_of(http: &reqwest::Client, s: &Server, key: &str, id: &str) -> Value {
    let r = http
        .get(s.url(&format!("/v1/generations/{id}/webhooks")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Polls the delivery log until `done` holds, at most `within`.
async fn log_until(
    http: &reqwest::Client,
    s: &Server,
    key: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let t = Instant::now();
    loop {
        let log = log_of(http, s, key, id).await;
        if done(&log) || t.elapsed() > within {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_gets_one_delivery_in_three_signed_attempts() {
    let receiver = Receiver::start(&[500, 503]).await;
    let data = DataDir::with_config(FAST);
    let alice = key_for(&data, "alice@example.com");
    let bob = key_for(&data, "bob@example.com");
    let s = Server::on(data);
    let http = client();
    let secret = secret_of(&http, &s, &alice).await;
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        secret_of(&http, &s, &alice).await,
        secret,
        "read twice, the same"
    );
    assert_ne!(
        secret_of(&http, &s, &bob).await,
        secret,
        "each user has their own"
    );

    let g = create(
        &http,
        &s,
        &alice,
        json!({"prompt": "a fox", "upscale": "none", "webhook": receiver.url()}),
    )
    .await;
    let id = g["id"].as_str().unwrap();
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    // One delivery: the same id and body on every attempt, each attempt signed anew.
    assert!(got[0].id.starts_with("msg_"), "{}", got[0].id);
    assert!(
        got.iter()
            .all(|r| r.id == got[0].id && r.body == got[0].body)
    );
    for r in &got {
        assert!(signed_by(r, &secret), "{r:?}");
        assert!(!signed_by(r, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let ts: i64 = r.timestamp.parse().unwrap();
        assert!((ts - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 60);
    }
    verified_by_the_reference_library(&got, &secret);
    let body = got[0].json();
    assert_eq!(body["type"], "generation.completed");
    assert_eq!(body["data"]["event"]["generation_id"], id);
    assert_eq!(body["data"]["generation"]["id"], id);
    assert_eq!(body["data"]["generation"]["status"], "succeeded");
    assert!(body["timestamp"].as_str().is_some());

    let log = log_until(&http, &s, &alice, id, Duration::from_secs(5), |l| {
        l["data"][0]["status"] == "delivered"
    })
    .await;
    let deliveries = log["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{log}");
    let d = &deliveries[0];
    assert_eq!(d["id"], got[0].id.as_str());
    assert_eq!(d["event"], "generation.completed");
    assert_eq!(d["url"], receiver.url());
    let statuses: Vec<_> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["http_status"].as_u64())
        .collect();
    assert_eq!(statuses, [Some(500), Some(503), Some(200)], "{d}");
    assert!(d["attempts"][0]["error"].as_str().unwrap().contains("500"));
    assert!(d["attempts"][2]["at"].as_str().is_some());
    assert!(d["attempts"][2]["duration_ms"].as_u64().is_some());

    // Another user's log is not found, like the generation; an unknown id too.
    let r = http
        .get(s.url(&format!("/v1/generations/{id}/webhooks")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(s.url(&format!(
            "/v1/generations/{}/webhooks",
            uuid::Uuid::new_v4()
        )))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(s.url(&format!("/v1/generations/{id}/webhooks")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A rotation: the new secret is shown, and for the overlap deliveries carry both
    // signatures, so receivers still holding the old one keep verifying.
    let r = http
        .post(s.url("/v1/me/webhook-secret/rotate"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, secret);
    assert!(rotated["previous_valid_until"].as_str().is_some());
    assert_eq!(secret_of(&http, &s, &alice).await, new);
    create(
        &http,
        &s,
        &alice,
        json!({"prompt": "a hare", "upscale": "none", "webhook": receiver.url()}),
    )
    .await;
    let got = receiver.wait_for(4, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 4);
    let last = &got[3];
    assert_eq!(last.signature.split(' ').count(), 2, "{last:?}");
    assert!(signed_by(last, &new) && signed_by(last, &secret));
    verified_by_the_reference_library(&got[3..], &new);
    verified_by_the_reference_library(&got[3..], &secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_filter_decides_what_is_delivered() {
    let receiver = Receiver::start(&[]).await;
    // Steps of 30 ms, so a cancel sent at once finds the generation still running.
    let data = DataDir::raw(&format!(
        "[providers.sandbox]\nsize = 128\ndelay_ms = 30\n\
         [jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n{FAST}"
    ));
    let alice = key_for(&data, "alice@example.com");
    let s = Server::on(data);
    let http = client();
    let chosen = create(
        &http,
        &s,
        &alice,
        json!({"prompt": "a heron", "upscale": [1, 2], "webhook": receiver.url(),
               "webhook_events": ["started", "output", "completed"]}),
    )
    .await;
    let id = chosen["id"].as_str().unwrap();
    // Its events, as the event log has them: what the filter lets through is delivered.
    let events: Value = {
        let r = http
            .get(s.url(&format!("/v1/generations/{id}/events")))
            .bearer_auth(&alice)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        let kinds: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .map(|k| Value::String(k.trim().to_owned()))
            .collect();
        Value::Array(kinds)
    };
    let wanted: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|k| {
            matches!(
                *k,
                "generation.submitted"
                    | "generation.grid_completed"
                    | "generation.upscale_completed"
                    | "generation.output_completed"
                    | "generation.completed"
            )
        })
        .collect();
    assert!(wanted.contains(&"generation.submitted"), "{events}");
    assert!(wanted.contains(&"generation.upscale_completed"), "{events}");
    let log = log_until(&http, &s, &alice, id, Duration::from_secs(10), |l| {
        l["data"].as_array().is_some_and(|d| {
            d.len() == wanted.len() && d.iter().all(|x| x["status"] == "delivered")
        })
    })
    .await;
    let delivered: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(delivered, wanted, "{log}");
    let mut got: Vec<String> = receiver
        .got()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut expected: Vec<String> = wanted.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(got, expected);
    // One delivery per event, each with its own id.
    let mut ids: Vec<String> = receiver.got().iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), wanted.len());

    // Without a filter: only how it ended.
    let plain = create(
        &http,
        &s,
        &alice,
        json!({"prompt": "an egret", "upscale": "none", "webhook": receiver.url()}),
    )
    .await;
    let pid = plain["id"].as_str().unwrap();
    let log = log_until(&http, &s, &alice, pid, Duration::from_secs(10), |l| {
        l["data"][0]["status"] == "delivered"
    })
    .await;
    let kinds: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["generation.completed"]);
    // Only what was asked for: a canceled generation's end, not its start.
    let queued = {
        let r = http
            .post(s.url("/v1/generations"))
            .bearer_auth(&alice)
            .json(
                &json!({"prompt": "a crane", "upscale": "none", "webhook": receiver.url(),
                          "webhook_events": ["canceled", "failed"]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.json::<Value>().await.unwrap()
    };
    let qid = queued["id"].as_str().unwrap();
    let _ = http
        .post(s.url(&format!("/v1/generations/{qid}/cancel")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let t = Instant::now();
    let shown = loop {
        let shown: Value = http
            .get(s.url(&format!("/v1/generations/{qid}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ["succeeded", "failed", "canceled"].contains(&shown["status"].as_str().unwrap())
            || t.elapsed() > Duration::from_secs(10)
        {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(shown["status"], "canceled", "{shown}");
    let log = log_until(&http, &s, &alice, qid, Duration::from_secs(10), |l| {
        l["data"][0]["status"] == "delivered"
    })
    .await;
    let kinds: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["generation.canceled"], "{log}");
}

/// A receiver that accepts connections and never answers.
async fn silent_receiver() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_slow_the_generation() {
    let (addr, task) = silent_receiver().await;
    // The sandbox takes 100 ms a step; every event is asked for; two attempts at a time.
    let data = DataDir::raw(
        "[providers.sandbox]\nsize = 128\ndelay_ms = 100\n\
         [jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n\
         [webhooks]\nallow_private_targets = true\nretry_schedule_secs = []\n\
         attempt_timeout_secs = 6\nconcurrency = 2\n",
    );
    let alice = key_for(&data, "alice@example.com");
    let s = Server::on(data);
    let http = client();
    let t = Instant::now();
    let g = create(
        &http,
        &s,
        &alice,
        json!({"prompt": "a mole", "upscale": [1], "webhook": format!("http://{addr}/hook"),
               "webhook_events": ["started", "progress", "output", "completed"]}),
    )
    .await;
    let took = t.elapsed();
    assert_eq!(g["status"], "succeeded");
    assert!(
        took < Duration::from_secs(3),
        "the generation took {took:?}, against an attempt timeout of 6 s"
    );
    let id = g["id"].as_str().unwrap();
    // The attempts end at their timeout, recorded as such; the rest wait their turn.
    let log = log_until(&http, &s, &alice, id, Duration::from_secs(15), |l| {
        l["data"][0]["status"] == "failed"
    })
    .await;
    let first = &log["data"][0];
    assert_eq!(first["status"], "failed", "{log}");
    let attempt = &first["attempts"][0];
    assert!(attempt["http_status"].is_null());
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 6.0 s"),
        "{attempt}"
    );
    assert!(attempt["duration_ms"].as_u64().unwrap() >= 5_900);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_its_pending_deliveries_when_it_starts_again() {
    // Down at first: every attempt is refused, retried every second.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let config = "[webhooks]\nallow_private_targets = true\nretry_schedule_secs = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nattempt_timeout_secs = 2\n";
    let data = DataDir::with_config(config);
    let alice = key_for(&data, "alice@example.com");
    let mut s = Server::on(data);
    let http = client();
    let g = create(
        &http,
        &s,
        &alice,
        json!({"prompt": "an owl", "upscale": "none", "webhook": format!("http://{addr}/hook")}),
    )
    .await;
    let id = g["id"].as_str().unwrap().to_owned();
    let log = log_until(&http, &s, &alice, &id, Duration::from_secs(10), |l| {
        l["data"][0]["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let delivery = log["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(log["data"][0]["status"], "pending", "{log}");
    assert!(log["data"][0]["attempts"][0]["http_status"].is_null());
    // kill -9, then the receiver comes up, then the server again on the same data.
    let data = std::mem::replace(&mut s.data, DataDir::new());
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    drop(s);
    let receiver = Receiver::on(&addr.to_string(), &[]).await;
    let s = Server::on(data);
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        got.len(),
        1,
        "the pending delivery is made after the restart"
    );
    assert_eq!(got[0].id, delivery, "with the id it had before");
    let log = log_until(&http, &s, &alice, &id, Duration::from_secs(5), |l| {
        l["data"][0]["status"] == "delivered"
    })
    .await;
    assert_eq!(log["data"][0]["status"], "delivered", "{log}");
    assert!(log["data"][0]["attempts"].as_array().unwrap().len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_and_nothing_is_created() {
    let data = DataDir::new();
    let alice = key_for(&data, "alice@example.com");
    let s = Server::on(data);
    let http = client();
    let long = format!("https://example.com/{}", "a".repeat(3000));
    let bad = [
        json!({"webhook": "ftp://example.com/hook"}),
        json!({"webhook": "https://user:secret@example.com/hook"}),
        json!({"webhook": "not a url"}),
        json!({"webhook": long}),
        json!({"webhook": "https://example.com/hook", "webhook_events": ["finished"]}),
        json!({"webhook": "https://example.com/hook", "webhook_events": []}),
        json!({"webhook_events": ["completed"]}),
        // Private targets are refused by default.
        json!({"webhook": "http://127.0.0.1:9/hook"}),
        json!({"webhook": "http://localhost:9/hook"}),
        json!({"webhook": "http://169.254.169.254/latest/meta-data"}),
        json!({"webhook": "http://[::1]/hook"}),
        json!({"webhook": "http://10.0.0.8/hook"}),
    ];
    for extra in bad {
        let mut body = json!({"prompt": "a newt", "upscale": "none"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = http
            .post(s.url("/v1/generations"))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let problem: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["code"], "invalid_input", "{problem}");
        assert!(
            !problem["detail"].as_str().unwrap().contains("secret@"),
            "{problem}"
        );
    }
    let list: Value = http
        .get(s.url("/v1/generations"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_again_when_the_attempt_connects() {
    // Accepted while private targets were allowed; delivered by a server that no longer
    // allows them: the literal address, and a name that resolves to loopback, are refused
    // when the attempt is made, and the receiver hears nothing.
    let receiver = Receiver::start(&[]).await;
    let port = receiver.addr.port();
    let data = DataDir::with_config(
        "[server]\nworkers = 0\n[webhooks]\nallow_private_targets = true\nretry_schedule_secs = []\n",
    );
    let alice = key_for(&data, "alice@example.com");
    let mut s = Server::on(data);
    let http = client();
    let mut ids = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ] {
        let r = http
            .post(s.url("/v1/generations"))
            .bearer_auth(&alice)
            .json(&json!({"prompt": "a vole", "upscale": "none", "webhook": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let g: Value = r.json().await.unwrap();
        ids.push(g["id"].as_str().unwrap().to_owned());
    }
    let data = std::mem::replace(&mut s.data, DataDir::new());
    s.stop(Duration::from_secs(10));
    drop(s);
    let config = data.path().join("atelier.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[server]\nworkers = 0\n[webhooks]\nallow_private_targets = true\n",
        "[webhooks]\n",
    );
    std::fs::write(&config, text).unwrap();
    let s = Server::on(data);
    for id in &ids {
        let log = log_until(&http, &s, &alice, id, Duration::from_secs(15), |l| {
            l["data"][0]["status"] == "failed"
        })
        .await;
        let d = &log["data"][0];
        assert_eq!(d["status"], "failed", "{log}");
        let error = d["attempts"][0]["error"].as_str().unwrap();
        assert!(
            error.contains("not a public address") || error.contains("no public address"),
            "{error}"
        );
    }
    assert!(receiver.got().is_empty(), "{:?}", receiver.got());
}
