//! The webhooks' outbox through its trait, on `SQLite` and on `PostgreSQL` alike: queuing is
//! idempotent and the cursor only moves forward; a delivery is claimed by one claimer at a
//! time, even when many race on one `PostgreSQL` database; only the lease's holder records an
//! attempt, once; a lease that runs out lets another claimer take it; retries are due after
//! their delay, on the database's clock.

use std::collections::HashSet;
use std::time::Duration;

use atelier::catalogue::Database;
use atelier::domain::{
    Attempt, DeliveryStatus, EventFilter, GenerationId, NewDelivery, Next, Subscription,
};

use crate::support::Backend;

fn new(generation: GenerationId, seq: u64) -> NewDelivery {
    NewDelivery {
        id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        generation_id: generation,
        seq,
        owner: None,
        event: "generation.completed".into(),
        url: "https://example.com/hook".into(),
        payload: format!("{{\"seq\":{seq}}}"),
    }
}

fn attempt(n: u32, status: Option<u16>) -> Attempt {
    Attempt {
        n,
        at: atelier::domain::now_ms(),
        http_status: status,
        error: status.is_none().then(|| "refused".to_owned()),
        duration_ms: 12,
        response: Some("ok".into()),
    }
}

async fn open(backend: Backend) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.open(dir.path()).await;
    (dir, db)
}

async fn queuing_is_idempotent_and_the_cursor_only_moves_forward(backend: Backend) {
    let (_dir, db) = open(backend).await;
    let w = &db.webhooks;
    assert_eq!(w.webhook_cursor().await.unwrap(), 0);
    let g = GenerationId::new();
    w.subscribe(&Subscription {
        generation_id: g,
        owner: None,
        url: "https://example.com/hook".into(),
        filter: EventFilter::parse(&["started", "completed"]).unwrap(),
    })
    .await
    .unwrap();
    let subs = w.subscriptions(&[g, GenerationId::new()]).await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].filter.stored(), "started,completed");
    let first = new(g, 3);
    w.queue_deliveries(std::slice::from_ref(&first), 10)
        .await
        .unwrap();
    // Derived again (another node, or after a crash): kept as it was.
    let again = NewDelivery {
        payload: "other".into(),
        ..new(g, 3)
    };
    w.queue_deliveries(&[again, new(g, 4)], 7).await.unwrap();
    assert_eq!(w.webhook_cursor().await.unwrap(), 10, "never back");
    let log = w.deliveries(g).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].id, first.id);
    assert_eq!(log[0].payload, first.payload);
    assert_eq!(log[0].status, DeliveryStatus::Pending);
    assert!(log[0].next_attempt_at.is_some());
}

async fn one_claimer_at_a_time_and_only_the_holder_records(backend: Backend) {
    let (_dir, db) = open(backend).await;
    let w = &db.webhooks;
    let g = GenerationId::new();
    let batch: Vec<_> = (1..=40).map(|seq| new(g, seq)).collect();
    w.queue_deliveries(&batch, 1).await.unwrap();
    // Eight claimers at once, five at a time each: every delivery is claimed once.
    let mut tasks = Vec::new();
    for n in 0..8 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            w.claim_deliveries(&format!("node-{n}"), 5, Duration::from_secs(30))
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.id, format!("node-{n}")))
                .collect::<Vec<_>>()
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let ids: HashSet<_> = claimed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), claimed.len(), "a delivery claimed twice");
    assert_eq!(claimed.len(), 40);
    assert!(
        w.claim_deliveries("late", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "all are leased"
    );
    let (id, holder) = claimed[0].clone();
    // Not the holder, or not the next attempt number: nothing is written.
    assert!(
        !w.record_attempt(&id, "intruder", &attempt(1, Some(200)), Next::Delivered)
            .await
            .unwrap()
    );
    assert!(
        !w.record_attempt(&id, &holder, &attempt(2, Some(200)), Next::Delivered)
            .await
            .unwrap()
    );
    // The holder's failed attempt: due again after its delay, lease released.
    assert!(
        w.record_attempt(
            &id,
            &holder,
            &attempt(1, Some(500)),
            Next::Retry(Duration::from_millis(300))
        )
        .await
        .unwrap()
    );
    assert!(
        !w.record_attempt(&id, &holder, &attempt(1, Some(500)), Next::Failed)
            .await
            .unwrap(),
        "once"
    );
    assert!(
        w.claim_deliveries("early", 50, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = w
        .claim_deliveries("other", 50, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].attempts, 1);
    assert!(
        w.record_attempt(&id, "other", &attempt(2, Some(204)), Next::Delivered)
            .await
            .unwrap()
    );
    let d = w
        .deliveries(g)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.attempts, 2);
    assert!(d.next_attempt_at.is_none());
    let statuses: Vec<_> = d.log.iter().map(|a| (a.n, a.http_status)).collect();
    assert_eq!(statuses, [(1, Some(500)), (2, Some(204))]);
    assert_eq!(d.log[0].duration_ms, 12);
    assert_eq!(d.log[0].response.as_deref(), Some("ok"));
}

