//! `atelier bench queue` and `bench engine` with the workers in this process and in child
//! processes, and `bench providers` against the simulators: they run, take every job once
//! (the measurements check that themselves and fail otherwise) and leave nothing behind. Nothing here is timed: benchmarks report, never assert.

use crate::support::bare_cmd;

fn bench(tmp: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = bare_cmd()
        .env("TMPDIR", tmp)
        .args(["--json", "bench"])
        .args(args)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn left_in(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn the_queue_measurement_drains_every_job_in_one_process_and_in_several() {
    let tmp = tempfile::tempdir().unwrap();
    for (processes, claimers) in [("0", 3), ("2", 6)] {
        let r = bench(
            tmp.path(),
            &[
                "queue",
                "--jobs",
                "60",
                "--workers",
                "3",
                "--processes",
                processes,
                "--runs",
                "2",
            ],
        );
        let q = &r["queue"];
        assert_eq!(q["database"], "sqlite");
        assert_eq!(q["claimers"], claimers);
        assert_eq!(q["jobs_per_second_runs"].as_array().unwrap().len(), 2);
        assert!(q["jobs_per_second"].as_f64().unwrap() > 0.0, "{q}");
    }
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn the_engine_measurement_runs_its_generations_in_worker_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let r = bench(
        tmp.path(),
        &[
            "engine",
            "--generations",
            "12",
            "--side",
            "32",
            "--concurrency",
            "2",
            "--processes",
            "2",
        ],
    );
    let e = &r["engine"];
    assert_eq!(
        (e["database"].as_str(), e["processes"].as_u64()),
        (Some("sqlite"), Some(2))
    );
    assert_eq!(e["generations"], 12);
    assert!(e["generations_per_second"].as_f64().unwrap() > 0.0, "{e}");
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new());
}

/// The `PostgreSQL` server the tests use (`scripts/test.sh` sets it).
fn postgres() -> String {
    match std::env::var("ATELIER_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "ATELIER_TEST_DATABASE_URL is not set: the PostgreSQL benchmarks' test needs an admin \
             URL (e.g. postgres://postgres@127.0.0.1:5432/postgres); scripts/test.sh sets it"
        ),
    }
}

#[test]
fn on_postgresql_both_measurements_run_in_scratch_databases_they_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let server = postgres();
    let r = bench(
        tmp.path(),
        &[
            "queue",
            "--database",
            &server,
            "--jobs",
            "40",
            "--workers",
            "2",
            "--processes",
            "2",
            "--runs",
            "2",
        ],
    );
    assert_eq!(r["queue"]["database"], "postgresql");
    assert_eq!(r["queue"]["claimers"], 4);
    let r = bench(
        tmp.path(),
        &[
            "engine",
            "--database",
            &server,
            "--generations",
            "10",
            "--side",
            "32",
            "--processes",
            "2",
        ],
    );
    assert_eq!(r["engine"]["database"], "postgresql");
    assert_eq!(r["engine"]["generations"], 10);
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new());
    let left = std::process::Command::new("psql")
        .args([
            &server,
            "-Atc",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'atelier\\_bench\\_%'",
        ])
        .output()
        .expect("psql runs");
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
}

#[test]
fn the_providers_measurement_runs_each_provider_against_its_simulator() {
    let tmp = tempfile::tempdir().unwrap();
    let r = bench(
        tmp.path(),
        &["providers", "--jobs", "10", "--runs", "2", "--outputs", "2"],
    );
    let p = &r["providers"];
    assert_eq!(p["outputs"], 2, "{p}");
    for side in ["sandbox", "openai", "replicate:bench", "comfyui"] {
        let rounds = if side == "sandbox" {
            &p[side]
        } else {
            &p[side]["rounds"]
        };
        let each = rounds["each"].as_array().unwrap();
        assert_eq!(each.len(), 2, "{side}: {p}");
        for run in each {
            assert_eq!(run["failed"], 0, "{side}: {run}");
            assert!(run["median_ms_per_job"].as_f64().unwrap() > 0.0, "{run}");
        }
    }
    assert!(p["openai"]["overhead_ms_per_job"].is_f64(), "{p}");
    assert!(p["replicate:bench"]["overhead_ms_per_job"].is_f64(), "{p}");
    assert!(p["comfyui"]["overhead_ms_per_job"].is_f64(), "{p}");
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new());
}
