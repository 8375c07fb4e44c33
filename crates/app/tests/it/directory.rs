//! The directory conformance story: users, keys, sessions, credits, the audit log and
//! idempotent requests through the `Directory` trait only, the same on every database
//! (`directory::sqlite::…`, `directory::postgres::…`); and reservations racing for one
//! balance from several connections.

use std::sync::Arc;
use std::time::Duration;

use atelier::catalogue::{CatalogueError, Change, Database, Directory};
use atelier::domain::{
    Actor, ApiKey, AuditAction, AuditEntry, Begun, Credits, Email, EventKind, GenerationId,
    GenerationStatus, Grant, GrantKind, IdempotentRequest, LedgerKind, Reservation, Session,
    Settlement, StoredResponse, User, UserRole, now_ms,
};

use crate::catalogue::{generation, job};
use crate::support::Backend;

fn user(email: &str) -> User {
    User::new(Email::parse(email).unwrap(), UserRole::User)
}

fn audit(action: AuditAction, target: &str) -> AuditEntry {
    AuditEntry::new(
        Actor::Operator,
        action,
        target,
        serde_json::json!({"t": target}),
    )
}

async fn with_user(d: &dyn Directory, email: &str, initial: i64) -> User {
    let u = user(email);
    d.add_user(&u, None, initial, &audit(AuditAction::UserAdd, email))
        .await
        .unwrap();
    u
}

async fn users_are_unique_by_address_and_changeable(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = backend.open(dir.path()).await.directory;
    let ada = user("ada@example.com");
    d.add_user(
        &ada,
        Some("$argon2id$x"),
        0,
        &audit(AuditAction::UserAdd, "ada"),
    )
    .await
    .unwrap();
    assert_eq!(d.user(ada.id).await.unwrap(), ada);
    assert_eq!(
        d.user_by_email(&Email::parse("ADA@example.com").unwrap())
            .await
            .unwrap(),
        ada
    );
    let again = user("ada@example.com");
    assert!(matches!(
        d.add_user(&again, None, 5, &audit(AuditAction::UserAdd, "again"))
            .await,
        Err(CatalogueError::Conflict(_))
    ));
    // The refused user left nothing behind: no account, no audit entry.
    assert!(matches!(
        d.user(again.id).await,
        Err(CatalogueError::NotFound(_))
    ));
    assert_eq!(d.audit_log(None, 10).await.unwrap().len(), 1);
    assert!(matches!(
        d.user_by_email(&Email::parse("bob@example.com").unwrap())
            .await,
        Err(CatalogueError::NotFound(_))
    ));

    let bob = with_user(&*d, "bob@example.com", 0).await;
    let listed = d.users(None, 10).await.unwrap();
    assert_eq!(listed, [ada.clone(), bob.clone()]);
    assert_eq!(
        d.users(Some(ada.id), 10).await.unwrap(),
        std::slice::from_ref(&bob)
    );
    assert_eq!(d.users(None, 1).await.unwrap(), std::slice::from_ref(&ada));

    assert_eq!(
        d.set_role(bob.id, UserRole::Admin).await.unwrap().role,
        UserRole::Admin
    );
    assert!(d.set_disabled(bob.id, true).await.unwrap().disabled);
    assert!(!d.set_disabled(bob.id, false).await.unwrap().disabled);
    assert!(matches!(
        d.set_role(atelier::domain::UserId::new(), UserRole::User)
            .await,
        Err(CatalogueError::NotFound(_))
    ));

    assert_eq!(
        d.password_hash(ada.id).await.unwrap().as_deref(),
        Some("$argon2id$x")
    );
    d.set_password_hash(ada.id, Some("$argon2id$y"))
        .await
        .unwrap();
    assert_eq!(
        d.password_hash(ada.id).await.unwrap().as_deref(),
        Some("$argon2id$y")
    );
    d.set_password_hash(bob.id, None).await.unwrap();
    assert_eq!(d.password_hash(bob.id).await.unwrap(), None);
}

