//! The HTTP API over a real socket: `atelier serve` as a process, driven with reqwest. Every
//! route's success and bad input (a 4xx problem document, never a 5xx), event streams replayed
//! with `Last-Event-ID`, image bytes with `ETag` and ranges, and a bounded, clean stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::DataDir;

/// `atelier serve` on a free loopback port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data: DataDir,
}

impl Server {
    /// With `extra` configuration appended (the sandbox draws in `delay_ms` steps).
    pub fn start(extra: &str) -> Self {
        let data = DataDir::with_config(extra);
        Self::on(data)
    }

    pub fn on(data: DataDir) -> Self {
        let mut child = data
            .cmd()
            .args(["serve", "--bind", "127.0.0.1:0", "--grace", "5"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Self {
            child,
            base: format!("http://{addr}"),
            data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits at most `within` for the exit; returns its status code.
    pub fn stop(&mut self, within: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        let t = Instant::now();
        while t.elapsed() < within {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    atelier_discord::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_mins(1))
        .build()
        .expect("client")
}

/// No credentials needed: the server's callers are the operator (loopback only).
const OPEN: &str = "[server]\nauth = \"none\"\n";

pub async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "{:?}", r.text().await);
    assert_problem_type(&r);
    let body: Value = r.json().await.expect("a problem document");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

fn assert_problem_type(r: &reqwest::Response) {
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json");
}

/// A data directory whose sandbox takes `delay_ms` a step, with `server` added to `[server]`.
fn slow(delay_ms: u64, server: &str) -> DataDir {
    DataDir::raw(&format!(
        "[providers.sandbox]\nsize = 128\ndelay_ms = {delay_ms}\n\
         [jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n{OPEN}{server}"
    ))
}

/// GET `url` (signed with `key`, if any) and its JSON body.
pub async fn get_json(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    key: Option<&str>,
) -> Value {
    let mut request = http.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("a JSON body")
}

/// A finished generation (created with `Prefer: wait`).
async fn finished(http: &reqwest::Client, s: &Server, prompt: &str) -> Value {
    let r = http
        .post(s.url("/v1/generations"))
        .header("prefer", "wait=30")
        .json(&json!({"prompt": prompt, "upscale": [1, 2]}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let g: Value = r.json().await.expect("json");
    assert_eq!(g["status"], "succeeded", "{g}");
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_is_created_waited_for_read_and_listed() {
    let s = Server::start(OPEN);
    let http = client();
    let r = http
        .post(s.url("/v1/generations"))
        .header("prefer", "wait=30")
        .json(&json!({"prompt": "a lighthouse at dawn", "category": "scene", "subject": "coast"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let location = r.headers()["location"].to_str().expect("text").to_owned();
    assert_eq!(r.headers()["preference-applied"], "wait=30");
    let g: Value = r.json().await.expect("json");
    assert_eq!(g["status"], "succeeded");
    assert_eq!(
        location,
        format!("/v1/generations/{}", g["id"].as_str().unwrap())
    );
    assert_eq!(g["images"].as_array().map(Vec::len), Some(5));
    assert!(
        g.get("queue").is_none(),
        "an ended generation has no place in the queue"
    );

    let shown: Value = get_json(&http, s.url(&location), None).await;
    assert_eq!(shown["id"], g["id"]);
    assert_eq!(shown["progress"], 100.0);
    assert!(shown.get("client_reference").is_none(), "{shown}");

    // Without waiting: 201 at once, queued or further.
    let r = http
        .post(s.url("/v1/generations"))
        .json(&json!({"prompt": "second", "upscale": "none"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let second: Value = r.json().await.expect("json");

    // Two pages of one, then nothing more.
    let page: Value = get_json(&http, s.url("/v1/generations?limit=1"), None).await;
    assert_eq!(page["data"][0]["id"], second["id"]);
    let cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
    let page: Value = get_json(
        &http,
        s.url(&format!("/v1/generations?limit=1&cursor={cursor}")),
        None,
    )
    .await;
    assert_eq!(page["data"][0]["id"], g["id"]);
    let images: Value = get_json(&http, s.url("/v1/images?category=scene&limit=10"), None).await;
    assert_eq!(images["data"].as_array().map(Vec::len), Some(5));
    // A caller's reference is kept as given and shown back.
    let r = http
        .post(s.url("/v1/generations"))
        .json(&json!({"prompt": "a reference", "upscale": "none", "client_reference": " order #42 é "}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let with: Value = r.json().await.expect("json");
    assert_eq!(with["client_reference"], " order #42 é ");
    let shown: Value = get_json(
        &http,
        s.url(&format!("/v1/generations/{}", with["id"].as_str().unwrap())),
        None,
    )
    .await;
    assert_eq!(shown["client_reference"], " order #42 é ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_document_and_changes_nothing() {
    let s = Server::start(OPEN);
    let http = client();
    let create = |body: &'static str| {
        http.post(s.url("/v1/generations"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    problem(create("{").await.unwrap(), 400, "malformed_json").await;
    problem(
        create("{\"prompt\": \"x\", \"promt\": 1}").await.unwrap(),
        422,
        "invalid_input",
    )
    .await;
    problem(
        create("{\"prompt\": \"   \"}").await.unwrap(),
        422,
        "invalid_input",
    )
    .await;
    problem(
        create("{\"prompt\": \"x --q 3\"}").await.unwrap(),
        422,
        "invalid_input",
    )
    .await;
    problem(
        create("{\"prompt\": \"x\", \"upscale\": [7]}")
            .await
            .unwrap(),
        422,
        "invalid_input",
    )
    .await;
    problem(
        create("{\"prompt\": \"x\", \"category\": \"nope\"}")
            .await
            .unwrap(),
        422,
        "invalid_input",
    )
    .await;
    problem(
        create("{\"prompt\": \"x\", \"provider\": \"nope\"}")
            .await
            .unwrap(),
        422,
        "invalid_input",
    )
    .await;
    problem(create("[]").await.unwrap(), 422, "invalid_input").await;
    for reference in [json!("x".repeat(256)), json!("a\nb"), json!(7)] {
        let r = http
            .post(s.url("/v1/generations"))
            .json(&json!({"prompt": "x", "client_reference": reference}))
            .send()
            .await
            .unwrap();
        let p = problem(r, 422, "invalid_input").await;
        assert!(
            p.to_string().contains("client_reference")
                || p.to_string().contains("client reference"),
            "{p}"
        );
    }
    for ar in ["0:0", "banana", "99999:1", "1:1 --q 3", ""] {
        let r = http
            .post(s.url("/v1/generations"))
            .json(&json!({"prompt": "x", "aspect_ratio": ar}))
            .send()
            .await
            .unwrap();
        problem(r, 422, "invalid_input").await;
    }
    let r = http
        .post(s.url("/v1/generations"))
        .body("{\"prompt\": \"x\"}")
        .send()
        .await
        .unwrap();
    problem(r, 415, "unsupported_media_type").await;
    let huge = format!("{{\"prompt\": \"{}\"}}", "a".repeat(2 << 20));
    let r = http
        .post(s.url("/v1/generations"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    problem(r, 413, "too_large").await;
    // The server closes a connection whose body it refused unread: a new client.
    let http = client();
    let r = http
        .post(s.url("/v1/generations"))
        .header("prefer", "wait=soon")
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    problem(r, 422, "invalid_input").await;
    // Unknown and malformed ids, unknown routes and parameters.
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/v1/generations/{missing}"),
        "/v1/generations/not-an-id".to_owned(),
        format!("/v1/images/{missing}"),
        format!("/v1/images/{missing}/file"),
        format!("/v1/generations/{missing}/events"),
        "/v1/nothing-here".to_owned(),
    ] {
        problem(
            http.get(s.url(&path)).send().await.unwrap(),
            404,
            "not_found",
        )
        .await;
    }
    for path in [
        "/v1/generations?status=sideways",
        "/v1/generations?cursor=zzz",
        "/v1/generations?colour=red",
        "/v1/images?from=yesterday",
        "/v1/images?status=lost",
        "/v1/generations?limit=-1",
        "/v1/generations?limit=0",
        "/v1/images?limit=0",
    ] {
        problem(
            http.get(s.url(path)).send().await.unwrap(),
            422,
            "invalid_input",
        )
        .await;
    }
    let r = http
        .post(s.url(&format!("/v1/generations/{missing}/cancel")))
        .send()
        .await
        .unwrap();
    problem(r, 404, "not_found").await;
    let r = http.delete(s.url("/v1/generations")).send().await.unwrap();
    problem(r, 405, "method_not_allowed").await;
    // Nothing was queued by any of it.
    let page: Value = get_json(&http, s.url("/v1/generations"), None).await;
    assert_eq!(page["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_served_with_etags_ranges_and_updates() {
    let s = Server::start(OPEN);
    let http = client();
    let g = finished(&http, &s, "served bytes").await;
    let image = &g["images"][0];
    let id = image["id"].as_str().unwrap();
    let file = http
        .get(s.url(&format!("/v1/images/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status().as_u16(), 200);
    let etag = file.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", image["sha256"].as_str().unwrap()));
    assert_eq!(file.headers()["content-type"], "image/png");
    let bytes = file.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, image["size_bytes"].as_u64().unwrap());
    let again = http
        .get(s.url(&format!("/v1/images/{id}/file")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    let part = http
        .get(s.url(&format!("/v1/images/{id}/file")))
        .header("range", "bytes=0-7")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 0-7/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(0..8));
    let beyond = http
        .get(s.url(&format!("/v1/images/{id}/file")))
        .header("range", format!("bytes={}-", bytes.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status().as_u16(), 416);
    assert_eq!(beyond.headers()["content-type"], "application/problem+json");
    // The whole file when the range is of another unit, several, or for other bytes.
    for (name, value) in [("range", "items=0-5"), ("range", "bytes=0-0,5-6")] {
        let whole = http
            .get(s.url(&format!("/v1/images/{id}/file")))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(whole.status().as_u16(), 200, "{value}");
    }
    let stale = http
        .get(s.url(&format!("/v1/images/{id}/file")))
        .header("range", "bytes=0-1")
        .header("if-range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 200);
    assert_eq!(stale.bytes().await.unwrap().len(), bytes.len());
    assert!(
        image.get("path").is_none(),
        "no server file path is shown: {image}"
    );
    let thumb = http
        .get(s.url(&format!("/v1/images/{id}/thumbnail")))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status().as_u16(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/webp");
    assert_eq!(&thumb.bytes().await.unwrap()[8..12], b"WEBP");

    let updated: Value = http
        .patch(s.url(&format!("/v1/images/{id}")))
        .json(&json!({"status": "final", "tags": ["Hero", "cover"], "favourite": true, "public": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["status"], "final");
    assert_eq!(updated["tags"], json!(["cover", "hero"]));
    assert_eq!(updated["favourite"], true);
    assert_eq!(updated["public"], true);
    // A bad field changes nothing, not even the good one beside it.
    let r = http
        .patch(s.url(&format!("/v1/images/{id}")))
        .json(&json!({"status": "draft", "tags": ["no spaces please"]}))
        .send()
        .await
        .unwrap();
    problem(r, 422, "invalid_input").await;
    let shown: Value = get_json(&http, s.url(&format!("/v1/images/{id}")), None).await;
    assert_eq!(shown["status"], "final");
    let tagged: Value = get_json(&http, s.url("/v1/images?tag=hero"), None).await;
    assert_eq!(tagged["data"].as_array().map(Vec::len), Some(1));

    // An action and a new version on the image.
    let grid = g["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["role"] == "grid")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // What the grid offers (the sandbox plays every button).
    let offered: Value = get_json(&http, s.url(&format!("/v1/images/{grid}/actions")), None).await;
    assert_eq!(
        offered,
        json!({"actions": ["u1", "u2", "u3", "u4", "v1", "v2", "v3", "v4", "reroll"]})
    );
    let r = http
        .get(s.url("/v1/images/0192f0c1-0000-7000-8000-000000000001/actions"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "not_found").await;
    let r = http
        .post(s.url(&format!("/v1/images/{grid}/actions")))
        .header("prefer", "wait=30")
        .json(&json!({"action": "v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let varied: Value = r.json().await.unwrap();
    assert_eq!(varied["status"], "succeeded", "{varied}");
    assert_eq!(varied["parent_id"], g["id"]);
    let r = http
        .post(s.url(&format!("/v1/images/{grid}/actions")))
        .json(&json!({"action": "paint it blue"}))
        .send()
        .await
        .unwrap();
    problem(r, 422, "invalid_input").await;
    let r = http
        .post(s.url(&format!("/v1/images/{grid}/versions")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let version: Value = r.json().await.unwrap();
    assert_eq!(version["version"], 2);
}

/// Reads server-sent events from `r` until `until` says stop or the stream ends; returns
/// (id, event name, data) of each.
async fn read_events(
    r: &mut reqwest::Response,
    mut until: impl FnMut(&(String, String, Value)) -> bool,
) -> Vec<(String, String, Value)> {
    let mut got = Vec::new();
    let mut buffer = String::new();
    let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
    while let Ok(Some(chunk)) = r.chunk().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !data.is_empty() {
                    let event = (
                        std::mem::take(&mut id),
                        std::mem::take(&mut name),
                        serde_json::from_str(&data).unwrap_or(Value::Null),
                    );
                    data.clear();
                    let stop = until(&event);
                    got.push(event);
                    if stop {
                        return got;
                    }
                }
            } else if let Some(v) = line.strip_prefix("id:") {
                v.trim().clone_into(&mut id);
            } else if let Some(v) = line.strip_prefix("event:") {
                v.trim().clone_into(&mut name);
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_resumes_after_a_disconnect_with_last_event_id() {
    let s = Server::on(slow(300, ""));
    let http = client();
    let g: Value = http
        .post(s.url("/v1/generations"))
        .json(&json!({"prompt": "followed over http"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = g["id"].as_str().unwrap().to_owned();
    let events_url = s.url(&format!("/v1/generations/{id}/events"));
    let mut first = http.get(&events_url).send().await.unwrap();
    assert_eq!(first.headers()["content-type"], "text/event-stream");
    let mut n = 0;
    let head = read_events(&mut first, |_| {
        n += 1;
        n == 3
    })
    .await;
    drop(first);
    let last = head.last().unwrap().0.clone();
    let mut second = http
        .get(&events_url)
        .header("last-event-id", &last)
        .send()
        .await
        .unwrap();
    let tail = tokio::time::timeout(Duration::from_mins(1), read_events(&mut second, |_| false))
        .await
        .expect("the stream ends with the generation");
    let ids: Vec<u64> = head
        .iter()
        .chain(&tail)
        .map(|(i, ..)| i.parse().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "every event once, in order");
    let (_, name, data) = tail.last().unwrap();
    assert_eq!(name, "generation.completed");
    assert_eq!(data["status"], "succeeded");
    // The feed of all events replays from a position the same way.
    let mut feed = http.get(s.url("/v1/events?after=0")).send().await.unwrap();
    let all = tokio::time::timeout(
        Duration::from_secs(10),
        read_events(&mut feed, |(_, name, _)| name == "generation.completed"),
    )
    .await
    .expect("the feed replays");
    assert_eq!(all.len(), ids.len());
    let positions: Vec<i64> = all.iter().map(|(i, ..)| i.parse().unwrap()).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted);
    let from_middle = positions[2];
    let mut rest = http
        .get(s.url("/v1/events"))
        .header("last-event-id", from_middle.to_string())
        .send()
        .await
        .unwrap();
    let later = tokio::time::timeout(
        Duration::from_secs(10),
        read_events(&mut rest, |(_, name, _)| name == "generation.completed"),
    )
    .await
    .expect("the feed replays");
    assert_eq!(later.len(), ids.len() - 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_generation_ends_streams_and_exits_in_bounded_time() {
    let mut s = Server::on(slow(2000, "heartbeat_secs = 0.5\n"));
    let http = client();
    let g: Value = http
        .post(s.url("/v1/generations"))
        .json(&json!({"prompt": "interrupted"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = g["id"].as_str().unwrap().to_owned();
    let mut stream = http
        .get(s.url(&format!("/v1/generations/{id}/events")))
        .send()
        .await
        .unwrap();
    // Running: its first events came.
    read_events(&mut stream, |(_, name, _)| name == "generation.submitted").await;
    let reading = tokio::spawn(async move { read_events(&mut stream, |_| false).await });
    let code = s.stop(Duration::from_secs(15));
    assert_eq!(
        code,
        Some(0),
        "exits 0 within the grace period and the request timeout"
    );
    let rest = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .expect("the event stream ended with the server")
        .expect("joined");
    assert!(rest.iter().all(|(_, name, _)| name != "error"));
    // The generation is not lost: ended, or left to be taken over and finished.
    let out = s.data.run(&["jobs", "run", "--until-idle"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, shown) = s.data.json(&["generation", "show", &id]);
    assert_eq!(code, 0);
    assert_eq!(shown["status"], "succeeded", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let s = Server::start(OPEN);
    let http = client();
    let live = http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status().as_u16(), 200);
    let ready = http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[test]
fn serve_refuses_bad_settings_before_listening() {
    let data = DataDir::with_config("[server]\nauth = \"none\"\n");
    let out = data.run(&["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = data.run(&["serve", "--bind", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    let data = DataDir::with_config("[server]\nauth = \"maybe\"\n");
    let out = data.run(&["serve", "--bind", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    // A midjourney-proxy route naming a provider this process lacks: refused before the
    // socket opens, so nothing says it listens.
    for (key, value) in [
        ("provider", "nope"),
        ("niji_provider", "nope"),
        ("provider", " "),
    ] {
        let data = DataDir::with_config(&format!("[server.mj_proxy]\n{key} = \"{value}\"\n"));
        let out = data.run(&["serve", "--bind", "127.0.0.1:0"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(
            stderr.contains(&format!("[server.mj_proxy] {key}")),
            "{stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening"),
            "{key}: the server listened before refusing"
        );
    }
}

/// A server with users: `alice` and `bob` (users) and `root` (an administrator), each with a
/// key; `extra` is added to the configuration (`[server]` is `auth = "keys"`).
struct Users {
    server: Server,
    alice: String,
    bob: String,
    root: String,
}

pub fn key_for(data: &DataDir, email: &str, admin: bool) -> String {
    let mut args = vec!["user", "add", email];
    if admin {
        args.push("--admin");
    }
    let out = data.run(&args);
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
    String::from_utf8(out.stdout)
        .expect("text")
        .trim()
        .to_owned()
}

impl Users {
    fn start(extra: &str) -> Self {
        Self::on(DataDir::with_config(extra))
    }

    fn on(data: DataDir) -> Self {
        let alice = key_for(&data, "alice@example.com", false);
        let bob = key_for(&data, "bob@example.com", false);
        let root = key_for(&data, "root@example.com", true);
        Self {
            server: Server::on(data),
            alice,
            bob,
            root,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_sign_callers_in_and_each_sees_only_their_own_work() {
    let u = Users::start("");
    let s = &u.server;
    let http = client();
    // No key, a wrong one, another scheme.
    let r = http.get(s.url("/v1/generations")).send().await.unwrap();
    problem(r, 401, "unauthorized").await;
    for auth in [
        "Bearer atl_nope",
        "Basic YWxpY2U6eA==",
        "Bearer",
        &format!("Bearer {}x", u.alice),
    ] {
        let r = http
            .get(s.url("/v1/generations"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        problem(r, 401, "unauthorized").await;
    }
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&u.alice)
        .header("prefer", "wait=30")
        .json(&json!({"prompt": "alice's lighthouse", "upscale": [1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let g: Value = r.json().await.unwrap();
    assert_eq!(g["status"], "succeeded");
    let id = g["id"].as_str().unwrap();
    let image = g["images"][0]["id"].as_str().unwrap();
    // Bob finds none of it, on any route.
    for path in [
        format!("/v1/generations/{id}"),
        format!("/v1/generations/{id}/events"),
        format!("/v1/events?generation={id}"),
        format!("/v1/images/{image}"),
        format!("/v1/images/{image}/file"),
        format!("/v1/images/{image}/thumbnail"),
    ] {
        let r = http
            .get(s.url(&path))
            .bearer_auth(&u.bob)
            .send()
            .await
            .unwrap();
        problem(r, 404, "not_found").await;
    }
    for (path, body) in [
        (format!("/v1/generations/{id}/cancel"), json!({})),
        (
            format!("/v1/images/{image}/actions"),
            json!({"action": "reroll"}),
        ),
        (format!("/v1/images/{image}/versions"), json!({})),
    ] {
        let r = http
            .post(s.url(&path))
            .bearer_auth(&u.bob)
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(r, 404, "not_found").await;
    }
    let r = http
        .patch(s.url(&format!("/v1/images/{image}")))
        .bearer_auth(&u.bob)
        .json(&json!({"status": "archived"}))
        .send()
        .await
        .unwrap();
    problem(r, 404, "not_found").await;
    for path in ["/v1/generations", "/v1/images"] {
        let page: Value = get_json(&http, s.url(path), Some(&u.bob)).await;
        assert_eq!(page["data"], json!([]), "{path}");
    }
    // Alice's own, unchanged; the administrator sees it too.
    let mine: Value = get_json(&http, s.url(&format!("/v1/images/{image}")), Some(&u.alice)).await;
    assert_eq!(mine["status"], "draft");
    let r = http
        .get(s.url(&format!("/v1/generations/{id}")))
        .bearer_auth(&u.root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let me: Value = get_json(&http, s.url("/v1/me"), Some(&u.alice)).await;
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["role"], "user");
    // What alice did is in the audit log, under her id.
    let log: Value = get_json(&http, s.url("/v1/admin/audit"), Some(&u.root)).await;
    let generate = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "generate")
        .expect("the generation is audited");
    assert_eq!(generate["target"], format!("generation:{id}"));
    assert_eq!(generate["actor"], me["id"]);
    // Administration is for administrators.
    for path in ["/v1/admin/users", "/v1/admin/audit", "/v1/admin/accounts"] {
        let r = http
            .get(s.url(path))
            .bearer_auth(&u.alice)
            .send()
            .await
            .unwrap();
        problem(r, 403, "forbidden").await;
        let r = http
            .get(s.url(path))
            .bearer_auth(&u.root)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let r = http
        .post(s.url("/v1/admin/users/carol@example.com/keys"))
        .bearer_auth(&u.root)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(r, 404, "not_found").await;
    let r = http
        .post(s.url("/v1/admin/users"))
        .bearer_auth(&u.root)
        .json(&json!({"email": "carol@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = http
        .post(s.url("/v1/sessions"))
        .json(&json!({"email": "carol@example.com", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    problem(r, 401, "unauthorized").await;
    let session: Value = http
        .post(s.url("/v1/sessions"))
        .json(&json!({"email": "carol@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().expect("a token").to_owned();
    let me: Value = get_json(&http, s.url("/v1/me"), Some(&token)).await;
    assert_eq!(me["email"], "carol@example.com");
    let r = http
        .delete(s.url("/v1/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = http
        .get(s.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    problem(r, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_submits_against_ten_credits_accept_exactly_ten() {
    // No workers: what is accepted stays queued, so its credits stay held.
    // No rate limit: the hundred requests come from one key at once.
    let u = Users::start(
        "[credits]\nenabled = true\n[server]\nworkers = 0\nrate_limit_per_minute = 0\n",
    );
    let s = &u.server;
    let out = s
        .data
        .run(&["credits", "grant", "--user", "alice@example.com", "10"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let http = client();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (http, url, key) = (http.clone(), s.url("/v1/generations"), u.alice.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"prompt": format!("paid {i}")}))
                .send()
                .await
                .expect("sent");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("json");
            (status, body)
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (status, body) = t.await.expect("joined");
        match status {
            201 => accepted.push(body["id"].as_str().unwrap().to_owned()),
            402 => {
                assert_eq!(body["code"], "insufficient_credits", "{body}");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(accepted.len(), 10);
    assert_eq!(refused, 90);
    let credits: Value = get_json(&http, s.url("/v1/me/credits"), Some(&u.alice)).await;
    assert_eq!(credits["balance"], 0, "{credits}");
    // Canceled before it ran: its credit comes back.
    let r = http
        .post(s.url(&format!("/v1/generations/{}/cancel", accepted[0])))
        .bearer_auth(&u.alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let credits: Value = get_json(&http, s.url("/v1/me/credits"), Some(&u.alice)).await;
    assert_eq!(credits["balance"], 1, "{credits}");
    // The operator's generations cost nothing; bob has none and is refused.
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&u.bob)
        .json(&json!({"prompt": "unpaid"}))
        .send()
        .await
        .unwrap();
    problem(r, 402, "insufficient_credits").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_request() {
    let u = Users::start("[server]\nworkers = 0\n");
    let s = &u.server;
    let http = client();
    let create = |key: &str, prompt: &str, who: &str| {
        http.post(s.url("/v1/generations"))
            .bearer_auth(who)
            .header("idempotency-key", key)
            .json(&json!({"prompt": prompt}))
            .send()
    };
    let first = create("order-1", "once only", &u.alice).await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = create("order-1", "once only", &u.alice).await.unwrap();
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["id"], first["id"],
        "the same generation, not a second one"
    );
    let other = create("order-1", "another prompt", &u.alice).await.unwrap();
    problem(other, 422, "idempotency_mismatch").await;
    // Keys are per caller: bob's order-1 is his own.
    let bobs = create("order-1", "once only", &u.bob).await.unwrap();
    assert_eq!(bobs.status().as_u16(), 201);
    let bobs: Value = bobs.json().await.unwrap();
    assert_ne!(bobs["id"], first["id"]);
    // A refused request is kept too, and replayed as it was.
    let bad = create("order-2", "", &u.alice).await.unwrap();
    problem(bad, 422, "invalid_input").await;
    let bad = create("order-2", "", &u.alice).await.unwrap();
    assert_eq!(bad.headers()["idempotency-replayed"], "true");
    problem(bad, 422, "invalid_input").await;
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&u.alice)
        .header("idempotency-key", "x".repeat(300))
        .json(&json!({"prompt": "long key"}))
        .send()
        .await
        .unwrap();
    problem(r, 422, "invalid_input").await;
    // Exactly the generations asked for once each: alice's one, bob's one.
    let page: Value = get_json(&http, s.url("/v1/generations"), Some(&u.root)).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_while_the_first_request_runs_is_told_to_wait() {
    let u = Users::on(DataDir::raw(
        "[providers.sandbox]\nsize = 128\ndelay_ms = 1000\n[jobs]\npoll_secs = 0.05\n",
    ));
    let s = &u.server;
    let http = client();
    let slow = {
        let (http, url, key) = (http.clone(), s.url("/v1/generations"), u.alice.clone());
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .header("idempotency-key", "slow-1")
                .header("prefer", "wait=30")
                .json(&json!({"prompt": "slow"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&u.alice)
        .header("idempotency-key", "slow-1")
        .header("prefer", "wait=30")
        .json(&json!({"prompt": "slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    problem(r, 409, "idempotency_in_flight").await;
    assert_eq!(slow.await.unwrap(), 201);
}
