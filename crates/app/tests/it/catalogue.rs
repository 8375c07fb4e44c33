//! The catalogue conformance story: every `Catalogue` method, through the trait only, so the
//! same test runs unchanged against every implementation: `sqlite::…` and `postgres::…` (see
//! `conformance!` at the end).

use atelier::catalogue::{
    CatalogueError, Change, Claim, FeedFilter, ImageFilter, Inserted, NewJob,
};
use atelier::domain::{
    Category, ErrorCode, EventKind, Failure, Generation, GenerationId, GenerationKind,
    GenerationStatus, Image, ImageId, ImageStatus, JobId, JobStatus, Lease, Parameters, Phase, Rgb,
    Role,
};
use time::OffsetDateTime;

use crate::support::Backend;

pub(super) fn generation(subject: Option<&str>, parent: Option<GenerationId>) -> Generation {
    Generation {
        id: GenerationId::new(),
        owner: None,
        provider: "sandbox".into(),
        account: Some("local".into()),
        kind: GenerationKind::Imagine,
        parent_id: parent,
        prompt: "a lighthouse".into(),
        negative_prompt: Some("fog".into()),
        parameters: Parameters {
            seed: Some(7),
            upscale: vec![1, 2, 3, 4],
            ..Parameters::default()
        },
        category: Some(Category::Scene),
        subject: subject.map(str::to_owned),
        // A caller's reference at its longest, with characters beyond ASCII: kept as given.
        client_reference: Some(format!("order {}", "é".repeat(249))),
        version: 0,
        status: GenerationStatus::Queued,
        phase: None,
        progress: 0.0,
        error: None,
        provider_refs: serde_json::json!({}),
        created_at: OffsetDateTime::now_utc(),
        started_at: None,
        completed_at: None,
    }
}

/// A job due `delay_ms` after it is written, by the database's clock.
pub(super) fn job(slot: &str, concurrency: u32, delay_ms: i64) -> NewJob {
    NewJob {
        id: JobId::new(),
        slot: slot.into(),
        concurrency,
        max_attempts: 3,
        delay_ms,
    }
}

/// The local clock in Unix milliseconds: the tests' database runs on this machine.
fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn image(g: &Generation, role: Role, tags: &[&str]) -> Image {
    Image {
        id: ImageId::new(),
        generation_id: g.id,
        owner: None,
        role,
        storage_key: format!("{}/{role}.png", g.id),
        public_url: None,
        thumbnail_key: Some(format!("{}/thumb_{role}.webp", g.id)),
        width: 64,
        height: 64,
        format: "png".into(),
        size_bytes: 1234,
        sha256: "ab".repeat(32),
        dominant: Some(Rgb([1, 2, 3])),
        palette: vec![Rgb([1, 2, 3]), Rgb([250, 251, 252])],
        category: g.category,
        subject: g.subject.clone(),
        version: 1,
        status: ImageStatus::Draft,
        favourite: false,
        public: false,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        synthetic: true,
        created_at: OffsetDateTime::now_utc(),
        clip: None,
    }
}

pub(super) fn claim<'a>(
    worker: &'a str,
    slots: &'a [String],
    only: Option<GenerationId>,
) -> Claim<'a> {
    Claim {
        worker,
        lease_ms: 1_000,
        slots,
        only,
    }
}

