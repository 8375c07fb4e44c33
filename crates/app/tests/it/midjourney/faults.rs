//! The fault options against the Midjourney provider: each fault alone, all of them together,
//! and stuck jobs, which end in a typed timeout.

use std::sync::Arc;
use std::time::Duration;

use atelier::app::App;
use atelier::domain::{ErrorCode, GenerationRequest, GenerationStatus};
use atelier_simulator::{Fault, Faults, Running};

use super::{app_for, assert_complete, generate, run_all_within, simulator, submit_numbered};

/// `set` at `rate` and `seed`, rolled on gateway connections as often as [`simulator`] sets.
fn faults(set: &[Fault], rate: f64, seed: u64) -> impl FnOnce(&mut atelier_simulator::Config) {
    move |c| {
        c.faults = Faults {
            seed,
            every: c.faults.every,
            ..Faults::with(set, rate)
        };
    }
}

fn fired(sim: &Running, fault: Fault) -> u64 {
    let stats = sim.control().stats();
    stats
        .faults_injected
        .get(fault.name())
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn each_fault_alone_still_completes_the_job() {
    // Every fault a job gets over (a stuck job times out: tested apart).
    for fault in Fault::ALL.into_iter().filter(|f| *f != Fault::Stuck) {
        let sim = simulator(faults(&[fault], 0.5, 0)).await;
        let dir = tempfile::tempdir().unwrap();
        let app = app_for(&sim, dir.path(), 1, |_| {}).await;
        let control = sim.control();
        // Whatever the dice say, the fault fires once: a gateway fault as soon as the bot
        // has started the job (the connection is live), the others at their next chance.
        let injector = tokio::spawn(async move {
            while fault.is_gateway() && control.stats().jobs_started == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            control.inject(fault);
        });
        let id = generate(&app, "a castle on a hill").await;
        injector.await.unwrap();
        assert!(fired(&sim, fault) >= 1, "{} never fired", fault.name());
        let g = app.catalogue().generation(id).await.unwrap();
        assert_eq!(
            g.status,
            GenerationStatus::Succeeded,
            "{}: {:?}",
            fault.name(),
            g.error
        );
        assert_complete(&app, id).await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn all_faults_together_lose_no_delivered_image() {
    // Each seed deals the faults differently; together these meet every fault a request, a
    // download or a job rolls for. The gateway's faults are rolled on timer ticks, whose
    // number depends on the machine's speed: they fire here too, but only the test of each
    // fault alone makes sure of it.
    let mut met = std::collections::BTreeSet::new();
    for seed in SEEDS {
        let sim = simulator(faults(&Fault::ALL, 0.25, seed)).await;
        all_faults_run(&sim).await;
        eprintln!("seed {seed}: {:?}", sim.control().stats().faults_injected);
        met.extend(Fault::ALL.into_iter().filter(|f| fired(&sim, *f) > 0));
        sim.shutdown().await;
    }
    let missed: Vec<_> = Fault::ALL
        .iter()
        .filter(|f| !f.is_gateway() && !met.contains(f))
        .collect();
    assert!(missed.is_empty(), "faults that never fired: {missed:?}");
}

/// Seeds for [`all_faults_together_lose_no_delivered_image`].
const SEEDS: [u64; 2] = [1, 3];

/// Three generations on two accounts against a simulator full of faults: each ends
/// complete, or failed with a retryable cause after its attempts ran out.
async fn all_faults_run(sim: &Running) {
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(sim, dir.path(), 2, |c| {
        c.providers.midjourney.timeout_secs = 2.0;
        c.jobs.max_attempts = 8;
    })
    .await;
    let ids = submit_numbered(&app, "a harbour, study", 3).await;
    // Eight attempts, each of which may meet several faults and their backoffs, can
    // legitimately take minutes on a loaded two-core machine; a stall still fails.
    run_all_within(&app, Duration::from_mins(5)).await;
    let fired = sim.control().stats().faults_injected;
    for id in ids {
        let g = app.catalogue().generation(id).await.unwrap();
        match g.status {
            GenerationStatus::Succeeded => assert_complete(&app, id).await,
            // A job may run out of attempts, but only with a typed, retryable cause.
            GenerationStatus::Failed => {
                assert!(
                    g.error_code().is_some_and(ErrorCode::is_retryable),
                    "{:?} (faults fired: {fired:?})",
                    g.error
                );
            }
            other => panic!("generation {id} ended {other:?} (faults fired: {fired:?})"),
        }
    }
}

/// A simulator where every job gets stuck, and an app on its first account with `midjourney`
/// tuned and `attempts` per job.
async fn stuck(
    midjourney: impl FnOnce(&mut atelier::config::MidjourneyConfig),
    attempts: u32,
) -> (Running, tempfile::TempDir, Arc<App>) {
    let sim = simulator(faults(&[Fault::Stuck], 1.0, 0)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |c| {
        midjourney(&mut c.providers.midjourney);
        c.jobs.max_attempts = attempts;
    })
    .await;
    (sim, dir, app)
}

#[tokio::test]
async fn a_stuck_job_times_out_with_its_type() {
    let (sim, _dir, app) = stuck(|m| m.timeout_secs = 0.5, 2).await;
    let id = generate(&app, "a frozen river").await;
    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::Timeout), "{:?}", g.error);
    assert_eq!(sim.control().stats().interactions, 2, "one try per attempt");
    sim.shutdown().await;
}

/// A stuck job's last progress message stays in the channel: reading it again on every
/// history poll proves nothing new, so it must not hold the deadline off for ever.
#[tokio::test]
async fn a_stuck_job_times_out_when_polls_are_shorter_than_the_deadline() {
    let (sim, _dir, app) = stuck(
        |m| {
            m.timeout_secs = 1.0;
            m.history_poll_secs = 0.2;
        },
        1,
    )
    .await;
    let g = app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new("a frozen lake"),
        )
        .await
        .unwrap();
    run_all_within(&app, Duration::from_secs(30)).await;
    let g = app.catalogue().generation(g.id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::Timeout), "{:?}", g.error);
    sim.shutdown().await;
}
