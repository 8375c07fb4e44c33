//! Comfy-Org's official command line, `comfy-cli` (`comfy run --workflow FILE --host --port
//! --wait`), unchanged, against the simulator: it checks the server's `/object_info`,
//! submits to `/prompt`, follows the WebSocket to the end and names each output's `/view`
//! URL; a graph outside the limits `/object_info` gives is refused before it is sent. ComfyUI has no official
//! client library; this is the official tool that speaks its API. `scripts/test.sh` installs
//! it from PyPI under `target/test-peers/comfyui`; the test reads `ATELIER_TEST_COMFY_CLI`
//! (that virtualenv's `comfy`) and fails without it. Telemetry and update checks are off, and
//! its configuration lives in a temporary home.

use std::time::Duration;

use atelier::simulators::comfyui::{self as sim};

/// Runs `comfy` with `args` in a throw-away home; its exit code and its NDJSON events.
fn comfy(
    bin: &str,
    home: &std::path::Path,
    args: &[&str],
) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let out = std::process::Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("DO_NOT_TRACK", "1")
        .env("COMFY_NO_TELEMETRY", "1")
        .env("COMFY_NO_UPDATE_CHECK", "1")
        .env("COMFY_NO_WATCH", "1")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code(),
        events,
        format!("stdout:\n{stdout}\nstderr:\n{stderr}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_comfy_cli_runs_workflows_against_the_simulator() {
    let bin = std::env::var("ATELIER_TEST_COMFY_CLI").unwrap_or_else(|_| {
        panic!(
            "ATELIER_TEST_COMFY_CLI is not set: scripts/test.sh installs Comfy-Org's comfy-cli \
             under target/test-peers/comfyui and sets it to that virtualenv's comfy"
        )
    });
    let running = sim::start(sim::Config {
        step: Duration::from_millis(5),
        max_side: Some(64),
        ..sim::Config::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let image = dir.path().join("txt2img.json");
    std::fs::write(&image, sim::workflow_json(false)).unwrap();
    let clip = dir.path().join("clip.json");
    std::fs::write(&clip, sim::workflow_json(true)).unwrap();
    let mut broken: serde_json::Value = serde_json::from_str(&sim::workflow_json(false)).unwrap();
    broken["5"]["inputs"]["width"] = serde_json::json!(4);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, broken.to_string()).unwrap();
    let port = running.addr().port().to_string();
    let run = |file: &std::path::Path| {
        let file = file.to_str().unwrap().to_owned();
        let (bin, home, port) = (bin.clone(), home.clone(), port.clone());
        move || {
            comfy(
                &bin,
                &home,
                &[
                    "--skip-prompt",
                    "--where",
                    "local",
                    "run",
                    "--workflow",
                    &file,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--wait",
                    "--json",
                    "--timeout",
                    "30",
                ],
            )
        }
    };

    let (code, events, shown) = tokio::task::spawn_blocking(run(&image)).await.unwrap();
    assert_eq!(code, Some(0), "{shown}");
    let envelope = events
        .last()
        .unwrap_or_else(|| panic!("no events: {shown}"));
    assert_eq!(envelope["ok"], true, "{shown}");
    let text = events.iter().map(ToString::to_string).collect::<String>();
    let view = format!("http://127.0.0.1:{port}/view?filename=atelier_");
    assert!(text.contains(&view), "the output's /view URL: {shown}");
    let stats = running.stats();
    assert_eq!(
        (stats.prompts, stats.executed, stats.files),
        (1, 1, 1),
        "{stats:?}"
    );
    assert!(stats.sockets >= 1);

    let (code, _, shown) = tokio::task::spawn_blocking(run(&clip)).await.unwrap();
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("atelier-clip_"), "{shown}");

    // The client checks a graph against the server's /object_info before it submits: the
    // simulator's catalogue gives it the limits, and nothing is sent.
    let (code, events, shown) = tokio::task::spawn_blocking(run(&bad)).await.unwrap();
    assert_eq!(code, Some(1), "{shown}");
    let envelope = events
        .last()
        .unwrap_or_else(|| panic!("no events: {shown}"));
    assert_eq!(envelope["ok"], false, "{shown}");
    assert!(
        envelope
            .to_string()
            .contains("width=4 below catalog min 16"),
        "{shown}"
    );
    let stats = running.stats();
    assert_eq!((stats.prompts, stats.refused), (2, 0), "{stats:?}");
    running.shutdown().await;
}
