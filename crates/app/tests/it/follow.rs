//! `App` as the one door: following a generation's events (stored, then live, with no gap and
//! no duplicate, from any number, across nodes) and every use case scoped to its actor.

use std::sync::Arc;
use std::time::Duration;

use atelier::api::{GenerationQuery, ImageQuery};
use atelier::app::{App, Stop};
use atelier::domain::{
    Actor, Event, GenerationId, GenerationRequest, ImageStatus, UpscaleSelection, UserId,
};
use atelier::error::AppError;
use atelier::providers::sandbox::Sandbox;
use atelier::providers::{Provider, UpscaleMode};

use crate::support::{Backend, TestApp, app_on, fast_jobs};

/// A sandbox whose steps take `delay`, so a follower sees them come one by one.
async fn slow_app(backend: Backend, delay_ms: u64) -> TestApp {
    let sandbox: Arc<dyn Provider> = Arc::new(Sandbox {
        size: 64,
        delay: Duration::from_millis(delay_ms),
    });
    app_on(
        backend,
        vec![("sandbox", sandbox, 2, UpscaleMode::Provider)],
        fast_jobs(),
    )
    .await
}

async fn submit(app: &App, actor: Actor, prompt: &str) -> GenerationId {
    let mut r = GenerationRequest::new(prompt);
    r.upscale = UpscaleSelection::all();
    app.submit(actor, r).await.expect("submitted").id
}

