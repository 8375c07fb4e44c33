//! Prompt parameters Midjourney refuses, through the real binary: refused before anything is
//! stored or sent, in the words of the table the simulator refuses with.

use atelier::cli::simulate::client_config;
use atelier_simulator::Timing;

use super::simulator;

// The simulator serves from this runtime while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_midjourney_refuses_are_refused_before_anything_is_stored_or_sent() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.toml");
    std::fs::write(&file, client_config(&sim)).unwrap();
    let data = dir.path().join("data");
    for (prompt, says) in [
        (
            "x --ar 99999:1",
            "--ar 99999:1: expected W:H in whole numbers, from 9:128 to 128:9",
        ),
        (
            "x --v 99",
            "--v 99: expected 1, 2, 3, 4, 5, 5.1, 5.2, 6, 6.1, 7, 8 or 8.1",
        ),
        ("x --q 3", "--q 3: expected 1, 2 or 4"),
        (
            "x --stop 50 --v 7",
            "--stop is not compatible with --version 7",
        ),
        // V8.1, the default model, has no --q.
        ("x --q 2", "--q is not compatible with --version 8.1"),
        ("x --sd --v 7", "--sd is not compatible with --version 7"),
        // Draft mode and omni references are V7's; --hd is the V8 family's.
        ("x --draft", "--draft is not compatible with --version 8.1"),
        (
            "x --oref https://s.mj.run/a --v 8.1",
            "--oref is not compatible with --version 8.1",
        ),
        ("x --hd --v 7", "--hd is not compatible with --version 7"),
        (
            "x --q 2 --niji 6 --v 7",
            "--niji is not compatible with --version 7",
        ),
        (
            "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}",
            "the prompt is empty",
        ),
    ] {
        let out = crate::support::bare_cmd()
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .args(["generate", "--provider", "midjourney", prompt])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{prompt:?}: {err}");
        assert!(err.contains(says), "{prompt:?}: {err:?} lacks {says:?}");
        assert!(out.stdout.is_empty(), "{prompt:?} printed on stdout");
        assert!(!data.exists(), "{prompt:?} wrote the data directory");
    }
    let stats = sim.control().stats();
    assert_eq!(
        (stats.interactions, stats.jobs_started),
        (0, 0),
        "nothing was sent"
    );

    // What the table accepts still goes through, on the model it selects.
    let out = crate::support::bare_cmd()
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--json",
            "generate",
            "--provider",
            "midjourney",
            "--upscale",
            "none",
            "x --v 7 --q 2 --ar 16:9",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["status"], "succeeded");
    assert_eq!(g["parameters"]["quality"], 2);
    sim.shutdown().await;
}
