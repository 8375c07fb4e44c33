//! `atelier migrate` through the real binary: an embedded deployment (sandbox generations
//! with upscales, a child generation, an import, tags, a pending job) copied into another
//! catalogue and storage, compared record by record through the trait, every blob verified;
//! a second run that copies nothing; `kill -9` mid-copy, then a resume; corrupt and missing
//! blobs refused; running workers refused; bad destinations refused with nothing written; the
//! source's bytes unchanged.
//!
//! The kill test slows the copy with `ATELIER_MIGRATE_PAUSE_MS`, which only debug builds (the
//! test binary's) read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atelier::catalogue::{self, GenerationRecord};
use atelier::domain::JobStatus;
use atelier::providers::sandbox::draw;
use atelier::store::sha256_hex;

use crate::support::DataDir;

/// An embedded deployment with a bit of everything. Returns it and the id of the grid image
/// of its first generation (the parent of another).
fn populated(extra_generations: usize) -> DataDir {
    let d = DataDir::new();
    let (code, fox) = d.json(&[
        "generate",
        "a red fox",
        "--category",
        "character",
        "--subject",
        "Fox",
    ]);
    assert_eq!(code, 0, "{fox}");
    let grid = fox["images"][0]["id"].as_str().unwrap().to_owned();
    let (code, _) = d.json(&["image", "tag", &grid, "cover", "keep"]);
    assert_eq!(code, 0);
    let (code, child) = d.json(&["image", "action", &grid, "v1", "--upscale", "1"]);
    assert_eq!(code, 0, "{child}");
    assert_eq!(child["parent_id"], fox["id"]);
    let file = d.path().join("shell.png");
    std::fs::write(
        &file,
        draw::grid("an imported grid", 5, 64).encode_png().unwrap(),
    )
    .unwrap();
    let (code, out) = d.json(&["image", "import", file.to_str().unwrap(), "--grid"]);
    assert_eq!(code, 0, "{out}");
    for i in 0..extra_generations {
        let (code, out) = d.json(&["generate", &format!("castle {i}"), "--upscale", "1"]);
        assert_eq!(code, 0, "{out}");
    }
    let (code, queued) = d.json(&["generate", "later", "--no-wait"]);
    assert_eq!((code, queued["status"].as_str()), (0, Some("queued")));
    d
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("atelier.db").display())
}

/// Every record of the catalogue at `url`, through the trait, opened read-only.
async fn records(url: &str) -> Vec<GenerationRecord> {
    let db = catalogue::open_read_only(url).await.unwrap();
    let (mut all, mut after) = (Vec::new(), None);
    loop {
        let page = db.catalogue.export(after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.generation.id);
        all.extend(page);
    }
    all
}

/// How many generations the catalogue at `url` holds; 0 while it cannot be read yet.
async fn count(url: &str) -> usize {
    let Ok(db) = catalogue::open_read_only(url).await else {
        return 0;
    };
    db.catalogue
        .export(None, 1000)
        .await
        .map_or(0, |page| page.len())
}

/// Hashes of every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, sha256_hex(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// The source's catalogue file and images, hashed, with its WAL folded into the file first.
async fn source_state(d: &DataDir) -> (String, BTreeMap<String, String>) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&db_url(d.path()))
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let db = sha256_hex(&std::fs::read(d.path().join("atelier.db")).unwrap());
    (db, files(&d.images()))
}

/// The migration's JSON report and exit code.
fn migrate(d: &DataDir, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["migrate"];
    all.extend_from_slice(args);
    d.json(&all)
}

/// The target holds what the source holds, record for record (unfinished jobs pending), and
/// every blob with the right bytes.
async fn assert_identical(source: &DataDir, target_db: &str, target_images: &Path) {
    let mut expected = records(&db_url(source.path())).await;
    for r in &mut expected {
        if let Some(job) = r.job.as_mut().filter(|j| !j.status.is_terminal()) {
            job.status = JobStatus::Pending;
            job.lease_owner = None;
            job.lease_expires_at = None;
        }
    }
    let copied = records(target_db).await;
    assert_eq!(copied.len(), expected.len());
    for (c, e) in copied.iter().zip(&expected) {
        assert_eq!(c, e, "generation {}", e.generation.id);
    }
    let mut blobs = 0;
    for image in copied.iter().flat_map(|r| &r.images) {
        let bytes = std::fs::read(target_images.join(&image.storage_key)).unwrap();
        assert_eq!(sha256_hex(&bytes), image.sha256, "{}", image.storage_key);
        let thumb = image.thumbnail_key.as_ref().unwrap();
        assert_eq!(
            std::fs::read(target_images.join(thumb)).unwrap(),
            std::fs::read(source.images().join(thumb)).unwrap()
        );
        blobs += 2;
    }
    assert_eq!(
        files(target_images).len(),
        blobs,
        "nothing else in the target"
    );
}