async fn generations_versions_and_events(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let c = backend.open(dir.path()).await.catalogue;

    let g = generation(Some("Fox King"), None);
    let created = c
        .create_generation(&g, Some(&job("s:a", 1, 0)), &[])
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    let back = c.generation(g.id).await.unwrap();
    assert_eq!(back.prompt, "a lighthouse");
    assert_eq!(back.parameters, g.parameters);
    assert_eq!(back.negative_prompt.as_deref(), Some("fog"));
    assert_eq!((back.status, back.version), (GenerationStatus::Queued, 1));
    assert_eq!(back.client_reference, g.client_reference);
    // A reference longer than the domain allows never reaches the table: the column refuses it
    // too, and nothing is written.
    let mut long = generation(None, None);
    long.client_reference = Some("x".repeat(256));
    assert!(c.create_generation(&long, None, &[]).await.is_err());
    assert!(c.generation(long.id).await.is_err());

    // Versions count per category and subject, else per parent.
    assert_eq!(
        c.next_version(Some(Category::Scene), Some("Fox King"), None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        c.next_version(Some(Category::Character), Some("Fox King"), None)
            .await
            .unwrap(),
        1
    );
    let second = c
        .create_generation(&generation(Some("Fox King"), None), None, &[])
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let child = c
        .create_generation(&generation(None, Some(second.id)), None, &[])
        .await
        .unwrap();
    assert_eq!(child.version, 3);
    assert_eq!(c.next_version(None, None, None).await.unwrap(), 1);
    assert!(matches!(
        c.next_version(None, None, Some(GenerationId::new())).await,
        Err(CatalogueError::NotFound(_))
    ));

    // Life cycle: events numbered without gaps; progress never goes down.
    let step = |kind, status, progress| Change::new(kind, status, progress);
    let e = c
        .advance(
            g.id,
            &step(EventKind::Submitted, GenerationStatus::Submitted, 25.0),
        )
        .await
        .unwrap();
    assert_eq!(e.seq, 2);
    let e = c
        .advance(
            g.id,
            &step(EventKind::Progress, GenerationStatus::Running, 40.0).phase(Phase::GridRendering),
        )
        .await
        .unwrap();
    assert_eq!(
        (e.seq, e.progress, e.phase),
        (3, 40.0, Some(Phase::GridRendering))
    );
    let e = c
        .advance(
            g.id,
            &step(EventKind::Progress, GenerationStatus::Running, 30.0),
        )
        .await
        .unwrap();
    assert_eq!(e.progress, 40.0, "progress never goes down");
    assert_eq!(
        e.phase,
        Some(Phase::GridRendering),
        "an unset phase keeps the stored one"
    );
    let back = c.generation(g.id).await.unwrap();
    assert!(back.started_at.is_some());
    // A notice rides on a progress event: the event keeps it, the generation does not.
    let mut notice = step(EventKind::Progress, GenerationStatus::Running, 40.0);
    notice.error = Some(Failure::new(ErrorCode::ProviderUnavailable, "account out"));
    let e = c.advance(g.id, &notice).await.unwrap();
    assert_eq!(
        e.error.map(|f| f.code),
        Some(ErrorCode::ProviderUnavailable)
    );
    assert!(c.generation(g.id).await.unwrap().error.is_none());
    let mut fail = step(EventKind::Failed, GenerationStatus::Failed, 40.0);
    fail.error = Some(Failure::new(ErrorCode::BannedPrompt, "no"));
    c.advance(g.id, &fail).await.unwrap();
    let back = c.generation(g.id).await.unwrap();
    assert_eq!(back.status, GenerationStatus::Failed);
    assert_eq!(back.error_code(), Some(ErrorCode::BannedPrompt));
    assert!(back.completed_at.is_some());
    assert!(matches!(
        c.advance(
            g.id,
            &step(EventKind::Progress, GenerationStatus::Running, 90.0)
        )
        .await,
        Err(CatalogueError::Conflict(_))
    ));

    let events = c.events(g.id, 0).await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Created,
            EventKind::Submitted,
            EventKind::Progress,
            EventKind::Progress,
            EventKind::Progress,
            EventKind::Failed
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        events[5].error.as_ref().map(|f| f.code),
        Some(ErrorCode::BannedPrompt)
    );
    assert_eq!(c.events(g.id, 3).await.unwrap().len(), 3);

    c.set_provider_refs(g.id, &serde_json::json!({"message_id": "42"}), None)
        .await
        .unwrap();
    let back = c.generation(g.id).await.unwrap();
    assert_eq!(
        (
            back.provider_refs["message_id"].as_str(),
            back.account.as_deref()
        ),
        (Some("42"), Some("local")),
        "no account given: the one recorded stays"
    );
    c.set_provider_refs(
        g.id,
        &serde_json::json!({"message_id": "43"}),
        Some("second"),
    )
    .await
    .unwrap();
    let back = c.generation(g.id).await.unwrap();
    assert_eq!(
        (
            back.provider_refs["message_id"].as_str(),
            back.account.as_deref()
        ),
        (Some("43"), Some("second"))
    );

    let unknown = GenerationId::new();
    assert!(matches!(
        c.generation(unknown).await,
        Err(CatalogueError::NotFound(_))
    ));
    assert!(matches!(
        c.advance(
            unknown,
            &step(EventKind::Progress, GenerationStatus::Running, 1.0)
        )
        .await,
        Err(CatalogueError::NotFound(_))
    ));
    assert!(matches!(
        c.set_provider_refs(unknown, &serde_json::json!({}), Some("x"))
            .await,
        Err(CatalogueError::NotFound(_))
    ));
}