async fn keys_sign_in_until_revoked_and_sessions_until_they_end(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = backend.open(dir.path()).await.directory;
    let ada = with_user(&*d, "ada@example.com", 0).await;
    let key = ApiKey::new(ada.id, "atl_0123456789", "ci").unwrap();
    d.add_key(&key, "hash-1", &audit(AuditAction::KeyCreate, "k1"))
        .await
        .unwrap();
    assert!(matches!(
        d.add_key(
            &ApiKey::new(ada.id, "atl_other", "dup").unwrap(),
            "hash-1",
            &audit(AuditAction::KeyCreate, "k2")
        )
        .await,
        Err(CatalogueError::Conflict(_))
    ));
    let stranger = ApiKey::new(atelier::domain::UserId::new(), "atl_x", "x").unwrap();
    assert!(matches!(
        d.add_key(&stranger, "hash-2", &audit(AuditAction::KeyCreate, "k3"))
            .await,
        Err(CatalogueError::NotFound(_))
    ));
    let (found, owner) = d.key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!((found.clone(), owner), (key.clone(), ada.clone()));
    assert_eq!(d.key_by_hash("hash-9").await.unwrap(), None);
    assert_eq!(d.keys(ada.id).await.unwrap(), std::slice::from_ref(&key));

    d.touch_key(key.id).await.unwrap();
    assert!(d.key(key.id).await.unwrap().last_used_at.is_some());
    let revoked = d.revoke_key(key.id).await.unwrap();
    let at = revoked.revoked_at.expect("revoked");
    assert_eq!(d.revoke_key(key.id).await.unwrap().revoked_at, Some(at));
    assert_eq!(d.key_by_hash("hash-1").await.unwrap(), None);
    assert_eq!(d.keys(ada.id).await.unwrap().len(), 1);

    let now = now_ms();
    let session = Session {
        user_id: ada.id,
        created_at: now,
        expires_at: now + Duration::from_hours(1),
    };
    d.add_session(&session, "s-1").await.unwrap();
    assert_eq!(d.session_user("s-1").await.unwrap(), Some(ada.clone()));
    let expired = Session {
        expires_at: now,
        ..session.clone()
    };
    d.add_session(&expired, "s-2").await.unwrap();
    assert_eq!(d.session_user("s-2").await.unwrap(), None);
    d.set_disabled(ada.id, true).await.unwrap();
    assert_eq!(d.session_user("s-1").await.unwrap(), None);
    d.set_disabled(ada.id, false).await.unwrap();
    d.end_session("s-1").await.unwrap();
    assert_eq!(d.session_user("s-1").await.unwrap(), None);
    // A new password ends every session.
    d.add_session(&session, "s-3").await.unwrap();
    d.set_password_hash(ada.id, Some("h")).await.unwrap();
    assert_eq!(d.session_user("s-3").await.unwrap(), None);
}

