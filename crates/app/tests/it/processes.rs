//! The real binary as many processes use it: started together on a new data directory, run one
//! after another and side by side, and with its catalogue on a full or read-only file system
//! (a tmpfs in a private mount namespace, so the test needs no privilege beyond `unshare`).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use atelier::domain::{GenerationId, JobStatus};

use crate::support::{DataDir, bare_cmd};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every job of the catalogue at `db` (a file copied out of, or left in, a data directory).
async fn jobs_of(db: &Path, ids: &[GenerationId]) -> Vec<atelier::domain::Job> {
    let url = format!("sqlite://{}", db.display());
    let queue = atelier::catalogue::open(&url, false).await.unwrap().queue;
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(queue.job_of(*id).await.unwrap());
    }
    jobs
}

/// The status and lease owner of every job in the catalogue file `db`, read as it is.
async fn every_job(db: &Path) -> Vec<(String, Option<String>)> {
    use sqlx::Connection;
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_as("SELECT status, lease_owner FROM jobs")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

fn id_of(out: &Output) -> GenerationId {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(out)));
    v["id"].as_str().unwrap().parse().unwrap()
}

#[test]
fn processes_started_together_on_a_new_data_directory_all_start() {
    // Each round is a new data directory: the first start creates the catalogue's tables.
    for round in 0..12 {
        let d = DataDir::new();
        let children: Vec<_> = (0..6)
            .map(|n| {
                d.cmd()
                    .args(["--json", "generate", &format!("round {round}, process {n}")])
                    .arg("--no-wait")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut ids = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {:?}: {}",
                out.status,
                stderr(&out)
            );
            ids.push(id_of(&out));
        }
        let rt = tokio::runtime::Runtime::new().unwrap();
        let jobs = rt.block_on(jobs_of(&d.path().join("atelier.db"), &ids));
        assert!(jobs.iter().all(|j| j.status == JobStatus::Pending));
    }
}

