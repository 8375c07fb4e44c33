//! The MCP server driven by a real MCP client (rmcp's client side): `atelier mcp` as a child
//! process over stdio, and `/mcp` of `atelier serve` over streamable HTTP with API keys. One
//! scenario runs on both: initialise, list the tools and their schemas, generate with `wait`
//! (progress notifications and thumbnails received), an action, status and tag changes, a
//! search, resources and prompts, bad arguments and unknown ids as tool errors. Over HTTP,
//! also: no key is a 401, another user's image is not found, a foreign `Host` is refused.
//! And the reference MCP Inspector CLI (npm, installed by scripts/test.sh) lists the tools and
//! generates over both transports.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, GetPromptRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::http::{Server, client};
use crate::support::DataDir;

/// A sandbox that takes a few steps, so a wait sees progress; its grid is larger than a
/// thumbnail, so the thumbnail shown is a shrunk one.
const SLOW_SANDBOX: &str = "[providers.sandbox]\nsize = 768\ndelay_ms = 40\n\
    [jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n";

const TOOLS: [&str; 12] = [
    "cancel_generation",
    "create_version",
    "generate_image",
    "get_generation",
    "get_image",
    "list_images",
    "list_providers",
    "run_action",
    "search_images",
    "set_image_status",
    "tag_image",
    "wait_for_generation",
];

/// A client that keeps the progress it is told.
#[derive(Clone, Default)]
struct Listener {
    progress: Arc<Mutex<Vec<f64>>>,
}

impl ClientHandler for Listener {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params.progress);
    }
}

type Session = RunningService<RoleClient, Listener>;

async fn call(session: &Session, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    session
        .peer()
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool} answered with a protocol error: {e}"))
}

