//! Conformance, continued: several life-cycle steps written as one, and the order in which a
//! deep queue is claimed. Through the `Catalogue` trait only, like `catalogue.rs`.

use atelier::catalogue::{CatalogueError, Change, Claim};
use atelier::domain::{EventKind, GenerationStatus, Phase};

use crate::catalogue::{claim, generation, job};
use crate::support::test_db;

fn step(kind: EventKind, status: GenerationStatus, progress: f64) -> Change {
    Change::new(kind, status, progress)
}

#[tokio::test]
async fn steps_written_together_read_as_steps_written_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_db(dir.path()).await.catalogue;
    let g = c
        .create_generation(&generation(None, None), None, &[])
        .await
        .unwrap();
    assert!(c.advance_all(g.id, &[]).await.unwrap().is_empty());

    // Each step is judged after the ones before it: the status never moves back, an unset
    // phase is the previous step's, progress is only raised.
    let events = c
        .advance_all(
            g.id,
            &[
                step(EventKind::Submitted, GenerationStatus::Submitted, 25.0)
                    .phase(Phase::GridRendering),
                step(EventKind::Progress, GenerationStatus::Running, 40.0),
                step(EventKind::Progress, GenerationStatus::Submitted, 30.0),
            ],
        )
        .await
        .unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.seq, e.kind, e.status, e.phase, e.progress))
        .collect();
    let grid = Some(Phase::GridRendering);
    assert_eq!(
        seen,
        [
            (
                2,
                EventKind::Submitted,
                GenerationStatus::Submitted,
                grid,
                25.0
            ),
            (
                3,
                EventKind::Progress,
                GenerationStatus::Running,
                grid,
                40.0
            ),
            (
                4,
                EventKind::Progress,
                GenerationStatus::Running,
                grid,
                40.0
            ),
        ]
    );
    let back = c.generation(g.id).await.unwrap();
    assert_eq!(
        (back.status, back.phase, back.progress),
        (GenerationStatus::Running, grid, 40.0)
    );
    assert!(back.started_at.is_some());
    // The stored events are the ones returned.
    let stored: Vec<_> = c
        .events(g.id, 1)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.seq, e.kind, e.status, e.phase, e.progress))
        .collect();
    assert_eq!(stored, seen);

    // More steps than one statement takes: still numbered without gaps, in order.
    let many: Vec<Change> = (0..19)
        .map(|i| {
            step(
                EventKind::Progress,
                GenerationStatus::Running,
                41.0 + f64::from(i),
            )
        })
        .collect();
    let events = c.advance_all(g.id, &many).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (5..=23).collect::<Vec<u64>>()
    );
    assert_eq!(
        events.iter().map(|e| e.progress).collect::<Vec<_>>(),
        (0..19).map(|i| 41.0 + f64::from(i)).collect::<Vec<_>>()
    );

    // Only the last step may end the generation; a refused batch writes nothing.
    let ended_early = c
        .advance_all(
            g.id,
            &[
                step(EventKind::Completed, GenerationStatus::Succeeded, 100.0),
                step(EventKind::Progress, GenerationStatus::Running, 99.0),
            ],
        )
        .await;
    assert!(ended_early.is_err());
    assert_eq!(c.events(g.id, 0).await.unwrap().len(), 23);
    assert_eq!(
        c.generation(g.id).await.unwrap().status,
        GenerationStatus::Running
    );

    let mut last = step(
        EventKind::UpscaleCompleted,
        GenerationStatus::Running,
        100.0,
    )
    .phase(Phase::UpscalesInProgress);
    last.index = Some(4);
    let events = c
        .advance_all(
            g.id,
            &[
                last,
                step(EventKind::Completed, GenerationStatus::Succeeded, 100.0)
                    .phase(Phase::Completed),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.kind, e.index))
            .collect::<Vec<_>>(),
        [
            (24, EventKind::UpscaleCompleted, Some(4)),
            (25, EventKind::Completed, None)
        ]
    );
    let back = c.generation(g.id).await.unwrap();
    assert_eq!(
        (back.status, back.phase),
        (GenerationStatus::Succeeded, Some(Phase::Completed))
    );
    assert!(back.completed_at.is_some());

    // Ended: nothing more is written, and the refusal says so.
    assert!(matches!(
        c.advance_all(
            g.id,
            &[step(EventKind::Progress, GenerationStatus::Running, 1.0)]
        )
        .await,
        Err(CatalogueError::Conflict(_))
    ));
    assert_eq!(c.events(g.id, 0).await.unwrap().len(), 25);
    assert!(matches!(
        c.advance_all(
            atelier::domain::GenerationId::new(),
            &[step(EventKind::Progress, GenerationStatus::Running, 1.0)]
        )
        .await,
        Err(CatalogueError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_deep_queue_is_claimed_in_order_and_taken_over_jobs_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(dir.path()).await;
    let (c, q) = (&db.catalogue, &db.queue);
    let slots = vec!["sandbox:local".to_owned(), "mj:alice".to_owned()];
    // 60 jobs due at different times, written in no particular order, on two slots.
    let mut gens = Vec::new();
    for i in (0..60_i64).rev() {
        let g = generation(None, None);
        let slot = if i % 3 == 0 {
            "mj:alice"
        } else {
            "sandbox:local"
        };
        c.create_generation(&g, Some(&job(slot, 2, (i * 7) % 10)), &[])
            .await
            .unwrap();
        gens.push(g.id);
    }
    // The order the database's own due times give, ties by job id.
    let mut expected = Vec::new();
    for g in &gens {
        let j = q.job_of(*g).await.unwrap();
        expected.push((j.run_at, j.id));
    }
    expected.sort();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // Every job, one after another (each ended before the next claim), in the due order,
    // whatever the slot.
    let mut order = Vec::new();
    while let Some(next) = q.claim(&claim("w1", &slots, None)).await.unwrap() {
        order.push(next.id);
        q.finish(next.id, "w1", atelier::domain::JobStatus::Succeeded, None)
            .await
            .unwrap();
    }
    assert_eq!(
        order,
        expected.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    );

    // A job whose worker died is taken over before any pending job, even a due one that
    // was queued earlier.
    let (late, early) = (generation(None, None), generation(None, None));
    c.create_generation(&early, Some(&job("sandbox:local", 2, 0)), &[])
        .await
        .unwrap();
    c.create_generation(&late, Some(&job("sandbox:local", 2, 0)), &[])
        .await
        .unwrap();
    let dead = Claim {
        lease_ms: 30,
        ..claim("dead", &slots, Some(late.id))
    };
    let crashed = q.claim(&dead).await.unwrap().unwrap();
    // The lease runs out.
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let next = q.claim(&claim("w2", &slots, None)).await.unwrap().unwrap();
    assert_eq!((next.id, next.attempts, next.takeovers), (crashed.id, 1, 1));
    let then = q.claim(&claim("w2", &slots, None)).await.unwrap().unwrap();
    assert_eq!(then.generation_id, early.id);
}
