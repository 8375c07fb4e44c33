//! The job queue on `SQLite`: claiming with a lease (one `UPDATE … RETURNING`, which `SQLite`
//! runs atomically), renewing, ending, retrying and cancelling jobs, and what the workers need
//! to know to sleep. Queue writes go through the writer connection like every other write.

use time::OffsetDateTime;

use super::{SqliteCatalogue, rows};
use crate::catalogue::{CatalogueError, Claim, QueueCounts, Result};
use crate::domain::{GenerationId, Job, JobId, JobStatus, Lease};

/// The first job matching `$which` in (`run_at`, `id`) order, among the claim's slots (`?4`) and
/// generation (`?5`), in a slot with fewer live leases than its limit. Jobs whose worker died
/// (an expired lease) are taken before pending ones: they started first. Each half walks the
/// `jobs_due` index in order and stops at the first job that qualifies.
macro_rules! pick {
    ($which:literal) => {
        concat!(
            "SELECT j.id FROM jobs j WHERE ",
            $which,
            " AND j.slot IN (SELECT value FROM json_each(?4))
              AND (?5 IS NULL OR j.generation_id = ?5)
              AND (SELECT COUNT(*) FROM jobs r
                   WHERE r.slot = j.slot AND r.status = 'running'
                     AND r.lease_expires_at >= ?2 AND r.id <> j.id) < j.concurrency
            ORDER BY j.run_at, j.id LIMIT 1"
        )
    };
}

/// The first runnable job among `slots` whose slot has room, in the order `pick` gives. A job
/// taken from the queue spends an attempt; one taken over from a stopped worker counts a
/// takeover instead (`Job::on_claim` judges both).
const CLAIM: &str = concat!(
    "UPDATE jobs SET status = 'running', lease_owner = ?1, lease_expires_at = ?2 + ?3,
        attempts = attempts + (status = 'pending'), takeovers = takeovers + (status = 'running'),
        updated_at = ?2
     WHERE id = COALESCE((",
    pick!("j.status = 'running' AND j.lease_expires_at < ?2"),
    "), (",
    pick!("j.status = 'pending' AND j.run_at <= ?2"),
    ")) RETURNING *"
);

pub(super) async fn claim_job(
    cat: &SqliteCatalogue,
    claim: &Claim<'_>,
    now: i64,
) -> Result<Option<Job>> {
    // Every statement with RETURNING is run to its end (`fetch_all`, not `fetch_optional`):
    // its row comes out before the change is committed, and a commit that fails (a full disk)
    // is only reported at the end. Stopping after the row would take it for a claim that was
    // rolled back, and the worker would run a job it does not hold, over and over.
    let rows = sqlx::query(CLAIM)
        .bind(claim.worker)
        .bind(now)
        .bind(claim.lease_ms)
        .bind(slots_json(claim.slots))
        .bind(claim.only.map(|g| g.to_string()))
        .fetch_all(&mut *cat.writer.get().await?)
        .await
        .map_err(|e| cat.db(e))?;
    rows.first().map(rows::job).transpose()
}

pub(super) async fn renew_lease(
    cat: &SqliteCatalogue,
    id: JobId,
    worker: &str,
    now: i64,
    lease_ms: i64,
) -> Result<Lease> {
    // Run to its end, as the claim (see there).
    let rows: Vec<bool> = sqlx::query_scalar(
        "UPDATE jobs SET lease_expires_at = ?3 + ?4, updated_at = ?3
         WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'
         RETURNING cancel_requested",
    )
    .bind(id.to_string())
    .bind(worker)
    .bind(now)
    .bind(lease_ms)
    .fetch_all(&mut *cat.writer.get().await?)
    .await
    .map_err(|e| cat.db(e))?;
    Ok(match rows.first().copied() {
        None => Lease::Lost,
        Some(true) => Lease::CancelRequested,
        Some(false) => Lease::Held,
    })
}

pub(super) async fn finish_job(
    cat: &SqliteCatalogue,
    id: JobId,
    worker: &str,
    status: JobStatus,
    error: Option<&str>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET status = ?3, last_error = COALESCE(?4, last_error),
            lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5
         WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
    )
    .bind(id.to_string())
    .bind(worker)
    .bind(status.as_str())
    .bind(error)
    .bind(now_ms())
    .execute(&mut *cat.writer.get().await?)
    .await
    .map_err(|e| cat.db(e))?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn retry_job(
    cat: &SqliteCatalogue,
    id: JobId,
    worker: &str,
    run_at: i64,
    error: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'pending', run_at = ?3, last_error = ?4,
            lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5
         WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
    )
    .bind(id.to_string())
    .bind(worker)
    .bind(run_at)
    .bind(error)
    .bind(now_ms())
    .execute(&mut *cat.writer.get().await?)
    .await
    .map_err(|e| cat.db(e))?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn cancel_job(cat: &SqliteCatalogue, generation: GenerationId) -> Result<Job> {
    // Run to its end, as the claim (see there).
    let rows = sqlx::query(
        "UPDATE jobs SET
            status = CASE WHEN status = 'pending' THEN 'canceled' ELSE status END,
            cancel_requested = CASE WHEN status = 'running' THEN 1 ELSE cancel_requested END,
            updated_at = ?2
         WHERE generation_id = ?1 RETURNING *",
    )
    .bind(generation.to_string())
    .bind(now_ms())
    .fetch_all(&mut *cat.writer.get().await?)
    .await
    .map_err(|e| cat.db(e))?;
    let row = rows
        .first()
        .ok_or_else(|| CatalogueError::NotFound(format!("job of generation {generation}")))?;
    rows::job(row)
}

pub(super) async fn queue_counts(cat: &SqliteCatalogue, slots: &[String]) -> Result<QueueCounts> {
    let (pending, running): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'running'), 0)
         FROM jobs WHERE status IN ('pending', 'running')
           AND slot IN (SELECT value FROM json_each(?1))",
    )
    .bind(slots_json(slots))
    .fetch_one(&mut *cat.pool.get().await?)
    .await
    .map_err(|e| cat.db(e))?;
    Ok(QueueCounts {
        pending: pending as u64,
        running: running as u64,
    })
}

pub(super) async fn next_wakeup(cat: &SqliteCatalogue, slots: &[String]) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MIN(CASE WHEN status = 'pending' THEN run_at ELSE lease_expires_at END)
         FROM jobs WHERE status IN ('pending', 'running')
           AND slot IN (SELECT value FROM json_each(?1))",
    )
    .bind(slots_json(slots))
    .fetch_one(&mut *cat.pool.get().await?)
    .await
    .map_err(|e| cat.db(e))
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn slots_json(slots: &[String]) -> String {
    serde_json::Value::from(slots.to_vec()).to_string()
}
