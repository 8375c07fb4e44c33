//! The job queue on `PostgreSQL` (its `Queue` half): claims, leases, retries, cancellation,
//! and the holds on provider accounts, for several nodes at once.
//!
//! Every time compared is the database's (`statement_timestamp()`: the start of the statement
//! on the server), never a node's. A claim runs in a transaction: it picks a candidate with
//! `FOR UPDATE SKIP LOCKED` (claimers never wait on each other's rows), then takes the
//! candidate's slot's advisory lock and counts the slot's live leases in a statement of its
//! own, whose snapshot holds every claim committed by the lock's previous holders. Counting in
//! one concurrent transaction without that lock would let two claimers each see room for one
//! more and both take it.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgConnection;

use super::listen::WORK;
use super::{PgCatalogue, db, other, rows};
use crate::catalogue::{CatalogueError, Claim, NewJob, Queue, QueueCounts, Result};
use crate::domain::{GenerationId, Job, JobId, JobStatus, Lease};

/// `$n` milliseconds as an interval.
macro_rules! ms {
    ($n:literal) => {
        concat!("make_interval(secs => ", $n, "::float8 / 1000)")
    };
}

/// Writes a generation's job, due `delay_ms` from now by the database's clock, and tells
/// every node's workers when the transaction commits.
pub(super) async fn insert_job(
    conn: &mut PgConnection,
    generation: GenerationId,
    job: &NewJob,
) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO jobs (id, generation_id, kind, slot, concurrency, max_attempts, run_at)
         SELECT $1, $2, 'generate', $3, $4, $5, statement_timestamp() + ",
        ms!("$6"),
        " FROM pg_notify($7, '')"
    ))
    .bind(job.id.as_uuid())
    .bind(generation.as_uuid())
    .bind(&job.slot)
    .bind(i32::try_from(job.concurrency.max(1)).map_err(other)?)
    .bind(i32::try_from(job.max_attempts.max(1)).map_err(other)?)
    .bind(job.delay_ms.max(0))
    .bind(WORK)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// The first job matching `$which` (a condition on `x`) among the claim's slots (`$1`), less