async fn a_lease_that_runs_out_is_taken_over(backend: Backend) {
    let (_dir, db) = open(backend).await;
    let w = &db.webhooks;
    let g = GenerationId::new();
    w.queue_deliveries(&[new(g, 1)], 1).await.unwrap();
    let first = w
        .claim_deliveries("dead", 5, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = w
        .claim_deliveries("alive", 5, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the dead claimer's lease ran out");
    assert_eq!(taken[0].id, first[0].id, "the same delivery, the same id");
    // The dead claimer's late record is refused; the new holder's is kept.
    assert!(
        !w.record_attempt(
            &first[0].id,
            "dead",
            &attempt(1, Some(200)),
            Next::Delivered
        )
        .await
        .unwrap()
    );
    assert!(
        w.record_attempt(&first[0].id, "alive", &attempt(1, Some(410)), Next::Gone)
            .await
            .unwrap()
    );
    assert_eq!(
        w.deliveries(g).await.unwrap()[0].status,
        DeliveryStatus::Gone
    );
}

async fn secrets_are_kept_and_rotated(backend: Backend) {
    let (dir, db) = open(backend).await;
    // A user to own them (secrets belong to users).
    let user = atelier::domain::User::new(
        atelier::domain::Email::parse("ann@example.com").unwrap(),
        atelier::domain::UserRole::User,
    );
    db.directory
        .add_user(
            &user,
            None,
            0,
            &atelier::domain::AuditEntry::new(
                atelier::domain::Actor::Operator,
                atelier::domain::AuditAction::UserAdd,
                "user:ann",
                serde_json::json!({}),
            ),
        )
        .await
        .unwrap();
    let w = &db.webhooks;
    assert!(w.webhook_secret(user.id).await.unwrap().is_none());
    let a = w
        .ensure_webhook_secret(user.id, "whsec_first")
        .await
        .unwrap();
    let b = w
        .ensure_webhook_secret(user.id, "whsec_second")
        .await
        .unwrap();
    assert_eq!(a.current, "whsec_first");
    assert_eq!(b.current, "whsec_first", "the first one stays");
    let r = w
        .rotate_webhook_secret(user.id, "whsec_third")
        .await
        .unwrap();
    assert_eq!(r.current, "whsec_third");
    assert_eq!(r.previous.as_deref(), Some("whsec_first"));
    assert!(r.rotated_at.is_some());
    assert!(!format!("{r:?}").contains("whsec_"), "never in Debug");
    drop(dir);
}

macro_rules! on_both {
    ($($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both!(
    queuing_is_idempotent_and_the_cursor_only_moves_forward,
    one_claimer_at_a_time_and_only_the_holder_records,
    a_lease_that_runs_out_is_taken_over,
    secrets_are_kept_and_rotated
);
