//! `PostgreSQL`: a fresh database per test (from the admin URL `ATELIER_TEST_DATABASE_URL`,
//! which scripts/test.sh sets), and what only several nodes on one server can show: claimers
//! on many connections sharing a slot's limit, wake-ups from one node to another, migrations
//! started together, and the database going away under a node and coming back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atelier::catalogue::{self, CatalogueError, Database};
use atelier::domain::{EventKind, GenerationStatus, JobStatus, Lease};
use sqlx::Connection;

use crate::catalogue::{claim, generation, job};

/// The admin URL the tests create their databases from.
fn admin_url() -> String {
    match std::env::var("ATELIER_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "ATELIER_TEST_DATABASE_URL is not set: the PostgreSQL tests need an admin URL \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres); scripts/test.sh starts \
             PostgreSQL and sets it"
        ),
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A new, empty database for one test, and its URL. scripts/test.sh drops them
/// (`atelier_t_*`) before and after a run.
pub async fn fresh_url() -> String {
    let admin = admin_url();
    let name = format!("atelier_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at ATELIER_TEST_DATABASE_URL accepts ({e})"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("a test database is created");
    let _ = conn.close().await;
    with_database(&admin, &name)
}

/// [`fresh_url`] for synchronous callers, migrated already: a data directory's first command
/// then starts as fast as on a `SQLite` file (whose migrations take no time), which the crash
/// tests' earliest kills count on.
pub fn migrated_url_blocking() -> String {
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async {
                let url = fresh_url().await;
                catalogue::open(&url, true)
                    .await
                    .expect("the test database is migrated");
                url
            })
    })
    .join()
    .expect("a test database is created")
}