#[test]
fn a_generation_reported_done_has_its_job_finished() {
    // Four processes side by side, each running generations one after another: when a
    // `generate` has printed its result and exited, its job is finished and holds no lease.
    let d = DataDir::new();
    // The catalogue exists before the runners start (starting together is another test's).
    let (code, first) = d.json(&["generate", "the first", "--upscale", "none"]);
    assert_eq!(code, 0, "{first}");
    let path = d.path().to_path_buf();
    // Another writer takes the catalogue's write lock over and over, as concurrent commands
    // do: each write of a `generate` may wait for it, its job's end included.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = busy_writer(&path.join("atelier.db"), stop.clone());
    let runners: Vec<_> = (0..4)
        .map(|p| {
            let path = path.clone();
            std::thread::spawn(move || {
                (0..6)
                    .map(|n| {
                        let out = bare_cmd()
                            .arg("--data-dir")
                            .arg(&path)
                            .args(["--json", "generate", &format!("runner {p}, number {n}")])
                            .args(["--upscale", "1"])
                            .output()
                            .unwrap();
                        assert!(out.status.success(), "{}", stderr(&out));
                        id_of(&out)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<GenerationId> = runners
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jobs = rt.block_on(jobs_of(&path.join("atelier.db"), &ids));
    let leased: Vec<_> = jobs
        .iter()
        .filter(|j| j.status != JobStatus::Succeeded || j.lease_owner.is_some())
        .map(|j| (j.generation_id, j.status, j.lease_owner.clone()))
        .collect();
    assert!(
        leased.is_empty(),
        "{} of {} jobs were left unfinished after their command exited: {leased:?}",
        leased.len(),
        jobs.len()
    );
}

/// Holds the write lock of the catalogue `db` for 30 ms at a time, with short gaps, until
/// `stop`.
fn busy_writer(
    db: &Path,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let url = format!("sqlite://{}", db.display());
    std::thread::spawn(move || {
        use sqlx::Connection;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                tx.commit().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        });
    })
}

/// How to run a script as root of a private mount namespace here: plainly as root, else in a
/// user namespace of its own. Panics, saying why, when neither works: a test that cannot run
/// must fail, not pass.
fn private_mounts() -> Command {
    let attempts: [&[&str]; 2] = [
        &["--mount", "--propagation", "private"],
        &[
            "--user",
            "--map-root-user",
            "--mount",
            "--propagation",
            "private",
        ],
    ];
    let mut why = Vec::new();
    for flags in attempts {
        let dir = tempfile::tempdir().unwrap();
        let probe = Command::new("unshare")
            .args(flags)
            .args(["sh", "-c", "mount -t tmpfs -o size=64k tmpfs \"$0\""])
            .arg(dir.path())
            .output();
        match probe {
            Ok(out) if out.status.success() => {
                let mut cmd = Command::new("unshare");
                cmd.args(flags);
                return cmd;
            }
            Ok(out) => why.push(format!("unshare {}: {}", flags.join(" "), stderr(&out))),
            Err(e) => why.push(format!("unshare: {e}")),
        }
    }
    panic!(
        "this test needs a private mount namespace (util-linux `unshare`, as root or with user \
         namespaces enabled) to mount a small tmpfs: {why:?}"
    );
}

/// What a command run inside the namespace did: its exit code, stdout and stderr.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ran(out: &Path, name: &str) -> Ran {
    let read = |ext: &str| std::fs::read_to_string(out.join(format!("{name}.{ext}")));
    Ran {
        code: read("code")
            .unwrap_or_else(|e| panic!("{name} did not run: {e}"))
            .trim()
            .parse()
            .unwrap(),
        stdout: read("out").unwrap_or_default(),
        stderr: read("err").unwrap_or_default(),
    }
}

/// Runs `steps` (shell) in a private mount namespace where `$T` is an empty directory for a
/// tmpfs, `run NAME ARGS…` runs the binary on the data directory with its catalogue in `$T`
/// (bounded by `timeout`) and records its exit code and output under `$OUT`. The catalogue is
/// copied to `$OUT` at the end. Returns `$OUT`.
fn in_namespace(d: &DataDir, steps: &str) -> std::path::PathBuf {
    let t = d.path().join("catalogue-fs");
    let out = d.path().join("out");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let script = format!(
        r#"set -eu
export DATABASE_URL="sqlite://$T/atelier.db"
run() {{
    name=$1; shift
    code=0
    timeout 60 "$BIN" --data-dir "$D" --json "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || code=$?
    echo $code >"$OUT/$name.code"
}}
{steps}
cp "$T"/atelier.db* "$OUT/"
"#
    );
    let status = private_mounts()
        .args(["sh", "-c", &script])
        .env("T", &t)
        .env("OUT", &out)
        .env("D", d.path())
        .env("BIN", env!("CARGO_BIN_EXE_atelier"))
        .env_remove("DATABASE_URL")
        .status()
        .unwrap();
    assert!(status.success(), "the script failed: {status:?}");
    out
}

fn queued_ids(out: &Path, names: &[&str]) -> Vec<GenerationId> {
    names
        .iter()
        .map(|n| {
            let r = ran(out, n);
            assert_eq!(r.code, 0, "{n}: {}", r.stderr);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            v["id"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

/// A refused write ended the command at once, saying where and why.
fn assert_refused(r: &Ran, name: &str, db: &str, why: &str) {
    assert_eq!(r.code, 1, "{name} should fail at once: {}", r.stderr);
    assert!(
        r.stderr.contains(db) && r.stderr.contains(why) && r.stderr.contains("free on its"),
        "{name}: {}",
        r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e}): {}", r.stdout));
    assert!(v["error"]["message"].as_str().unwrap().contains(db), "{v}");
}

/// After the file system takes writes again, one `jobs run` finished every job.
fn assert_all_finished(out: &Path, ids: &[GenerationId]) {
    let r = ran(out, "after");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jobs = rt.block_on(jobs_of(&out.join("atelier.db"), ids));
    for j in &jobs {
        assert_eq!(
            (j.status, j.lease_owner.as_deref()),
            (JobStatus::Succeeded, None),
            "{j:?}"
        );
    }
}

#[test]
fn a_full_disk_under_the_catalogue_ends_the_command_and_loses_no_job() {
    // The whole data directory on a 3 MB tmpfs, as in the field: images fill it, then the
    // catalogue can no longer grow. Every command must end (none is cut by `timeout`), a
    // refused catalogue write with exit 1 and a message saying where and how much room is
    // left; once there is room again, one `jobs run` ends every job.
    let d = DataDir::raw(
        "[providers.sandbox]\nsize = 512\ndelay_ms = 0\n\
         [jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n",
    );
    let out = in_namespace(
        &d,
        r#"mount -t tmpfs -o size=3m tmpfs "$T"
cp "$D/atelier.toml" "$T/"
D="$T"
for n in 1 2 3 4 5 6 7; do run "g$n" generate "number $n"; done
run full_run jobs run --until-idle
mount -o remount,size=64m "$T"
run after jobs run --until-idle
"#,
    );
    let db = format!("{}/atelier.db", d.path().join("catalogue-fs").display());
    let mut refusals = 0;
    let mut ids: Vec<GenerationId> = Vec::new();
    for name in ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "full_run"] {
        let r = ran(&out, name);
        assert!(
            r.code == 0 || r.code == 1,
            "{name} ended with {} (124: it never returned): {}",
            r.code,
            r.stderr
        );
        let v: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e}): {}", r.stdout));
        if let Some(id) = v["id"].as_str() {
            ids.push(id.parse().unwrap());
        }
        if r.stderr.contains("refused a write") {
            assert_refused(&r, name, &db, "full");
            refusals += 1;
        }
    }
    assert!(refusals > 0, "the catalogue never ran out of room");
    let r = ran(&out, "after");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jobs = rt.block_on(every_job(&out.join("atelier.db")));
    assert!(jobs.len() >= ids.len(), "{jobs:?}");
    let unfinished: Vec<_> = jobs
        .iter()
        .filter(|(status, owner)| status == "pending" || status == "running" || owner.is_some())
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:?}");
}

#[test]
fn a_read_only_catalogue_file_ends_the_command_and_loses_no_job() {
    let d = DataDir::raw(
        "[providers.sandbox]\nsize = 128\ndelay_ms = 0\n\
         [jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n",
    );
    let out = in_namespace(
        &d,
        r#"mount -t tmpfs -o size=8m tmpfs "$T"
run q1 generate "one" --no-wait
run q2 generate "two" --no-wait
mount --bind "$T/atelier.db" "$T/atelier.db"
mount -o remount,bind,ro "$T/atelier.db"
run ro_run jobs run --until-idle
run ro_generate generate "three"
umount "$T/atelier.db"
run after jobs run --until-idle
"#,
    );
    let ids = queued_ids(&out, &["q1", "q2"]);
    let db = format!("{}/atelier.db", d.path().join("catalogue-fs").display());
    assert_refused(&ran(&out, "ro_run"), "jobs run", &db, "readonly");
    assert_refused(&ran(&out, "ro_generate"), "generate", &db, "readonly");
    assert_all_finished(&out, &ids);
}
