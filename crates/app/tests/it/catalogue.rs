//! The catalogue conformance story: every `Catalogue` method, through the trait only, so the
//! same test runs unchanged against any implementation (`TEST_DATABASE_URL` selects one).

use atelier::catalogue::{CatalogueError, Change, Claim, ImageFilter, Inserted, NewJob};
use atelier::domain::{
    Category, ErrorCode, EventKind, Failure, Generation, GenerationId, GenerationKind,
    GenerationStatus, Image, ImageId, ImageStatus, JobId, JobStatus, Lease, Parameters, Phase, Rgb,
    Role,
};
use time::OffsetDateTime;

use crate::support::test_catalogue;

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

pub(super) fn job(slot: &str, concurrency: u32, run_at: i64) -> NewJob {
    NewJob {
        id: JobId::new(),
        slot: slot.into(),
        concurrency,
        max_attempts: 3,
        run_at,
    }
}

fn image(g: &Generation, role: Role, tags: &[&str]) -> Image {
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

#[tokio::test]
async fn generations_versions_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_catalogue(dir.path()).await;

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

#[tokio::test]
async fn images_are_idempotent_filtered_and_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_catalogue(dir.path()).await;
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
}

#[tokio::test]
async fn the_queue_leases_limits_retries_and_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_catalogue(dir.path()).await;
    let slots = vec!["mj:alice".to_owned()];
    let other_slots = vec!["mj:bob".to_owned()];
    let (a, b) = (generation(None, None), generation(None, None));
    c.create_generation(&a, Some(&job("mj:alice", 1, 100)), &[])
        .await
        .unwrap();
    c.create_generation(&b, Some(&job("mj:alice", 1, 100)), &[])
        .await
        .unwrap();

    assert!(
        c.claim_job(&claim("w1", &slots, None), 50)
            .await
            .unwrap()
            .is_none(),
        "not due yet"
    );
    assert!(
        c.claim_job(&claim("w1", &other_slots, None), 200)
            .await
            .unwrap()
            .is_none(),
        "other slot"
    );
    let counts = c.queue_counts(&slots).await.unwrap();
    assert_eq!((counts.pending, counts.running), (2, 0));
    assert_eq!(c.next_wakeup(&slots).await.unwrap(), Some(100));
    assert_eq!(c.next_wakeup(&other_slots).await.unwrap(), None);

    let first = c
        .claim_job(&claim("w1", &slots, None), 200)
        .await
        .unwrap()
        .expect("a job is due");
    assert_eq!(
        (first.generation_id, first.attempts, first.status),
        (a.id, 1, JobStatus::Running)
    );
    assert!(
        c.claim_job(&claim("w2", &slots, None), 300)
            .await
            .unwrap()
            .is_none(),
        "one at a time per account"
    );

    assert_eq!(
        c.renew_lease(first.id, "w1", 900, 1_000).await.unwrap(),
        Lease::Held
    );
    assert_eq!(
        c.renew_lease(first.id, "w2", 900, 1_000).await.unwrap(),
        Lease::Lost
    );
    // The lease now runs to 1 900. After that, the job is taken over (a crashed worker).
    assert!(
        c.claim_job(&claim("w2", &slots, Some(a.id)), 1_800)
            .await
            .unwrap()
            .is_none()
    );
    let taken = c
        .claim_job(&claim("w2", &slots, Some(a.id)), 2_000)
        .await
        .unwrap()
        .expect("stale lease recovered");
    // A takeover is counted apart: it spends no attempt.
    assert_eq!(
        (taken.id, taken.attempts, taken.takeovers),
        (first.id, 1, 1)
    );
    assert_eq!(
        c.renew_lease(first.id, "w1", 2_100, 1_000).await.unwrap(),
        Lease::Lost
    );
    assert!(
        !c.finish_job(first.id, "w1", JobStatus::Succeeded, None)
            .await
            .unwrap(),
        "old owner cannot finish"
    );

    // A retry puts it back, due later.
    assert!(
        c.retry_job(taken.id, "w2", 5_000, "queue_full: busy")
            .await
            .unwrap()
    );
    let retried = c.job_of(a.id).await.unwrap();
    assert_eq!(
        (retried.status, retried.run_at),
        (JobStatus::Pending, 5_000)
    );
    assert_eq!(retried.last_error.as_deref(), Some("queue_full: busy"));

    // b is due and the slot is free.
    let second = c
        .claim_job(&claim("w3", &slots, None), 3_000)
        .await
        .unwrap()
        .expect("b runs");
    assert_eq!(second.generation_id, b.id);
    assert!(
        c.finish_job(second.id, "w3", JobStatus::Succeeded, None)
            .await
            .unwrap()
    );
    assert_eq!(c.job_of(b.id).await.unwrap().status, JobStatus::Succeeded);

    // Cancel: a pending job ends at once; a running one is flagged for its worker.
    let canceled = c.cancel_job(a.id).await.unwrap();
    assert_eq!(canceled.status, JobStatus::Canceled);
    assert!(
        c.claim_job(&claim("w1", &slots, None), 10_000)
            .await
            .unwrap()
            .is_none()
    );
    let d = generation(None, None);
    c.create_generation(&d, Some(&job("mj:alice", 1, 0)), &[])
        .await
        .unwrap();
    let running = c
        .claim_job(&claim("w1", &slots, None), 10_000)
        .await
        .unwrap()
        .expect("d runs");
    let flagged = c.cancel_job(d.id).await.unwrap();
    assert_eq!(
        (flagged.status, flagged.cancel_requested),
        (JobStatus::Running, true)
    );
    assert_eq!(
        c.renew_lease(running.id, "w1", 10_100, 1_000)
            .await
            .unwrap(),
        Lease::CancelRequested
    );
    assert!(
        c.finish_job(running.id, "w1", JobStatus::Canceled, None)
            .await
            .unwrap()
    );
    let counts = c.queue_counts(&slots).await.unwrap();
    assert_eq!((counts.pending, counts.running), (0, 0));

    assert!(matches!(
        c.job_of(GenerationId::new()).await,
        Err(CatalogueError::NotFound(_))
    ));
    assert!(matches!(
        c.cancel_job(GenerationId::new()).await,
        Err(CatalogueError::NotFound(_))
    ));
}

#[tokio::test]
async fn concurrency_above_one_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_catalogue(dir.path()).await;
    let slots = vec!["sandbox:local".to_owned()];
    for _ in 0..3 {
        c.create_generation(
            &generation(None, None),
            Some(&job("sandbox:local", 2, 0)),
            &[],
        )
        .await
        .unwrap();
    }
    assert!(
        c.claim_job(&claim("w1", &slots, None), 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        c.claim_job(&claim("w2", &slots, None), 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        c.claim_job(&claim("w3", &slots, None), 1)
            .await
            .unwrap()
            .is_none(),
        "two at a time"
    );

    assert_eq!(c.meta("notice").await.unwrap(), None);
    c.set_meta("notice", "shown").await.unwrap();
    c.set_meta("notice", "again").await.unwrap();
    assert_eq!(c.meta("notice").await.unwrap().as_deref(), Some("again"));
}
