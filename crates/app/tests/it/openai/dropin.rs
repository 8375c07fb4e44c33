//! The drop-in OpenAI Images route of `atelier serve` (`POST /v1/images/generations`), with
//! the official `openai` Python client unchanged but for its base URL and key: a model mapped
//! to the sandbox (a grid: `n` upscales, URLs by default for `dall-e` models), one mapped to
//! the OpenAI provider (its own `n`, `size`, `quality`, token usage) in front of the OpenAI
//! simulator, the default provider, and OpenAI's typed errors; what it made is the key's own,
//! in the catalogue, as any generation.

use std::time::Duration;

use atelier::simulators::openai::{self as sim};

use crate::http::{Server, key_for};
use crate::support::DataDir;

const SCRIPT: &str = r#"
import base64, json, sys, urllib.request
import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
out = {}

def kind(b):
    return "png" if b.startswith(b"\x89PNG") else "jpeg" if b.startswith(b"\xff\xd8") else "webp" if b[8:12] == b"WEBP" else "?"

def fetch(url, auth=True):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key} if auth else {})
    try:
        return kind(urllib.request.urlopen(req).read())
    except urllib.error.HTTPError as e:
        return e.code

r = client.images.generate(model="dall-e-3", prompt="a lighthouse at dusk", n=2, size="1792x1024")
out["grid"] = {"count": len(r.data), "b64": [d.b64_json for d in r.data],
               "urls": [d.url.split("/v1/")[0] for d in r.data], "kinds": [fetch(d.url) for d in r.data],
               "anonymous": fetch(r.data[0].url, auth=False), "created": r.created}

r = client.images.generate(model="gpt-image-1", prompt="a fox in snow", n=2, size="1024x1536", quality="low")
out["openai"] = {"count": len(r.data), "kinds": [kind(base64.b64decode(d.b64_json)) for d in r.data],
                 "total_tokens": r.usage.total_tokens if r.usage else None}

r = client.images.generate(prompt="an owl", response_format="b64_json")
out["default"] = {"count": len(r.data), "kind": kind(base64.b64decode(r.data[0].b64_json))}

def error(call):
    try:
        call()
        return None
    except openai.APIStatusError as e:
        return {"class": type(e).__name__, "status": e.status_code, "code": e.code, "param": e.param,
                "type": e.type, "message": e.message}

