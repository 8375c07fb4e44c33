//! A Discord account held by one node at a time: two nodes (two apps on one catalogue) share
//! one simulator account; the one without the hold never connects, and when the holder can no
//! longer renew its hold (its database gone quiet) it closes its gateway before the other
//! takes the account over and runs the next generation. The simulator counts the sessions of
//! one account live at once: never more than one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use atelier::app::App;
use atelier::domain::{GenerationId, GenerationRequest, GenerationStatus};
use atelier::jobs::{QueueHolds, Stop, run_workers};
use atelier::providers::{AccountHolds, AccountPool};

use super::{app_for, simulator};

/// The queue's holds, until switched off: then every request fails, as with a database that
/// no longer answers this node.
struct Switchable {
    inner: QueueHolds,
    off: AtomicBool,
}

#[async_trait]
impl AccountHolds for Switchable {
    async fn hold(&self, account: &str, holder: &str, lease: Duration) -> Result<bool, String> {
        if self.off.load(Ordering::SeqCst) {
            return Err("the database does not answer (test)".into());
        }
        self.inner.hold(account, holder, lease).await
    }

    async fn release(&self, account: &str, holder: &str) {
        self.inner.release(account, holder).await;
    }
}

fn pool_of(app: &App) -> Arc<dyn AccountPool> {
    app.providers()
        .get("midjourney")
        .and_then(|r| r.accounts.clone())
        .expect("a Midjourney pool")
}

fn health(pool: &dyn AccountPool) -> String {
    pool.statuses()[0].health.clone()
}

async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn succeeds(app: &App, prompt: &str) -> GenerationId {
    let id = app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new(prompt),
        )
        .await
        .expect("submitted")
        .id;
    let start = Instant::now();
    loop {
        let g = app.catalogue().generation(id).await.expect("generation");
        if g.status.is_terminal() {
            assert_eq!(g.status, GenerationStatus::Succeeded, "{:?}", g.error);
            return id;
        }
        assert!(start.elapsed() < Duration::from_mins(1), "{prompt} ends");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_moves_to_another_node_without_two_sessions_at_once() {
    let sim = simulator(|_| {}).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Both nodes on one catalogue: the data directory's file, or one PostgreSQL database.
    let shared = if crate::support::Backend::from_env() == crate::support::Backend::Postgres {
        Some(crate::postgres::fresh_url().await)
    } else {
        None
    };
    let node = |id: &'static str| {
        let shared = shared.clone();
        move |c: &mut atelier::config::Config| {
            c.node.id = Some(id.into());
            c.providers.midjourney.hold_secs = 1.5;
            c.database_url = shared.map(atelier::secret::DatabaseUrl::new);
        }
    };
    let a = app_for(&sim, dir.path(), 1, node("node-a")).await;
    let b = app_for(&sim, dir.path(), 1, node("node-b")).await;
    let (pool_a, pool_b) = (pool_of(&a), pool_of(&b));
    let holds_a = Arc::new(Switchable {
        inner: QueueHolds(a.queue().clone()),
        off: AtomicBool::new(false),
    });
    pool_a.hold_with(holds_a.clone(), "node-a");
    until("node A holds the account", Duration::from_secs(5), || {
        pool_a.takes_jobs()
    })
    .await;
    let workers_b = tokio::spawn(run_workers(b.clone(), 1, Stop::Never));
    until(
        "node B sees the account held elsewhere",
        Duration::from_secs(5),
        || health(pool_b.as_ref()) == "held_elsewhere",
    )
    .await;
    assert!(!pool_b.takes_jobs(), "node B takes no Midjourney job");
    let workers_a = tokio::spawn(run_workers(a.clone(), 1, Stop::Never));

    succeeds(&b, "on node A").await;
    let stats = sim.control().stats();
    assert_eq!(stats.identifies, 1, "only node A connected: {stats:?}");
    assert_eq!(health(pool_b.as_ref()), "held_elsewhere");

    // Node A can no longer renew: it closes its gateway within two thirds of the hold's lease,
    // and node B takes the account once the hold has run out.
    holds_a.off.store(true, Ordering::SeqCst);
    until("node B holds the account", Duration::from_secs(10), || {
        pool_b.takes_jobs()
    })
    .await;
    assert!(!pool_a.takes_jobs());
    assert_eq!(health(pool_a.as_ref()), "unheld");
    succeeds(&a, "on node B").await;
    let stats = sim.control().stats();
    assert_eq!(stats.identifies, 2, "node B connected once: {stats:?}");
    assert_eq!(
        stats.live_sessions_per_user_peak, 1,
        "never two sessions of the account at once: {stats:?}"
    );

    // Node A comes back: the account stays with node B, and A does not connect.
    holds_a.off.store(false, Ordering::SeqCst);
    until(
        "node A sees the account held elsewhere",
        Duration::from_secs(5),
        || health(pool_a.as_ref()) == "held_elsewhere",
    )
    .await;
    // Node B shuts down: it closes its gateway and lets go at once; node A takes over.
    workers_b.abort();
    atelier::jobs::release_accounts(&b).await;
    until(
        "node A holds the account again",
        Duration::from_secs(5),
        || pool_a.takes_jobs(),
    )
    .await;
    succeeds(&b, "on node A again").await;
    let stats = sim.control().stats();
    assert_eq!(stats.live_sessions_per_user_peak, 1, "{stats:?}");
    workers_a.abort();
}
