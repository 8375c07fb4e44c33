//! A client library of the proxy protocol, unchanged: 302.AI's `@302ai/ai-sdk` under the
//! Vercel AI SDK's `generateImage`. Its Midjourney model submits an imagine, polls
//! `/mj/task/{id}/fetch` until `SUCCESS`, presses the task's `U1` button through
//! `/mj/submit/action`, polls that task, and downloads its `imageUrl` with no key. Then its
//! errors: a banned word, a key the server does not know.

use serde_json::Value;

use super::{Proxy, anonymous};

const SCRIPT: &str = r#"
const { createAI302 } = require("@302ai/ai-sdk");
const { experimental_generateImage: generateImage } = require("ai");

const [base, key] = process.argv.slice(2);
const out = {};

async function error(call) {
  try {
    await call();
    return null;
  } catch (e) {
    let body = null;
    try { body = JSON.parse(e.responseBody); } catch (_) {}
    return { status: e.statusCode ?? null, body };
  }
}

(async () => {
  const ai302 = createAI302({ apiKey: key, baseURL: base });
  const r = await generateImage({
    model: ai302.image("midjourney/6.1"),
    prompt: "a lighthouse at dusk",
    providerOptions: { ai302: { upscaleIndexes: [1] } },
  });
  out.images = r.images.map((i) => Buffer.from(i.uint8Array).subarray(0, 8).toString("hex"));

  out.banned = await error(() => generateImage({
    model: ai302.image("midjourney/6.1"),
    prompt: "a forbidden picture",
    providerOptions: { ai302: { upscaleIndexes: [1] } },
  }));
  const stranger = createAI302({ apiKey: "atl_nope", baseURL: base });
  out.bad_key = await error(() => generateImage({
    model: stranger.image("midjourney/6.1"),
    prompt: "a fox",
    providerOptions: { ai302: { upscaleIndexes: [1] } },
  }));
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_302ai_sdk_imagines_and_upscales_through_the_proxy_routes() {
    let modules = std::env::var("ATELIER_TEST_MJPROXY_SDK").unwrap_or_else(|_| {
        panic!(
            "ATELIER_TEST_MJPROXY_SDK is not set: scripts/test.sh installs @302ai/ai-sdk and ai \
             under target/test-peers/mjproxy and sets it to that node_modules folder"
        )
    });
    let p = Proxy::start(0, "").await;
    let script = p.server.data.path().join("client.js");
    std::fs::write(&script, SCRIPT).unwrap();
    let (base, key) = (p.server.base.clone(), p.alice.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .args([base, key])
            .env("NODE_PATH", modules)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed:\n{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    // One upscaled picture, a PNG, downloaded from its imageUrl without a key.
    assert_eq!(r["images"], serde_json::json!(["89504e470d0a1a0a"]), "{r}");
    // The banned word: 400 with the proxy's code 24 and the word.
    assert_eq!(r["banned"]["status"], 400, "{r}");
    assert_eq!(r["banned"]["body"]["code"], 24, "{r}");
    assert_eq!(r["banned"]["body"]["properties"]["bannedWord"], "forbidden");
    // An unknown key: 401, code 4.
    assert_eq!(r["bad_key"]["status"], 401, "{r}");
    assert_eq!(r["bad_key"]["body"]["code"], 4, "{r}");

    // What it made is alice's: the imagine (a grid with its buttons) and the U1 upscale.
    let (status, tasks) = p.get(&p.alice, "/mj/task/list").await;
    assert_eq!(status, 200, "{tasks}");
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let (upscale, imagine) = (&tasks[0], &tasks[1]);
    assert_eq!(imagine["action"], "IMAGINE");
    assert_eq!(imagine["status"], "SUCCESS");
    assert_eq!(imagine["progress"], "100%");
    assert!(
        imagine["prompt"]
            .as_str()
            .unwrap()
            .starts_with("a lighthouse at dusk")
    );
    let labels: Vec<&str> = imagine["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels[..4], ["U1", "U2", "U3", "U4"], "{imagine}");
    assert_eq!(upscale["action"], "UPSCALE");
    assert_eq!(upscale["status"], "SUCCESS");
    assert!(
        upscale["description"]
            .as_str()
            .unwrap()
            .contains(imagine["id"].as_str().unwrap())
    );
    // Its picture opens without a key; bob sees none of it.
    let (status, bytes) = anonymous(upscale["imageUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(bytes.starts_with(b"\x89PNG"));
    let (status, theirs) = p.get(&p.bob, "/mj/task/list").await;
    assert_eq!((status, theirs), (200, serde_json::json!([])));
    assert_eq!(p.generations(&p.bob).await, 0);
}