async fn credits_are_granted_reserved_and_settled_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = backend.open(dir.path()).await.directory;
    let ada = with_user(&*d, "ada@example.com", 3).await;
    assert_eq!(
        d.credits(ada.id).await.unwrap(),
        Credits {
            balance: 3,
            held: 0
        }
    );
    let grant = Grant::new(
        Actor::Operator,
        ada.id,
        7,
        GrantKind::Purchase,
        Some("paid"),
    )
    .unwrap();
    let entry = d
        .grant(&grant, &audit(AuditAction::CreditChange, "ada"))
        .await
        .unwrap();
    assert_eq!(
        (entry.kind, entry.amount, entry.balance_after),
        (LedgerKind::Purchase, 7, 10)
    );
    assert_eq!(entry.note.as_deref(), Some("paid"));

    let (g1, g2, g3) = (
        GenerationId::new(),
        GenerationId::new(),
        GenerationId::new(),
    );
    assert_eq!(
        d.reserve(ada.id, g1, 4).await.unwrap(),
        Reservation::Reserved { balance: 6 }
    );
    assert_eq!(
        d.reserve(ada.id, g2, 4).await.unwrap(),
        Reservation::Reserved { balance: 2 }
    );
    assert_eq!(
        d.reserve(ada.id, g3, 4).await.unwrap(),
        Reservation::Insufficient { balance: 2 }
    );
    assert!(matches!(
        d.reserve(ada.id, g1, 1).await,
        Err(CatalogueError::Conflict(_))
    ));
    assert_eq!(
        d.credits(ada.id).await.unwrap(),
        Credits {
            balance: 2,
            held: 8
        }
    );

    assert!(d.settle(g1, Settlement::Used).await.unwrap());
    assert!(d.settle(g2, Settlement::Refunded).await.unwrap());
    // Settled once: a second settlement, either way, changes nothing.
    assert!(!d.settle(g2, Settlement::Refunded).await.unwrap());
    assert!(!d.settle(g1, Settlement::Refunded).await.unwrap());
    assert!(!d.settle(g3, Settlement::Used).await.unwrap());
    assert_eq!(
        d.credits(ada.id).await.unwrap(),
        Credits {
            balance: 6,
            held: 0
        }
    );

    let ledger = d.ledger(ada.id, None, 10).await.unwrap();
    let story: Vec<(LedgerKind, i64, i64)> = ledger
        .iter()
        .map(|e| (e.kind, e.amount, e.balance_after))
        .collect();
    assert_eq!(
        story,
        [
            (LedgerKind::Refund, 4, 6),
            (LedgerKind::Usage, -4, 2),
            (LedgerKind::Usage, -4, 6),
            (LedgerKind::Purchase, 7, 10),
            (LedgerKind::Bonus, 3, 3),
        ]
    );
    assert_eq!(ledger[0].generation_id, Some(g2));
    // The ledger is the balance's whole story.
    assert_eq!(ledger.iter().map(|e| e.amount).sum::<i64>(), 6);
    let older = d.ledger(ada.id, Some(ledger[1].id), 10).await.unwrap();
    assert_eq!(older, ledger[2..]);
    assert_eq!(d.ledger(ada.id, None, 2).await.unwrap(), ledger[..2]);

    // A balance has a ceiling; a refused grant writes nothing.
    let huge = Grant::new(
        Actor::Operator,
        ada.id,
        atelier::domain::MAX_AMOUNT,
        GrantKind::Bonus,
        None,
    )
    .unwrap();
    for _ in 0..1000 {
        if d.grant(&huge, &audit(AuditAction::CreditChange, "huge"))
            .await
            .is_err()
        {
            break;
        }
    }
    let before = d.credits(ada.id).await.unwrap();
    assert!(matches!(
        d.grant(&huge, &audit(AuditAction::CreditChange, "huge"))
            .await,
        Err(CatalogueError::Conflict(_))
    ));
    assert_eq!(d.credits(ada.id).await.unwrap(), before);
    let unknown = Grant {
        user_id: atelier::domain::UserId::new(),
        ..grant
    };
    assert!(matches!(
        d.grant(&unknown, &audit(AuditAction::CreditChange, "x"))
            .await,
        Err(CatalogueError::NotFound(_))
    ));
}

/// A generation's end settles its hold in the same transaction: success keeps the cost,
/// failure and cancellation give it back.
async fn a_generations_end_settles_its_credits(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.open(dir.path()).await;
    let (c, d) = (db.catalogue, db.directory);
    let ada = with_user(&*d, "ada@example.com", 10).await;
    let mut ids = Vec::new();
    for end in [
        GenerationStatus::Succeeded,
        GenerationStatus::Failed,
        GenerationStatus::Canceled,
    ] {
        let g = generation(None, None);
        assert!(matches!(
            d.reserve(ada.id, g.id, 2).await.unwrap(),
            Reservation::Reserved { .. }
        ));
        c.create_generation(&g, Some(&job("sandbox:local", 1, 0)), &[])
            .await
            .unwrap();
        let kind = match end {
            GenerationStatus::Succeeded => EventKind::Completed,
            GenerationStatus::Failed => EventKind::Failed,
            _ => EventKind::Canceled,
        };
        let mut change = Change::new(kind, end, 100.0);
        if end != GenerationStatus::Succeeded {
            change.error = Some(atelier::domain::Failure::new(
                atelier::domain::ErrorCode::Canceled,
                "stopped",
            ));
            change.progress = 0.0;
        }
        c.advance(g.id, &change).await.unwrap();
        ids.push(g.id);
    }
    assert_eq!(
        d.credits(ada.id).await.unwrap(),
        Credits {
            balance: 8,
            held: 0
        }
    );
    // Already settled by their ends.
    for id in ids {
        assert!(!d.settle(id, Settlement::Refunded).await.unwrap());
    }
    let refunds = d
        .ledger(ada.id, None, 20)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == LedgerKind::Refund)
        .count();
    assert_eq!(refunds, 2);
}