/// The name of the database at `url`.
fn database_of(url: &str) -> String {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    base.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Runs `sql` on the admin connection.
async fn admin(sql: String) {
    let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
}

/// Ends every connection to database `name` but the admin's.
async fn terminate(name: &str) {
    admin(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .await;
}

/// Until `wait` no longer returns at once: a new catalogue's listener wakes everyone when it
/// connects, which a test of wake-ups must not take for one.
async fn quiet(seen: impl Fn() -> u64, wait: impl AsyncFn(u64)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = seen();
        wait(s).await;
        if seen() == s {
            return;
        }
        assert!(Instant::now() < deadline, "the listener never settled");
    }
}

/// Jobs the parallel claimers share.
const JOBS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_claimers_on_several_nodes_respect_a_slots_limit() {
    let url = fresh_url().await;
    let nodes = open_four(&url).await;
    for _ in 0..JOBS {
        nodes[0]
            .catalogue
            .create_generation(&generation(None, None), Some(&job("mj:one", 2, 0)), &[])
            .await
            .unwrap();
    }
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..4 {
            let (q, running, most, done) = (
                node.queue.clone(),
                running.clone(),
                most.clone(),
                done.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let worker = format!("node{n}-w{w}");
                let slots = vec!["mj:one".to_owned()];
                let claim = atelier::catalogue::Claim {
                    lease_ms: 60_000,
                    ..claim(&worker, &slots, None)
                };
                // Half the workers claim their next job as they end one, as workers do.
                let hands_on = w % 2 == 1;
                let mut handed = None;
                while done.load(Ordering::SeqCst) < JOBS {
                    let j = if let Some(j) = handed.take() {
                        j
                    } else {
                        let Some(j) = q.claim(&claim).await.unwrap() else {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            continue;
                        };
                        j
                    };
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    if hands_on {
                        let (ended, next) = q
                            .finish_and_claim(j.id, JobStatus::Succeeded, None, &claim)
                            .await
                            .unwrap();
                        assert!(ended);
                        handed = next;
                    } else {
                        assert!(
                            q.finish(j.id, &worker, JobStatus::Succeeded, None)
                                .await
                                .unwrap()
                        );
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), JOBS, "every job ran once");
    assert_eq!(most.load(Ordering::SeqCst), 2, "two at a time, never more");
    let counts = nodes[0].queue.counts(&["mj:one".to_owned()]).await.unwrap();
    assert_eq!((counts.pending, counts.running), (0, 0));
}

/// A job's end that hands its place to the next job of its slot made no room, so it tells no
/// other node; but while a claimer waits for room in the slot (another node's, whose claim
/// found it full), the place is given back and the waiter told, never passed over.
#[tokio::test]
async fn a_handed_place_wakes_nobody_and_a_waiting_node_is_never_passed_over() {
    let url = fresh_url().await;
    let a = catalogue::open(&url, true).await.unwrap();
    let b = catalogue::open(&url, true).await.unwrap();
    let slots = vec!["s:h".to_owned()];
    for _ in 0..3 {
        a.catalogue
            .create_generation(&generation(None, None), Some(&job("s:h", 1, 0)), &[])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = a
        .queue
        .claim(&claim("wa", &slots, None))
        .await
        .unwrap()
        .expect("a job");
    let bq = b.queue.clone();
    quiet(
        || bq.work_seen(),
        async |s| bq.wait_for_work(s, Duration::from_millis(300)).await,
    )
    .await;

    // Nobody waits: the place passes to the second job, and nobody is told.
    let seen = b.queue.work_seen();
    let (ended, second) = a
        .queue
        .finish_and_claim(
            first.id,
            JobStatus::Succeeded,
            None,
            &claim("wa", &slots, None),
        )
        .await
        .unwrap();
    assert!(ended);
    let second = second.expect("the second job, handed the place");
    let t = Instant::now();
    b.queue
        .wait_for_work(seen, Duration::from_millis(500))
        .await;
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "nobody is told of room that is not there"
    );

    // Node b's claim finds the slot full: the next end gives the place back and tells b.
    let seen = b.queue.work_seen();
    assert!(
        b.queue
            .claim(&claim("wb", &slots, None))
            .await
            .unwrap()
            .is_none(),
        "the slot is full"
    );
    let waiter = tokio::spawn(async move { bq.wait_for_work(seen, Duration::from_secs(20)).await });
    let t = Instant::now();
    let (ended, third) = a
        .queue
        .finish_and_claim(
            second.id,
            JobStatus::Succeeded,
            None,
            &claim("wa", &slots, None),
        )
        .await
        .unwrap();
    assert!(ended);
    waiter.await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the waiting node is told"
    );
    // (Here a's own claim, made at once, took the freed place; b, told, would have met it.)
    let third = third.expect("the third job, claimed afresh");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let marks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM slot_waits")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(marks, 0, "the waiter's mark is taken off when it is told");

    let (ended, none) = a
        .queue
        .finish_and_claim(
            third.id,
            JobStatus::Succeeded,
            None,
            &claim("wa", &slots, None),
        )
        .await
        .unwrap();
    assert!(ended && none.is_none());
    let counts = a.queue.counts(&slots).await.unwrap();
    assert_eq!((counts.pending, counts.running), (0, 0));
}

/// Four catalogues on `url`, opened at once (each migrates it, as nodes started together).
/// Joined on one task: the open future is not `Send` for `tokio::spawn` (sqlx's migrator trips
/// a compiler limitation), and each has connections of its own anyway.
async fn open_four(url: &str) -> Vec<Database> {
    let open = || catalogue::open(url, true);
    let (a, b, c, d) = tokio::join!(open(), open(), open(), open());
    [a, b, c, d]
        .into_iter()
        .map(|r| r.expect("the catalogue opens"))
        .collect()
}

/// A slot's token goes with a live lease only: a lease that ran out gives it to the next claim
/// (the job taken over then waits for room like any other), and an end or a retry gives it
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_runs_out_gives_its_slot_back() {
    let url = fresh_url().await;
    let db = catalogue::open(&url, true).await.unwrap();
    let (c, q) = (&db.catalogue, &db.queue);
    let slots = vec!["mj:one".to_owned()];
    let (a, b) = (generation(None, None), generation(None, None));
    for g in [&a, &b] {
        c.create_generation(g, Some(&job("mj:one", 1, 0)), &[])
            .await
            .unwrap();
    }
    let short = |worker, only| atelier::catalogue::Claim {
        lease_ms: 200,
        ..claim(worker, &slots, only)
    };
    let first = q.claim(&short("w1", Some(a.id))).await.unwrap().unwrap();
    assert!(
        q.claim(&short("w2", Some(b.id))).await.unwrap().is_none(),
        "one at a time"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = q
        .claim(&short("w2", Some(b.id)))
        .await
        .unwrap()
        .expect("a's lease ran out: its token is free");
    assert_eq!(second.generation_id, b.id);
    assert!(
        q.claim(&short("w3", Some(a.id))).await.unwrap().is_none(),
        "a is taken over only when there is room"
    );
    assert!(
        q.finish(second.id, "w2", JobStatus::Succeeded, None)
            .await
            .unwrap()
    );
    let taken = q
        .claim(&claim("w3", &slots, None))
        .await
        .unwrap()
        .expect("b's end gave the token back");
    assert_eq!((taken.id, taken.takeovers), (first.id, 1));
    assert!(
        q.retry(taken.id, "w3", 0, "queue_full: busy")
            .await
            .unwrap(),
        "a retried"
    );
    let again = q
        .claim(&claim("w4", &slots, None))
        .await
        .unwrap()
        .expect("the retry gave the token back");
    assert_eq!((again.id, again.attempts), (first.id, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_started_together_run_once() {
    let url = fresh_url().await;
    let (a, b) = tokio::join!(open_four(&url), open_four(&url));
    assert_eq!(a.len() + b.len(), 8);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (applied, failed): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT success) FROM _sqlx_migrations",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!((applied, failed), (shipped as i64, 0));
}

#[tokio::test]
async fn a_read_only_open_of_an_empty_database_creates_nothing() {
    let url = fresh_url().await;
    assert!(matches!(
        catalogue::open(&url, false).await,
        Err(CatalogueError::NotFound(_))
    ));
    catalogue::open(&url, true).await.unwrap();
    catalogue::open(&url, false).await.unwrap();
    let missing = with_database(&url, "atelier_t_missing");
    assert!(matches!(
        catalogue::open(&missing, true).await,
        Err(CatalogueError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_owner_is_a_user_id() {
    let url = fresh_url().await;
    let c = catalogue::open(&url, true).await.unwrap().catalogue;
    let mut g = generation(None, None);
    let user = atelier::domain::UserId::new();
    g.owner = Some(user);
    c.create_generation(&g, None, &[]).await.unwrap();
    assert_eq!(c.generation(g.id).await.unwrap().owner, Some(user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_waiters_on_another_node() {
    let url = fresh_url().await;
    let a = catalogue::open(&url, true).await.unwrap();
    let b = catalogue::open(&url, true).await.unwrap();
    let (bq, bc) = (b.queue.clone(), b.catalogue.clone());
    quiet(
        || bq.work_seen(),
        async |s| bq.wait_for_work(s, Duration::from_millis(300)).await,
    )
    .await;
    quiet(
        || bc.events_seen(),
        async |s| bc.wait_for_events(s, Duration::from_millis(300)).await,
    )
    .await;

    // Nothing written: the wait lasts its timeout.
    let t = Instant::now();
    b.queue
        .wait_for_work(b.queue.work_seen(), Duration::from_millis(400))
        .await;
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "no wake-up without work"
    );

    // Work queued on node a wakes node b's worker, and its events b's followers.
    let (work, events) = (b.queue.work_seen(), b.catalogue.events_seen());
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        bq.wait_for_work(work, Duration::from_secs(20)).await;
        bc.wait_for_events(events, Duration::from_secs(20)).await;
        t.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let g = generation(None, None);
    a.catalogue
        .create_generation(&g, Some(&job("s:a", 1, 0)), &[])
        .await
        .unwrap();
    assert!(
        waiter.await.unwrap() < Duration::from_secs(5),
        "woken by node a"
    );

    // An event written on a wakes b's followers; a finished job wakes b's workers.
    quiet(
        || b.catalogue.events_seen(),
        async |s| {
            b.catalogue
                .wait_for_events(s, Duration::from_millis(300))
                .await;
        },
    )
    .await;
    let seen = b.catalogue.events_seen();
    let t = Instant::now();
    let bc = b.catalogue.clone();
    let waiter = tokio::spawn(async move {
        bc.wait_for_events(seen, Duration::from_secs(20)).await;
    });
    a.catalogue
        .advance(
            g.id,
            &atelier::catalogue::Change::new(EventKind::Progress, GenerationStatus::Running, 5.0),
        )
        .await
        .unwrap();
    waiter.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    let slots = vec!["s:a".to_owned()];
    let j = a
        .queue
        .claim(&claim("w", &slots, None))
        .await
        .unwrap()
        .unwrap();
    quiet(
        || b.queue.work_seen(),
        async |s| b.queue.wait_for_work(s, Duration::from_millis(300)).await,
    )
    .await;
    // A claim on b finds the slot full (another job is due): the finish on a that frees it
    // wakes b.
    let second = generation(None, None);
    a.catalogue
        .create_generation(&second, Some(&job("s:a", 1, 0)), &[])
        .await
        .unwrap();
    quiet(
        || b.queue.work_seen(),
        async |s| b.queue.wait_for_work(s, Duration::from_millis(300)).await,
    )
    .await;
    let seen = b.queue.work_seen();
    assert!(
        b.queue
            .claim(&claim("wb", &slots, None))
            .await
            .unwrap()
            .is_none(),
        "the slot is full"
    );
    let t = Instant::now();
    let bq = b.queue.clone();
    let waiter = tokio::spawn(async move { bq.wait_for_work(seen, Duration::from_secs(20)).await });
    a.queue
        .finish(j.id, "w", JobStatus::Succeeded, None)
        .await
        .unwrap();
    waiter.await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a freed slot wakes node b"
    );

    // No claim found the slot full since: its next finish tells no one.
    let k = b
        .queue
        .claim(&claim("wb", &slots, None))
        .await
        .unwrap()
        .expect("the second job");
    assert_eq!(k.generation_id, second.id);
    quiet(
        || a.queue.work_seen(),
        async |s| a.queue.wait_for_work(s, Duration::from_millis(300)).await,
    )
    .await;
    let seen = a.queue.work_seen();
    let t = Instant::now();
    let aq = a.queue.clone();
    let waiter =
        tokio::spawn(async move { aq.wait_for_work(seen, Duration::from_millis(600)).await });
    b.queue
        .finish(k.id, "wb", JobStatus::Succeeded, None)
        .await
        .unwrap();
    waiter.await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "a finish nobody waited for woke node a"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_goes_away_under_a_node_and_comes_back() {
    let url = fresh_url().await;
    let name = database_of(&url);
    let a = catalogue::open(&url, true).await.unwrap();
    let b = catalogue::open(&url, true).await.unwrap();
    let g = generation(None, None);
    a.catalogue
        .create_generation(&g, Some(&job("s:a", 1, 0)), &[])
        .await
        .unwrap();
    let slots = vec!["s:a".to_owned()];
    let j = a
        .queue
        .claim(&atelier::catalogue::Claim {
            lease_ms: 60_000,
            ..claim("w", &slots, None)
        })
        .await
        .unwrap()
        .unwrap();

    // Down: no new connection is accepted and every open one is ended.
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    terminate(&name).await;
    for _ in 0..3 {
        match a.queue.renew(j.id, "w", 60_000).await {
            Err(CatalogueError::Other(_)) => {}
            other => panic!("a catalogue that cannot reach its database: {other:?}"),
        }
        match a.catalogue.generation(g.id).await {
            Err(CatalogueError::Other(_)) => {}
            other => panic!("a catalogue that cannot reach its database: {other:?}"),
        }
    }
    // Waits still end at their timeout while the listener cannot connect.
    let t = Instant::now();
    b.queue
        .wait_for_work(b.queue.work_seen(), Duration::from_millis(300))
        .await;
    assert!(t.elapsed() < Duration::from_secs(2));

    // Back: the same catalogues carry on, the lease still held.
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let lease = loop {
        match a.queue.renew(j.id, "w", 60_000).await {
            Ok(lease) => break lease,
            Err(CatalogueError::Other(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the catalogue did not come back: {e}"),
        }
    };
    assert_eq!(lease, Lease::Held);
    // Node b's listener is back too: node a's next change wakes it.
    let bq = b.queue.clone();
    quiet(
        || bq.work_seen(),
        async |s| bq.wait_for_work(s, Duration::from_millis(700)).await,
    )
    .await;
    assert!(
        a.queue
            .finish(j.id, "w", JobStatus::Succeeded, None)
            .await
            .unwrap()
    );
    let seen = b.queue.work_seen();
    let waiter = tokio::spawn(async move { bq.wait_for_work(seen, Duration::from_secs(20)).await });
    let t = Instant::now();
    a.catalogue
        .create_generation(&generation(None, None), Some(&job("s:a", 1, 0)), &[])
        .await
        .unwrap();
    waiter.await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the listener reconnected"
    );
    // Connections cut again, without a refusal: the pool replaces them on the next call.
    terminate(&name).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.catalogue.generation(g.id).await {
            Ok(back) => {
                assert_eq!(back.id, g.id);
                break;
            }
            Err(CatalogueError::Other(_)) if Instant::now() < deadline => {}
            Err(e) => panic!("after its connections were cut: {e}"),
        }
    }
}

/// (generations, events, images, jobs) a user (`None`: signed out) reads through `role`.
async fn seen(conn: &mut sqlx::PgConnection, role: &str, user: Option<uuid::Uuid>) -> [i64; 4] {
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
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM generations), (SELECT COUNT(*) FROM events),
                (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM jobs)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    [counts.0, counts.1, counts.2, counts.3]
}

/// Workers carry on when the database goes away under them for longer than a lease and comes
/// back: nothing is refused, the job is taken over and the generation ends with its images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_carry_on_after_the_database_goes_away_and_back() {
    use atelier::providers::{Provider, UpscaleMode};
    let sandbox: Arc<dyn Provider> = Arc::new(atelier::providers::sandbox::Sandbox {
        size: 64,
        // Slow enough that the job is surely in the middle of its work when the database goes.
        delay: Duration::from_millis(800),
    });
    let t = crate::support::app_on(
        crate::support::Backend::Postgres,
        vec![("sandbox", sandbox, 2, UpscaleMode::Provider)],
        crate::support::fast_jobs(),
    )
    .await;
    let id = crate::engine::submit(&t, "a lighthouse in a storm", "all").await;
    let workers = tokio::spawn(atelier::jobs::run_workers(
        t.app.clone(),
        2,
        atelier::jobs::Stop::UntilIdle,
    ));
    // The outage starts once the job runs (its generation is running), well before it ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while t.app.catalogue().generation(id).await.unwrap().status != GenerationStatus::Running {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let name = database_of(&t.database_url);
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    terminate(&name).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    tokio::time::timeout(Duration::from_mins(1), workers)
        .await
        .expect("the workers went idle")
        .unwrap()
        .expect("nothing was refused");
    let g = t.app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Succeeded, "{g:?}");
    let images = t
        .app
        .catalogue()
        .images(&atelier::catalogue::ImageFilter {
            generation_id: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(images.len(), 5, "the grid and four upscales, once each");
    let job = t.app.queue().job_of(id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts + job.takeovers > 1),
        (JobStatus::Succeeded, true),
        "the outage interrupted the job, which ran again: {job:?}"
    );
}

/// Supabase's row-level security, with a stand-in `auth` schema: `auth.uid()` reads the
/// request's user as Supabase's does (`request.jwt.claim.sub`), and one role plays Supabase's
/// `authenticated`, as two users. Atelier's own connection (the tables' owner) sees everything.
#[tokio::test]
async fn row_level_security_shows_a_user_only_their_rows_and_public_images() {
    let url = fresh_url().await;
    let role = format!("atelier_t_reader_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA auth;
         CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
            $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
         CREATE ROLE {role} NOLOGIN;
         GRANT USAGE ON SCHEMA auth TO {role};
         DO $$ BEGIN
             IF to_regrole('anon') IS NULL THEN CREATE ROLE anon NOLOGIN; END IF;
         EXCEPTION WHEN duplicate_object THEN NULL;
         END $$;
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon;"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let db = catalogue::open(&url, true).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();

    let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut ids = Vec::new();
    for (owner, public) in [(alice, false), (alice, true), (bob, false)] {
        let mut g = generation(None, None);
        g.owner = Some(atelier::domain::UserId::from_uuid(owner));
        db.catalogue.create_generation(&g, None, &[]).await.unwrap();
        let image = atelier::domain::Image {
            owner: g.owner,
            public,
            ..crate::catalogue::image(&g, atelier::domain::Role::Grid, &[])
        };
        db.catalogue.insert_image(&image).await.unwrap();
        ids.push(g.id);
    }
    // Atelier's connection is the owner's: RLS does not apply to it.
    assert_eq!(
        db.catalogue
            .images(&atelier::catalogue::ImageFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );

    assert_eq!(
        seen(&mut conn, &role, Some(alice)).await,
        [2, 2, 2, 0],
        "alice"
    );
    assert_eq!(
        seen(&mut conn, &role, Some(bob)).await,
        [1, 1, 2, 0],
        "bob: his, and alice's public one"
    );
    assert_eq!(
        seen(&mut conn, &role, None).await,
        [0, 0, 1, 0],
        "signed out: public images only"
    );

    // Every table is closed to other roles (RLS on; those without a policy let nobody in),
    // and so is the claim's pick.
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relrowsecurity",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        open,
        Vec::<String>::new(),
        "tables without row-level security"
    );
    // Every form of it: the pick as a job ends (0009) too. Nor Supabase's `anon`, to which
    // every new function is granted there (the role is left in the cluster: roles are shared
    // by every database, and others may use it).
    let callable: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND p.proname LIKE 'atelier%'
           AND (has_function_privilege($1, p.oid, 'EXECUTE')
                OR has_function_privilege('anon', p.oid, 'EXECUTE'))",
    )
    .bind(&role)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        callable,
        Vec::<String>::new(),
        "functions another role may run"
    );
    let forms: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_proc WHERE proname = 'atelier_next_job'
           AND pronamespace = 'public'::regnamespace",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(forms, 2, "both forms of the pick were looked at");

    drop(db);
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP OWNED BY {role}; DROP ROLE {role}"
    )))
    .execute(&mut conn)
    .await;
}