/// Every event `follow` hands out until the generation's last.
async fn collect(app: &App, actor: Actor, id: GenerationId, after: u64) -> Vec<Event> {
    let mut following = app.follow(actor, id, after).await.expect("follow");
    let mut got = Vec::new();
    let read = async {
        while let Some(e) = following.next().await {
            got.push(e.expect("an event"));
        }
    };
    tokio::time::timeout(Duration::from_mins(1), read)
        .await
        .expect("the generation ended within a minute");
    got
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gets_every_event_once_in_order_while_the_generation_runs() {
    let t = slow_app(Backend::from_env(), 150).await;
    let id = submit(&t.app, Actor::Operator, "followed live").await;
    let app = t.app.clone();
    let workers = tokio::spawn(async move { app.run_workers(2, Stop::UntilIdle).await });
    let live = collect(&t.app, Actor::Operator, id, 0).await;
    workers.await.expect("joined").expect("workers");
    let stored = t.app.events(Actor::Operator, id, 0).await.expect("events");
    assert_eq!(seqs(&live), seqs(&stored), "live and stored differ");
    assert_eq!(live, stored);
    assert!(live.last().is_some_and(|e| e.kind.is_terminal()));
    assert!(live.len() >= 8, "{} events", live.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_comes_back_gets_what_it_missed_then_the_rest() {
    let t = slow_app(Backend::from_env(), 150).await;
    let id = submit(&t.app, Actor::Operator, "reconnected").await;
    let app = t.app.clone();
    let workers = tokio::spawn(async move { app.run_workers(2, Stop::UntilIdle).await });
    // The first connection reads three events, then goes away mid-generation.
    let mut first = t.app.follow(Actor::Operator, id, 0).await.expect("follow");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(first.next().await.expect("an event").expect("ok"));
    }
    drop(first);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let last = seen.last().map_or(0, |e| e.seq);
    let rest = collect(&t.app, Actor::Operator, id, last).await;
    workers.await.expect("joined").expect("workers");
    seen.extend(rest);
    let stored = t.app.events(Actor::Operator, id, 0).await.expect("events");
    assert_eq!(seqs(&seen), seqs(&stored));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_an_ended_generation_replays_and_ends() {
    let t = slow_app(Backend::from_env(), 0).await;
    let id = submit(&t.app, Actor::Operator, "already done").await;
    t.app
        .run_workers(2, Stop::UntilIdle)
        .await
        .expect("workers");
    let stored = t.app.events(Actor::Operator, id, 0).await.expect("events");
    assert_eq!(collect(&t.app, Actor::Operator, id, 0).await, stored);
    let all = stored.len() as u64;
    // From its last event, or beyond: nothing more, and the stream ends at once.
    assert!(collect(&t.app, Actor::Operator, id, all).await.is_empty());
    assert!(
        collect(&t.app, Actor::Operator, id, all + 10)
            .await
            .is_empty()
    );
    assert_eq!(
        collect(&t.app, Actor::Operator, id, all - 1).await,
        stored[stored.len() - 1..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_another_node_gets_the_events_its_workers_write() {
    if !matches!(Backend::from_env(), Backend::Postgres) {
        // Two nodes on one SQLite file are covered by `nodes::` with real processes.
        return;
    }
    let runner = slow_app(Backend::Postgres, 100).await;
    let url = runner.database_url.clone();
    let db = atelier::catalogue::open(&url, false)
        .await
        .expect("second node");
    let watcher = App::builder(
        db,
        atelier::store::Store::memory(atelier::store::Layout::Default),
        atelier::providers::Providers::default(),
    )
    .build();
    let id = submit(&runner.app, Actor::Operator, "two nodes").await;
    let follow = {
        let watcher = watcher.clone();
        tokio::spawn(async move { collect(&watcher, Actor::Operator, id, 0).await })
    };
    runner
        .app
        .run_workers(2, Stop::UntilIdle)
        .await
        .expect("workers");
    let live = follow.await.expect("joined");
    let stored = runner
        .app
        .events(Actor::Operator, id, 0)
        .await
        .expect("events");
    assert_eq!(live, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_follower_gets_each_entry_once_and_only_what_its_actor_may_see() {
    let t = slow_app(Backend::from_env(), 50).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let start = t.app.feed_end().await.expect("end");
    let mut alices = t
        .app
        .follow_feed(Actor::User(alice), start, None)
        .await
        .expect("follow");
    let mut everyone = t
        .app
        .follow_feed(Actor::Admin(bob), start, None)
        .await
        .expect("follow");
    let a = submit(&t.app, Actor::User(alice), "alice's").await;
    let b = submit(&t.app, Actor::User(bob), "bob's").await;
    t.app
        .run_workers(2, Stop::UntilIdle)
        .await
        .expect("workers");
    let stored_a = t.app.events(Actor::Operator, a, 0).await.expect("events");
    let stored_b = t.app.events(Actor::Operator, b, 0).await.expect("events");
    let mut got = Vec::new();
    for _ in 0..stored_a.len() {
        let e = tokio::time::timeout(Duration::from_secs(10), alices.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        got.push(e.event);
    }
    assert_eq!(got, stored_a, "alice sees her generation's events only");
    let mut all = 0;
    let mut positions = Vec::new();
    while all < stored_a.len() + stored_b.len() {
        let e = tokio::time::timeout(Duration::from_secs(10), everyone.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        positions.push(e.position);
        all += 1;
    }
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(positions, sorted, "in feed order, no duplicate");
    // Nothing more for alice: bob's events never reach her.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), alices.next())
            .await
            .is_err()
    );
}

fn hidden<T: std::fmt::Debug>(r: &Result<T, AppError>) {
    assert!(matches!(r, Err(AppError::NotFound(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_use_case_hides_another_users_work() {
    let t = slow_app(Backend::from_env(), 0).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let (a, b) = (Actor::User(alice), Actor::User(bob));
    let id = submit(&t.app, a, "alice's lighthouse").await;
    t.app
        .run_workers(2, Stop::UntilIdle)
        .await
        .expect("workers");
    let mine = t.app.generation(a, id).await.expect("her own");
    assert_eq!(mine.generation.owner, Some(alice));
    assert!(mine.images.iter().all(|i| i.owner == Some(alice)));
    let image = mine.images[0].id;

    hidden(&t.app.generation(b, id).await);
    hidden(&t.app.events(b, id, 0).await);
    hidden(&t.app.follow(b, id, 0).await.map(|_| ()));
    hidden(&t.app.follow_feed(b, 0, Some(id)).await.map(|_| ()));
    hidden(&t.app.feed(b, 0, Some(id), 10).await);
    hidden(&t.app.cancel(b, id).await);
    hidden(&t.app.queue_position(b, id).await);
    hidden(&t.app.job_ended(b, id).await);
    hidden(&t.app.image(b, image).await);
    hidden(&t.app.image_bytes(b, image, true).await);
    hidden(&t.app.set_image_status(b, image, ImageStatus::Final).await);
    hidden(&t.app.tag(b, image, &["stolen".into()]).await);
    hidden(&t.app.new_version(b, image).await);
    hidden(
        &t.app
            .act(b, image, "reroll", &UpscaleSelection::none())
            .await,
    );
    hidden(&t.app.describe(b, image, None).await);
    hidden(
        &t.app
            .blend(b, &[image, image], None, &UpscaleSelection::none(), None)
            .await,
    );
    // Nothing of hers in his lists or his feed.
    let theirs = t.app.images(b, &ImageQuery::default()).await.expect("list");
    assert!(theirs.images.is_empty());
    let theirs = t
        .app
        .generations(b, &GenerationQuery::default())
        .await
        .expect("list");
    assert!(theirs.generations.is_empty());
    assert!(t.app.feed(b, 0, None, 100).await.expect("feed").is_empty());
    // Unchanged by his attempts.
    let after = t.app.generation(a, id).await.expect("hers");
    assert_eq!(after.images, mine.images);
    // Hers to see, and an admin's, and the operator's.
    assert_eq!(
        t.app
            .images(a, &ImageQuery::default())
            .await
            .expect("list")
            .images
            .len(),
        mine.images.len()
    );
    t.app
        .generation(Actor::Admin(bob), id)
        .await
        .expect("admin");
    t.app
        .generation(Actor::Operator, id)
        .await
        .expect("operator");
    t.app
        .tag(a, image, &["hers".into()])
        .await
        .expect("her own tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_a_cursor_and_a_queued_generation_knows_its_place() {
    let t = slow_app(Backend::from_env(), 0).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&t.app, Actor::Operator, &format!("queued {i}")).await);
    }
    // Nothing runs yet: each waits behind the ones before it.
    for (n, id) in ids.iter().enumerate() {
        let place = t
            .app
            .queue_position(Actor::Operator, *id)
            .await
            .expect("position")
            .expect("queued");
        assert_eq!(place.ahead, n as u64);
    }
    let mut listed = Vec::new();
    let mut query = GenerationQuery {
        limit: Some(2),
        ..GenerationQuery::default()
    };
    loop {
        let page = t
            .app
            .generations(Actor::Operator, &query)
            .await
            .expect("page");
        listed.extend(page.generations.iter().map(|g| g.id));
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    let newest_first: Vec<GenerationId> = ids.iter().rev().copied().collect();
    assert_eq!(listed, newest_first);
    t.app
        .run_workers(2, Stop::UntilIdle)
        .await
        .expect("workers");
    assert!(
        t.app
            .queue_position(Actor::Operator, ids[0])
            .await
            .expect("position")
            .is_none()
    );
}