/// Holds a crash left behind are settled by the sweeper: one whose generation was never
/// created is refunded, one whose generation runs is left alone.
async fn stray_holds_are_swept(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.open(dir.path()).await;
    let (c, d) = (db.catalogue, db.directory);
    let ada = with_user(&*d, "ada@example.com", 5).await;
    let never_created = GenerationId::new();
    d.reserve(ada.id, never_created, 2).await.unwrap();
    let running = generation(None, None);
    d.reserve(ada.id, running.id, 1).await.unwrap();
    c.create_generation(&running, Some(&job("sandbox:local", 1, 0)), &[])
        .await
        .unwrap();
    // Younger than asked: left for now.
    assert_eq!(
        d.settle_stray_holds(Duration::from_hours(1), 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(d.settle_stray_holds(Duration::ZERO, 10).await.unwrap(), 1);
    assert_eq!(
        d.credits(ada.id).await.unwrap(),
        Credits {
            balance: 4,
            held: 1
        }
    );
    assert_eq!(d.settle_stray_holds(Duration::ZERO, 10).await.unwrap(), 0);
    assert!(!d.settle(never_created, Settlement::Refunded).await.unwrap());
}

async fn the_audit_log_pages_newest_first(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = backend.open(dir.path()).await.directory;
    let ada = with_user(&*d, "ada@example.com", 0).await;
    let by_ada = AuditEntry::new(
        Actor::User(ada.id),
        AuditAction::Login,
        format!("user:{}", ada.id),
        serde_json::json!({"method": "password", "n": [1, 2]}),
    );
    d.audit(&by_ada).await.unwrap();
    d.audit(&audit(AuditAction::KeyRevoke, "key:1"))
        .await
        .unwrap();
    let log = d.audit_log(None, 10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].action, AuditAction::KeyRevoke);
    assert_eq!(log[0].actor, None);
    assert_eq!(
        AuditEntry {
            id: log[1].id,
            ..by_ada.clone()
        },
        log[1]
    );
    assert_eq!(log[2].action, AuditAction::UserAdd);
    assert!(log[0].id > log[1].id && log[1].id > log[2].id);
    assert_eq!(d.audit_log(Some(log[1].id), 10).await.unwrap(), log[2..]);
}

async fn idempotent_requests_replay_refuse_and_expire(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = backend.open(dir.path()).await.directory;
    let ada = with_user(&*d, "ada@example.com", 0).await;
    let bob = with_user(&*d, "bob@example.com", 0).await;
    let day = Duration::from_hours(24);
    let first = IdempotentRequest::new(ada.id, "order-1", "fp-a".into()).unwrap();
    assert_eq!(d.begin_request(&first, day).await.unwrap(), Begun::New);
    assert_eq!(d.begin_request(&first, day).await.unwrap(), Begun::InFlight);
    let other_body = IdempotentRequest::new(ada.id, "order-1", "fp-b".into()).unwrap();
    assert_eq!(
        d.begin_request(&other_body, day).await.unwrap(),
        Begun::Mismatch
    );
    // Keys are per user.
    let bobs = IdempotentRequest::new(bob.id, "order-1", "fp-b".into()).unwrap();
    assert_eq!(d.begin_request(&bobs, day).await.unwrap(), Begun::New);

    let answer = StoredResponse {
        status: 201,
        body: br#"{"id":"g1"}"#.to_vec(),
    };
    d.complete_request(&first, &answer).await.unwrap();
    assert_eq!(
        d.begin_request(&first, day).await.unwrap(),
        Begun::Done(answer.clone())
    );
    assert_eq!(
        d.begin_request(&other_body, day).await.unwrap(),
        Begun::Mismatch
    );
    // A finished request is not abandoned; an in-flight one is, and runs anew.
    d.abandon_request(&first).await.unwrap();
    assert_eq!(
        d.begin_request(&first, day).await.unwrap(),
        Begun::Done(answer)
    );
    d.abandon_request(&bobs).await.unwrap();
    assert_eq!(d.begin_request(&bobs, day).await.unwrap(), Begun::New);

    // An expired key is forgotten: purged, or taken anew by the next request.
    let short = IdempotentRequest::new(ada.id, "order-2", "fp-a".into()).unwrap();
    assert_eq!(
        d.begin_request(&short, Duration::ZERO).await.unwrap(),
        Begun::New
    );
    assert_eq!(
        d.begin_request(&short, day).await.unwrap(),
        Begun::New,
        "an expired key is taken anew"
    );
    let gone = IdempotentRequest::new(ada.id, "order-3", "fp".into()).unwrap();
    d.begin_request(&gone, Duration::ZERO).await.unwrap();
    assert_eq!(d.purge_requests().await.unwrap(), 1);
    assert_eq!(d.begin_request(&gone, day).await.unwrap(), Begun::New);
}

/// Reservations racing from many tasks on several connections (on `SQLite` several
/// catalogues on one file, as several processes; on `PostgreSQL` several nodes) never take a
/// balance below zero: exactly as many succeed as it holds.
async fn concurrent_reservations_never_overdraw(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.url(dir.path()).await;
    let mut nodes: Vec<Database> = Vec::new();
    for _ in 0..4 {
        nodes.push(atelier::catalogue::open(&url, true).await.unwrap());
    }
    let ada = with_user(&*nodes[0].directory, "ada@example.com", 10).await;
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let d: Arc<dyn Directory> = nodes[n % nodes.len()].directory.clone();
            tokio::spawn(async move { d.reserve(ada.id, GenerationId::new(), 1).await })
        })
        .collect();
    let mut reserved = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Reservation::Reserved { balance } => {
                assert!(balance >= 0);
                reserved += 1;
            }
            Reservation::Insufficient { balance } => assert_eq!(balance, 0),
        }
    }
    assert_eq!(reserved, 10);
    assert_eq!(
        nodes[1].directory.credits(ada.id).await.unwrap(),
        Credits {
            balance: 0,
            held: 10
        }
    );
    let usage = nodes[2]
        .directory
        .ledger(ada.id, None, 500)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == LedgerKind::Usage)
        .count();
    assert_eq!(usage, 10);
}

