//! The midjourney-proxy drop-in routes of `atelier serve` (`/mj/submit/*`, `/mj/task/*`): a
//! client library of that protocol, unchanged (302.AI's `@302ai/ai-sdk` for the Vercel AI SDK,
//! from npm, installed by scripts/test.sh under `target/test-peers/mjproxy` and named by
//! `ATELIER_TEST_MJPROXY_SDK`), then every route over plain HTTP: the submits (shorten and
//! Custom Zoom's form in `mjproxy/forms.rs`; image prompts and video, the latter against the
//! Discord simulator, in `mjproxy/image_prompts.rs`), the task routes, isolation between keys,
//! bad input with the proxy's codes and nothing created, the notify hook's task bodies, and
//! pictures fetched by their links without a key. On the catalogue `ATELIER_TEST_CATALOGUE`
//! names.

mod client;
mod forms;
mod image_prompts;
mod routes;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::http::{Server, client, key_for};
use crate::support::DataDir;

/// The sandbox, quick; one banned word; webhooks to loopback, retried at once.
pub const CONFIG: &str = "[limits]\nbanned_words = [\"forbidden\"]\n\
    [webhooks]\nallow_private_targets = true\nretry_schedule_secs = [0.2, 0.2]\n";

/// A server with two users, and their keys.
pub struct Proxy {
    pub server: Server,
    pub alice: String,
    pub bob: String,
}

impl Proxy {
    /// With the sandbox taking `delay_ms` a step (long enough to press a button on a task
    /// still running), and `extra` configuration.
    pub async fn start(delay_ms: u64, extra: &str) -> Self {
        let data = DataDir::raw(&format!(
            "[providers.sandbox]\nsize = 128\ndelay_ms = {delay_ms}\n\
             [jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n{CONFIG}{extra}"
        ));
        let alice = key_for(&data, "alice@example.com", false);
        let bob = key_for(&data, "bob@example.com", false);
        let server = tokio::task::spawn_blocking(move || Server::on(data))
            .await
            .unwrap();
        Self { server, alice, bob }
    }

    /// POSTs `body` to `path` with `key` in `mj-api-secret`, as the proxies' clients do.
    pub async fn post(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = client()
            .post(self.server.url(path))
            .header("mj-api-secret", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = client()
            .get(self.server.url(path))
            .header("mj-api-secret", key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Submits an imagine and returns the task id.
    pub async fn imagine(&self, key: &str, prompt: &str) -> String {
        let (status, r) = self
            .post(key, "/mj/submit/imagine", &json!({"prompt": prompt}))
            .await;
        assert_eq!(status, 200, "{r}");
        assert!(r["code"] == 1 || r["code"] == 22, "{r}");
        r["result"].as_str().unwrap().to_owned()
    }

    /// Fetches task `id` until it ends (at most a minute: a bound, not a measurement).
    pub async fn ended(&self, key: &str, id: &str) -> Value {
        let t = Instant::now();
        loop {
            let (status, task) = self.get(key, &format!("/mj/task/{id}/fetch")).await;
            assert_eq!(status, 200, "{task}");
            if ["SUCCESS", "FAILURE", "CANCEL"].contains(&task["status"].as_str().unwrap_or("")) {
                return task;
            }
            assert!(t.elapsed() < Duration::from_mins(1), "never ended: {task}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many generations the key's user has (through the regular API).
    pub async fn generations(&self, key: &str) -> usize {
        let r: Value = client()
            .get(self.server.url("/v1/generations"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["data"].as_array().map_or(0, Vec::len)
    }
}

/// The `customId` of `task`'s button labelled `label`.
pub fn custom_id(task: &Value, label: &str) -> String {
    task["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["label"] == label)
        .unwrap_or_else(|| panic!("no {label} button in {task}"))["customId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A small PNG, as the clients send pictures: a data URL.
pub fn data_url() -> String {
    let mut png = Vec::new();
    image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, 90])
    })
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// GETs `url` with no key at all, as a client downloading `imageUrl` does.
pub async fn anonymous(url: &str) -> (u16, Vec<u8>) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}
