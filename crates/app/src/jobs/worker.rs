//! Workers: claim a job with a lease, run it as its own task (a panic boundary), renew the
//! lease while it runs, and record how it ended: done, retried with backoff, failed or
//! canceled. A write the catalogue refuses (a full disk, a read-only file) stops the pool and
//! is returned to the command, which ends with it; other catalogue errors are retried after a
//! backoff kept in memory, since the write that would record it may be the one failing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::{JobError, Signal, generate};
use crate::app::App;
use crate::catalogue::{CatalogueError, Change, Claim};
use crate::domain::{
    AfterFailure, ErrorCode, EventKind, Failure, GenerationId, GenerationStatus, Job, JobStatus,
    Lease, OnClaim,
};
use crate::providers::AccountPool;

/// A refused catalogue write, the only error that stops a worker.
type Refused = CatalogueError;

/// Keeps a refused write (the command ends with it) and logs any other error with `what`.
fn refused_only(what: &str, job: &Job, e: CatalogueError) -> Result<(), Refused> {
    if e.is_refused() {
        return Err(e);
    }
    tracing::error!(job = %job.id, error = %e, "{what}");
    Ok(())
}

/// A job's task, aborted when its worker lets go of it: a pool stopped by a refused write
/// drops its workers in the middle of their jobs.
struct JobTask(tokio::task::JoinHandle<Result<(), JobError>>);

impl Drop for JobTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one look at the queue did.
#[derive(Debug)]
enum Outcome {
    /// Ran a job; with the next one when its end claimed it (`Queue::finish_and_claim`).
    Ran(Option<Job>),
    Idle,
}

/// When a pool of workers stops.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stop {
    /// When no job of our slots is pending or running (retries waiting included).
    UntilIdle,
    /// When this generation has ended; only its job is taken.
    UntilDone(GenerationId),
    /// Never by itself (`serve`); the caller drops the future to stop.
    Never,
}

pub struct Worker {
    app: Arc<App>,
    id: String,
    slots: Vec<String>,
    /// The pool behind each slot, for providers that pool accounts: its slot is claimed from
    /// only while the pool takes jobs on this node.
    pools: Vec<Option<Arc<dyn AccountPool>>>,
    only: Option<GenerationId>,
}

impl Worker {
    /// Worker `name` of this process's node (`App::jobs.node`, which is unique per process).
    pub fn new(app: Arc<App>, name: &str, only: Option<GenerationId>) -> Self {
        let (slots, pools) = app
            .providers
            .names()
            .filter_map(|n| {
                app.providers
                    .get(n)
                    .map(|r| (crate::app::slot_of(n, &r.account), r.accounts.clone()))
            })
            .unzip();
        Self {
            id: format!("{}/{name}", app.jobs.node),
            app,
            slots,
            pools,
            only,
        }
    }

    /// The slots this worker may claim from now: a pooled provider's only while this node
    /// holds one of its accounts.
    fn claimable(&self) -> Vec<String> {
        self.slots
            .iter()
            .zip(&self.pools)
            .filter(|(_, pool)| pool.as_ref().is_none_or(|p| p.takes_jobs()))
            .map(|(slot, _)| slot.clone())
            .collect()
    }

    fn lease_ms(&self) -> i64 {
        self.app.jobs.lease.as_millis() as i64
    }

    /// Runs `handed`, a job already claimed, or else claims and runs at most one job. An
    /// error is a failed claim, or a refused write while the job ran (the job then stays
    /// leased: it is taken over later, spending no attempt). Unless `drain` is on by then, a
    /// job that succeeds claims the next as it ends (returned in `Outcome::Ran`).
    async fn run_once(
        &self,
        handed: Option<Job>,
        drain: &watch::Receiver<bool>,
    ) -> Result<Outcome, CatalogueError> {
        let job = if let Some(job) = handed {
            job
        } else {
            let slots = self.claimable();
            if slots.is_empty() {
                return Ok(Outcome::Idle);
            }
            let claim = self.claim(&slots);
            let Some(job) = self.app.queue.claim(&claim).await? else {
                return Ok(Outcome::Idle);
            };
            job
        };
        tracing::debug!(job = %job.id, generation = %job.generation_id, attempt = job.attempts, "claimed");
        Ok(Outcome::Ran(self.execute(job, drain).await?))
    }