#[tokio::test]
async fn a_deployment_moves_whole_then_runs_there_and_a_second_run_copies_nothing() {
    let d = populated(1);
    let before = source_state(&d).await;
    let target = tempfile::tempdir().unwrap();
    let (db, images) = (db_url(target.path()), target.path().join("images"));
    let args = [
        "--to-database",
        &db,
        "--to-storage",
        images.to_str().unwrap(),
    ];
    let (code, report) = migrate(&d, &args);
    assert_eq!(code, 0, "{report}");
    let sources = records(&db_url(d.path())).await;
    let images_n = sources.iter().map(|r| r.images.len()).sum::<usize>() as u64;
    let events_n = sources.iter().map(|r| r.events.len()).sum::<usize>() as u64;
    assert_eq!(report["generations"], sources.len() as u64);
    assert_eq!(report["generations_copied"], sources.len() as u64);
    assert_eq!(report["images_copied"], images_n);
    assert_eq!(report["events_copied"], events_n);
    assert_eq!(report["blobs_copied"], images_n * 2);
    assert_eq!(report["jobs_requeued"], 1);
    assert!(report["bytes_copied"].as_u64().unwrap() > 0);
    assert_eq!(report["refused"], serde_json::json!([]));
    assert_identical(&d, &db, &images).await;
    assert_eq!(source_state(&d).await, before, "the source is untouched");

    // Again: everything is found, nothing is written.
    let copied = files(&images);
    let (code, again) = migrate(&d, &args);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["generations_copied"], 0);
    assert_eq!(again["generations_present"], sources.len() as u64);
    assert_eq!(
        (
            again["blobs_copied"].as_u64(),
            again["bytes_copied"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(files(&images), copied);
    assert_identical(&d, &db, &images).await;

    // The copy is a deployment: its queued job runs there.
    std::fs::copy(
        d.path().join("atelier.toml"),
        target.path().join("atelier.toml"),
    )
    .unwrap();
    let moved = DataDir::at(target);
    let (code, run) = moved.json(&["jobs", "run", "--until-idle"]);
    assert_eq!((code, run["completed"].as_u64()), (0, Some(1)), "{run}");
    assert_eq!(source_state(&d).await, before);
}

#[tokio::test]
async fn only_the_catalogue_moves_and_blobs_are_verified_in_place() {
    let d = populated(0);
    let before = source_state(&d).await;
    let target = tempfile::tempdir().unwrap();
    let db = db_url(target.path());
    let (code, report) = migrate(&d, &["--to-database", &db]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["blobs_copied"], 0);
    assert!(report["blobs_present"].as_u64().unwrap() > 0);
    assert_identical(&d, &db, &d.images()).await;
    assert_eq!(source_state(&d).await, before);
}

#[tokio::test]
async fn only_the_storage_moves_and_public_urls_follow_it() {
    let d = populated(0);
    let target = tempfile::tempdir().unwrap();
    let images = target.path().join("bucket");
    let args = [
        "--to-storage",
        images.to_str().unwrap(),
        "--public-base-url",
        "https://cdn.example.test/atelier/",
    ];
    let (code, report) = migrate(&d, &args);
    assert_eq!(code, 0, "{report}");
    let all = records(&db_url(d.path())).await;
    let n = all.iter().map(|r| r.images.len()).sum::<usize>() as u64;
    assert_eq!(
        (
            report["blobs_copied"].as_u64(),
            report["urls_rewritten"].as_u64()
        ),
        (Some(n * 2), Some(n))
    );
    for image in all.iter().flat_map(|r| &r.images) {
        assert_eq!(
            image.public_url.as_deref(),
            Some(format!("https://cdn.example.test/atelier/{}", image.storage_key).as_str())
        );
        let bytes = std::fs::read(images.join(&image.storage_key)).unwrap();
        assert_eq!(sha256_hex(&bytes), image.sha256);
    }
    let (code, again) = migrate(&d, &args);
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        (
            again["blobs_copied"].as_u64(),
            again["urls_rewritten"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn kill_9_mid_copy_then_a_second_run_completes_it() {
    let d = populated(6);
    let before = source_state(&d).await;
    let total = records(&db_url(d.path())).await.len();
    let target = tempfile::tempdir().unwrap();
    let (db, images) = (db_url(target.path()), target.path().join("images"));
    let args = [
        "migrate",
        "--to-database",
        &db,
        "--to-storage",
        images.to_str().unwrap(),
    ];
    let mut child = d
        .cmd()
        .args(args)
        .env("ATELIER_MIGRATE_PAUSE_MS", "400")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few generations are in, well before the end.
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_mins(1), "no progress");
        if target.path().join("atelier.db").exists() && count(&db).await >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = records(&db).await.len();
    assert!(
        partial < total,
        "killed in the middle: {partial} of {total}"
    );

    let (code, report) = migrate(&d, &args[1..]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["generations_copied"].as_u64().unwrap()
            + report["generations_present"].as_u64().unwrap(),
        total as u64
    );
    assert!(report["generations_present"].as_u64().unwrap() >= partial as u64);
    assert_identical(&d, &db, &images).await;
    assert_eq!(source_state(&d).await, before);
}

#[tokio::test]
async fn corrupt_and_missing_blobs_are_refused_and_the_rest_is_copied() {
    let d = populated(1);
    let all = records(&db_url(d.path())).await;
    // The fox (a parent) gets a corrupt upscale; the import loses a thumbnail.
    let fox = all
        .iter()
        .find(|r| r.generation.prompt == "a red fox")
        .unwrap();
    let child = all
        .iter()
        .find(|r| r.generation.parent_id == Some(fox.generation.id))
        .unwrap();
    let import = all
        .iter()
        .find(|r| r.generation.kind.as_str() == "import")
        .unwrap();
    std::fs::write(
        d.images().join(&fox.images[1].storage_key),
        b"not the picture",
    )
    .unwrap();
    std::fs::remove_file(
        d.images()
            .join(import.images[0].thumbnail_key.as_ref().unwrap()),
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let (db, images) = (db_url(target.path()), target.path().join("images"));
    let args = [
        "--to-database",
        &db,
        "--to-storage",
        images.to_str().unwrap(),
    ];
    let (code, report) = migrate(&d, &args);
    assert_eq!(code, 1, "{report}");
    let refused: BTreeMap<String, String> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["generation"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(refused.len(), 3, "{report}");
    assert!(
        refused[&fox.generation.id.to_string()].contains("corrupt"),
        "{report}"
    );
    assert!(
        refused[&import.generation.id.to_string()].contains("missing"),
        "{report}"
    );
    assert!(
        refused[&child.generation.id.to_string()].contains("parent"),
        "{report}"
    );
    assert_eq!(report["generations_copied"], (all.len() - 3) as u64);
    let copied = records(&db).await;
    assert_eq!(copied.len(), all.len() - 3);
    assert!(
        copied
            .iter()
            .all(|r| !refused.contains_key(&r.generation.id.to_string()))
    );
    for image in copied.iter().flat_map(|r| &r.images) {
        let bytes = std::fs::read(images.join(&image.storage_key)).unwrap();
        assert_eq!(sha256_hex(&bytes), image.sha256);
    }
    // Without JSON, the refusals are said in words.
    let out = d.cmd().arg("migrate").args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refused 3") && text.contains("corrupt"),
        "{text}"
    );
}

#[tokio::test]
async fn running_workers_stop_the_migration_before_anything_is_written() {
    let d = populated(0);
    {
        let db = catalogue::open(&db_url(d.path()), false).await.unwrap();
        let slots = vec!["sandbox:local".to_owned()];
        let claim = catalogue::Claim {
            worker: "elsewhere",
            lease_ms: 60_000,
            slots: &slots,
            only: None,
        };
        assert!(db.queue.claim(&claim).await.unwrap().is_some());
    }
    let target = tempfile::tempdir().unwrap();
    let db = db_url(target.path());
    let (code, out) = migrate(&d, &["--to-database", &db]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stop the workers first"),
        "{out}"
    );
    assert!(files(target.path()).is_empty(), "nothing written");
}

#[test]
fn bad_destinations_are_refused_and_nothing_is_written() {
    let d = DataDir::new();
    let (code, _) = d.json(&["generate", "fox", "--upscale", "none"]);
    assert_eq!(code, 0);
    let target = tempfile::tempdir().unwrap();
    let source_db = db_url(d.path());
    let in_target = |name: &str| target.path().join(name).display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "--to-database"),
        (
            vec![
                "--to-database".into(),
                "mysql://root:hunter2@127.0.0.1/x".into(),
            ],
            "postgres://",
        ),
        (
            vec!["--to-database".into(), source_db.clone()],
            "source catalogue itself",
        ),
        (
            vec!["--to-database".into(), "sqlite::memory:".into()],
            "in-memory",
        ),
        (
            vec!["--to-storage".into(), d.images().display().to_string()],
            "overlaps",
        ),
        (vec!["--to-storage".into(), "s3:///x".into()], "bucket"),
        (vec!["--to-storage".into(), "ftp://host/x".into()], "s3://"),
        (
            vec![
                "--to-storage".into(),
                in_target("images"),
                "--public-base-url".into(),
                "cdn.example".into(),
            ],
            "http",
        ),
        (
            vec!["--public-base-url".into(), "https://cdn.example".into()],
            "--to-storage",
        ),
    ];
    let before = files(d.path());
    for (args, needle) in cases {
        let mut all = vec!["--json", "migrate"];
        all.extend(args.iter().map(String::as_str));
        let out = d.cmd().args(&all).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout} {stderr}");
        assert!(
            stdout.contains(needle) || stderr.contains(needle),
            "{args:?}: {stdout} {stderr}"
        );
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2"),
            "{stdout} {stderr}"
        );
        assert!(
            files(target.path()).is_empty(),
            "{args:?} wrote in the target"
        );
    }
    // The source: only its WAL files may differ.
    let after = files(d.path());
    let keep = |m: &BTreeMap<String, String>| -> Vec<(String, String)> {
        m.iter()
            .filter(|(k, _)| !k.contains("-wal") && !k.contains("-shm"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(keep(&after), keep(&before));
    let _: PathBuf = target.path().to_path_buf();
}

/// Runs `atelier migrate` with the S3 test server's keys in the environment.
fn migrate_with_keys(d: &DataDir, args: &[&str]) -> (i32, serde_json::Value) {
    let out = d
        .cmd()
        .env("AWS_ACCESS_KEY_ID", "AKIATESTKEYID0000042")
        .env("AWS_SECRET_ACCESS_KEY", "secret-key-never-printed-4f1c9e")
        .arg("--json")
        .arg("migrate")
        .args(args)
        .output()
        .expect("binary runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), value)
}

/// The production move the issue names: an embedded deployment into `PostgreSQL` and a bucket,
/// every blob verified in the bucket, every record in the database; a second run copies
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_moves_to_postgresql_and_a_bucket() {
    let d = tokio::task::block_in_place(|| populated(1));
    let source = records(&db_url(d.path())).await;
    let database = crate::postgres::fresh_url().await;
    let bucket = crate::storage::new_bucket().await;
    let endpoint = crate::storage::endpoint();
    let to_storage = format!("s3://{bucket}/moved");
    let args = [
        "--to-database",
        database.as_str(),
        "--to-storage",
        to_storage.as_str(),
        "--endpoint",
        endpoint.as_str(),
    ];
    let (code, report) = tokio::task::block_in_place(|| migrate_with_keys(&d, &args));
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["generations_copied"].as_u64(),
        Some(source.len() as u64),
        "{report}"
    );
    let copied = records(&database).await;
    assert_eq!(copied.len(), source.len());
    for (c, s) in copied.iter().zip(&source) {
        assert_eq!(c.generation.id, s.generation.id);
        assert_eq!(c.events.len(), s.events.len());
        assert_eq!(c.images.len(), s.images.len());
        for image in &c.images {
            let bytes = crate::storage::raw_get(&bucket, &format!("moved/{}", image.storage_key))
                .await
                .unwrap_or_else(|| panic!("{} is in the bucket", image.storage_key));
            assert_eq!(sha256_hex(&bytes), image.sha256, "{}", image.storage_key);
        }
    }
    let (code, again) = tokio::task::block_in_place(|| migrate_with_keys(&d, &args));
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        (
            again["generations_copied"].as_u64(),
            again["blobs_copied"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
}
