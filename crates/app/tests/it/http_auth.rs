//! The HTTP API's doors and guards over a real socket: Supabase sign-in tokens (an HS256
//! secret, and a JWKS served on loopback with its keys rotated), rate limits per key and per
//! address, `/metrics`, and images filed again or deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::http::{Server, client, get_json, key_for, problem};
use crate::support::DataDir;

const SECRET: &str = "a-test-jwt-secret-that-is-long-enough-for-hs256";
const ISSUER: &str = "https://project.supabase.co/auth/v1";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims as Supabase Auth writes them for a signed-in user.
fn claims(sub: &str, email: &str) -> Value {
    json!({
        "sub": sub, "email": email, "aud": "authenticated", "role": "authenticated",
        "iss": ISSUER, "iat": now(), "exp": now() + 3600,
    })
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signed")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name),
    )
    .expect("fixture")
}

fn es256(claims: &Value, key: u8) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(format!("test-key-{key}"));
    let pem = fixture(&format!("es256-{key}.pem"));
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(&pem).expect("a P-256 key"),
    )
    .expect("signed")
}

fn jwk(key: u8) -> Value {
    serde_json::from_slice(&fixture(&format!("es256-{key}.jwk.json"))).expect("a JWK")
}

async fn status_of(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_tokens_sign_users_in_made_on_first_sight_and_forgeries_are_refused() {
    let s = Server::start(&format!(
        "[server.jwt]\nsecret = \"{SECRET}\"\nissuer = \"{ISSUER}\"\n"
    ));
    let http = client();
    let (ada, bob) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let ada_token = hs256(&claims(&ada.to_string(), "Ada@Example.com"), SECRET);
    let bob_token = hs256(&claims(&bob.to_string(), ""), SECRET);

    // The first request makes the user, with the token's subject as id.
    let me = get_json(&http, s.url("/v1/me"), Some(&ada_token)).await;
    assert_eq!(me["id"], ada.to_string(), "{me}");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["role"], "user");
    let again = get_json(&http, s.url("/v1/me"), Some(&ada_token)).await;
    assert_eq!(again["id"], me["id"]);
    // No address in the token: a placeholder one under .invalid.
    let bob_me = get_json(&http, s.url("/v1/me"), Some(&bob_token)).await;
    assert_eq!(bob_me["email"], format!("{bob}@users.invalid"));
    // An address the token says is not verified claims nothing.
    let carol = uuid::Uuid::now_v7();
    let mut unverified = claims(&carol.to_string(), "ada@example.com");
    unverified["user_metadata"] = json!({"email_verified": false});
    let carol_me = get_json(&http, s.url("/v1/me"), Some(&hs256(&unverified, SECRET))).await;
    assert_eq!(carol_me["email"], format!("{carol}@users.invalid"));

    // What Ada makes is hers alone.
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&ada_token)
        .header("prefer", "wait=30")
        .json(&json!({"prompt": "a squirrel reading", "upscale": "none"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let g: Value = r.json().await.expect("json");
    let path = format!("/v1/generations/{}", g["id"].as_str().expect("id"));
    assert_eq!(status_of(&http, &s.url(&path), &ada_token).await, 200);
    assert_eq!(status_of(&http, &s.url(&path), &bob_token).await, 404);

    // Forgeries and tokens for someone else: 401, and no user is made.
    let mut expired = claims(&ada.to_string(), "ada@example.com");
    expired["exp"] = json!(now() - 120);
    let mut other_audience = claims(&ada.to_string(), "ada@example.com");
    other_audience["aud"] = json!("anon");
    let mut other_issuer = claims(&ada.to_string(), "ada@example.com");
    other_issuer["iss"] = json!("https://elsewhere.supabase.co/auth/v1");
    let stranger = uuid::Uuid::now_v7();
    let mut not_a_uuid = claims("service-account", "x@example.com");
    not_a_uuid["sub"] = json!("service-account");
    let nil = claims(&uuid::Uuid::nil().to_string(), "x@example.com");
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(
            claims(&stranger.to_string(), "s@example.com")
                .to_string()
                .as_bytes()
        )
    );
    let tampered = {
        let token = hs256(&claims(&ada.to_string(), "ada@example.com"), SECRET);
        let parts: Vec<&str> = token.split('.').collect();
        let payload = base64_url(
            claims(&stranger.to_string(), "ada@example.com")
                .to_string()
                .as_bytes(),
        );
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    for (what, token) in [
        ("expired", hs256(&expired, SECRET)),
        ("another audience", hs256(&other_audience, SECRET)),
        ("another issuer", hs256(&other_issuer, SECRET)),
        (
            "another secret",
            hs256(
                &claims(&stranger.to_string(), "s@example.com"),
                "another-secret-of-enough-length-1234567",
            ),
        ),
        ("not a user id", hs256(&not_a_uuid, SECRET)),
        ("the nil id", hs256(&nil, SECRET)),
        ("unsigned", unsigned),
        ("tampered", tampered),
    ] {
        let r = http
            .get(s.url("/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 401, "{what}");
        problem(r, 401, "unauthorized").await;
    }
    let out = s.data.run(&["user", "list", "--json"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listed.contains(&stranger.to_string()),
        "a refused token made no user: {listed}"
    );
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWKS document on loopback, as a Supabase project serves it, counting its fetches.
struct Jwks {
    url: String,
    keys: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    /// While true, the document answers after a minute.
    hang: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Jwks {
    async fn start(keys: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/auth/v1/.well-known/jwks.json",
            listener.local_addr().expect("addr")
        );
        let keys = Arc::new(std::sync::Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (k, f, h) = (keys.clone(), fetches.clone(), hang.clone());
        let app = axum::Router::new().route(
            "/auth/v1/.well-known/jwks.json",
            axum::routing::get(move || {
                let (k, f, h) = (k.clone(), f.clone(), h.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    if h.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_mins(1)).await;
                    }
                    axum::Json(k.lock().expect("keys").clone())
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            keys,
            fetches,
            hang,
            task,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_are_fetched_once_kept_and_fetched_again_for_a_rotated_key() {
    let jwks = Jwks::start(json!({"keys": [jwk(1)]})).await;
    let s = Server::start(&format!(
        "[server.jwt]\njwks_url = \"{}\"\njwks_cache_secs = 600\n",
        jwks.url
    ));
    let http = client();
    let me = s.url("/v1/me");
    let user = uuid::Uuid::now_v7().to_string();
    let one = es256(&claims(&user, "kid@example.com"), 1);
    assert_eq!(status_of(&http, &me, &one).await, 200);
    assert_eq!(status_of(&http, &me, &one).await, 200);
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "kept, not fetched again"
    );

    // A key the document does not hold: right after a fetch, not fetched again (a forger
    // naming new key ids cannot make the server hammer the project); a few seconds later,
    // fetched again once, and still unknown: 401.
    let two = es256(&claims(&user, "kid@example.com"), 2);
    assert_eq!(status_of(&http, &me, &two).await, 401);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "no fetch storm");
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    assert_eq!(status_of(&http, &me, &two).await, 401);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(status_of(&http, &me, &two).await, 401);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);

    // The project rotates: the new key is found on the next fetch.
    *jwks.keys.lock().expect("keys") = json!({"keys": [jwk(1), jwk(2)]});
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    assert_eq!(status_of(&http, &me, &two).await, 200);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 3);

    // An HS256 token claiming a JWKS key (the public key used as an HMAC secret): refused.
    let x = jwk(1)["x"].as_str().expect("x").to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(&user, "kid@example.com"),
        &EncodingKey::from_secret(x.as_bytes()),
    )
    .expect("signed");
    assert_eq!(status_of(&http, &me, &confused).await, 401);

    // The JWKS goes away: the keys already known keep working.
    jwks.task.abort();
    assert_eq!(status_of(&http, &me, &one).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_that_hangs_never_slows_a_request_whose_key_is_known() {
    let jwks = Jwks::start(json!({"keys": [jwk(1)]})).await;
    let s = Server::start(&format!(
        "[server.jwt]\njwks_url = \"{}\"\njwks_cache_secs = 1\n",
        jwks.url
    ));
    let http = client();
    let me = s.url("/v1/me");
    let token = es256(
        &claims(&uuid::Uuid::now_v7().to_string(), "k@example.com"),
        1,
    );
    assert_eq!(status_of(&http, &me, &token).await, 200);
    // The cache goes stale while the document hangs: the known key still answers at once,
    // and forged key ids (each would want a fetch) do not change that.
    jwks.hang.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let forged = es256(
        &claims(&uuid::Uuid::now_v7().to_string(), "f@example.com"),
        2,
    );
    let stranger = {
        let http = http.clone();
        let me = me.clone();
        tokio::spawn(async move { status_of(&http, &me, &forged).await })
    };
    for _ in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(status_of(&http, &me, &token).await, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a known key waited {:?} for the JWKS",
            started.elapsed()
        );
    }
    assert_eq!(stranger.await.expect("joined"), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_that_cannot_be_fetched_is_a_503_not_a_401() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let s = Server::start(&format!(
        "[server.jwt]\njwks_url = \"http://127.0.0.1:{port}/jwks.json\"\n"
    ));
    let http = client();
    let token = es256(
        &claims(&uuid::Uuid::now_v7().to_string(), "a@example.com"),
        1,
    );
    let r = http
        .get(s.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    let body = problem(r, 503, "unavailable").await;
    assert!(
        !body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "the detail names no host: {body}"
    );
}

#[test]
fn a_bad_jwt_configuration_is_refused_before_anything_is_written() {
    let data = DataDir::with_config("[server.jwt]\nsecret = \"short\"\n");
    let out = data.run(&["serve", "--bind", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 characters"));
    let data = DataDir::with_config("[server.jwt]\njwks_url = \"ftp://example.test/jwks\"\n");
    let out = data.run(&["serve", "--bind", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!data.path().join("atelier.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_over_their_rate_get_429_with_retry_after_and_sign_ins_are_limited_per_address() {
    let data = DataDir::with_config(
        "[server]\nrate_limit_per_minute = 6\nrate_limit_burst = 3\nsign_in_per_minute = 2\n",
    );
    let alice = key_for(&data, "alice@example.com", false);
    let bob = key_for(&data, "bob@example.com", false);
    let s = Server::on(data);
    let http = client();
    let me = s.url("/v1/me");
    for _ in 0..3 {
        assert_eq!(status_of(&http, &me, &alice).await, 200);
    }
    let r = http
        .get(&me)
        .bearer_auth(&alice)
        .send()
        .await
        .expect("sent");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&retry), "{retry}");
    problem(r, 429, "rate_limited").await;
    // The limit is the user's: another key of hers is over it too; another user is not.
    let out = s
        .data
        .run(&["key", "create", "--user", "alice@example.com"]);
    let second = String::from_utf8(out.stdout)
        .expect("text")
        .trim()
        .to_owned();
    assert_eq!(status_of(&http, &me, &second).await, 429);
    assert_eq!(status_of(&http, &me, &bob).await, 200);

    // Refused keys are counted apart from sign-in attempts: a few do not lock sign-in out.
    for n in 0..5 {
        assert_eq!(status_of(&http, &me, &format!("atl_wrong{n}")).await, 401);
    }

    // Sign-in attempts from one address, right or wrong: two, then 429.
    for _ in 0..2 {
        let r = http
            .post(s.url("/v1/sessions"))
            .json(&json!({"email": "alice@example.com", "password": "wrong password"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 401);
    }
    let r = http
        .post(s.url("/v1/sessions"))
        .json(&json!({"email": "alice@example.com", "password": "wrong password"}))
        .send()
        .await
        .expect("sent");
    problem(r, 429, "rate_limited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_jobs_for_administrators_only() {
    let data = DataDir::with_config("");
    let alice = key_for(&data, "alice@example.com", false);
    let root = key_for(&data, "root@example.com", true);
    let s = Server::on(data);
    let http = client();
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&alice)
        .header("prefer", "wait=30")
        .json(&json!({"prompt": "counted", "upscale": "none"}))
        .send()
        .await
        .expect("create");
    let g: Value = r.json().await.expect("json");
    let id = g["id"].as_str().expect("id");
    assert_eq!(
        status_of(&http, &s.url(&format!("/v1/generations/{id}")), &alice).await,
        200
    );

    // Anyone may send a made-up method: it must not make a series of its own.
    let made_up = reqwest::Method::from_bytes(b"MADEUP").expect("a method");
    let r = http
        .request(made_up, s.url("/v1/images"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 405);
    let r = http.get(s.url("/metrics")).send().await.expect("sent");
    problem(r, 401, "unauthorized").await;
    let r = http
        .get(s.url("/metrics"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("sent");
    problem(r, 403, "forbidden").await;
    let r = http
        .get(s.url("/metrics"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let text = r.text().await.expect("text");
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(!text.contains("MADEUP"), "a made-up method names no series");
    assert!(
        has(
            r#"atelier_http_requests_total{method="GET",route="/v1/generations/{id}",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        has("atelier_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        has(r#"atelier_jobs{provider="sandbox",status="pending"} 0"#),
        "{text}"
    );
    assert!(
        has(r#"atelier_job_runs_total{provider="sandbox",outcome="succeeded"} 1"#),
        "{text}"
    );
    assert!(!text.contains(id), "no ids in metric labels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_public_or_off() {
    let s = Server::start("[server]\nauth = \"none\"\nmetrics = \"off\"\n");
    let r = client().get(s.url("/metrics")).send().await.expect("sent");
    problem(r, 404, "not_found").await;
    let data = DataDir::with_config("[server]\nmetrics = \"public\"\n");
    let s = Server::on(data);
    let r = client().get(s.url("/metrics")).send().await.expect("sent");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_filed_again_and_deleted_with_their_files() {
    let data = DataDir::with_config("");
    let alice = key_for(&data, "alice@example.com", false);
    let bob = key_for(&data, "bob@example.com", false);
    let s = Server::on(data);
    let http = client();
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&alice)
        .header("prefer", "wait=30")
        .json(&json!({"prompt": "a fox", "upscale": [1], "category": "scene", "subject": "wood"}))
        .send()
        .await
        .expect("create");
    let g: Value = r.json().await.expect("json");
    let image = g["images"][1]["id"]
        .as_str()
        .expect("an upscale")
        .to_owned();
    let path = s.url(&format!("/v1/images/{image}"));

    // A new category and subject; bad values change nothing.
    let update = |body: Value, key: &str| http.patch(&path).bearer_auth(key).json(&body).send();
    let r = update(
        json!({"category": "character", "subject": "  Fox  "}),
        &alice,
    )
    .await
    .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["category"].clone(), v["subject"].clone()),
        (json!("character"), json!("Fox"))
    );
    for bad in [
        json!({"category": "landscape", "status": "final"}),
        json!({"subject": "x".repeat(201), "status": "final"}),
        json!({"subject": "a\u{7}b", "status": "final"}),
    ] {
        let r = update(bad, &alice).await.expect("sent");
        problem(r, 422, "invalid_input").await;
    }
    let v = get_json(&http, &path, Some(&alice)).await;
    assert_eq!(v["status"], "draft", "nothing changed: {v}");
    let r = update(json!({"subject": ""}), &alice).await.expect("sent");
    let v: Value = r.json().await.expect("json");
    assert!(v.get("subject").is_none_or(Value::is_null), "cleared: {v}");
    let r = update(json!({"subject": "taken"}), &bob)
        .await
        .expect("sent");
    problem(r, 404, "not_found").await;

    // Deleted: its row and its files; another user's delete is a 404 and changes nothing.
    let r = http
        .delete(&path)
        .bearer_auth(&bob)
        .send()
        .await
        .expect("sent");
    problem(r, 404, "not_found").await;
    let files_before = walk(s.data.path()).len();
    let r = http
        .delete(&path)
        .bearer_auth(&alice)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 204);
    for p in [
        path.clone(),
        format!("{path}/file"),
        format!("{path}/thumbnail"),
    ] {
        assert_eq!(status_of(&http, &p, &alice).await, 404, "{p}");
    }
    let r = http
        .delete(&path)
        .bearer_auth(&alice)
        .send()
        .await
        .expect("sent");
    problem(r, 404, "not_found").await;
    assert_eq!(
        walk(s.data.path()).len(),
        files_before - 2,
        "the image and its thumbnail are gone"
    );
    let shown = get_json(
        &http,
        s.url(&format!(
            "/v1/generations/{}",
            g["id"].as_str().expect("id")
        )),
        Some(&alice),
    )
    .await;
    assert_eq!(
        shown["images"].as_array().map(Vec::len),
        Some(1),
        "the grid stays"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            found.extend(walk(&p));
        } else {
            found.push(p);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_of_a_running_generation_is_not_deleted() {
    let data =
        DataDir::raw("[providers.sandbox]\nsize = 128\ndelay_ms = 400\n[jobs]\npoll_secs = 0.05\n");
    let alice = key_for(&data, "alice@example.com", false);
    let s = Server::on(data);
    let http = client();
    let r = http
        .post(s.url("/v1/generations"))
        .bearer_auth(&alice)
        .json(&json!({"prompt": "slow", "upscale": [1, 2, 3, 4]}))
        .send()
        .await
        .expect("create");
    let g: Value = r.json().await.expect("json");
    let shown = format!("/v1/generations/{}", g["id"].as_str().expect("id"));
    // Wait for the grid, while the upscales still run.
    let grid = loop {
        let v = get_json(&http, s.url(&shown), Some(&alice)).await;
        assert_ne!(
            v["status"], "succeeded",
            "ended before the test could look: {v}"
        );
        if let Some(id) = v["images"][0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = http
        .delete(s.url(&format!("/v1/images/{grid}")))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("sent");
    problem(r, 409, "conflict").await;
    assert_eq!(
        status_of(&http, &s.url(&format!("/v1/images/{grid}")), &alice).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_trickle_their_headers_or_send_nothing_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start("[server]\nauth = \"none\"\nheader_timeout_secs = 1\n");
    let addr = s.base.trim_start_matches("http://").to_owned();
    for opening in [&b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: "[..], b""] {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        conn.write_all(opening).await.expect("write");
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(6), conn.read_to_end(&mut answer)).await;
        assert!(
            closed.is_ok(),
            "a connection that sent {:?} is still open",
            String::from_utf8_lossy(opening)
        );
        assert!(started.elapsed() >= Duration::from_millis(900));
    }
    // Meanwhile and afterwards, others are served.
    let r = client().get(s.url("/healthz")).send().await.expect("sent");
    assert_eq!(r.status().as_u16(), 200);
}