    fn claim<'a>(&'a self, slots: &'a [String]) -> Claim<'a> {
        Claim {
            worker: &self.id,
            lease_ms: self.lease_ms(),
            slots,
            only: self.only,
        }
    }

    /// Runs `job` to its end and records how it ended; returns the next job when a success
    /// claimed it as it ended.
    async fn execute(
        &self,
        job: Job,
        drain: &watch::Receiver<bool>,
    ) -> Result<Option<Job>, Refused> {
        match job.on_claim(self.app.jobs.max_takeovers) {
            OnClaim::Run => {}
            OnClaim::Cancel => return self.canceled(&job).await.map(|()| None),
            OnClaim::GiveUp(failure) => return self.fail(&job, failure).await.map(|()| None),
        }
        let mut signals = self.app.bus.signals();
        let mut task = JobTask(tokio::spawn(generate::run(self.app.clone(), job.clone())));
        let renew_every = (self.app.jobs.lease / 3).max(Duration::from_millis(50));
        // The first renewal is due one period from now. (An interval's immediate first tick
        // would still wait for the timer's next millisecond, holding up a job that ends sooner.)
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        // Past two thirds of the lease without a renewal, another worker may soon take the job
        // over: stop before two workers write for one generation.
        let give_up_after = self.app.jobs.lease.mul_f64(2.0 / 3.0);
        let mut renewed = std::time::Instant::now();
        let result = loop {
            tokio::select! {
                joined = &mut task.0 => break joined,
                _ = ticker.tick() => {
                    match self.app.queue.renew(job.id, &self.id, self.lease_ms()).await {
                        Ok(Lease::Held) => renewed = std::time::Instant::now(),
                        Ok(Lease::CancelRequested) => { drop(task); return self.canceled(&job).await.map(|()| None); }
                        Ok(Lease::Lost) => {
                            tracing::warn!(job = %job.id, "lease lost; another worker took the job over");
                            return Ok(None);
                        }
                        Err(e) if e.is_refused() => return Err(e),
                        Err(e) => {
                            tracing::warn!(job = %job.id, error = %e, "lease not renewed");
                            if renewed.elapsed() > give_up_after {
                                tracing::warn!(job = %job.id, "stopping: the lease may be taken over");
                                return Ok(None);
                            }
                        }
                    }
                }
                signal = signals.recv() => match signal {
                    Ok(Signal::Cancel(g)) if g == job.generation_id => {
                        drop(task);
                        return self.canceled(&job).await.map(|()| None);
                    }
                    Ok(_) | Err(RecvError::Lagged(_) | RecvError::Closed) => {}
                    },
            }
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(panic) => Err(JobError::Retry(
                Failure::new(ErrorCode::Internal, format!("the job panicked: {panic}")),
                None,
            )),
        };
        count_outcome(&job, &outcome);
        match outcome {
            Ok(()) => self.succeeded(&job, drain).await,
            Err(JobError::Stop) => self
                .finish(&job, JobStatus::Canceled, None)
                .await
                .map(|()| None),
            Err(JobError::Abort(failure)) => self.fail(&job, failure).await.map(|()| None),
            Err(JobError::Retry(failure, after)) => {
                self.retry(&job, failure, after).await.map(|()| None)
            }
            // Recording anything would be refused too: the job stays leased, and is taken over
            // (spending no attempt) once the catalogue takes writes again.
            Err(JobError::Refused(e)) => Err(e),
        }
    }

    /// Records a success and, unless the node drains, claims the next job in the same trip.
    async fn succeeded(
        &self,
        job: &Job,
        drain: &watch::Receiver<bool>,
    ) -> Result<Option<Job>, Refused> {
        let slots = self.claimable();
        if *drain.borrow() || slots.is_empty() {
            return self
                .finish(job, JobStatus::Succeeded, None)
                .await
                .map(|()| None);
        }
        let claim = self.claim(&slots);
        match self
            .app
            .queue
            .finish_and_claim(job.id, JobStatus::Succeeded, None, &claim)
            .await
        {
            Ok((ended, next)) => {
                if !ended {
                    tracing::warn!(job = %job.id, "job ended after its lease was lost");
                }
                Ok(next)
            }
            // The worker's loop claims again after the error (the job's end may or may not
            // have been recorded: if not, the job is taken over when its lease runs out).
            Err(e) => {
                refused_only("job end not recorded, or next job not claimed", job, e).map(|()| None)
            }
        }
    }

