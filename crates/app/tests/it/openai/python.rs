//! The official `openai` Python client, unchanged, against the simulator: generations in
//! base64 and as URLs, `n` images, token usage, streamed partial images, an edit with files,
//! its typed errors (bad parameter, refused key, safety refusal) and its own retries on 429
//! and 5xx. `scripts/test.sh` installs it from PyPI under `target/test-peers/openai`; the test
//! reads `ATELIER_TEST_OPENAI_PYTHON` (that virtualenv's `python`) and fails without it.

use std::time::Duration;

use atelier::simulators::openai::{self as sim};

const SCRIPT: &str = r#"
import base64, io, json, sys
import openai

base, key, faulty, refusing = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=3)
out = {"version": openai.__version__}

def kind(b):
    return "png" if b.startswith(b"\x89PNG") else "jpeg" if b.startswith(b"\xff\xd8") else "webp" if b[8:12] == b"WEBP" else "?"

r = client.images.generate(model="gpt-image-1", prompt="a lighthouse", n=2, size="1536x1024", quality="low")
out["b64"] = {"count": len(r.data), "kinds": [kind(base64.b64decode(d.b64_json)) for d in r.data],
              "total_tokens": r.usage.total_tokens, "output_tokens": r.usage.output_tokens,
              "size": r.size, "quality": r.quality, "output_format": r.output_format}

r = client.images.generate(model="gpt-image-1", prompt="a fox", output_format="jpeg", output_compression=70)
out["jpeg"] = kind(base64.b64decode(r.data[0].b64_json))

r = client.images.generate(model="dall-e-3", prompt="an owl", response_format="url")
import urllib.request
out["url"] = {"starts": r.data[0].url.split("/images/")[0], "kind": kind(urllib.request.urlopen(r.data[0].url).read()),
              "revised": r.data[0].revised_prompt}

raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt="a heron")
out["headers"] = {k: raw.headers.get(k) for k in ["x-request-id", "x-ratelimit-remaining-requests", "openai-version"]}

events = []
for e in client.images.generate(model="gpt-image-1", prompt="a comet", stream=True, partial_images=2):
    events.append([e.type, getattr(e, "partial_image_index", None), e.usage.total_tokens if e.type.endswith("completed") else None])
out["stream"] = events

png = base64.b64decode(client.images.generate(model="gpt-image-1", prompt="a cat").data[0].b64_json)
r = client.images.edit(model="gpt-image-1", image=[("a.png", io.BytesIO(png), "image/png"), ("b.png", io.BytesIO(png), "image/png")], prompt="blend them")
out["edit"] = {"count": len(r.data), "image_tokens": r.usage.input_tokens_details.image_tokens}
edit_events = [e.type for e in client.images.edit(model="gpt-image-1", image=("a.png", io.BytesIO(png), "image/png"), prompt="paint it", stream=True, partial_images=1)]
out["edit_stream"] = edit_events

def error(call):
    try:
        call()
        return None
    except openai.APIStatusError as e:
        return {"class": type(e).__name__, "status": e.status_code, "code": e.code, "param": e.param, "type": e.type,
                "request_id": e.request_id}

