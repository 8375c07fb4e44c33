//! The real binary against the ComfyUI simulator: `atelier simulate comfyui --write-config`
//! then `atelier --config FILE generate` offline (a picture, a clip), `atelier accounts`, a bad
//! parameter refused with exit 2 and no request; `kill -9` during a job, then workers again:
//! the saved prompt is resumed, not submitted twice.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use atelier::simulators::comfyui::{self as sim};

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
            "comfyui",
            "--step-ms",
            "5",
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
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("[providers.comfyui.workflows.txt2img]"),
        "{written}"
    );
    assert!(dir.path().join("atelier.comfyui-txt2img.json").is_file());

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
            "batch_size=2",
            "--param",
            "steps=4",
            "--seed",
            "7",
        ])
    });
    assert_eq!(code, Some(0), "{g}");
    assert_eq!(g["status"], "succeeded", "{g}");
    assert_eq!(g["provider"], "comfyui");
    assert_eq!(g["images"].as_array().unwrap().len(), 2, "{g}");
    assert_eq!(stats(&control).await["prompts"], 1);

    let (code, g) = tokio::task::block_in_place(|| {
        run(&[
            "generate",
            "a tide",
            "--param",
            "workflow=clip",
            "--param",
            "frames=4",
        ])
    });
    assert_eq!(code, Some(0), "{g}");
    assert_eq!(g["images"][0]["kind"], "video", "{g}");
    assert_eq!(stats(&control).await["prompts"], 2);

    // A size ComfyUI's latents do not take: exit 2, nothing sent.
    let (code, refused) =
        tokio::task::block_in_place(|| run(&["generate", "a fox", "--param", "width=500"]));
    assert_eq!(code, Some(2), "{refused}");
    assert!(refused.to_string().contains("multiple of 8"), "{refused}");
    assert_eq!(stats(&control).await["prompts"], 2);

    let (code, checked) = tokio::task::block_in_place(|| run(&["accounts", "--check"]));
    assert_eq!(code, Some(0), "{checked}");
    assert_eq!(checked[0]["health"], "ready", "{checked}");

    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_job_then_workers_resume_the_saved_prompt() {
    // Slow steps: the kill lands while the prompt runs.
    let mut config = quick("");
    config.step = Duration::from_millis(100);
    let running = sim::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atelier.toml");
    running.write_config(&file).unwrap();
    let toml = std::fs::read_to_string(&file).unwrap();
    let d = DataDir::raw(&format!(
        "{toml}\n[jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n"
    ));
    // The workflow files are named relative to the written file's folder.
    for name in ["atelier.comfyui-txt2img.json", "atelier.comfyui-clip.json"] {
        std::fs::copy(dir.path().join(name), d.path().join(name)).unwrap();
    }
    let mut child = d
        .cmd()
        .args([
            "generate",
            "three lanterns",
            "--param",
            "batch_size=3",
            "--param",
            "steps=20",
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while running.stats().previews == 0 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill(); // SIGKILL, halfway through the sampler
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert_eq!(running.stats().prompts, 1);

    let (code, run) = tokio::task::block_in_place(|| d.json(&["jobs", "run", "--until-idle"]));
    assert_eq!(code, 0, "{run}");
    assert_eq!(run["completed"], 1, "{run}");
    let (_, list) = tokio::task::block_in_place(|| d.json(&["image", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    // The prompt was found again by its saved id, not submitted twice.
    let stats = running.stats();
    assert_eq!((stats.prompts, stats.executed), (1, 1), "{stats:?}");
    assert!(stats.sockets >= 2, "{stats:?}");
    running.shutdown().await;
}