    async fn finish(
        &self,
        job: &Job,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<(), Refused> {
        match self.app.queue.finish(job.id, &self.id, status, error).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(job = %job.id, "job ended after its lease was lost");
                Ok(())
            }
            Err(e) => refused_only("job end not recorded", job, e),
        }
    }

    async fn advance_terminal(
        &self,
        job: &Job,
        kind: EventKind,
        status: GenerationStatus,
        failure: Failure,
    ) -> Result<bool, Refused> {
        // Progress is only ever raised by a step, so 0 keeps the stored value.
        let mut change = Change::new(kind, status, 0.0);
        change.error = Some(failure);
        match self.app.catalogue.advance(job.generation_id, &change).await {
            Ok(event) => {
                self.app.bus.publish(event);
                Ok(true)
            }
            // Already ended (canceled meanwhile): nothing to record.
            Err(CatalogueError::Conflict(_)) => Ok(true),
            Err(e) => {
                // Leave the job leased: its lease runs out and a worker ends it again, so the
                // generation is never left running under a finished job.
                refused_only("end not recorded", job, e)?;
                Ok(false)
            }
        }
    }

    async fn fail(&self, job: &Job, failure: Failure) -> Result<(), Refused> {
        tracing::warn!(generation = %job.generation_id, code = %failure.code, "generation failed: {}", failure.message);
        let record = format!("{}: {}", failure.code, failure.message);
        if self
            .advance_terminal(job, EventKind::Failed, GenerationStatus::Failed, failure)
            .await?
        {
            self.finish(job, JobStatus::Failed, Some(&record)).await?;
        }
        Ok(())
    }

    async fn canceled(&self, job: &Job) -> Result<(), Refused> {
        let failure = Failure::new(ErrorCode::Canceled, "canceled by request");
        let recorded = self
            .advance_terminal(
                job,
                EventKind::Canceled,
                GenerationStatus::Canceled,
                failure,
            )
            .await;
        if recorded? {
            self.finish(job, JobStatus::Canceled, None).await?;
            // The service may still be working for it (a prediction): told to stop.
            match self.app.catalogue.generation(job.generation_id).await {
                Ok(g) => self.app.cancel_at_provider(&g).await,
                Err(e) => {
                    tracing::warn!(generation = %job.generation_id, error = %e, "provider not told of the cancel");
                }
            }
        }
        Ok(())
    }

    async fn retry(
        &self,
        job: &Job,
        failure: Failure,
        after: Option<Duration>,
    ) -> Result<(), Refused> {
        if let AfterFailure::Fail(failure) = job.after_retryable_failure(&failure) {
            return self.fail(job, failure).await;
        }
        let delay = after.unwrap_or_else(|| self.backoff(job.attempts));
        let record = format!("{}: {}", failure.code, failure.message);
        tracing::info!(generation = %job.generation_id, attempt = job.attempts, ?delay, "retrying: {record}");
        match self
            .app
            .queue
            .retry(job.id, &self.id, delay.as_millis() as i64, &record)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => refused_only("retry not recorded", job, e),
        }
    }

    /// `base · 2^(attempt−1)`, capped, with ±20 % jitter so retries do not march in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let s = &self.app.jobs;
        let exp = s
            .retry_base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(s.retry_max);
        capped.mul_f64(0.8 + 0.4 * fastrand::f64())
    }

    /// How long an idle worker sleeps before looking again.
    async fn idle_wait(&self) -> Duration {
        let poll = self.app.jobs.poll;
        match self.app.queue.next_due(&self.slots).await {
            // Due now means the job waits for a free slot: a finishing job wakes the workers,
            // so only the poll is needed, not a busy loop.
            Ok(Some(due)) if !due.is_zero() => due.min(poll),
            _ => poll,
        }
    }

    async fn should_stop(&self, stop: Stop) -> bool {
        match stop {
            Stop::Never => false,
            Stop::UntilIdle => self
                .app
                .queue
                .counts(&self.slots)
                .await
                .is_ok_and(|c| c.pending == 0 && c.running == 0),
            Stop::UntilDone(g) => self
                .app
                .catalogue
                .generation(g)
                .await
                .map_or(true, |g| g.status.is_terminal()),
        }
    }

    /// Runs jobs until `stop` says so, or until the catalogue refuses a write (returned).
    pub async fn run(&self, stop: Stop) -> Result<(), Refused> {
        let (_never, drain) = watch::channel(false);
        self.run_until(stop, drain).await
    }

    /// [`Worker::run`], and stops claiming once `drain` turns true: the job in hand, if
    /// any, runs to its end first.
    pub async fn run_until(
        &self,
        stop: Stop,
        mut drain: watch::Receiver<bool>,
    ) -> Result<(), Refused> {
        // Catalogue errors in a row: the backoff after them is counted here, in memory, as the
        // write that would record anything may be the one that fails.
        let mut errors = 0u32;
        // A job claimed as the last one ended: it runs even if draining began meanwhile.
        let mut handed = None;
        loop {
            if *drain.borrow_and_update() && handed.is_none() {
                return Ok(());
            }
            // Read before looking, so work queued after the look wakes the wait below.
            let seen = self.app.queue.work_seen();
            match self.run_once(handed.take(), &drain).await {
                Ok(Outcome::Ran(next)) => {
                    errors = 0;
                    handed = next;
                    continue;
                }
                Ok(Outcome::Idle) => errors = 0,
                Err(e) if e.is_refused() => {
                    tracing::error!(error = %e, "stopping: the catalogue refuses writes");
                    return Err(e);
                }
                Err(e) => {
                    errors = errors.saturating_add(1);
                    tracing::warn!(error = %e, "could not claim a job");
                }
            }
            if self.should_stop(stop).await {
                return Ok(());
            }
            let draining = async {
                // A dropped sender never drains.
                if drain.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            if errors > 0 {
                // Not woken early: another job's end must not turn this into a busy loop.
                tokio::select! {
                    () = tokio::time::sleep(self.backoff(errors)) => {}
                    () = draining => {}
                }
                continue;
            }
            let wait = self.idle_wait().await;
            tokio::select! {
                () = self.app.queue.wait_for_work(seen, wait) => {}
                () = draining => {}
            }
        }
    }
}

