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
    let catalogue = atelier::catalogue::open(&url, false).await.unwrap();
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(catalogue.job_of(*id).await.unwrap());
    }
    jobs
}

fn id_of(out: &Output) -> GenerationId {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(out)));
    v["id"].as_str().unwrap().parse().unwrap()
}

#[test]
fn processes_started_together_on_a_new_data_directory_all_start() {
    // Each round is a new data directory: the first start creates the catalogue's tables.
    for round in 0..8 {
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
    let path = d.path().to_path_buf();
    let runners: Vec<_> = (0..4)
        .map(|p| {
            let path = path.clone();
            std::thread::spawn(move || {
                (0..10)
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
        r#"set -u
export DATABASE_URL="sqlite://$T/atelier.db"
run() {{
    name=$1; shift
    timeout 60 "$BIN" --data-dir "$D" --json "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    echo $? >"$OUT/$name.code"
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

const SHORT_LEASE: &str = "[jobs]\nlease_secs = 0.6\n";

#[test]
fn a_full_disk_under_the_catalogue_ends_the_command_and_loses_no_job() {
    let d = DataDir::with_config(SHORT_LEASE);
    let out = in_namespace(
        &d,
        r#"mount -t tmpfs -o size=1m tmpfs "$T"
run q1 generate "one" --no-wait
run q2 generate "two" --no-wait
run q3 generate "three" --no-wait
# Nothing more fits beside the catalogue.
dd if=/dev/zero of="$T/filler" bs=4k 2>/dev/null
run full_run jobs run --until-idle
run full_generate generate "four"
rm "$T/filler"
run after jobs run --until-idle
"#,
    );
    let ids = queued_ids(&out, &["q1", "q2", "q3"]);
    let db = format!("{}/atelier.db", d.path().join("catalogue-fs").display());
    assert_refused(&ran(&out, "full_run"), "jobs run", &db, "full");
    assert_refused(&ran(&out, "full_generate"), "generate", &db, "full");
    assert_all_finished(&out, &ids);
}

#[test]
fn a_read_only_catalogue_file_ends_the_command_and_loses_no_job() {
    let d = DataDir::with_config(SHORT_LEASE);
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