/// Supabase's row-level security on the directory (a stand-in `auth` schema, as in
/// `postgres.rs`): a signed-in user reads their own balance and ledger and nothing else of
/// it; secrets, sessions, holds, the audit log and idempotency keys are closed to client keys.
#[tokio::test]
async fn postgres_row_level_security_shows_a_user_only_their_credits() {
    use sqlx::Connection as _;
    let url = crate::postgres::fresh_url().await;
    let role = format!("atelier_t_reader_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA auth;
         CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
            $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
         CREATE ROLE {role} NOLOGIN;
         GRANT USAGE ON SCHEMA auth TO {role};"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let d = atelier::catalogue::open(&url, true)
        .await
        .unwrap()
        .directory;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let ada = with_user(&*d, "ada@example.com", 5).await;
    let bob = with_user(&*d, "bob@example.com", 7).await;
    d.add_key(
        &ApiKey::new(ada.id, "atl_0123456789", "ci").unwrap(),
        "hash-1",
        &audit(AuditAction::KeyCreate, "k"),
    )
    .await
    .unwrap();
    d.reserve(bob.id, GenerationId::new(), 1).await.unwrap();

    let seen = async |conn: &mut sqlx::PgConnection, user: Option<uuid::Uuid>| {
        let mut tx = conn.begin().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT set_config('request.jwt.claim.sub', $1, true)")
            .bind(user.map(|u| u.to_string()).unwrap_or_default())
            .execute(&mut *tx)
            .await
            .unwrap();
        let counts: Vec<i64> = sqlx::query_scalar(
            "SELECT unnest(ARRAY[
                (SELECT COUNT(*) FROM credit_accounts), (SELECT COALESCE(SUM(amount), 0)::bigint
                FROM credit_ledger), (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM api_keys),
                (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM credit_holds),
                (SELECT COUNT(*) FROM audit_log), (SELECT COUNT(*) FROM idempotency_keys)])",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        counts
    };
    assert_eq!(
        seen(&mut conn, Some(ada.id.as_uuid())).await,
        [1, 5, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        seen(&mut conn, Some(bob.id.as_uuid())).await,
        [1, 6, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(seen(&mut conn, None).await, [0, 0, 0, 0, 0, 0, 0, 0]);

    drop(d);
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP OWNED BY {role}; DROP ROLE {role}"
    )))
    .execute(&mut conn)
    .await;
}

/// Each test above, once per database.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(crate::support::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(crate::support::Backend::Postgres).await;
            })*
        }
    };
}

conformance!(
    users_are_unique_by_address_and_changeable,
    keys_sign_in_until_revoked_and_sessions_until_they_end,
    credits_are_granted_reserved_and_settled_once,
    a_generations_end_settles_its_credits,
    stray_holds_are_swept,
    the_audit_log_pages_newest_first,
    idempotent_requests_replay_refuse_and_expire,
    concurrent_reservations_never_overdraw,
);
