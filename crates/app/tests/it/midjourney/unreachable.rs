//! An unreachable Discord gateway: refused connections are known at once and retried with
//! backoff, the job says what it waits for and fails with `provider_unavailable` after the
//! configured budget, `accounts --check` fails saying why, and a gateway that comes back in
//! time lets the job finish.

use std::net::SocketAddr;
use std::time::Duration;

use atelier::cli::simulate::client_config;
use std::sync::Arc;

use atelier::app::App;
use atelier::domain::{ErrorCode, EventKind, GenerationId, GenerationRequest, GenerationStatus};
use atelier_simulator::{Running, Timing};
use tokio::net::{TcpListener, TcpStream};

use super::{app_for, assert_complete, run_all_within, simulator};

/// A port on 127.0.0.1 that refuses connections: bound, then let go.
async fn refusing_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// From now on, connections to `at` reach the simulator (the gateway comes back).
async fn forward(at: SocketAddr, sim: &Running) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(at).await.expect("the port is still free");
    let target = sim.addr();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// The simulator, a port that refuses, and an app whose gateway is that port, waiting at most
/// `budget` seconds for it, with one generation submitted.
async fn refused_gateway(
    budget: f64,
) -> (
    Running,
    SocketAddr,
    tempfile::TempDir,
    Arc<App>,
    GenerationId,
) {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let refused = refusing_port().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |c| {
        c.providers.midjourney.gateway_url = format!("ws://{refused}");
        c.providers.midjourney.unavailable_after_secs = budget;
    })
    .await;
    let id = app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new("a lighthouse"),
        )
        .await
        .expect("submitted")
        .id;
    (sim, refused, dir, app, id)
}

