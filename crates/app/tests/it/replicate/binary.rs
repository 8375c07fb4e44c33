//! The real binary against the Replicate simulator: `atelier simulate replicate
//! --write-config` then `atelier --config FILE generate` offline (pictures and a clip),
//! `atelier accounts`, a bad parameter refused with exit 2 and no request; `kill -9` while a
//! prediction runs, then workers again: the saved prediction is polled, not made again.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use atelier::simulators::replicate::{self as sim};

use super::quick;
use crate::support::{DataDir, bare_cmd};

/// The simulator's statistics over HTTP, as a client outside the process sees them.
async fn stats(control: &str) -> serde_json::Value {
    reqwest::get(control).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulate_command_writes_a_configuration_that_generates_offline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atelier.toml");
    let mut child = bare_cmd()
        .args([
            "--json",
            "simulate",
            "replicate",
            "--latency-ms",
            "100",
            "--max-side",
            "64",
        ])
        .arg("--write-config")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let summary = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            text.push_str(&line.unwrap());
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                return v;
            }
        }
        panic!("no summary: {text}");
    })
    .await
    .unwrap();
    let control = summary["control"].as_str().unwrap().to_owned();
    assert!(
        summary["api_base"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("[providers.replicate.models.video]"),
        "{written}"
    );

    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = bare_cmd()
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(data.path())
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let json = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|_| panic!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), json)
    };
    let (code, g) = tokio::task::block_in_place(|| {
        run(&[
            "generate",
            "a lighthouse at dusk --ar 16:9",
            "--param",
            "num_outputs=2",
            "--param",
            "output_format=png",
        ])
    });
    assert_eq!(code, Some(0), "{g}");
    assert_eq!(g["status"], "succeeded", "{g}");
    assert_eq!(g["provider"], "replicate:image");
    assert_eq!(g["images"].as_array().unwrap().len(), 2);
    assert_eq!(stats(&control).await["predictions"], 1);

    let (code, clip) = tokio::task::block_in_place(|| {
        run(&[
            "generate",
            "a comet",
            "--provider",
            "replicate:video",
            "--param",
            "num_frames=8",
        ])
    });
    assert_eq!(code, Some(0), "{clip}");
    assert_eq!(clip["images"][0]["kind"], "video", "{clip}");
    assert_eq!(clip["images"][0]["format"], "mp4", "{clip}");

    // More outputs than a prediction makes: exit 2, nothing sent.
    let before = stats(&control).await["requests"].clone();
    let (code, refused) =
        tokio::task::block_in_place(|| run(&["generate", "a fox", "--param", "num_outputs=5"]));
    assert_eq!(code, Some(2), "{refused}");
    assert!(refused.to_string().contains("num_outputs"), "{refused}");
    assert_eq!(stats(&control).await["requests"], before);

    let (code, accounts) = tokio::task::block_in_place(|| run(&["accounts", "--check"]));
    assert_eq!(code, Some(0), "{accounts}");
    let listed = accounts.as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|a| a["provider"] == "replicate:image" && a["health"] == "ready"),
        "{accounts}"
    );
    // The token itself is never printed.
    let shown = tokio::task::block_in_place(|| run(&["config", "show"])).1;
    assert!(!shown.to_string().contains("r8_sim_atelier"), "{shown}");

    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_prediction_runs_then_workers_resume_it_without_paying_twice() {
    let mut config = quick("");
    config.latency = Duration::from_secs(3);
    let running = sim::start(config).await.unwrap();
    let d = DataDir::raw(&format!(
        "{}\n[jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n",
        running.client_config(
            "black-forest-labs/flux-schnell",
            "wan-video/wan-2.2-t2v-fast"
        )
    ));
    let mut child = d
        .cmd()
        .args([
            "generate",
            "four lanterns",
            "--param",
            "num_outputs=4",
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A poll means the prediction's id was saved (it is saved before the first poll).
    let started = Instant::now();
    while running.stats().polls < 1 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill(); // SIGKILL
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert_eq!(running.stats().predictions, 1);
    let before = running.statuses().await;
    assert!(
        before == ["starting"] || before == ["processing"],
        "{before:?}"
    );

    let (code, run) = tokio::task::block_in_place(|| d.json(&["jobs", "run", "--until-idle"]));
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["completed"], 1, "{run}");
    let (_, list) = tokio::task::block_in_place(|| d.json(&["image", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
    for f in d.stored_files() {
        let bytes = std::fs::read(d.images().join(&f)).unwrap();
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "{f} is half-written"
        );
    }
    // One create, one prediction: the resumed job followed the saved one.
    let stats = running.stats();
    assert_eq!((stats.creates, stats.predictions), (1, 1), "{stats:?}");
    assert_eq!(stats.asked, vec![4]);
    assert_eq!(running.statuses().await, ["succeeded"]);
    running.shutdown().await;
}