out["unknown_model"] = error(lambda: client.images.generate(model="nope-9", prompt="x"))
out["too_many"] = error(lambda: client.images.generate(model="dall-e-3", prompt="x", n=5))
out["bad_format"] = error(lambda: client.images.generate(model="dall-e-3", prompt="x", response_format="gif"))
out["stream"] = error(lambda: client.images.generate(model="gpt-image-1", prompt="x", stream=True))
out["unknown_field"] = error(lambda: client.images.generate(prompt="x", extra_body={"steps": 3}))
out["bad_size"] = error(lambda: client.images.generate(model="gpt-image-1", prompt="x", size="10x10"))
out["negative_n"] = error(lambda: client.images.generate(model="dall-e-3", prompt="x", n=-1))
out["malformed_size"] = error(lambda: client.images.generate(model="dall-e-3", prompt="x", size="axb"))
out["banned"] = error(lambda: client.images.generate(prompt="a forbidden picture"))
out["bad_key"] = error(lambda: openai.OpenAI(base_url=base + "/v1", api_key="atl_nope", max_retries=0).images.generate(prompt="x"))
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_generates_through_the_drop_in_route() {
    let python = std::env::var("ATELIER_TEST_OPENAI_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ATELIER_TEST_OPENAI_PYTHON is not set: scripts/test.sh installs the official openai \
             client under target/test-peers/openai and sets it to that virtualenv's python"
        )
    });
    let upstream = sim::start(sim::Config {
        latency: Duration::from_millis(10),
        max_side: Some(32),
        ..sim::Config::default()
    })
    .await
    .unwrap();
    let data = DataDir::with_config(&format!(
        "[limits]\nbanned_words = [\"forbidden\"]\n\
         [providers.openai]\nenabled = true\napi_base = \"{}\"\napi_key = \"{}\"\n\
         [server.openai_images.models]\n\"dall-e-3\" = \"sandbox\"\n\
         \"gpt-image-1\" = \"openai:gpt-image-1\"\n",
        upstream.api_base(),
        upstream.key()
    ));
    let alice = key_for(&data, "alice@example.com", false);
    let bob = key_for(&data, "bob@example.com", false);
    let server = tokio::task::spawn_blocking(move || Server::on(data))
        .await
        .unwrap();
    let (base, key) = (server.base.clone(), alice.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .args([base, key])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed:\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    // The sandbox draws a grid: n=2 is its first two upscales, as URLs (a dall-e model) on
    // this server, which serves them to the key's owner only.
    let grid = &r["grid"];
    assert_eq!(grid["count"], 2, "{r}");
    assert_eq!(grid["b64"], serde_json::json!([null, null]));
    assert_eq!(
        grid["urls"],
        serde_json::json!([server.base.clone(), server.base.clone()])
    );
    assert_eq!(grid["kinds"], serde_json::json!(["png", "png"]));
    assert_eq!(grid["anonymous"], 401);
    assert!(grid["created"].as_i64().unwrap() > 1_700_000_000);
    // The OpenAI provider takes n, size and quality itself, and bills tokens.
    assert_eq!(r["openai"]["count"], 2, "{r}");
    assert_eq!(r["openai"]["kinds"], serde_json::json!(["png", "png"]));
    assert!(r["openai"]["total_tokens"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(upstream.stats().asked.last(), Some(&2));
    assert_eq!(r["default"], serde_json::json!({"count": 1, "kind": "png"}));

    let error = |name: &str, class: &str, status: u64, code: &str| {
        let e = &r[name];
        assert_eq!(e["class"], class, "{name}: {r}");
        assert_eq!(e["status"], status, "{name}: {e}");
        assert_eq!(e["code"], code, "{name}: {e}");
    };
    error("unknown_model", "NotFoundError", 404, "model_not_found");
    error("too_many", "BadRequestError", 400, "invalid_value");
    assert_eq!(r["too_many"]["param"], "n");
    error("bad_format", "BadRequestError", 400, "invalid_value");
    assert_eq!(r["bad_format"]["param"], "response_format");
    error("stream", "BadRequestError", 400, "invalid_value");
    assert_eq!(r["stream"]["param"], "stream");
    error("unknown_field", "BadRequestError", 400, "invalid_value");
    assert_eq!(r["unknown_field"]["param"], "steps");
    // A field its type refuses is named as OpenAI names it.
    error("negative_n", "BadRequestError", 400, "invalid_value");
    assert_eq!(r["negative_n"]["param"], "n");
    assert!(
        r["unknown_field"]["message"]
            .as_str()
            .unwrap()
            .contains("steps"),
        "{r}"
    );
    error("bad_size", "BadRequestError", 400, "invalid_value");
    // A size that is no size is refused for a provider that takes none, not dropped.
    error("malformed_size", "BadRequestError", 400, "invalid_value");
    assert_eq!(r["malformed_size"]["param"], "size");
    error("banned", "BadRequestError", 400, "invalid_value");
    error("bad_key", "AuthenticationError", 401, "invalid_api_key");
    assert_eq!(r["bad_key"]["type"], "invalid_request_error");
    // What was refused never reached the provider: two OpenAI generations in all.
    assert_eq!(upstream.stats().generations, 1);

    // The generations are alice's, in the catalogue as any other; bob sees none of them.
    let mine = list(&server, &alice).await;
    let providers: Vec<&str> = mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["sandbox", "openai", "sandbox"], "{mine}");
    assert_eq!(list(&server, &bob).await["data"], serde_json::json!([]));
    upstream.shutdown().await;
}

async fn list(server: &Server, key: &str) -> serde_json::Value {
    crate::http::client()
        .get(server.url("/v1/generations"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[test]
fn mappings_the_server_cannot_honour_are_refused_before_it_listens() {
    for (mapping, says) in [
        ("\"m\" = \"nope\"", "unknown provider \"nope\""),
        (
            "\"m\" = \"sandbox:some-model\"",
            "provider \"sandbox\" takes no model",
        ),
    ] {
        let data = DataDir::with_config(&format!("[server.openai_images.models]\n{mapping}\n"));
        let out = data
            .cmd()
            .args(["serve", "--bind", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mapping}: {stderr}");
        assert!(stderr.contains(says), "{mapping}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_about_the_prompt_name_it_and_create_nothing() {
    let data = DataDir::with_config("");
    let key = key_for(&data, "alice@example.com", false);
    let server = tokio::task::spawn_blocking(move || Server::on(data))
        .await
        .unwrap();
    let long = "a".repeat(6001);
    for body in [
        serde_json::json!({}),
        serde_json::json!({"prompt": null}),
        serde_json::json!({"prompt": 5}),
        serde_json::json!({"prompt": ["a fox"]}),
        serde_json::json!({"prompt": ""}),
        serde_json::json!({"prompt": "   \n"}),
        serde_json::json!({"prompt": long}),
        serde_json::json!({"prompt": "a fox\u{7}"}),
        serde_json::json!({"prompt": "a fox --q 3"}),
    ] {
        let r = crate::http::client()
            .post(server.url("/v1/images/generations"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let e: serde_json::Value = r.json().await.unwrap();
        let shown = body.to_string().chars().take(60).collect::<String>();
        assert_eq!(status, 400, "{shown}: {e}");
        assert_eq!(e["error"]["param"], "prompt", "{shown}: {e}");
        assert_eq!(e["error"]["code"], "invalid_value", "{shown}: {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error", "{shown}: {e}");
    }
    assert_eq!(list(&server, &key).await["data"], serde_json::json!([]));
}