#[tokio::test]
async fn a_refused_gateway_fails_the_job_after_its_budget_saying_why() {
    let (sim, refused, _dir, app, id) = refused_gateway(2.0).await;
    // Far below one old 45 s wait per attempt: a correctness bound, not a benchmark.
    run_all_within(&app, Duration::from_secs(40)).await;

    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::ProviderUnavailable));
    let message = &g.error.as_ref().unwrap().message;
    assert!(
        message.contains("sim-1")
            && message.contains("within 2s")
            && message.contains(&format!(
                "cannot connect to ws://{refused}: connection refused"
            )),
        "{message}"
    );
    // The budget is the whole wait: the job is not tried again.
    assert_eq!(app.queue().job_of(id).await.unwrap().attempts, 1);

    // Followers heard what the job waited for while it waited.
    let events = app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let notices: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress)
        .filter_map(|e| e.error.as_ref())
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        notices
            .iter()
            .any(|n| n.starts_with("waiting for Midjourney account sim-1")
                && n.contains("connection refused")),
        "{notices:?}"
    );
    assert_eq!(events.last().map(|e| e.kind), Some(EventKind::Failed));

    // `atelier accounts` shows why the account is not ready.
    let accounts = app.accounts(None).await.unwrap();
    assert_eq!(accounts[0].status.health, "connecting");
    assert!(
        accounts[0]
            .status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("connection refused")),
        "{:?}",
        accounts[0].status.reason
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_gateway_that_comes_back_within_the_budget_lets_the_job_finish() {
    let (sim, refused, _dir, app, id) = refused_gateway(60.0).await;
    let mut events = app.local_events();
    let run = tokio::spawn(run_all_within_owned(app.clone()));
    // The gateway comes back once the job has said it waits for it.
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(e) = events.recv().await {
            if e.generation_id == id && e.kind == EventKind::Progress && e.error.is_some() {
                return;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "no waiting notice");
    let proxy = forward(refused, &sim).await;
    run.await.unwrap();
    assert_complete(&app, id).await;
    assert_eq!(app.queue().job_of(id).await.unwrap().attempts, 1);
    proxy.abort();
    sim.shutdown().await;
}

async fn run_all_within_owned(app: std::sync::Arc<atelier::app::App>) {
    run_all_within(&app, Duration::from_mins(1)).await;
}

// The simulator serves from this runtime while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_fails_and_says_why_when_discord_refuses() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let refused = refusing_port().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.toml");
    let config = client_config(&sim).replace(
        &format!("gateway_url = \"{}\"", sim.gateway_url()),
        &format!("gateway_url = \"ws://{refused}\""),
    );
    assert!(config.contains(&refused.to_string()), "{config}");
    std::fs::write(&file, config).unwrap();
    let atelier = |args: &[&str]| {
        crate::support::bare_cmd()
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("ATELIER_PROVIDERS__MIDJOURNEY__UNAVAILABLE_AFTER_SECS", "2")
            .args(args)
            .output()
            .unwrap()
    };
    let why = format!("cannot connect to ws://{refused}: connection refused");

    // `accounts --check` exits 1 and says why each account is not ready.
    let out = atelier(&["accounts", "--check", "--wait", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sim-1 is connecting") && stderr.contains(&why),
        "{stderr}"
    );
    let out = atelier(&["--json", "accounts", "--check", "--wait", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for account in list.as_array().unwrap() {
        assert_eq!(account["health"], "connecting", "{list}");
        assert!(
            account["reason"].as_str().is_some_and(|r| r.contains(&why)),
            "{list}"
        );
    }

    // `generate` fails after the budget with the reason, not after minutes of silence.
    let out = atelier(&["--json", "generate", "--provider", "midjourney", "a pond"]);
    assert_eq!(out.status.code(), Some(1));
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["status"], "failed", "{g}");
    assert_eq!(g["error"]["code"], "provider_unavailable", "{g}");
    assert!(
        g["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&why)),
        "{g}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn discord_vanishing_mid_job_fails_it_after_the_budget_not_its_deadline() {
    // The job stays at some percentage (the bot never finishes it), then Discord goes away.
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    sim.control().inject(atelier_simulator::Fault::Stuck);
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |c| {
        // A result deadline far beyond the run's bound: only the gateway's budget ends it.
        c.providers.midjourney.timeout_secs = 600.0;
        c.providers.midjourney.unavailable_after_secs = 1.0;
    })
    .await;
    let id = app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new("a lighthouse"),
        )
        .await
        .expect("submitted")
        .id;
    let control = sim.control();
    let stopper = tokio::spawn(async move {
        while control.stats().jobs_started == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sim.shutdown().await;
    });
    run_all_within(&app, Duration::from_mins(1)).await;
    stopper.await.unwrap();

    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::ProviderUnavailable));
    // The waiting job heard why it stopped waiting, and was tried again.
    let events = app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let said: Vec<&str> = events
        .iter()
        .filter_map(|e| e.error.as_ref())
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        said.iter().any(|m| m.contains("sim-1")
            && m.contains("gateway has been down")
            && m.contains("waited for its result")),
        "{said:?}"
    );
    assert!(app.queue().job_of(id).await.unwrap().attempts >= 2);
}

#[tokio::test]
async fn a_channel_discord_does_not_know_takes_the_account_out_naming_it() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |c| {
        // A snowflake no channel has (deleted, or never there).
        c.providers.midjourney.accounts[0].channel_id = "4242".into();
    })
    .await;
    let id = app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new("a lighthouse"),
        )
        .await
        .expect("submitted")
        .id;
    run_all_within(&app, Duration::from_mins(1)).await;
    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::ProviderUnavailable));
    let message = &g.error.as_ref().unwrap().message;
    assert!(
        message.contains("channel 4242") && message.contains("channel_id"),
        "{message}"
    );
    let accounts = app.accounts(None).await.unwrap();
    assert_eq!(accounts[0].status.health, "disabled", "{:?}", accounts[0]);
    assert!(
        accounts[0]
            .status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("channel 4242")),
        "{:?}",
        accounts[0].status.reason
    );
    sim.shutdown().await;
}
