//! Workers: claim a job with a lease, run it as its own task (a panic boundary), renew the
//! lease while it runs, and record how it ended: done, retried with backoff, failed or
//! canceled.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::{JobError, Signal, generate};
use crate::app::{App, now_ms};
use crate::catalogue::{Change, Claim};
use crate::domain::{
    ErrorCode, EventKind, Failure, GenerationId, GenerationStatus, Job, JobStatus, Lease,
};

/// What one look at the queue did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Ran,
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
    only: Option<GenerationId>,
}

impl Worker {
    pub fn new(app: Arc<App>, name: &str, only: Option<GenerationId>) -> Self {
        let slots = app
            .providers
            .names()
            .filter_map(|n| {
                app.providers
                    .get(n)
                    .map(|r| crate::app::slot_of(n, &r.account))
            })
            .collect();
        Self {
            // The random part keeps workers of two containers (both PID 1) on one catalogue apart.
            id: format!("{name}@{}-{:08x}", std::process::id(), fastrand::u32(..)),
            app,
            slots,
            only,
        }
    }

    fn lease_ms(&self) -> i64 {
        self.app.jobs.lease.as_millis() as i64
    }

    /// Claims and runs at most one job.
    pub async fn run_once(&self) -> Result<Outcome, crate::catalogue::CatalogueError> {
        let claim = Claim {
            worker: &self.id,
            lease_ms: self.lease_ms(),
            slots: &self.slots,
            only: self.only,
        };
        let Some(job) = self.app.catalogue.claim_job(&claim, now_ms()).await? else {
            return Ok(Outcome::Idle);
        };
        tracing::debug!(job = %job.id, generation = %job.generation_id, attempt = job.attempts, "claimed");
        self.execute(job).await;
        Ok(Outcome::Ran)
    }