out["bad_size"] = error(lambda: client.images.generate(model="gpt-image-2", prompt="x", size="1000x1000"))
out["unknown"] = error(lambda: client.images.generate(model="gpt-image-1", prompt="x", extra_body={"steps": 20}))
out["bad_key"] = error(lambda: openai.OpenAI(base_url=base, api_key="sk-nope", max_retries=0).images.generate(prompt="x"))
# The second simulator deals a 429 then a 500, which the client retries by itself; the third
# a safety refusal, which it does not retry.
faults = openai.OpenAI(base_url=faulty, api_key=key, max_retries=3)
out["retried"] = faults.images.generate(model="gpt-image-1", prompt="after faults").data[0].b64_json is not None
refusing = openai.OpenAI(base_url=refusing, api_key=key, max_retries=3)
out["refusal"] = error(lambda: refusing.images.generate(model="gpt-image-1", prompt="x"))
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_against_the_simulator() {
    let python = std::env::var("ATELIER_TEST_OPENAI_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ATELIER_TEST_OPENAI_PYTHON is not set: scripts/test.sh installs the official openai \
             client under target/test-peers/openai and sets it to that virtualenv's python"
        )
    });
    let config = sim::Config {
        latency: Duration::from_millis(20),
        max_side: Some(32),
        ..sim::Config::default()
    };
    let running = sim::start(config.clone()).await.unwrap();
    let faulty = sim::start(sim::Config {
        faults: sim::parse_faults("rate-limit,server-error").unwrap(),
        ..config.clone()
    })
    .await
    .unwrap();
    let refusing = sim::start(sim::Config {
        faults: sim::parse_faults("refusal").unwrap(),
        ..config
    })
    .await
    .unwrap();
    let base = running.api_base();
    let args = [
        base.clone(),
        running.key().to_owned(),
        faulty.api_base(),
        refusing.api_base(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed:\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(r["b64"]["count"], 2, "{r}");
    assert_eq!(r["b64"]["kinds"], serde_json::json!(["png", "png"]));
    assert_eq!(r["b64"]["size"], "1536x1024");
    assert_eq!(r["b64"]["quality"], "low");
    assert_eq!(r["b64"]["output_tokens"], 2 * 408);
    assert_eq!(r["jpeg"], "jpeg");
    assert_eq!(r["url"]["starts"], base.trim_end_matches("/v1"), "{r}");
    assert_eq!(r["url"]["kind"], "png");
    assert_eq!(r["url"]["revised"], "an owl");
    assert!(
        r["headers"]["x-request-id"]
            .as_str()
            .unwrap()
            .starts_with("req_"),
        "{r}"
    );
    assert_eq!(r["headers"]["openai-version"], "2020-10-01");
    let stream = r["stream"].as_array().unwrap();
    assert_eq!(
        stream
            .iter()
            .map(|e| e[0].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "image_generation.partial_image",
            "image_generation.partial_image",
            "image_generation.completed"
        ],
        "{r}"
    );
    assert_eq!(
        (stream[0][1].as_u64(), stream[1][1].as_u64()),
        (Some(0), Some(1))
    );
    assert!(stream[2][2].as_u64().unwrap() > 0);
    assert_eq!(r["edit"]["count"], 1);
    assert_eq!(r["edit"]["image_tokens"], 130);
    assert_eq!(
        r["edit_stream"],
        serde_json::json!(["image_edit.partial_image", "image_edit.completed"])
    );
    let bad = &r["bad_size"];
    assert_eq!(bad["class"], "BadRequestError", "{r}");
    assert_eq!(
        (bad["status"].as_u64(), bad["param"].as_str()),
        (Some(400), Some("size"))
    );
    assert_eq!(bad["type"], "invalid_request_error");
    assert!(bad["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(r["unknown"]["code"], "unknown_parameter");
    assert_eq!(r["unknown"]["param"], "steps");
    assert_eq!(r["bad_key"]["class"], "AuthenticationError");
    assert_eq!(r["bad_key"]["code"], "invalid_api_key");
    assert_eq!(r["retried"], true);
    assert_eq!(r["refusal"]["class"], "BadRequestError");
    assert_eq!(r["refusal"]["code"], "moderation_blocked");
    let stats = faulty.stats();
    assert_eq!(stats.faults, ["rate-limit", "server-error"]);
    // Three tries for the call the client retried, one for the refusal.
    assert_eq!(stats.requests, 3);
    assert_eq!(refusing.stats().requests, 1);
    assert!(running.stats().faults.is_empty());
    running.shutdown().await;
    faulty.shutdown().await;
    refusing.shutdown().await;
}
