//! The S3 store against a real S3-compatible server on loopback (`scripts/test.sh` starts
//! moto and sets `ATELIER_TEST_S3_ENDPOINT`): round trips verified by SHA-256, objects
//! changed behind the store's back refused, public URLs, the main job end to end through the
//! binary, and bad settings failing fast with the right exit code. Each test makes its own
//! bucket.

use std::process::Output;
use std::time::{Duration, Instant};

use atelier::secret::Secret;
use atelier::store::{Layout, S3Target, Store, StoreError, sha256_hex};

use crate::support::DataDir;

/// Keys the tests give; moto accepts any. Never printed by the binary.
const KEY_ID: &str = "AKIATESTKEYID0000042";
const SECRET_KEY: &str = "secret-key-never-printed-4f1c9e";

pub(crate) fn endpoint() -> String {
    std::env::var("ATELIER_TEST_S3_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ATELIER_TEST_S3_ENDPOINT is not set: run scripts/test.sh, or set \
                 ATELIER_TEST_S3_ENDPOINT to an S3-compatible server (such as http://127.0.0.1:9000)"
            )
        })
        .trim_end_matches('/')
        .to_owned()
}

fn http() -> reqwest::Client {
    atelier_discord::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A new, empty bucket of its own (moto takes an unsigned `PUT /{bucket}`), readable and
/// writable without keys, like a public bucket, so the tests can reach behind the store.
pub(crate) async fn new_bucket() -> String {
    let name = format!("atelier-{}", uuid::Uuid::now_v7().simple());
    let url = format!("{}/{name}", endpoint());
    let resp = http()
        .put(&url)
        .header("x-amz-acl", "public-read-write")
        .send()
        .await
        .unwrap_or_else(|e| panic!("the S3 test server at {} does not answer: {e}", endpoint()));
    assert!(
        resp.status().is_success(),
        "creating bucket {name}: {}",
        resp.status()
    );
    name
}

fn target(bucket: &str, root: &str) -> S3Target {
    S3Target {
        endpoint: endpoint(),
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        root: root.to_owned(),
        access_key_id: Secret::new(KEY_ID),
        secret_access_key: Secret::new(SECRET_KEY),
        timeout: Duration::from_secs(10),
    }
}

/// The object at `key` of `bucket`, read without the store.
pub(crate) async fn raw_get(bucket: &str, key: &str) -> Option<Vec<u8>> {
    let resp = http()
        .get(format!("{}/{bucket}/{key}", endpoint()))
        .send()
        .await
        .unwrap();
    resp.status()
        .is_success()
        .then_some(resp.bytes().await.unwrap().to_vec())
}

/// Replaces the object at `key`, behind the store's back.
async fn raw_put(bucket: &str, key: &str, bytes: Vec<u8>) {
    let resp = http()
        .put(format!("{}/{bucket}/{key}", endpoint()))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

#[tokio::test]
async fn s3_round_trip_is_verified_and_lands_under_the_root() {
    let bucket = new_bucket().await;
    let store = Store::s3(&target(&bucket, "atelier/test"), Layout::Default).unwrap();
    store.check().await.unwrap();
    let bytes = vec![42u8; 300_000];
    let sha = sha256_hex(&bytes);
    store.put("g1/grid.png", bytes.clone()).await.unwrap();
    assert_eq!(store.get("g1/grid.png", &sha).await.unwrap(), bytes);
    assert_eq!(
        raw_get(&bucket, "atelier/test/g1/grid.png").await.unwrap(),
        bytes,
        "the key goes under the root prefix"
    );
    assert!(store.local_path("g1/grid.png").is_none());
    let wrong = sha256_hex(b"something else");
    assert!(matches!(
        store.get("g1/grid.png", &wrong).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.get("g1/none.png", &sha).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn s3_object_changed_behind_the_store_is_refused() {
    let bucket = new_bucket().await;
    let store = Store::s3(&target(&bucket, ""), Layout::Default).unwrap();
    let bytes = b"the real grid".to_vec();
    let sha = sha256_hex(&bytes);
    store.put("g2/grid.png", bytes).await.unwrap();
    raw_put(&bucket, "g2/grid.png", b"the real grie".to_vec()).await;
    let err = store.get("g2/grid.png", &sha).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("g2/grid.png"), "{err}");
}

#[tokio::test]
async fn s3_put_all_delete_and_public_urls() {
    let bucket = new_bucket().await;
    let base = format!("{}/{bucket}/", endpoint());
    let store = Store::s3(&target(&bucket, ""), Layout::Library)
        .unwrap()
        .with_public_base_url(Some(base.clone()));
    assert_eq!(store.layout(), &Layout::Library);
    let blobs: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("raw/b/{i}.png"), vec![i; 1000 + usize::from(i)]))
        .collect();
    store.put_all(blobs.clone()).await.unwrap();
    for (key, bytes) in &blobs {
        assert_eq!(&store.get(key, &sha256_hex(bytes)).await.unwrap(), bytes);
        let url = store.url(key).unwrap();
        assert_eq!(url, format!("{base}{key}"));
        let resp = http().get(&url).send().await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        let fetched = resp.bytes().await.unwrap();
        assert_eq!(&fetched.to_vec(), bytes, "the public URL serves the object");
    }
    store.delete("raw/b/0.png").await.unwrap();
    assert!(matches!(
        store.get("raw/b/0.png", &sha256_hex(&blobs[0].1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(raw_get(&bucket, "raw/b/0.png").await.is_none());
    assert!(raw_get(&bucket, "raw/b/1.png").await.is_some());
}

#[tokio::test]
async fn s3_check_names_a_missing_bucket() {
    let store = Store::s3(&target("atelier-no-such-bucket-here", ""), Layout::Default).unwrap();
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, StoreError::Misconfigured { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(err.is_permanent());
}

fn storage_config(bucket: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "[storage]\nbackend = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"{bucket}\"\n\
         access_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET_KEY}\"\n{extra}"
    )
}

fn assert_no_secret(out: &Output) {
    for text in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(text);
        assert!(
            !text.contains(SECRET_KEY) && !text.contains(KEY_ID),
            "a key was printed:\n{text}"
        );
    }
}

fn run(d: &DataDir, args: &[&str]) -> Output {
    let out = d.run(args);
    assert_no_secret(&out);
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn the_main_job_stores_in_a_bucket_end_to_end() {
    let bucket = new_bucket().await;
    let base = format!("{}/{bucket}", endpoint());
    // local_split: the upscales are cut from the grid read back from the bucket, verified.
    let d = DataDir::raw(&format!(
        "[providers.sandbox]\nsize = 128\ndelay_ms = 0\nupscale_mode = \"local_split\"\n\
         [jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n{}",
        storage_config(
            &bucket,
            &endpoint(),
            &format!("public_base_url = \"{base}\"\n")
        )
    ));
    let out = run(
        &d,
        &["--json", "generate", "a red fox in the snow", "--seed", "7"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g = json(&out);
    assert_eq!(g["status"], "succeeded");
    let id = g["id"].as_str().unwrap();
    let images = g["images"].as_array().unwrap();
    assert_eq!(images.len(), 5);
    for i in images {
        let key = i["storage_key"].as_str().unwrap();
        assert_eq!(key, format!("{id}/{}.png", i["role"].as_str().unwrap()));
        assert_eq!(i["url"], format!("{base}/{key}"));
        assert!(i["path"].is_null(), "no local path for a bucket: {i}");
        let resp = http().get(i["url"].as_str().unwrap()).send().await.unwrap();
        assert!(resp.status().is_success(), "{i}: {}", resp.status());
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(i["sha256"], sha256_hex(&bytes), "the public URL resolves");
        let thumb = i["thumbnail_key"].as_str().map_or_else(
            || format!("{id}/thumb_{}.webp", i["role"].as_str().unwrap()),
            str::to_owned,
        );
        assert!(raw_get(&bucket, &thumb).await.is_some(), "{thumb}");
    }
    assert!(
        !d.images().exists(),
        "nothing is written to the folder store"
    );

    // Reading an image back (describe takes the stored grid) verifies it.
    let grid = images[0]["id"].as_str().unwrap();
    let out = run(&d, &["--json", "describe", grid]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grid_key = images[0]["storage_key"].as_str().unwrap();
    let mut changed = raw_get(&bucket, grid_key).await.unwrap();
    let last = changed.len() - 20;
    changed[last] ^= 1;
    raw_put(&bucket, grid_key, changed).await;
    let out = run(&d, &["--json", "describe", grid]);
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("corrupt") && text.contains(grid_key),
        "{text}"
    );
}

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_fast_before_anything_is_written() {
    let d = DataDir::with_config(&storage_config(
        "atelier-any",
        &format!("http://127.0.0.1:{}", closed_port()),
        "",
    ));
    let started = Instant::now();
    let out = run(&d, &["generate", "a fox"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach storage") && err.contains("atelier-any"),
        "{err}"
    );
    assert!(
        !d.path().join("atelier.db").exists(),
        "no catalogue was made"
    );
}

#[tokio::test]
async fn a_missing_bucket_is_a_configuration_error() {
    let d = DataDir::with_config(&storage_config("atelier-there-is-no-such", &endpoint(), ""));
    let out = run(&d, &["generate", "a fox"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("atelier-there-is-no-such"),
        "{err}"
    );
    assert!(
        !d.path().join("atelier.db").exists(),
        "no catalogue was made"
    );
}

#[test]
fn incomplete_s3_settings_are_refused_before_anything_is_written() {
    for (config, says) in [
        (
            "[storage]\nbackend = \"s3\"\nbucket = \"b\"\n".to_owned(),
            "storage.endpoint is not set",
        ),
        (
            "[storage]\nbackend = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\n".to_owned(),
            "storage.bucket is not set",
        ),
        (
            "[storage]\nbackend = \"s3\"\nendpoint = \"127.0.0.1:9\"\nbucket = \"b\"\n".to_owned(),
            "storage.endpoint must be an http(s) URL",
        ),
        (
            "[storage]\nbackend = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\n"
                .to_owned(),
            "AWS_ACCESS_KEY_ID",
        ),
        ("[storage]\nbackend = \"bucket\"\n".to_owned(), "`folder`"),
    ] {
        let d = DataDir::with_config(&config);
        let out = d
            .cmd()
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .args(["generate", "a fox"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{config}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{config}: {err}");
        let files: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "only atelier.toml: {files:?}");
    }
}

#[test]
fn keys_come_from_the_environment_when_the_file_has_none() {
    let d = DataDir::with_config(
        "[storage]\nbackend = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\n",
    );
    let out = d
        .cmd()
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["--json", "config", "show"])
        .output()
        .unwrap();
    assert_no_secret(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_show_hides_every_secret() {
    let d = DataDir::with_config(&format!(
        "{}\n[providers.midjourney]\n\
         [[providers.midjourney.accounts]]\nname = \"one\"\ntoken = \"discord-token-never-printed\"\n\
         channel_id = \"123\"\n",
        storage_config("b", "http://127.0.0.1:9", "")
    ));
    let out = d
        .cmd()
        .env(
            "DATABASE_URL",
            "postgres://app:db-password-never-printed@127.0.0.1:5432/atelier",
        )
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_no_secret(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("never-printed"), "{text}");
    let shown = json(&out);
    assert_eq!(
        shown["database_url"],
        "postgres://app:[redacted]@127.0.0.1:5432/atelier"
    );
    assert_eq!(shown["storage"]["secret_access_key"], "[redacted]");
    assert_eq!(shown["storage"]["access_key_id"], "[redacted]");
    assert_eq!(shown["storage"]["bucket"], "b");
    assert_eq!(
        shown["providers"]["midjourney"]["accounts"][0]["token"],
        "[redacted]"
    );
}