async fn images_are_idempotent_filtered_and_tagged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let c = backend.open(dir.path()).await.catalogue;
    let g = c
        .create_generation(&generation(None, None), None, &[])
        .await
        .unwrap();
    let grid = image(&g, Role::Grid, &["sea"]);
    assert!(matches!(
        c.insert_image(&grid).await.unwrap(),
        Inserted::New(_)
    ));
    let again = image(&g, Role::Grid, &[]);
    match c.insert_image(&again).await.unwrap() {
        Inserted::Existing(i) => assert_eq!(i.id, grid.id, "the first row stays"),
        Inserted::New(_) => panic!("a second grid row was written"),
    }
    let up = image(&g, Role::Upscale(2), &[]);
    c.insert_image(&up).await.unwrap();
    let back = c.image(grid.id).await.unwrap();
    assert_eq!(
        back,
        Image {
            created_at: back.created_at,
            ..grid.clone()
        }
    );

    let all = c
        .images(&ImageFilter {
            generation_id: Some(g.id),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let tagged = c
        .images(&ImageFilter {
            tag: Some("sea".into()),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(tagged.iter().map(|i| i.id).collect::<Vec<_>>(), [grid.id]);
    // Words of the prompt ("a lighthouse"), any case; `%`, `_` and `\\` are themselves.
    for (text, found) in [
        ("LIGHTHOUSE", 2),
        ("a light", 2),
        ("%", 0),
        ("a_lighthouse", 0),
        ("light%house", 0),
        ("\\", 0),
        ("heron", 0),
    ] {
        let listed = c
            .images(&ImageFilter {
                text: Some(text.into()),
                ..ImageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), found, "{text:?}");
    }
    let one = c
        .images(&ImageFilter {
            limit: Some(1),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let scenes = c
        .images(&ImageFilter {
            category: Some(Category::Scene),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(scenes.len(), 2);
    let chars = c
        .images(&ImageFilter {
            category: Some(Category::Character),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert!(chars.is_empty());

    let fin = c.set_image_status(up.id, ImageStatus::Final).await.unwrap();
    assert_eq!(fin.status, ImageStatus::Final);
    let finals = c
        .images(&ImageFilter {
            status: Some(ImageStatus::Final),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(finals.iter().map(|i| i.id).collect::<Vec<_>>(), [up.id]);

    let t = c
        .add_tags(grid.id, &["wave".into(), "sea".into(), "blue".into()])
        .await
        .unwrap();
    assert_eq!(t.tags, ["blue", "sea", "wave"]);

    let nobody = ImageId::new();
    assert!(matches!(
        c.image(nobody).await,
        Err(CatalogueError::NotFound(_))
    ));
    assert!(matches!(
        c.set_image_status(nobody, ImageStatus::Final).await,
        Err(CatalogueError::NotFound(_))
    ));
    assert!(matches!(
        c.add_tags(nobody, &["x".into()]).await,
        Err(CatalogueError::NotFound(_))
    ));

    // An import arrives complete: images and both events in one transaction.
    let mut imported = generation(Some("Shell"), None);
    imported.kind = GenerationKind::Import;
    imported.status = GenerationStatus::Succeeded;
    imported.progress = 100.0;
    imported.phase = Some(Phase::Completed);
    let variant = image(&imported, Role::Variant(1), &[]);
    let made = c
        .create_generation(&imported, None, std::slice::from_ref(&variant))
        .await
        .unwrap();
    assert_eq!(c.image(variant.id).await.unwrap().version, made.version);
    let kinds: Vec<EventKind> = c
        .events(imported.id, 0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Created, EventKind::Completed]);

    // The status read's query: each generation's own images, and only those.
    let other = c
        .create_generation(&generation(None, None), None, &[])
        .await
        .unwrap();
    let theirs = image(&other, Role::Grid, &[]);
    c.insert_image(&theirs).await.unwrap();
    let mut own: Vec<_> = c
        .generation_images(g.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    own.sort();
    let mut expected = vec![grid.id, up.id];
    expected.sort();
    assert_eq!(own, expected);
    let only: Vec<_> = c.generation_images(other.id).await.unwrap();
    assert_eq!(only.iter().map(|i| i.id).collect::<Vec<_>>(), [theirs.id]);
    // Read together (in one round trip on SQLite), the same as apart.
    for id in [g.id, other.id] {
        let (together, mut images) = c.generation_with_images(id).await.unwrap();
        assert_eq!(together, c.generation(id).await.unwrap());
        let mut apart = c.generation_images(id).await.unwrap();
        images.sort_by_key(|i| i.id);
        apart.sort_by_key(|i| i.id);
        assert_eq!(images, apart);
    }
    let empty = c
        .create_generation(&generation(None, None), None, &[])
        .await
        .unwrap();
    let (alone, none) = c.generation_with_images(empty.id).await.unwrap();
    assert_eq!((alone, none.len()), (empty, 0));
    assert!(matches!(
        c.generation_with_images(GenerationId::new()).await,
        Err(CatalogueError::NotFound(_))
    ));
}

async fn the_queue_leases_limits_retries_and_cancels(backend: Backend) {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let db = backend.open(dir.path()).await;
    let (c, q) = (&db.catalogue, &db.queue);
    let slots = vec!["mj:alice".to_owned()];
    let other_slots = vec!["mj:bob".to_owned()];
    let (a, b) = (generation(None, None), generation(None, None));
    c.create_generation(&a, Some(&job("mj:alice", 1, 300)), &[])
        .await
        .unwrap();
    c.create_generation(&b, Some(&job("mj:alice", 1, 300)), &[])
        .await
        .unwrap();
    let lease = |worker, only, lease_ms| Claim {
        lease_ms,
        ..claim(worker, &slots, only)
    };

    assert!(
        q.claim(&claim("w1", &slots, None)).await.unwrap().is_none(),
        "not due yet"
    );
    let counts = q.counts(&slots).await.unwrap();
    assert_eq!((counts.pending, counts.running), (2, 0));
    let due = q.next_due(&slots).await.unwrap().expect("a due time");
    assert!(
        due > Duration::ZERO && due <= Duration::from_millis(300),
        "{due:?}"
    );
    assert_eq!(q.next_due(&other_slots).await.unwrap(), None);
    tokio::time::sleep(due + Duration::from_millis(20)).await;
    assert!(
        q.claim(&claim("w1", &other_slots, None))
            .await
            .unwrap()
            .is_none(),
        "other slot"
    );
    assert_eq!(q.next_due(&slots).await.unwrap(), Some(Duration::ZERO));

    let first = q
        .claim(&lease("w1", None, 200))
        .await
        .unwrap()
        .expect("a job is due");
    assert_eq!(
        (first.generation_id, first.attempts, first.status),
        (a.id, 1, JobStatus::Running)
    );
    let expires = first.lease_expires_at.expect("leased");
    assert!(
        (expires - now_ms() - 200).abs() < 1_000,
        "the database's clock"
    );
    assert!(
        q.claim(&claim("w2", &slots, None)).await.unwrap().is_none(),
        "one at a time per account"
    );

    assert_eq!(q.renew(first.id, "w1", 200).await.unwrap(), Lease::Held);
    assert_eq!(q.renew(first.id, "w2", 200).await.unwrap(), Lease::Lost);
    // The lease is live for 200 ms; after that the job is taken over (a crashed worker).
    assert!(
        q.claim(&lease("w2", Some(a.id), 1_000))
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let taken = q
        .claim(&lease("w2", Some(a.id), 1_000))
        .await
        .unwrap()
        .expect("stale lease recovered");
    // A takeover is counted apart: it spends no attempt.
    assert_eq!(
        (taken.id, taken.attempts, taken.takeovers),
        (first.id, 1, 1)
    );
    assert_eq!(q.renew(first.id, "w1", 1_000).await.unwrap(), Lease::Lost);
    assert!(
        !q.finish(first.id, "w1", JobStatus::Succeeded, None)
            .await
            .unwrap(),
        "old owner cannot finish"
    );

    // A retry puts it back, due later by the database's clock.
    assert!(
        q.retry(taken.id, "w2", 60_000, "queue_full: busy")
            .await
            .unwrap()
    );
    let retried = q.job_of(a.id).await.unwrap();
    assert_eq!(retried.status, JobStatus::Pending);
    assert!((retried.run_at - now_ms() - 60_000).abs() < 1_000);
    assert_eq!(retried.last_error.as_deref(), Some("queue_full: busy"));

    // b is due and the slot is free.
    let second = q
        .claim(&claim("w3", &slots, None))
        .await
        .unwrap()
        .expect("b runs");
    assert_eq!(second.generation_id, b.id);
    assert!(
        q.finish(second.id, "w3", JobStatus::Succeeded, None)
            .await
            .unwrap()
    );
    assert_eq!(q.job_of(b.id).await.unwrap().status, JobStatus::Succeeded);

    // Cancel: a pending job ends at once; a running one is flagged for its worker.
    let canceled = q.cancel(a.id).await.unwrap();
    assert_eq!(canceled.status, JobStatus::Canceled);
    assert!(q.claim(&claim("w1", &slots, None)).await.unwrap().is_none());
    let d = generation(None, None);
    c.create_generation(&d, Some(&job("mj:alice", 1, 0)), &[])
        .await
        .unwrap();
    let running = q
        .claim(&claim("w1", &slots, None))
        .await
        .unwrap()
        .expect("d runs");
    let flagged = q.cancel(d.id).await.unwrap();
    assert_eq!(
        (flagged.status, flagged.cancel_requested),
        (JobStatus::Running, true)
    );
    assert_eq!(
        q.renew(running.id, "w1", 1_000).await.unwrap(),
        Lease::CancelRequested
    );
    assert!(
        q.finish(running.id, "w1", JobStatus::Canceled, None)
            .await
            .unwrap()
    );
    let counts = q.counts(&slots).await.unwrap();
    assert_eq!((counts.pending, counts.running), (0, 0));

    assert!(matches!(
        q.job_of(GenerationId::new()).await,
        Err(CatalogueError::NotFound(_))
    ));
    assert!(matches!(
        q.cancel(GenerationId::new()).await,
        Err(CatalogueError::NotFound(_))
    ));
}

/// A worker that ends a job asks for its next in the same call: the job's place in its slot
/// passes to the next job there, never while another worker runs the job it held (a lease
/// taken over), and is given back when the next job is elsewhere or there is none.
async fn a_job_that_ends_hands_its_place_to_the_next(backend: Backend) {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let db = backend.open(dir.path()).await;
    let (c, q) = (&db.catalogue, &db.queue);
    let (x, y) = (vec!["mj:x".to_owned()], vec!["mj:y".to_owned()]);
    let mut gens = Vec::new();
    for slot in ["mj:x", "mj:x", "mj:x", "mj:y"] {
        let g = generation(None, None);
        c.create_generation(&g, Some(&job(slot, 1, 0)), &[])
            .await
            .unwrap();
        gens.push(g.id);
        // Distinct due times: claims take jobs in this order.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let short = |worker| Claim {
        lease_ms: 200,
        ..claim(worker, &x, None)
    };

    let a = q.claim(&claim("w1", &x, None)).await.unwrap().expect("a");
    assert_eq!(a.generation_id, gens[0]);
    assert!(q.claim(&claim("w2", &x, None)).await.unwrap().is_none());
    let (ended, b) = q
        .finish_and_claim(a.id, JobStatus::Succeeded, None, &short("w1"))
        .await
        .unwrap();
    let b = b.expect("b, handed a's place");
    assert!(ended);
    assert_eq!(
        q.job_of(gens[0]).await.unwrap().status,
        JobStatus::Succeeded
    );
    assert_eq!(
        (
            b.generation_id,
            b.status,
            b.attempts,
            b.lease_owner.as_deref()
        ),
        (gens[1], JobStatus::Running, 1, Some("w1"))
    );
    let counts = q.counts(&x).await.unwrap();
    assert_eq!((counts.pending, counts.running), (1, 1));
    assert!(
        q.claim(&claim("w2", &x, None)).await.unwrap().is_none(),
        "still one at a time"
    );

    // w1 stalls past its lease and w2 takes b over: w1's late end records nothing and hands
    // nothing on, since b's place is w2's now.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let over = q.claim(&claim("w2", &x, None)).await.unwrap().expect("b");
    assert_eq!((over.id, over.takeovers), (b.id, 1));
    let (ended, next) = q
        .finish_and_claim(b.id, JobStatus::Succeeded, None, &claim("w1", &x, None))
        .await
        .unwrap();
    assert!(!ended, "the lease was lost");
    assert!(next.is_none(), "the slot is w2's: {next:?}");
    assert_eq!(q.job_of(gens[2]).await.unwrap().status, JobStatus::Pending);
    let b_now = q.job_of(gens[1]).await.unwrap();
    assert_eq!(
        (b_now.status, b_now.lease_owner.as_deref()),
        (JobStatus::Running, Some("w2"))
    );

    // w2 ends b and takes a job of another slot: b's place is given back, and c takes it.
    let (ended, other) = q
        .finish_and_claim(b.id, JobStatus::Succeeded, None, &claim("w2", &y, None))
        .await
        .unwrap();
    assert!(ended);
    assert_eq!(other.expect("y's job").generation_id, gens[3]);
    let c_job = q
        .claim(&short("w3"))
        .await
        .unwrap()
        .expect("c, in the freed place");
    assert_eq!(c_job.generation_id, gens[2]);

    // A job whose lease ran out while its own worker ended it is ended, never taken again.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (ended, next) = q
        .finish_and_claim(c_job.id, JobStatus::Succeeded, None, &claim("w3", &x, None))
        .await
        .unwrap();
    assert!(ended);
    assert!(next.is_none(), "nothing left in x: {next:?}");
    assert_eq!(
        q.job_of(gens[2]).await.unwrap().status,
        JobStatus::Succeeded
    );

    // With nothing to hand on, the place is free for the next job queued.
    let d = generation(None, None);
    c.create_generation(&d, Some(&job("mj:x", 1, 0)), &[])
        .await
        .unwrap();
    let d_job = q.claim(&claim("w4", &x, None)).await.unwrap().expect("d");
    assert_eq!(d_job.generation_id, d.id);
    let counts = q.counts(&x).await.unwrap();
    assert_eq!((counts.pending, counts.running), (0, 1));
}

async fn concurrency_above_one_and_meta(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.open(dir.path()).await;
    let (c, q) = (&db.catalogue, &db.queue);
    let slots = vec!["sandbox:local".to_owned()];
    let seen = q.work_seen();
    for _ in 0..3 {
        c.create_generation(
            &generation(None, None),
            Some(&job("sandbox:local", 2, 0)),
            &[],
        )
        .await
        .unwrap();
    }
    assert!(q.claim(&claim("w1", &slots, None)).await.unwrap().is_some());
    assert!(q.claim(&claim("w2", &slots, None)).await.unwrap().is_some());
    assert!(
        q.claim(&claim("w3", &slots, None)).await.unwrap().is_none(),
        "two at a time"
    );
    // Work queued after a look wakes a wait that starts later.
    let t = std::time::Instant::now();
    q.wait_for_work(seen, std::time::Duration::from_secs(20))
        .await;
    assert!(t.elapsed() < std::time::Duration::from_secs(10));

    assert_eq!(c.meta("notice").await.unwrap(), None);
    c.set_meta("notice", "shown").await.unwrap();
    c.set_meta("notice", "again").await.unwrap();
    assert_eq!(c.meta("notice").await.unwrap().as_deref(), Some("again"));
}

async fn an_account_is_held_by_one_holder_at_a_time(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let q = backend.open(dir.path()).await.queue;
    assert!(
        q.hold_account("midjourney:alice", "node-a", 200)
            .await
            .unwrap()
    );
    assert!(
        !q.hold_account("midjourney:alice", "node-b", 200)
            .await
            .unwrap(),
        "held by node-a"
    );
    assert!(
        q.hold_account("midjourney:bob", "node-b", 200)
            .await
            .unwrap(),
        "another account is free"
    );
    assert!(
        q.hold_account("midjourney:alice", "node-a", 200)
            .await
            .unwrap(),
        "the holder renews"
    );
    // A release by someone else changes nothing; the holder's own frees it at once.
    q.release_account("midjourney:alice", "node-b")
        .await
        .unwrap();
    assert!(
        !q.hold_account("midjourney:alice", "node-b", 200)
            .await
            .unwrap()
    );
    q.release_account("midjourney:alice", "node-a")
        .await
        .unwrap();
    assert!(
        q.hold_account("midjourney:alice", "node-b", 100)
            .await
            .unwrap()
    );
    // A hold nobody renews runs out, and another node takes the account.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(
        q.hold_account("midjourney:alice", "node-a", 200)
            .await
            .unwrap()
    );
}

async fn the_feed_tells_every_event_in_order_and_wakes_its_waiters(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let c = backend.open(dir.path()).await.catalogue;
    assert_eq!(c.feed_end().await.unwrap(), 0);
    let a = c
        .create_generation(&generation(None, None), None, &[])
        .await
        .unwrap();
    let start = c.feed_end().await.unwrap();
    assert!(start > 0);
    let b = c
        .create_generation(&generation(None, None), None, &[])
        .await
        .unwrap();
    let seen = c.events_seen();
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            c.wait_for_events(seen, std::time::Duration::from_secs(20))
                .await;
            t.elapsed()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    c.advance(
        a.id,
        &Change::new(EventKind::Progress, GenerationStatus::Running, 10.0),
    )
    .await
    .unwrap();
    let slept = waiter.await.unwrap();
    // A wake-up between a look and the wait is not slept through.
    let t = std::time::Instant::now();
    c.wait_for_events(seen, std::time::Duration::from_secs(20))
        .await;
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        slept < std::time::Duration::from_secs(10),
        "woken by the write"
    );

    let all = c.feed(0, &FeedFilter::default(), 100).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|e| (e.event.generation_id, e.event.seq))
        .collect();
    assert_eq!(seen, [(a.id, 1), (b.id, 1), (a.id, 2)]);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(all.last().unwrap().position, c.feed_end().await.unwrap());
    let after: Vec<_> = c
        .feed(start, &FeedFilter::default(), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.event.generation_id, e.event.seq))
        .collect();
    assert_eq!(after, [(b.id, 1), (a.id, 2)]);
    let of_a: Vec<_> = c
        .feed(
            0,
            &FeedFilter {
                generation: Some(a.id),
                ..FeedFilter::default()
            },
            1,
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.seq)
        .collect();
    assert_eq!(of_a, [1], "at most the limit");
}

async fn account_records_keep_the_latest_state(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let c = backend.open(dir.path()).await.catalogue;
    assert_eq!(c.account_record("midjourney", "alice").await.unwrap(), None);
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut record = atelier::catalogue::AccountRecord {
        provider: "midjourney".into(),
        account: "alice".into(),
        health: "connecting".into(),
        reason: Some("gateway refused: 4004".into()),
        at,
    };
    c.record_account(&record).await.unwrap();
    record.health = "ready".into();
    record.reason = None;
    c.record_account(&record).await.unwrap();
    assert_eq!(
        c.account_record("midjourney", "alice").await.unwrap(),
        Some(record)
    );
    assert_eq!(c.account_record("midjourney", "bob").await.unwrap(), None);
}

/// Each test above, once per database: `catalogue::sqlite::NAME` and `catalogue::postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::support::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::support::Backend::Postgres).await;
            })*
        }
    };
}

conformance!(
    generations_versions_and_events,
    images_are_idempotent_filtered_and_tagged,
    the_queue_leases_limits_retries_and_cancels,
    a_job_that_ends_hands_its_place_to_the_next,
    concurrency_above_one_and_meta,
    an_account_is_held_by_one_holder_at_a_time,
    the_feed_tells_every_event_in_order_and_wakes_its_waiters,
    account_records_keep_the_latest_state,
);
