//! Accounts end to end: `atelier user`, `key`, `credits` and `audit` through the real binary
//! (results, JSON, exit codes, bad input that changes nothing), and the use cases a server
//! signs people in with, through `App`.

use std::io::Write as _;
use std::process::Stdio;
use std::sync::Arc;

use atelier::app::App;
use atelier::config::CreditsConfig;
use atelier::domain::{
    Actor, Begun, GenerationId, GenerationKind, GrantKind, StoredResponse, UserRole,
};
use atelier::error::AppError;
use atelier::providers::Providers;
use atelier::store::{Layout, Store};

use crate::support::{Backend, DataDir};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn users_are_added_listed_and_refused_twice() {
    let d = DataDir::with_config("[credits]\ninitial = 3\n");
    let (code, ada) = d.json(&["user", "add", "Ada@Example.com"]);
    assert_eq!(code, 0, "{ada}");
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(ada["role"], "user");
    let (code, root) = d.json(&["user", "add", "root@example.com", "--admin"]);
    assert_eq!(code, 0, "{root}");
    assert_eq!(root["role"], "admin");

    let (code, again) = d.json(&["user", "add", "ADA@example.com "]);
    assert_eq!(code, 2, "{again}");
    assert_eq!(again["error"]["code"], "invalid_input");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{again}"
    );
    let (code, list) = d.json(&["user", "list"]);
    assert_eq!(code, 0);
    let emails: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ada@example.com", "root@example.com"]);
    let text = stdout(&d.run(&["user", "list"]));
    assert!(
        text.contains("ada@example.com") && text.contains("admin"),
        "{text}"
    );

    // The configured initial credits, as a bonus.
    let (code, credits) = d.json(&["credits", "show", "--user", "ada@example.com"]);
    assert_eq!(code, 0, "{credits}");
    assert_eq!(credits["balance"], 3);
    assert_eq!(credits["ledger"][0]["kind"], "bonus");
}