/// Runs `count` workers side by side until `stop`. When the catalogue refuses a write the
/// pool stops (the jobs in hand stay leased, to be taken over later) and returns that error.
pub async fn run_workers(app: Arc<App>, count: u32, stop: Stop) -> Result<(), CatalogueError> {
    let (_never, drain) = watch::channel(false);
    run_node(app, count, stop, drain).await
}

/// [`run_workers`], whose workers stop claiming once `drain` turns true and return when the
/// jobs in hand have ended. Holds this node's provider accounts first (once per process),
/// since a pooled provider's jobs are claimed only while the node holds one of its accounts.
pub async fn run_node(
    app: Arc<App>,
    count: u32,
    stop: Stop,
    drain: watch::Receiver<bool>,
) -> Result<(), CatalogueError> {
    super::hold_accounts(&app);
    let only = match stop {
        Stop::UntilDone(g) => Some(g),
        _ => None,
    };
    let mut set = tokio::task::JoinSet::new();
    for n in 0..count.max(1) {
        let worker = Worker::new(app.clone(), &format!("worker-{n}"), only);
        let drain = drain.clone();
        set.spawn(async move { worker.run_until(stop, drain).await });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok(Err(refused)) = joined {
            // Dropping the set aborts the other workers, and with them their jobs' tasks.
            return Err(refused);
        }
    }
    Ok(())
}

/// Counts a job's run in the process's metrics (`/metrics`): how runs end, and the failures
/// by provider and code.
fn count_outcome(job: &Job, outcome: &Result<(), JobError>) {
    let provider = job.slot.split(':').next().unwrap_or_default().to_owned();
    let (ended, failure) = match outcome {
        Ok(()) => ("succeeded", None),
        Err(JobError::Stop) => ("canceled", None),
        Err(JobError::Abort(f)) => ("failed", Some(f)),
        Err(JobError::Retry(f, _)) => ("retried", Some(f)),
        Err(JobError::Refused(_)) => ("unrecorded", None),
    };
    metrics::counter!("atelier_job_runs_total", "provider" => provider.clone(), "outcome" => ended)
        .increment(1);
    if let Some(f) = failure {
        metrics::counter!("atelier_provider_errors_total", "provider" => provider, "code" => f.code.as_str())
            .increment(1);
    }
}
