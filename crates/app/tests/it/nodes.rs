//! Several nodes on one catalogue: `atelier worker` processes sharing the work (one killed
//! half-way), stopping on a signal with a grace period, and `atelier events` following what
//! other processes write. With `TEST_DATABASE_URL` set, the processes share that database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atelier::app::App;
use atelier::domain::{EventKind, GenerationId, GenerationRequest, GenerationStatus, JobStatus};

use crate::support::DataDir;

/// Sandbox jobs of a few tens of milliseconds, six at once across all nodes, short leases.
const CONFIG: &str = "[providers.sandbox]\nsize = 64\ndelay_ms = 30\nconcurrency = 6\n\
                      [jobs]\nlease_secs = 2.0\nretry_base_secs = 0.05\npoll_secs = 0.05\n";

/// The binary on `d`, on the shared test database when there is one.
fn node_cmd(d: &DataDir) -> Command {
    let mut cmd = d.cmd();
    if let Ok(url) = std::env::var("TEST_DATABASE_URL")
        && !url.is_empty()
    {
        cmd.env("DATABASE_URL", url);
    }
    cmd
}

/// The app over `d`'s catalogue, as the binary opens it.
async fn open(d: &DataDir) -> Arc<App> {
    let mut config = atelier::config::load(None, Some(d.path())).expect("config loads");
    if let Ok(url) = std::env::var("TEST_DATABASE_URL")
        && !url.is_empty()
    {
        config.database_url = Some(atelier::secret::DatabaseUrl::new(url));
    }
    let providers = atelier::wiring::providers(&config).expect("providers");
    atelier::wiring::open(&config, providers, true)
        .await
        .expect("catalogue opens")
}

