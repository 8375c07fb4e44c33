//! The official `replicate` Python client, unchanged, against the simulator: `replicate.run`
//! by model name (its `Prefer: wait`), `predictions.create` by model and by version then
//! `wait()` (its polling, and its reading of the logs' progress bar), the list, `cancel` on a
//! stuck prediction, and its typed errors (a 422 with the field, a throttled create, a refused
//! token, an NSFW failure as `ModelError`). `scripts/test.sh` installs it from PyPI under
//! `target/test-peers/replicate`; the test reads `ATELIER_TEST_REPLICATE_PYTHON` (that
//! virtualenv's `python`) and fails without it.

use std::time::Duration;

use atelier::simulators::replicate::{self as sim};

const SCRIPT: &str = r#"
import json, sys, urllib.request
import replicate
from replicate.exceptions import ModelError, ReplicateError

root, token, version, faulty = sys.argv[1:5]
client = replicate.Client(api_token=token, base_url=root)
out = {"version": replicate.__about__.__version__}

def kind(b):
    return "png" if b.startswith(b"\x89PNG") else "jpeg" if b.startswith(b"\xff\xd8") else "webp" if b[8:12] == b"WEBP" else "mp4" if b[4:8] == b"ftyp" else "?"

urls = client.run("black-forest-labs/flux-schnell", input={"prompt": "a lighthouse", "num_outputs": 2, "output_format": "png"})
out["run"] = [kind(urllib.request.urlopen(str(u)).read()) for u in urls]
clip = client.run("wan-video/wan-2.2-t2v-fast", input={"prompt": "a comet", "num_frames": 6})
out["clip"] = kind(urllib.request.urlopen(str(clip)).read())

p = client.predictions.create(model="black-forest-labs/flux-dev", input={"prompt": "a fox", "num_inference_steps": 10})
out["created"] = p.status
p.wait()
out["waited"] = {"status": p.status, "outputs": len(p.output), "image_count": p.metrics["image_count"],
                 "progress": [p.progress.current, p.progress.total] if p.progress else None,
                 "get": p.urls["get"].startswith(root)}

p = client.predictions.create(version=version, input={"prompt": "a hare", "seed": 3})
p.wait()
out["by_version"] = {"status": p.status, "model": p.model, "version": p.version == version}
out["listed"] = len(client.predictions.list().results)

def error(call):
    try:
        call()
        return None
    except ModelError as e:
        return {"class": "ModelError", "error": e.prediction.error, "status": e.prediction.status}
    except ReplicateError as e:
        return {"class": "ReplicateError", "status": e.status, "title": e.title, "detail": e.detail}

out["invalid"] = error(lambda: client.predictions.create(model="a/b", input={"prompt": "x", "num_outputs": 9}))
out["bad_token"] = error(lambda: replicate.Client(api_token="r8_nope", base_url=root).predictions.create(model="a/b", input={"prompt": "x"}))

# The second simulator deals a throttled create, a stuck prediction, then an NSFW failure.
faults = replicate.Client(api_token=token, base_url=faulty)
out["throttled"] = error(lambda: faults.predictions.create(model="a/b", input={"prompt": "x"}))
stuck = faults.predictions.create(model="a/b", input={"prompt": "stuck"})
stuck.cancel()
out["canceled"] = stuck.status
stuck.reload()
out["reloaded"] = stuck.status
out["nsfw"] = error(lambda: faults.run("a/b", input={"prompt": "x"}))
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_against_the_simulator() {
    let python = std::env::var("ATELIER_TEST_REPLICATE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ATELIER_TEST_REPLICATE_PYTHON is not set: scripts/test.sh installs the official \
             replicate client under target/test-peers/replicate and sets it to that \
             virtualenv's python"
        )
    });
    let config = sim::Config {
        latency: Duration::from_millis(300),
        max_side: Some(32),
        ..sim::Config::default()
    };
    let running = sim::start(config.clone()).await.unwrap();
    let faulty = sim::start(sim::Config {
        faults: sim::parse_faults("rate-limit,stuck,nsfw").unwrap(),
        ..config
    })
    .await
    .unwrap();
    let version = sim::version_of("stability-ai/sdxl");
    let args = [
        running.root(),
        running.token().to_owned(),
        version.clone(),
        faulty.root(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .args(args)
            .env("REPLICATE_POLL_INTERVAL", "0.05")
            .env_remove("REPLICATE_API_TOKEN")
            .env_remove("REPLICATE_BASE_URL")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed:\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(r["version"], "1.0.7", "{r}");
    assert_eq!(r["run"], serde_json::json!(["png", "png"]), "{r}");
    assert_eq!(r["clip"], "mp4", "{r}");
    assert_eq!(r["created"], "starting", "{r}");
    let waited = &r["waited"];
    assert_eq!(waited["status"], "succeeded", "{r}");
    assert_eq!(
        (waited["outputs"].as_u64(), waited["image_count"].as_u64()),
        (Some(1), Some(1))
    );
    // The client read the progress bar the simulator's logs end with.
    assert_eq!(waited["progress"], serde_json::json!([10, 10]), "{r}");
    assert_eq!(waited["get"], true);
    assert_eq!(r["by_version"]["status"], "succeeded");
    assert_eq!(r["by_version"]["model"], "stability-ai/sdxl");
    assert_eq!(r["by_version"]["version"], true);
    assert_eq!(r["listed"], 4);
    let invalid = &r["invalid"];
    assert_eq!(invalid["class"], "ReplicateError", "{r}");
    assert_eq!(invalid["status"], 422);
    assert_eq!(invalid["title"], "Input validation failed");
    assert!(
        invalid["detail"]
            .as_str()
            .unwrap()
            .contains("input.num_outputs"),
        "{r}"
    );
    assert_eq!(r["bad_token"]["status"], 401);
    assert_eq!(r["bad_token"]["title"], "Unauthenticated");
    assert_eq!(r["throttled"]["status"], 429, "{r}");
    assert_eq!(r["canceled"], "canceled");
    assert_eq!(r["reloaded"], "canceled");
    assert_eq!(r["nsfw"]["class"], "ModelError", "{r}");
    assert_eq!(r["nsfw"]["status"], "failed");
    assert!(r["nsfw"]["error"].as_str().unwrap().contains("NSFW"), "{r}");
    let stats = faulty.stats();
    assert_eq!(stats.faults, ["rate-limit", "stuck", "nsfw"]);
    assert_eq!(
        (stats.creates, stats.predictions, stats.canceled),
        (3, 2, 1)
    );
    assert!(running.stats().faults.is_empty());
    running.shutdown().await;
    faulty.shutdown().await;
}