/// those found full (`$2`), and of generation `$3` when given, in (`run_at`, `id`) order,
/// locked and skipping rows other claimers hold. It walks the `jobs_due` index in order and
/// stops at the first job that qualifies, so a claim costs the same however deep the queue.
/// The live-lease count here only skips slots that look full; the claim counts again under
/// the slot's lock.
macro_rules! first {
    ($which:literal) => {
        concat!(
            "SELECT x.id FROM jobs x WHERE ",
            $which,
            " AND x.slot = ANY ($1) AND NOT x.slot = ANY ($2)
               AND ($3::uuid IS NULL OR x.generation_id = $3)
               AND (SELECT COUNT(*) FROM jobs r
                    WHERE r.slot = x.slot AND r.status = 'running'
                      AND r.lease_expires_at >= statement_timestamp() AND r.id <> x.id)
                   < x.concurrency
             ORDER BY x.run_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
    };
}

/// The next runnable job: jobs whose worker died (an expired lease) first, since they started
/// first, then pending ones. `COALESCE` looks for a pending job only when no job is to be
/// taken over.
const PICK: &str = concat!(
    "SELECT j.id, j.slot, j.concurrency FROM jobs j WHERE j.id = COALESCE((",
    first!("x.status = 'running' AND x.lease_expires_at < statement_timestamp()"),
    "), (",
    first!("x.status = 'pending' AND x.run_at <= statement_timestamp()"),
    "))"
);

/// Serialises the claimers of one slot until their transaction ends.
const LOCK_SLOT: &str = "SELECT pg_advisory_xact_lock(hashtext('atelier.slot:' || $1))";

/// Live leases in slot `$1` other than job `$2`, by the database's clock.
const LIVE: &str = "SELECT COUNT(*) FROM jobs
     WHERE slot = $1 AND status = 'running' AND lease_expires_at >= statement_timestamp()
       AND id <> $2";

/// A job taken from the queue spends an attempt; one taken over from a stopped worker counts a
/// takeover instead (`Job::on_claim` judges both).
const TAKE: &str = concat!(
    "UPDATE jobs SET status = 'running', lease_owner = $2,
        lease_expires_at = statement_timestamp() + ",
    ms!("$3"),
    ", attempts = attempts + (status = 'pending')::int,
        takeovers = takeovers + (status = 'running')::int,
        updated_at = statement_timestamp()
     WHERE id = $1 RETURNING *"
);

#[async_trait]
impl Queue for PgCatalogue {
    async fn claim(&self, claim: &Claim<'_>) -> Result<Option<Job>> {
        let mut tx = self.begin().await?;
        let mut full: Vec<String> = Vec::new();
        loop {
            let picked: Option<(uuid::Uuid, String, i32)> = sqlx::query_as(PICK)
                .bind(claim.slots)
                .bind(&full)
                .bind(claim.only.map(|g| g.as_uuid()))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some((id, slot, concurrency)) = picked else {
                tx.commit().await.map_err(db)?;
                return Ok(None);
            };
            sqlx::query(LOCK_SLOT)
                .bind(&slot)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let live: i64 = sqlx::query_scalar(LIVE)
                .bind(&slot)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            if live >= i64::from(concurrency) {
                // Start again without this slot, in a new transaction: holding its lock while
                // waiting for another slot's could deadlock with a claimer doing the reverse.
                tx.rollback().await.map_err(db)?;
                tx = self.begin().await?;
                full.push(slot);
                continue;
            }
            let row = sqlx::query(TAKE)
                .bind(id)
                .bind(claim.worker)
                .bind(claim.lease_ms)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let job = rows::job(&row)?;
            tx.commit().await.map_err(db)?;
            return Ok(Some(job));
        }
    }

    async fn renew(&self, id: JobId, worker: &str, lease_ms: i64) -> Result<Lease> {
        let cancel: Option<bool> = sqlx::query_scalar(concat!(
            "UPDATE jobs SET lease_expires_at = statement_timestamp() + ",
            ms!("$3"),
            ", updated_at = statement_timestamp()
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'
             RETURNING cancel_requested"
        ))
        .bind(id.as_uuid())
        .bind(worker)
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .pop();
        Ok(match cancel {
            None => Lease::Lost,
            Some(true) => Lease::CancelRequested,
            Some(false) => Lease::Held,
        })
    }

    async fn finish(
        &self,
        id: JobId,
        worker: &str,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<bool> {
        // Its slot has room again: every node's workers are told, with the change.
        let done: i64 = sqlx::query_scalar(
            "WITH done AS (
                UPDATE jobs SET status = $3, last_error = COALESCE($4, last_error),
                    lease_owner = NULL, lease_expires_at = NULL,
                    updated_at = statement_timestamp()
                WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING 1)
             SELECT COUNT(*) FROM (SELECT pg_notify($5, '') FROM done) n",
        )
        .bind(id.as_uuid())
        .bind(worker)
        .bind(status.as_str())
        .bind(error)
        .bind(WORK)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        self.wakers.work.wake();
        Ok(done == 1)
    }

    async fn retry(&self, id: JobId, worker: &str, delay_ms: i64, error: &str) -> Result<bool> {
        let done: i64 = sqlx::query_scalar(concat!(
            "WITH done AS (
                UPDATE jobs SET status = 'pending', run_at = statement_timestamp() + ",
            ms!("$3"),
            ", last_error = $4, lease_owner = NULL, lease_expires_at = NULL,
                    updated_at = statement_timestamp()
                WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING 1)
             SELECT COUNT(*) FROM (SELECT pg_notify($5, '') FROM done) n"
        ))
        .bind(id.as_uuid())
        .bind(worker)
        .bind(delay_ms.max(0))
        .bind(error)
        .bind(WORK)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        self.wakers.work.wake();
        Ok(done == 1)
    }

    async fn job_of(&self, generation: GenerationId) -> Result<Job> {
        let row = sqlx::query("SELECT * FROM jobs WHERE generation_id = $1")
            .bind(generation.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("job of generation {generation}")))?;
        rows::job(&row)
    }

    async fn cancel(&self, generation: GenerationId) -> Result<Job> {
        // Every statement that writes is read to its end (`fetch_all`): an error at its commit
        // comes after its rows.
        let row = sqlx::query(
            "WITH done AS (
                UPDATE jobs SET
                    status = CASE WHEN status = 'pending' THEN 'canceled' ELSE status END,
                    cancel_requested = cancel_requested OR status = 'running',
                    updated_at = statement_timestamp()
                WHERE generation_id = $1 RETURNING *)
             SELECT done.* FROM done, pg_notify($2, '')",
        )
        .bind(generation.as_uuid())
        .bind(WORK)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .pop()
        .ok_or_else(|| CatalogueError::NotFound(format!("job of generation {generation}")))?;
        self.wakers.work.wake();
        rows::job(&row)
    }

    async fn counts(&self, slots: &[String]) -> Result<QueueCounts> {
        let (pending, running): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE status = 'pending'),
                    COUNT(*) FILTER (WHERE status = 'running')
             FROM jobs WHERE status IN ('pending', 'running') AND slot = ANY ($1)",
        )
        .bind(slots)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(QueueCounts {
            pending: u64::try_from(pending).unwrap_or(0),
            running: u64::try_from(running).unwrap_or(0),
        })
    }

    async fn ahead(&self, generation: GenerationId) -> Result<Option<u64>> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM jobs o
                     WHERE o.slot = j.slot AND o.status = 'pending'
                       AND (o.run_at, o.id) < (j.run_at, j.id))
             FROM jobs j WHERE j.generation_id = $1 AND j.status = 'pending'",
        )
        .bind(generation.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(n.map(|n| u64::try_from(n).unwrap_or(0)))
    }

    async fn next_due(&self, slots: &[String]) -> Result<Option<Duration>> {
        let ms: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM MIN(CASE WHEN status = 'pending' THEN run_at
                                               ELSE lease_expires_at END)
                                       - statement_timestamp())::float8 * 1000
             FROM jobs WHERE status IN ('pending', 'running') AND slot = ANY ($1)",
        )
        .bind(slots)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(ms.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)))
    }

    fn work_seen(&self) -> u64 {
        self.wakers.work.seen()
    }

    async fn wait_for_work(&self, seen: u64, timeout: Duration) {
        self.wakers.work.wait(seen, timeout).await;
    }

    async fn hold_account(&self, account: &str, holder: &str, lease_ms: i64) -> Result<bool> {
        // The upsert locks the row and judges it as it is after any concurrent writer: a hold
        // is taken only when free, expired, or already this holder's.
        let held: Option<String> = sqlx::query_scalar(concat!(
            "INSERT INTO account_holds (account, holder, expires_at)
             VALUES ($1, $2, statement_timestamp() + ",
            ms!("$3"),
            ")
             ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,
                expires_at = excluded.expires_at
             WHERE account_holds.holder = excluded.holder
                OR account_holds.expires_at < statement_timestamp()
             RETURNING holder"
        ))
        .bind(account)
        .bind(holder)
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .pop();
        Ok(held.is_some())
    }

    async fn live_leases(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs
             WHERE status = 'running' AND lease_expires_at >= statement_timestamp()",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(n as u64)
    }

    async fn release_account(&self, account: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM account_holds WHERE account = $1 AND holder = $2")
            .bind(account)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