/// `atelier worker` as node `id`, its stderr kept in the data directory.
fn start_worker(d: &DataDir, id: &str, concurrency: u32, extra: &[&str]) -> Child {
    let log = std::fs::File::create(d.path().join(format!("{id}.log"))).expect("log file");
    node_cmd(d)
        .env("ATELIER_NODE__ID", id)
        .env("ATELIER_LOG", "atelier=info")
        .args([
            "--json",
            "worker",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("worker starts")
}

fn log_of(d: &DataDir, id: &str) -> String {
    std::fs::read_to_string(d.path().join(format!("{id}.log"))).unwrap_or_default()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for `child` at most `limit`; kills it and panics with `what` when it does not end.
fn wait_exit(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

async fn queue(app: &App, prompt: &str, n: usize) -> Vec<GenerationId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let g = app
            .submit(
                atelier::domain::Actor::Operator,
                GenerationRequest::new(format!("{prompt} {i}")),
            )
            .await
            .expect("queued");
        ids.push(g.id);
    }
    ids
}

async fn ended(app: &App, ids: &[GenerationId]) -> usize {
    let mut n = 0;
    for id in ids {
        let g = app.catalogue().generation(*id).await.expect("generation");
        n += usize::from(g.status.is_terminal());
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_nodes_run_300_generations_once_each_with_one_killed_half_way() {
    let d = DataDir::raw(CONFIG);
    let app = open(&d).await;
    let ids = queue(&app, "three nodes", 300).await;
    let mut nodes: Vec<(String, Child)> = (1..=3)
        .map(|n| {
            let id = format!("node-{n}");
            let child = start_worker(&d, &id, 2, &[]);
            (id, child)
        })
        .collect();
    let start = Instant::now();
    while ended(&app, &ids).await < 150 {
        assert!(
            start.elapsed() < Duration::from_mins(3),
            "half the generations did not end in time:\n{}",
            log_of(&d, "node-1")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (killed, mut victim) = nodes.remove(0);
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaped");
    // The dead node's jobs, read before their leases (2 s) can run out.
    let mut orphans = Vec::new();
    for id in &ids {
        let job = app.queue().job_of(*id).await.expect("job");
        if job.status == JobStatus::Running
            && job
                .lease_owner
                .as_deref()
                .is_some_and(|o| o.starts_with(&format!("{killed}/")))
        {
            orphans.push(*id);
        }
    }
    let start = Instant::now();
    while ended(&app, &ids).await < ids.len() {
        assert!(
            start.elapsed() < Duration::from_mins(3),
            "not every generation ended after the kill:\n{}",
            log_of(&d, "node-2")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The survivors stop on SIGTERM and exit 0.
    for (id, child) in nodes {
        signal(&child, "TERM");
        let out = wait_exit(child, Duration::from_secs(20), &id);
        assert_eq!(out.status.code(), Some(0), "{id}: {}", log_of(&d, &id));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{id}: not JSON ({e}): {}", log_of(&d, &id)));
        assert_eq!(summary["node"], id.as_str());
    }
    let mut taken_over = Vec::new();
    for id in &ids {
        let g = app
            .generation(atelier::domain::Actor::Operator, *id)
            .await
            .expect("generation");
        assert_eq!(g.generation.status, GenerationStatus::Succeeded, "{id}");
        assert_eq!(g.images.len(), 5, "{id}: five images");
        let events = app
            .events(atelier::domain::Actor::Operator, *id, 0)
            .await
            .expect("events");
        let completed = events
            .iter()
            .filter(|e| e.kind == EventKind::Completed)
            .count();
        assert_eq!(completed, 1, "{id}: one completed event");
        let job = app.queue().job_of(*id).await.expect("job");
        assert_eq!(job.status, JobStatus::Succeeded, "{id}");
        assert_eq!(job.attempts, 1, "{id}: no attempt spent twice");
        if job.takeovers > 0 {
            assert_eq!(job.takeovers, 1, "{id}");
            taken_over.push(*id);
        }
    }
    taken_over.sort();
    orphans.sort();
    assert_eq!(
        taken_over, orphans,
        "exactly the killed node's jobs were taken over"
    );
    let counts = app
        .queue()
        .counts(&["sandbox:local".to_owned()])
        .await
        .expect("counts");
    assert_eq!((counts.pending, counts.running), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_by_sigterm_finishes_its_job_within_the_grace_period() {
    let d = DataDir::raw(
        "[providers.sandbox]\nsize = 64\ndelay_ms = 1500\n[jobs]\nlease_secs = 1.0\npoll_secs = 0.05\n",
    );
    let app = open(&d).await;
    let ids = queue(&app, "graceful", 1).await;
    let worker = start_worker(&d, "graceful", 1, &[]);
    wait_running(&app, ids[0]).await;
    signal(&worker, "TERM");
    let out = wait_exit(worker, Duration::from_secs(20), "the worker");
    assert_eq!(out.status.code(), Some(0), "{}", log_of(&d, "graceful"));
    let job = app.queue().job_of(ids[0]).await.expect("job");
    assert_eq!(
        job.status,
        JobStatus::Succeeded,
        "finished in the grace period"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(summary["completed"], 1, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_after_the_grace_period_is_taken_over_by_another_node() {
    let d = DataDir::raw(
        "[providers.sandbox]\nsize = 64\ndelay_ms = 1500\n[jobs]\nlease_secs = 1.0\npoll_secs = 0.05\n",
    );
    let app = open(&d).await;
    let ids = queue(&app, "left leased", 1).await;
    let first = start_worker(&d, "first", 1, &["--grace", "0"]);
    wait_running(&app, ids[0]).await;
    signal(&first, "INT");
    let out = wait_exit(first, Duration::from_secs(10), "the first worker");
    assert_eq!(out.status.code(), Some(0), "{}", log_of(&d, "first"));
    let job = app.queue().job_of(ids[0]).await.expect("job");
    assert_eq!(job.status, JobStatus::Running, "left leased");
    assert!(
        job.lease_owner
            .as_deref()
            .is_some_and(|o| o.starts_with("first/"))
    );
    let second = start_worker(&d, "second", 1, &[]);
    let start = Instant::now();
    while ended(&app, &ids).await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            log_of(&d, "second")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&second, "TERM");
    let out = wait_exit(second, Duration::from_secs(20), "the second worker");
    assert_eq!(out.status.code(), Some(0));
    let job = app.queue().job_of(ids[0]).await.expect("job");
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(
        (job.attempts, job.takeovers),
        (1, 1),
        "taken over, no attempt spent"
    );
}

async fn wait_running(app: &App, id: GenerationId) {
    let start = Instant::now();
    loop {
        let job = app.queue().job_of(id).await.expect("job");
        if job.status == JobStatus::Running {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_prints_another_process_s_generation_in_order_and_ends_with_it() {
    let d =
        DataDir::raw("[providers.sandbox]\nsize = 64\ndelay_ms = 300\n[jobs]\npoll_secs = 0.05\n");
    let app = open(&d).await;
    let id = queue(&app, "followed", 1).await[0];
    let other = queue(&app, "not followed", 1).await[0];
    let mut follower = node_cmd(&d)
        .args([
            "--json",
            "events",
            "--follow",
            "--generation",
            &id.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("follower starts");
    let mut all = node_cmd(&d)
        .args(["--json", "events", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second follower starts");
    // Both read the feed's end before the runner writes anything.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let runner = node_cmd(&d)
        .args(["jobs", "run", "--until-idle"])
        .output()
        .expect("runner runs");
    assert!(
        runner.status.success(),
        "{}",
        String::from_utf8_lossy(&runner.stderr)
    );
    let stdout = follower.stdout.take().expect("stdout");
    let lines: Vec<serde_json::Value> = BufReader::new(stdout)
        .lines()
        .map(|l| serde_json::from_str(&l.expect("line")).expect("a JSON object per line"))
        .collect();
    let out = wait_exit(follower, Duration::from_secs(10), "the follower");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .expect("events");
    // Everything after the queued event, as stored, in order, and nothing of the other one.
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    let expected: Vec<u64> = stored.iter().map(|e| e.seq).filter(|s| *s > 1).collect();
    assert_eq!(seqs, expected, "{lines:#?}");
    assert!(lines.iter().all(|l| l["generation_id"] == id.to_string()));
    let positions: Vec<i64> = lines
        .iter()
        .map(|l| l["position"].as_i64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(
        lines.last().expect("a line")["type"],
        "generation.completed"
    );
    // The follower of every generation saw both end, and stops on SIGINT with 0.
    let start = Instant::now();
    let reader = all.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            if tx.send(line.expect("line")).is_err() {
                return;
            }
        }
    });
    let mut completed = std::collections::BTreeSet::new();
    while completed.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the follower of all events prints both ends");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if v["type"] == "generation.completed" {
            completed.insert(v["generation_id"].as_str().expect("id").to_owned());
        }
        assert!(start.elapsed() < Duration::from_secs(20));
    }
    assert!(completed.contains(&other.to_string()));
    signal(&all, "INT");
    let out = wait_exit(all, Duration::from_secs(10), "the follower of all events");
    assert_eq!(out.status.code(), Some(0));
    // Without --follow: what is there, then exit.
    let out = node_cmd(&d)
        .args(["--json", "events", "--generation", &id.to_string()])
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        stored.len()
    );
}

#[test]
fn bad_node_commands_exit_2() {
    let d = DataDir::new();
    let (code, _) = d.json(&["generate", "one", "--no-wait"]);
    assert_eq!(code, 0);
    for args in [
        &["events", "--follow", "--generation", "not-a-uuid"][..],
        &[
            "events",
            "--generation",
            "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ],
        &["events", "--after", "-3"],
        &["worker", "--concurrency", "0"],
        &["worker", "--grace", "forever"],
    ] {
        let out = node_cmd(&d).args(args).output().expect("runs");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
}