    async fn execute(&self, job: Job) {
        if job.cancel_requested {
            // Canceled while nobody held it (its worker died, or it waited for a retry).
            return self.canceled(&job).await;
        }
        if job.attempts > job.max_attempts {
            let message = format!(
                "gave up after {} attempts; last error: {}",
                job.max_attempts,
                job.last_error
                    .as_deref()
                    .unwrap_or("none recorded (the worker stopped)")
            );
            let code = last_code(job.last_error.as_deref());
            self.fail(&job, Failure::new(code, message)).await;
            return;
        }
        let mut signals = self.app.bus.signals();
        let mut task = tokio::spawn(generate::run(self.app.clone(), job.clone()));
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
                joined = &mut task => break joined,
                _ = ticker.tick() => {
                    match self.app.catalogue.renew_lease(job.id, &self.id, now_ms(), self.lease_ms()).await {
                        Ok(Lease::Held) => renewed = std::time::Instant::now(),
                        Ok(Lease::CancelRequested) => { task.abort(); return self.canceled(&job).await; }
                        Ok(Lease::Lost) => {
                            tracing::warn!(job = %job.id, "lease lost; another worker took the job over");
                            task.abort();
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(job = %job.id, error = %e, "lease not renewed");
                            if renewed.elapsed() > give_up_after {
                                tracing::warn!(job = %job.id, "stopping: the lease may be taken over");
                                task.abort();
                                return;
                            }
                        }
                    }
                }
                signal = signals.recv() => match signal {
                    Ok(Signal::Cancel(g)) if g == job.generation_id => {
                        task.abort();
                        return self.canceled(&job).await;
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
        match outcome {
            Ok(()) => self.finish(&job, JobStatus::Succeeded, None).await,
            Err(JobError::Stop) => self.finish(&job, JobStatus::Canceled, None).await,
            Err(JobError::Abort(failure)) => self.fail(&job, failure).await,
            Err(JobError::Retry(failure, after)) => self.retry(&job, failure, after).await,
        }
        self.app.bus.wake_workers();
    }

    async fn finish(&self, job: &Job, status: JobStatus, error: Option<&str>) {
        match self
            .app
            .catalogue
            .finish_job(job.id, &self.id, status, error)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(job = %job.id, "job ended after its lease was lost"),
            Err(e) => tracing::error!(job = %job.id, error = %e, "job end not recorded"),
        }
    }

    async fn advance_terminal(
        &self,
        job: &Job,
        kind: EventKind,
        status: GenerationStatus,
        failure: Failure,
    ) -> bool {
        // Progress is only ever raised by a step, so 0 keeps the stored value.
        let mut change = Change::new(kind, status, 0.0);
        change.error = Some(failure);
        match self.app.catalogue.advance(job.generation_id, &change).await {
            Ok(event) => {
                self.app.bus.publish(event);
                true
            }
            // Already ended (canceled meanwhile): nothing to record.
            Err(crate::catalogue::CatalogueError::Conflict(_)) => true,
            Err(e) => {
                // Leave the job leased: its lease runs out and a worker ends it again, so the
                // generation is never left running under a finished job.
                tracing::error!(generation = %job.generation_id, error = %e, "end not recorded");
                false
            }
        }
    }

    async fn fail(&self, job: &Job, failure: Failure) {
        tracing::warn!(generation = %job.generation_id, code = %failure.code, "generation failed: {}", failure.message);
        let record = format!("{}: {}", failure.code, failure.message);
        if self
            .advance_terminal(job, EventKind::Failed, GenerationStatus::Failed, failure)
            .await
        {
            self.finish(job, JobStatus::Failed, Some(&record)).await;
        }
    }

    async fn canceled(&self, job: &Job) {
        let failure = Failure::new(ErrorCode::Canceled, "canceled by request");
        let recorded = self
            .advance_terminal(
                job,
                EventKind::Canceled,
                GenerationStatus::Canceled,
                failure,
            )
            .await;
        if recorded {
            self.finish(job, JobStatus::Canceled, None).await;
        }
        self.app.bus.wake_workers();
    }

    async fn retry(&self, job: &Job, failure: Failure, after: Option<Duration>) {
        if job.attempts >= job.max_attempts {
            let message = format!(
                "gave up after {} attempts: {}",
                job.attempts, failure.message
            );
            return self.fail(job, Failure::new(failure.code, message)).await;
        }
        let delay = after.unwrap_or_else(|| self.backoff(job.attempts));
        let record = format!("{}: {}", failure.code, failure.message);
        tracing::info!(generation = %job.generation_id, attempt = job.attempts, ?delay, "retrying: {record}");
        let run_at = now_ms() + delay.as_millis() as i64;
        if let Err(e) = self
            .app
            .catalogue
            .retry_job(job.id, &self.id, run_at, &record)
            .await
        {
            tracing::error!(job = %job.id, error = %e, "retry not recorded");
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
        match self.app.catalogue.next_wakeup(&self.slots).await {
            // A due time in the past means the job waits for a free slot: a finishing job wakes
            // the workers, so only the poll is needed, not a busy loop.
            Ok(Some(at)) if at > now_ms() => {
                Duration::from_millis((at - now_ms()) as u64).min(poll)
            }
            _ => poll,
        }
    }

    async fn should_stop(&self, stop: Stop) -> bool {
        match stop {
            Stop::Never => false,
            Stop::UntilIdle => self
                .app
                .catalogue
                .queue_counts(&self.slots)
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

    /// Runs jobs until `stop` says so.
    pub async fn run(&self, stop: Stop) {
        loop {
            match self.run_once().await {
                Ok(Outcome::Ran) => continue,
                Ok(Outcome::Idle) => {}
                Err(e) => tracing::warn!(error = %e, "could not claim a job"),
            }
            if self.should_stop(stop).await {
                return;
            }
            let wait = self.idle_wait().await;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.app.bus.woken() => {}
            }
        }
    }
}

/// The error code stored at the front of a job's last error (`code: message`).
fn last_code(last: Option<&str>) -> ErrorCode {
    last.and_then(|l| l.split_once(':'))
        .and_then(|(code, _)| code.parse().ok())
        .unwrap_or(ErrorCode::Internal)
}

/// Runs `count` workers side by side until `stop`.
pub async fn run_workers(app: Arc<App>, count: u32, stop: Stop) {
    let only = match stop {
        Stop::UntilDone(g) => Some(g),
        _ => None,
    };
    let mut set = tokio::task::JoinSet::new();
    for n in 0..count.max(1) {
        let worker = Worker::new(app.clone(), &format!("worker-{n}"), only);
        set.spawn(async move { worker.run(stop).await });
    }
    while set.join_next().await.is_some() {}
}