#[test]
fn bad_users_change_nothing() {
    let d = DataDir::new();
    for bad in ["not-an-address", "a b@example.com", "@example.com", ""] {
        let (code, e) = d.json(&["user", "add", bad]);
        assert_eq!(code, 2, "{bad:?}: {e}");
        assert_eq!(e["error"]["code"], "invalid_input");
    }
    // Nothing was created, not even the catalogue.
    assert!(!d.path().join("atelier.db").exists() || d.database_url().starts_with("postgres"));
    let (code, list) = d.json(&["user", "list"]);
    assert_eq!((code, list), (0, serde_json::json!([])));

    // A password too short, from stdin.
    let mut child = d
        .cmd()
        .args([
            "--json",
            "user",
            "add",
            "ada@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    let (_, list) = d.json(&["user", "list"]);
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn a_key_is_shown_once_listed_by_its_start_and_revoked() {
    let d = DataDir::new();
    assert_eq!(d.json(&["user", "add", "ada@example.com"]).0, 0);

    let (code, created) = d.json(&["key", "create", "--user", "ada@example.com", "--name", "ci"]);
    assert_eq!(code, 0, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("atl_") && key.len() == 68, "{key}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["prefix"], &key[..12]);

    // Without --json: the key alone on stdout, the warning on stderr.
    let out = d.run(&["key", "create", "--user", "ada@example.com"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "{printed}");
    assert!(lines[0].starts_with("atl_") && lines[0].len() == 68);
    assert!(stderr(&out).contains("shown this once"), "{}", stderr(&out));

    let (code, keys) = d.json(&["key", "list", "--user", "ada@example.com"]);
    assert_eq!(code, 0);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1]["name"], "default");
    let listing = stdout(&d.run(&["key", "list", "--user", "ada@example.com"]));
    assert!(!listing.contains(&key), "the secret is never listed");
    assert!(listing.contains(&key[..12]));

    let id = created["id"].as_str().unwrap();
    let (code, revoked) = d.json(&["key", "revoke", id]);
    assert_eq!(code, 0, "{revoked}");
    assert!(revoked["revoked_at"].is_string());

    for (args, what) in [
        (vec!["key", "revoke", "nope"], "a bad id"),
        (
            vec!["key", "revoke", "01890000-0000-7000-8000-000000000000"],
            "an unknown id",
        ),
        (
            vec!["key", "create", "--user", "bob@example.com"],
            "an unknown user",
        ),
        (
            vec!["key", "create", "--user", "ada@example.com", "--name", " "],
            "an empty name",
        ),
    ] {
        let (code, e) = d.json(&args);
        assert_eq!(code, 2, "{what}: {e}");
    }
    let (_, keys) = d.json(&["key", "list", "--user", "ada@example.com"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
}

#[test]
fn credits_are_granted_shown_and_bad_grants_refused() {
    let d = DataDir::new();
    assert_eq!(d.json(&["user", "add", "ada@example.com"]).0, 0);
    let (code, shown) = d.json(&[
        "credits",
        "grant",
        "--user",
        "ada@example.com",
        "25",
        "--note",
        "invoice 7",
    ]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(shown["balance"], 25);
    assert_eq!(shown["ledger"][0]["kind"], "purchase");
    assert_eq!(shown["ledger"][0]["note"], "invoice 7");
    let (code, _) = d.json(&[
        "credits",
        "grant",
        "--user",
        "ada@example.com",
        "5",
        "--kind",
        "bonus",
    ]);
    assert_eq!(code, 0);

    let long_note = "n".repeat(501);
    for (args, what) in [
        (
            vec!["credits", "grant", "--user", "ada@example.com", "-5"],
            "negative",
        ),
        (
            vec!["credits", "grant", "--user", "ada@example.com", "0"],
            "zero",
        ),
        (
            vec![
                "credits",
                "grant",
                "--user",
                "ada@example.com",
                "99999999999",
            ],
            "huge",
        ),
        (
            vec!["credits", "grant", "--user", "ada@example.com", "1.5"],
            "fractional",
        ),
        (
            vec![
                "credits",
                "grant",
                "--user",
                "ada@example.com",
                "1",
                "--note",
                &long_note,
            ],
            "a huge note",
        ),
        (
            vec![
                "credits",
                "grant",
                "--user",
                "ada@example.com",
                "1",
                "--kind",
                "gift",
            ],
            "an unknown kind",
        ),
        (
            vec!["credits", "grant", "--user", "bob@example.com", "1"],
            "an unknown user",
        ),
        (
            vec!["credits", "show", "--user", "bob@example.com"],
            "an unknown user",
        ),
    ] {
        let (code, e) = d.json(&args);
        assert_eq!(code, 2, "{what}: {e}");
        assert!(e["error"]["message"].is_string(), "{what}: {e}");
    }
    let (code, shown) = d.json(&["credits", "show", "--user", "ada@example.com"]);
    assert_eq!(code, 0);
    assert_eq!(shown["balance"], 30, "refused grants changed nothing");
    assert_eq!(shown["ledger"].as_array().unwrap().len(), 2);
    let text = stdout(&d.run(&["credits", "show", "--user", "ada@example.com"]));
    assert!(text.starts_with("ada@example.com: 30 credits"), "{text}");

    // The audit log tells who did what.
    let (code, log) = d.json(&["audit"]);
    assert_eq!(code, 0);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["credit_change", "credit_change", "user_add"]);
    assert_eq!(log[0]["actor"], serde_json::Value::Null);
    assert_eq!(log[1]["details"]["amount"], 25);
}

/// An `App` on a fresh catalogue whose credits are checked, each user starting with `initial`.
async fn app_with_credits(initial: u32) -> (Arc<App>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Backend::from_env().open(dir.path()).await;
    let app = App::builder(db, Store::memory(Layout::Default), Providers::default())
        .credits(CreditsConfig {
            enabled: true,
            initial,
            ..CreditsConfig::default()
        })
        .build();
    (app, dir)
}

/// Two processes on one database: a key revoked, or a user disabled, by one stops signing
/// anyone in on the other within `KEY_TRUST` (the other had just verified it), and at once on
/// the one that made the change.
#[tokio::test]
async fn a_change_made_elsewhere_reaches_a_verified_key_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::from_env().url(dir.path()).await;
    let open = || async {
        let db = atelier::catalogue::open(&url, true).await.unwrap();
        App::builder(db, Store::memory(Layout::Default), Providers::default()).build()
    };
    let (here, there) = (open().await, open().await);
    let op = Actor::Operator;
    let ada = here
        .add_user(op, "ada@example.com", UserRole::User, None)
        .await
        .unwrap();
    let (key, secret) = here.create_key(op, "ada@example.com", "ci").await.unwrap();
    let (_, other) = here.create_key(op, "ada@example.com", "two").await.unwrap();
    for app in [&here, &there] {
        assert_eq!(
            app.authenticate_key(secret.expose()).await.unwrap(),
            Some(Actor::User(ada.id))
        );
    }
    there.revoke_key(op, key.id).await.unwrap();
    assert_eq!(there.authenticate_key(secret.expose()).await.unwrap(), None);
    tokio::time::sleep(atelier::app::KEY_TRUST).await;
    assert_eq!(here.authenticate_key(secret.expose()).await.unwrap(), None);

    assert!(
        here.authenticate_key(other.expose())
            .await
            .unwrap()
            .is_some()
    );
    there
        .set_disabled(op, "ada@example.com", true)
        .await
        .unwrap();
    assert_eq!(there.authenticate_key(other.expose()).await.unwrap(), None);
    tokio::time::sleep(atelier::app::KEY_TRUST).await;
    assert_eq!(here.authenticate_key(other.expose()).await.unwrap(), None);
    there
        .set_disabled(op, "ada@example.com", false)
        .await
        .unwrap();
    assert!(
        there
            .authenticate_key(other.expose())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn keys_and_passwords_sign_users_in() {
    let (app, _dir) = app_with_credits(0).await;
    let op = Actor::Operator;
    let ada = app
        .add_user(op, "ada@example.com", UserRole::User, Some("correct horse"))
        .await
        .unwrap();
    let (key, secret) = app.create_key(op, "ada@example.com", "ci").await.unwrap();
    assert_eq!(
        app.authenticate_key(secret.expose()).await.unwrap(),
        Some(Actor::User(ada.id))
    );
    assert_eq!(app.authenticate_key("atl_wrong").await.unwrap(), None);
    assert_eq!(app.authenticate_key("").await.unwrap(), None);
    app.revoke_key(op, key.id).await.unwrap();
    assert_eq!(app.authenticate_key(secret.expose()).await.unwrap(), None);

    let (token, user) = app
        .login("ADA@example.com", "correct horse")
        .await
        .unwrap()
        .expect("signed in");
    assert_eq!(user, ada);
    assert!(token.expose().starts_with("ats_"));
    assert_eq!(format!("{token:?}"), "[redacted]");
    assert_eq!(
        app.authenticate_session(token.expose()).await.unwrap(),
        Some(Actor::User(ada.id))
    );
    assert_eq!(
        app.login("ada@example.com", "wrong horse").await.unwrap(),
        None
    );
    assert_eq!(
        app.login("eve@example.com", "correct horse").await.unwrap(),
        None
    );
    assert_eq!(app.login("not an address", "x").await.unwrap(), None);
    app.logout(token.expose()).await.unwrap();
    assert_eq!(
        app.authenticate_session(token.expose()).await.unwrap(),
        None
    );

    // An admin's key signs in an admin.
    let root = app
        .add_user(op, "root@example.com", UserRole::Admin, None)
        .await
        .unwrap();
    let (_, root_key) = app.create_key(op, "root@example.com", "ops").await.unwrap();
    assert_eq!(
        app.authenticate_key(root_key.expose()).await.unwrap(),
        Some(Actor::Admin(root.id))
    );
    // No password: no sign-in with one.
    assert_eq!(app.login("root@example.com", "").await.unwrap(), None);

    let log = app.audit_log(op, None, 50).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "key_create",
            "user_add",
            "login",
            "key_revoke",
            "key_create",
            "user_add"
        ]
    );
}

#[tokio::test]
async fn users_see_only_their_own_and_admins_manage() {
    let (app, _dir) = app_with_credits(2).await;
    let op = Actor::Operator;
    let ada = app
        .add_user(op, "ada@example.com", UserRole::User, None)
        .await
        .unwrap();
    let bob = app
        .add_user(op, "bob@example.com", UserRole::User, None)
        .await
        .unwrap();
    let as_ada = Actor::User(ada.id);
    assert_eq!(app.credits(as_ada, ada.id).await.unwrap().balance, 2);
    assert!(matches!(
        app.credits(as_ada, bob.id).await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        app.create_key(as_ada, "bob@example.com", "x").await,
        Err(AppError::NotFound(_))
    ));
    assert!(
        app.create_key(as_ada, "ada@example.com", "mine")
            .await
            .is_ok()
    );
    assert!(matches!(
        app.grant(as_ada, "ada@example.com", 100, GrantKind::Bonus, None)
            .await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        app.audit_log(as_ada, None, 10).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        app.add_user(as_ada, "eve@example.com", UserRole::Admin, None)
            .await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        app.set_role(as_ada, "ada@example.com", UserRole::Admin)
            .await,
        Err(AppError::Forbidden(_))
    ));
    let (_, key) = app
        .create_key(Actor::Operator, "ada@example.com", "k")
        .await
        .unwrap();
    let disabled = app
        .set_disabled(Actor::Operator, "ada@example.com", true)
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(app.authenticate_key(key.expose()).await.unwrap(), None);
    app.set_disabled(Actor::Operator, "ada@example.com", false)
        .await
        .unwrap();
    assert_eq!(
        app.authenticate_key(key.expose()).await.unwrap(),
        Some(Actor::User(ada.id))
    );
    let promoted = app
        .set_role(Actor::Operator, "bob@example.com", UserRole::Admin)
        .await
        .unwrap();
    assert_eq!(promoted.actor(), Actor::Admin(bob.id));
    let as_admin = Actor::Admin(bob.id);
    app.grant(
        as_admin,
        "ada@example.com",
        1,
        GrantKind::Bonus,
        Some("welcome"),
    )
    .await
    .unwrap();
    assert_eq!(app.credits(as_admin, ada.id).await.unwrap().balance, 3);
}

#[tokio::test]
async fn a_generations_cost_is_reserved_refused_and_released() {
    let (app, _dir) = app_with_credits(2).await;
    let ada = app
        .add_user(Actor::Operator, "ada@example.com", UserRole::User, None)
        .await
        .unwrap();
    let me = Actor::User(ada.id);
    let (g1, g2, g3) = (
        GenerationId::new(),
        GenerationId::new(),
        GenerationId::new(),
    );
    for g in [g1, g2] {
        assert!(
            app.reserve_credits(me, g, "sandbox", GenerationKind::Imagine)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(matches!(
        app.reserve_credits(me, g3, "sandbox", GenerationKind::Imagine)
            .await,
        Err(AppError::InsufficientCredits {
            needed: 1,
            balance: 0
        })
    ));
    // The operator's generations and imports cost nothing.
    assert_eq!(
        app.reserve_credits(Actor::Operator, g3, "sandbox", GenerationKind::Imagine)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        app.reserve_credits(me, g3, "sandbox", GenerationKind::Import)
            .await
            .unwrap(),
        None
    );
    // A generation never created gives its cost back, once.
    assert!(app.release_credits(g1).await.unwrap());
    assert!(!app.release_credits(g1).await.unwrap());
    assert_eq!(app.credits(me, ada.id).await.unwrap().balance, 1);
}

#[tokio::test]
async fn idempotent_requests_replay_their_first_answer() {
    let (app, _dir) = app_with_credits(0).await;
    let ada = app
        .add_user(Actor::Operator, "ada@example.com", UserRole::User, None)
        .await
        .unwrap();
    let body = br#"{"prompt":"a fox"}"#;
    let fp = atelier::app::request_fingerprint("POST", "/v1/generations", body);
    let (request, begun) = app.begin_request(ada.id, "k-1", fp.clone()).await.unwrap();
    assert_eq!(begun, Begun::New);
    let (_, again) = app.begin_request(ada.id, "k-1", fp.clone()).await.unwrap();
    assert_eq!(again, Begun::InFlight);
    app.complete_request(&request, 201, b"{\"id\":1}".to_vec())
        .await
        .unwrap();
    let (_, replay) = app.begin_request(ada.id, "k-1", fp).await.unwrap();
    assert_eq!(
        replay,
        Begun::Done(StoredResponse {
            status: 201,
            body: b"{\"id\":1}".to_vec()
        })
    );
    let other = atelier::app::request_fingerprint("POST", "/v1/generations", b"{}");
    let (_, mismatch) = app.begin_request(ada.id, "k-1", other).await.unwrap();
    assert_eq!(mismatch, Begun::Mismatch);
    assert!(matches!(
        app.begin_request(ada.id, "", "f".into()).await,
        Err(AppError::Invalid(_))
    ));
    assert_eq!(app.purge_requests().await.unwrap(), 0);
    assert_eq!(app.user(Actor::User(ada.id), ada.id).await.unwrap(), ada);
    assert!(matches!(
        app.user(Actor::User(atelier::domain::UserId::new()), ada.id)
            .await,
        Err(AppError::NotFound(_))
    ));
}
