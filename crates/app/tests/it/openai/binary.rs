//! The real binary against the OpenAI simulator: `atelier simulate openai --write-config`
//! then `atelier --config FILE generate` offline, `atelier accounts`, a bad parameter refused
//! with exit 2 and no request; `kill -9` during a job, then workers again: the job completes,
//! nothing stored is half-written, and outputs stored before the kill are not asked for again.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use atelier::simulators::openai::{self as sim};

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
            "openai",
            "--latency-ms",
            "50",
            "--max-side",
            "64",
        ])
        .arg("--write-config")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The summary is one JSON document on stdout, printed once the simulator listens.
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
    assert!(written.contains("[providers.openai]"), "{written}");

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
            "a lighthouse at dusk",
            "--param",
            "n=2",
            "--param",
            "quality=high",
        ])
    });
    assert_eq!(code, Some(0), "{g}");
    assert_eq!(g["status"], "succeeded", "{g}");
    assert_eq!(g["provider"], "openai");
    assert_eq!(g["images"].as_array().unwrap().len(), 2);
    assert!(g["usage"]["total_tokens"].as_u64().unwrap() > 0, "{g}");
    assert_eq!(stats(&control).await["requests"], 1);

    // A size gpt-image-1 does not make: exit 2, nothing sent.
    let (code, refused) =
        tokio::task::block_in_place(|| run(&["generate", "a fox", "--param", "size=1536x864"]));
    assert_eq!(code, Some(2), "{refused}");
    assert!(refused.to_string().contains("size"), "{refused}");
    assert_eq!(stats(&control).await["requests"], 1);

    // `atelier accounts` lists the key's account, as the last job left it.
    let (code, accounts) = tokio::task::block_in_place(|| run(&["accounts"]));
    assert_eq!(code, Some(0), "{accounts}");
    let openai = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["provider"] == "openai")
        .unwrap_or_else(|| panic!("{accounts}"));
    assert_eq!(openai["name"], "simulator");
    assert_eq!(openai["last_known"]["health"], "ready", "{accounts}");
    let (code, checked) = tokio::task::block_in_place(|| run(&["accounts", "--check"]));
    assert_eq!(code, Some(0), "{checked}");
    assert_eq!(checked[0]["health"], "ready", "{checked}");
    // The key itself is never printed.
    let shown = tokio::task::block_in_place(|| run(&["config", "show"])).1;
    assert!(!shown.to_string().contains("sk-sim-atelier"), "{shown}");

    let _ = child.kill();
    let _ = child.wait();
}

/// The variant files stored so far.
fn variants(d: &DataDir) -> usize {
    d.stored_files()
        .iter()
        .filter(|f| f.contains("variant_") && !f.contains("thumb"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_job_then_workers_resume_it_without_asking_again_for_what_is_stored() {
    // A streamed request of four pictures, 700 ms apart: the kill lands after two are stored.
    let mut config = quick("");
    config.latency = Duration::from_millis(700);
    let running = sim::start(config).await.unwrap();
    let d = DataDir::raw(&format!(
        "{}\n[jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n",
        running.client_config("gpt-image-1", true)
    ));
    let mut child = d
        .cmd()
        .args(["generate", "four lanterns", "--param", "n=4", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while variants(&d) < 2 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill(); // SIGKILL
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let before = variants(&d);
    assert!((2..4).contains(&before), "{before} stored before the kill");
    assert_eq!(running.stats().asked, vec![4]);

    let (code, run) = tokio::task::block_in_place(|| d.json(&["jobs", "run", "--until-idle"]));
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["completed"], 1, "{run}");
    let (_, list) = tokio::task::block_in_place(|| d.json(&["image", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
    // Every stored file decodes: none is half-written.
    for f in d.stored_files() {
        let bytes = std::fs::read(d.images().join(&f)).unwrap();
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "{f} is half-written"
        );
    }
    // The resumed job paid only for the pictures it did not have.
    let asked = running.stats().asked;
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(usize::from(asked[1]), 4 - before, "{asked:?}");
    running.shutdown().await;
}