fn texts(r: &CallToolResult) -> Vec<String> {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// The first text block that is a JSON object.
fn record(r: &CallToolResult) -> Value {
    texts(r)
        .iter()
        .find_map(|t| {
            serde_json::from_str::<Value>(t)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or_else(|| panic!("no JSON record in {:?}", texts(r)))
}

fn failed(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
}

/// A tool error whose text says `says`.
fn assert_tool_error(r: &CallToolResult, says: &str) {
    assert!(failed(r), "expected a tool error, got {:?}", texts(r));
    let all = texts(r).join("\n");
    assert!(all.contains(says), "{says:?} not in {all:?}");
}

/// Every thumbnail shown: a WebP at most 512 px on its longest side; and the links.
fn pictures(r: &CallToolResult) -> (usize, Vec<String>) {
    let mut thumbnails = 0;
    for c in &r.content {
        if let Some(image) = c.as_image() {
            assert_eq!(image.mime_type, "image/webp");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&image.data)
                .expect("base64");
            let decoded = image::load_from_memory(&bytes).expect("a WebP picture");
            assert!(decoded.width().max(decoded.height()) <= 512);
            thumbnails += 1;
        }
    }
    let links = r
        .content
        .iter()
        .filter_map(|c| c.as_resource_link().map(|l| l.uri.clone()))
        .collect();
    (thumbnails, links)
}

/// The scenario both transports run; `paths` says whether file paths may be shown.
async fn scenario(session: &Session, progress: &Arc<Mutex<Vec<f64>>>, paths: bool) -> Value {
    let info = session.peer().peer_info().expect("initialised");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("atelier")
    );
    assert!(info.capabilities.tools.is_some() && info.capabilities.resources.is_some());

    let tools = session.peer().list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS);
    let generate = tools.iter().find(|t| t.name == "generate_image").unwrap();
    let schema = Value::Object((*generate.input_schema).clone());
    assert_eq!(schema["required"], json!(["prompt"]), "{schema}");
    assert_eq!(schema["additionalProperties"], json!(false), "{schema}");
    assert!(schema["properties"]["wait"].is_object(), "{schema}");
    let action = tools.iter().find(|t| t.name == "run_action").unwrap();
    let action = Value::Object((*action.input_schema).clone()).to_string();
    assert!(
        action.contains("zoom-out-1.5x") && action.contains("v4"),
        "{action}"
    );

    // Generate and wait: progress is told, the pictures are seen.
    progress.lock().unwrap().clear();
    let r = call(
        session,
        "generate_image",
        json!({"prompt": "a red squirrel reading, warm light", "category": "character",
               "subject": "squirrel", "upscale": [1, 2], "wait": 60}),
    )
    .await;
    assert!(!failed(&r), "{:?}", texts(&r));
    // The client hands notifications to its handler concurrently, so their order here is
    // not the wire's: each value comes once, and the last step (100) is among them.
    let mut told = progress.lock().unwrap().clone();
    told.sort_by(f64::total_cmp);
    assert!(told.len() >= 3, "progress notifications: {told:?}");
    assert!(
        told.windows(2).all(|w| w[0] < w[1]),
        "a value repeated: {told:?}"
    );
    assert_eq!(told.last().copied(), Some(100.0), "{told:?}");
    let (thumbnails, links) = pictures(&r);
    assert_eq!(thumbnails, 3, "the grid and two upscales");
    assert_eq!(links.len(), 3);
    assert!(links.iter().all(|l| l.starts_with("atelier://images/")));
    let generation = record(&r);
    assert_eq!(generation["status"], "succeeded");
    assert_eq!(
        generation["images"][0]["path"].is_string(),
        paths,
        "{generation}"
    );
    let grid = generation["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["role"] == "grid")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // An action on the grid, without waiting: it says how to continue; then waiting ends it.
    let r = call(
        session,
        "run_action",
        json!({"image_id": grid, "action": "v2", "wait": 0}),
    )
    .await;
    assert!(!failed(&r), "{:?}", texts(&r));
    assert!(
        texts(&r)[0].contains("wait_for_generation"),
        "{:?}",
        texts(&r)
    );
    let varied = record(&r)["id"].as_str().unwrap().to_owned();
    let r = call(
        session,
        "wait_for_generation",
        json!({"generation_id": varied, "wait": 60}),
    )
    .await;
    assert!(!failed(&r), "{:?}", texts(&r));
    assert_eq!(record(&r)["parent_id"], generation["id"]);
    assert_eq!(pictures(&r).0, 1, "a variation's grid, no upscale asked");

    // Status and tags.
    let r = call(
        session,
        "set_image_status",
        json!({"image_id": grid, "status": "final"}),
    )
    .await;
    assert!(!failed(&r), "{:?}", texts(&r));
    assert_eq!(record(&r)["status"], "final");
    let r = call(
        session,
        "tag_image",
        json!({"image_id": grid, "tags": ["Chapter-1", "squirrel"]}),
    )
    .await;
    assert_eq!(record(&r)["tags"], json!(["chapter-1", "squirrel"]));
    let r = call(session, "list_images", json!({"status": "final"})).await;
    assert_eq!(record(&r)["count"], 1);
    assert_eq!(record(&r)["images"][0]["id"], grid.as_str());

    // Search: words of the prompt in any case; `%` and `_` are no wildcards.
    let r = call(
        session,
        "search_images",
        json!({"text": "RED SQUIRREL", "thumbnails": true}),
    )
    .await;
    // The first generation's three and the variation's grid (it keeps the prompt).
    assert_eq!(record(&r)["count"], 4, "{:?}", texts(&r));
    assert_eq!(pictures(&r).0, 4);
    for nothing in ["%", "red_squirrel", "heron"] {
        let r = call(session, "search_images", json!({"text": nothing})).await;
        assert_eq!(record(&r)["count"], 0, "{nothing}: {:?}", texts(&r));
    }

    // One image, its resource and a prompt.
    let r = call(session, "get_image", json!({"image_id": grid})).await;
    assert_eq!(pictures(&r), (1, vec![format!("atelier://images/{grid}")]));
    assert_eq!(record(&r)["prompt"], "a red squirrel reading, warm light");
    let read = session
        .peer()
        .read_resource(ReadResourceRequestParams::new(format!(
            "atelier://images/{grid}"
        )))
        .await
        .unwrap();
    assert_eq!(read.contents.len(), 2);
    match &read.contents[1] {
        ResourceContents::BlobResourceContents {
            mime_type, blob, ..
        } => {
            assert_eq!(mime_type.as_deref(), Some("image/png"));
            let png = base64::engine::general_purpose::STANDARD
                .decode(blob)
                .unwrap();
            assert_eq!(image::load_from_memory(&png).unwrap().width(), 768);
        }
        other => panic!("the full file, not {other:?}"),
    }
    let prompt = session
        .peer()
        .get_prompt(
            GetPromptRequestParams::new("illustrate").with_arguments(
                json!({"category": "scene", "subject": "the mill"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert!(format!("{:?}", prompt.messages).contains("the mill"));

    // Providers: the sandbox, its actions and what it costs.
    let r = call(session, "list_providers", json!({})).await;
    let sandbox = &record(&r)["providers"][0];
    assert_eq!(sandbox["name"], "sandbox");
    assert_eq!(sandbox["health"], "ready");
    assert_eq!(sandbox["costs"]["imagine"], 1);
    assert!(sandbox["actions"].to_string().contains("zoom-out-2x"));

    // Bad arguments and unknown ids are tool errors; nothing is written.
    let before = call(session, "list_images", json!({})).await;
    let mut wrong = Vec::new();
    for (tool, args, says) in [
        ("generate_image", json!({"prompt": 5}), "expected a string"),
        (
            "generate_image",
            json!({"prompt": "x", "colour": "red"}),
            "colour",
        ),
        ("generate_image", json!({"prompt": "   "}), "prompt"),
        (
            "generate_image",
            json!({"prompt": "a fox", "upscale": [7]}),
            "7",
        ),
        (
            "generate_image",
            json!({"prompt": "a fox", "provider": "dall-e"}),
            "dall-e",
        ),
        (
            "set_image_status",
            json!({"image_id": grid, "status": "best"}),
            "best",
        ),
        (
            "tag_image",
            json!({"image_id": grid, "tags": ["no spaces"]}),
            "tag",
        ),
        (
            "run_action",
            json!({"image_id": grid, "action": "zoom-out-2x"}),
            "upscale",
        ),
        (
            "get_image",
            json!({"image_id": "0190f0e2-58a0-7c3e-9d1c-2b5e3a9f4c11"}),
            "not found",
        ),
        ("get_image", json!({"image_id": "not-an-id"}), "not found"),
        (
            "get_generation",
            json!({"generation_id": grid}),
            "not found",
        ),
        (
            "cancel_generation",
            json!({"generation_id": generation["id"]}),
            "already",
        ),
    ] {
        let r = call(session, tool, args.clone()).await;
        let said = texts(&r).join("\n");
        if !failed(&r) || !said.contains(says) || said.contains("/tmp") {
            wrong.push(format!(
                "{tool} {args}: expected a tool error saying {says:?}, got {said:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let after = call(session, "list_images", json!({})).await;
    assert_eq!(record(&after)["count"], record(&before)["count"]);
    json!({"grid": grid, "generation": generation["id"]})
}

/// `atelier mcp` on `data`, as a child process.
async fn stdio(data: &DataDir) -> (Session, Arc<Mutex<Vec<f64>>>) {
    let mut cmd = tokio::process::Command::from(data.cmd());
    cmd.arg("mcp").stderr(Stdio::inherit());
    let transport = TokioChildProcess::new(cmd).expect("atelier mcp starts");
    let listener = Listener::default();
    let progress = listener.progress.clone();
    let session = listener.serve(transport).await.expect("initialised");
    (session, progress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_serves_the_operator_with_pictures_progress_and_tool_errors() {
    let data = DataDir::raw(SLOW_SANDBOX);
    let (session, progress) = stdio(&data).await;
    scenario(&session, &progress, true).await;
    session.cancel().await.unwrap();
    // The operator's generations are the CLI's too.
    let (code, listed) = data.json(&["image", "list"]);
    assert_eq!(code, 0);
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
}

#[test]
fn stdio_writes_nothing_but_protocol_to_stdout() {
    let data = DataDir::new();
    // The logs go to a file: a pipe nobody reads until the end would fill and block them.
    let log = data.path().join("stderr.log");
    let mut child = data
        .cmd()
        .args(["mcp", "--grace", "5"])
        .env("ATELIER_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("atelier mcp starts");
    let mut stdin = child.stdin.take().unwrap();
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "generate_image", "arguments": {"prompt": "a heron", "wait": 30}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "get_image", "arguments": {"image_id": "nope"}}}),
    ];
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut answers = Vec::new();
    let mut lines_out = stdout.lines();
    for line in &lines {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        if line.get("id").is_none() {
            continue;
        }
        // Read up to this request's answer (notifications may come first).
        loop {
            let out = lines_out.next().expect("an answer").unwrap();
            let message: Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("stdout has a line that is not JSON ({e}): {out:?}"));
            assert_eq!(message["jsonrpc"], "2.0", "{out}");
            if message.get("id") == line.get("id") {
                answers.push(message);
                break;
            }
        }
    }
    drop(stdin);
    for rest in lines_out {
        let rest = rest.unwrap();
        let message: Value = serde_json::from_str(&rest)
            .unwrap_or_else(|e| panic!("stdout has a line that is not JSON ({e}): {rest:?}"));
        assert_eq!(message["jsonrpc"], "2.0");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("serving MCP on stdio"),
        "the logs go to stderr: {stderr}"
    );
    assert_eq!(answers[0]["result"]["serverInfo"]["name"], "atelier");
    assert_eq!(
        answers[1]["result"]["tools"].as_array().unwrap().len(),
        TOOLS.len()
    );
    assert_eq!(answers[2]["result"]["isError"], false, "{}", answers[2]);
    assert_eq!(answers[3]["result"]["isError"], true, "{}", answers[3]);
}

/// A user and their API key, made with the CLI.
fn key_for(data: &DataDir, email: &str) -> String {
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

async fn over_http(server: &Server, key: &str) -> (Session, Arc<Mutex<Vec<f64>>>) {
    let config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")).auth_header(key);
    let transport = StreamableHttpClientTransport::from_config(config);
    let listener = Listener::default();
    let progress = listener.progress.clone();
    let session = listener
        .serve(transport)
        .await
        .expect("initialised over HTTP");
    (session, progress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_each_key_its_own_work_and_refuses_strangers() {
    let data = DataDir::raw(SLOW_SANDBOX);
    let alice = key_for(&data, "alice@example.com");
    let bob = key_for(&data, "bob@example.com");
    let server = Server::on(data);
    let http = client();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    // No key, or a wrong one: 401 before MCP reads anything.
    for key in [None, Some("atl_nope")] {
        let mut request = http
            .post(server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    // A Host this server is not known by (DNS rebinding) is refused.
    let r = http
        .post(server.url("/mcp"))
        .bearer_auth(&alice)
        .header("host", "attacker.example")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let (session, progress) = over_http(&server, &alice).await;
    let made = scenario(&session, &progress, false).await;
    // Bob sees none of it.
    let (theirs, _) = over_http(&server, &bob).await;
    let r = call(&theirs, "get_image", json!({"image_id": made["grid"]})).await;
    assert_tool_error(&r, "not found");
    let r = call(
        &theirs,
        "get_generation",
        json!({"generation_id": made["generation"]}),
    )
    .await;
    assert_tool_error(&r, "not found");
    let r = call(&theirs, "list_images", json!({})).await;
    assert_eq!(record(&r)["count"], 0);
    let read = theirs
        .peer()
        .read_resource(ReadResourceRequestParams::new(format!(
            "atelier://images/{}",
            made["grid"].as_str().unwrap()
        )))
        .await;
    assert!(read.is_err(), "another user's resource is not found");
    theirs.cancel().await.unwrap();
    session.cancel().await.unwrap();
}

/// The MCP Inspector in CLI mode (`ATELIER_TEST_MCP_INSPECTOR`: the package's `cli/build/cli.js`,
/// installed by scripts/test.sh with npm).
fn inspector() -> std::process::Command {
    let cli = std::env::var("ATELIER_TEST_MCP_INSPECTOR")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ATELIER_TEST_MCP_INSPECTOR is not set: run scripts/test.sh, which installs the \
                 MCP Inspector from npm, or set it to the inspector's cli/build/cli.js"
            )
        });
    let mut cmd = std::process::Command::new("node");
    cmd.arg(cli).arg("--cli");
    cmd
}

/// Runs the inspector with `args`; its stdout as JSON.
fn inspect(args: &[&str]) -> Value {
    let out = inspector().args(args).output().expect("node runs");
    assert!(
        out.status.success(),
        "inspector {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspector {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn the_mcp_inspector_lists_and_generates_over_stdio() {
    let data = DataDir::new();
    let bin = env!("CARGO_BIN_EXE_atelier");
    let dir = data.path().to_str().unwrap();
    let listed = inspect(&[bin, "--data-dir", dir, "mcp", "--method", "tools/list"]);
    assert_eq!(
        listed["tools"].as_array().unwrap().len(),
        TOOLS.len(),
        "{listed}"
    );
    let made = inspect(&[
        bin,
        "--data-dir",
        dir,
        "mcp",
        "--method",
        "tools/call",
        "--tool-name",
        "generate_image",
        "--tool-arg",
        "prompt=a lighthouse at dusk",
    ]);
    assert_eq!(made["isError"], false, "{made}");
    assert!(made["content"].to_string().contains("image/webp"), "{made}");
}

#[test]
fn the_mcp_inspector_lists_and_generates_over_http() {
    // Inspector 0.15's CLI sends no headers: the server runs without keys, on loopback.
    let server = Server::start("[server]\nauth = \"none\"\n");
    let url = server.url("/mcp");
    let common = [url.as_str(), "--transport", "http"];
    let listed = inspect(&[&common[..], &["--method", "tools/list"]].concat());
    assert_eq!(
        listed["tools"].as_array().unwrap().len(),
        TOOLS.len(),
        "{listed}"
    );
    let made = inspect(
        &[
            &common[..],
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "generate_image",
                "--tool-arg",
                "prompt=a lighthouse at dusk",
            ],
        ]
        .concat(),
    );
    assert_eq!(made["isError"], false, "{made}");
    assert!(made["content"].to_string().contains("image/webp"), "{made}");
}

#[test]
fn stdio_without_a_client_ends_with_a_clear_error() {
    let data = DataDir::new();
    let mut child = data
        .cmd()
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    // A client that never initialised is an error, said on stderr, not a crash.
    assert_eq!(status.code(), Some(2));
}
