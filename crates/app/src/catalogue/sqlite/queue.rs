//! The job queue on `SQLite` (its `Queue` half): claiming with a lease (one `UPDATE …
//! RETURNING`, which `SQLite` runs atomically), renewing, ending, retrying and cancelling jobs,
//! what the workers need to know to sleep, and the holds on provider accounts. Queue writes go
//! through the writer connection like every other write. Times are the database's clock, Unix
//! milliseconds ([`NOW_MS`]).

use std::time::Duration;

use async_trait::async_trait;

use super::{SqliteCatalogue, rows};
use crate::catalogue::{CatalogueError, Claim, Queue, QueueCounts, Result};
use crate::domain::{GenerationId, Job, JobId, JobStatus, Lease};

/// The database's clock in Unix milliseconds, as an SQL expression.
macro_rules! NOW_MS {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}
pub(super) use NOW_MS;

/// The first job matching `$which` in (`run_at`, `id`) order, among the claim's slots (`?3`) and
/// generation (`?4`), in a slot with fewer live leases than its limit, by the database's clock
/// (the statement's `clock`: `SQLite` gives every call in one statement the same time). Jobs
/// whose worker died (an expired lease) are taken before pending ones: they started first. Each
/// half walks the `jobs_due` index in order and stops at the first job that qualifies.
macro_rules! pick {
    ($which:literal) => {
        concat!(
            "SELECT j.id FROM jobs j WHERE ",
            $which,
            " AND j.slot IN (SELECT value FROM json_each(?3))
              AND (?4 IS NULL OR j.generation_id = ?4)
              AND (SELECT COUNT(*) FROM jobs r
                   WHERE r.slot = j.slot AND r.status = 'running'
                     AND r.lease_expires_at >= (SELECT now FROM clock) AND r.id <> j.id)
                  < j.concurrency
            ORDER BY j.run_at, j.id LIMIT 1"
        )
    };
}

/// The first runnable job among `slots` whose slot has room, in the order `pick` gives. A job
/// taken from the queue spends an attempt; one taken over from a stopped worker counts a
/// takeover instead (`Job::on_claim` judges both).
const CLAIM: &str = concat!(
    "WITH clock AS (SELECT ",
    NOW_MS!(),
    " AS now)
     UPDATE jobs SET status = 'running', lease_owner = ?1,
        lease_expires_at = (SELECT now FROM clock) + ?2,
        attempts = attempts + (status = 'pending'), takeovers = takeovers + (status = 'running'),
        updated_at = (SELECT now FROM clock)
     WHERE id = COALESCE((",
    pick!("j.status = 'running' AND j.lease_expires_at < (SELECT now FROM clock)"),
    "), (",
    pick!("j.status = 'pending' AND j.run_at <= (SELECT now FROM clock)"),
    ")) RETURNING *"
);

#[async_trait]
impl Queue for SqliteCatalogue {
    async fn claim(&self, claim: &Claim<'_>) -> Result<Option<Job>> {
        // Every statement with RETURNING is run to its end (`fetch_all`, not `fetch_optional`):
        // its row comes out before the change is committed, and a commit that fails (a full
        // disk) is only reported at the end. Stopping after the row would take it for a claim
        // that was rolled back, and the worker would run a job it does not hold, over and over.
        let rows = sqlx::query(CLAIM)
            .bind(claim.worker)
            .bind(claim.lease_ms)
            .bind(slots_json(claim.slots))
            .bind(claim.only.map(|g| g.to_string()))
            .fetch_all(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        rows.first().map(rows::job).transpose()
    }

    async fn renew(&self, id: JobId, worker: &str, lease_ms: i64) -> Result<Lease> {
        // Run to its end, as the claim (see there).
        let rows: Vec<bool> = sqlx::query_scalar(concat!(
            "UPDATE jobs SET lease_expires_at = ",
            NOW_MS!(),
            " + ?3, updated_at = ",
            NOW_MS!(),
            " WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'
             RETURNING cancel_requested"
        ))
        .bind(id.to_string())
        .bind(worker)
        .bind(lease_ms)
        .fetch_all(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(match rows.first().copied() {
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
        let done = sqlx::query(concat!(
            "UPDATE jobs SET status = ?3, last_error = COALESCE(?4, last_error),
                lease_owner = NULL, lease_expires_at = NULL, updated_at = ",
            NOW_MS!(),
            " WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'"
        ))
        .bind(id.to_string())
        .bind(worker)
        .bind(status.as_str())
        .bind(error)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        // Its slot has room again.
        self.work.wake();
        Ok(done.rows_affected() == 1)
    }

    async fn retry(&self, id: JobId, worker: &str, delay_ms: i64, error: &str) -> Result<bool> {
        let done = sqlx::query(concat!(
            "UPDATE jobs SET status = 'pending', run_at = ",
            NOW_MS!(),
            " + ?3, last_error = ?4, lease_owner = NULL, lease_expires_at = NULL, updated_at = ",
            NOW_MS!(),
            " WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'"
        ))
        .bind(id.to_string())
        .bind(worker)
        .bind(delay_ms.max(0))
        .bind(error)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        self.work.wake();
        Ok(done.rows_affected() == 1)
    }

    async fn job_of(&self, generation: GenerationId) -> Result<Job> {
        let sql = "SELECT * FROM jobs WHERE generation_id = ?1";
        let row = self
            .row_by_id(sql, &generation.to_string(), "job of generation")
            .await?;
        rows::job(&row)
    }

    async fn cancel(&self, generation: GenerationId) -> Result<Job> {
        // Run to its end, as the claim (see there).
        let rows = sqlx::query(concat!(
            "UPDATE jobs SET
                status = CASE WHEN status = 'pending' THEN 'canceled' ELSE status END,
                cancel_requested = CASE WHEN status = 'running' THEN 1 ELSE cancel_requested END,
                updated_at = ",
            NOW_MS!(),
            " WHERE generation_id = ?1 RETURNING *"
        ))
        .bind(generation.to_string())
        .fetch_all(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        let row = rows
            .first()
            .ok_or_else(|| CatalogueError::NotFound(format!("job of generation {generation}")))?;
        self.work.wake();
        rows::job(row)
    }

    async fn counts(&self, slots: &[String]) -> Result<QueueCounts> {
        let (pending, running): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'running'), 0)
             FROM jobs WHERE status IN ('pending', 'running')
               AND slot IN (SELECT value FROM json_each(?1))",
        )
        .bind(slots_json(slots))
        .fetch_one(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(QueueCounts {
            pending: pending as u64,
            running: running as u64,
        })
    }

    async fn ahead(&self, generation: GenerationId) -> Result<Option<u64>> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM jobs o
                     WHERE o.slot = j.slot AND o.status = 'pending'
                       AND (o.run_at, o.id) < (j.run_at, j.id))
             FROM jobs j WHERE j.generation_id = ?1 AND j.status = 'pending'",
        )
        .bind(generation.to_string())
        .fetch_optional(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(n.map(|n| u64::try_from(n).unwrap_or(0)))
    }

    async fn next_due(&self, slots: &[String]) -> Result<Option<Duration>> {
        let ms: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT MIN(CASE WHEN status = 'pending' THEN run_at ELSE lease_expires_at END) - ",
            NOW_MS!(),
            " FROM jobs WHERE status IN ('pending', 'running')
               AND slot IN (SELECT value FROM json_each(?1))"
        ))
        .bind(slots_json(slots))
        .fetch_one(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(ms.map(|ms| Duration::from_millis(ms.max(0) as u64)))
    }

    fn work_seen(&self) -> u64 {
        self.work.seen()
    }

    async fn wait_for_work(&self, seen: u64, timeout: Duration) {
        self.work.wait(seen, timeout).await;
    }

    async fn live_leases(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND lease_expires_at >= ",
            NOW_MS!()
        ))
        .fetch_one(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(n as u64)
    }

    async fn hold_account(&self, account: &str, holder: &str, lease_ms: i64) -> Result<bool> {
        // Run to its end, as the claim (see there).
        let rows: Vec<String> = sqlx::query_scalar(concat!(
            "INSERT INTO account_holds (account, holder, expires_at) VALUES (?1, ?2, ",
            NOW_MS!(),
            " + ?3)
             ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,
                expires_at = excluded.expires_at
             WHERE account_holds.holder = excluded.holder OR account_holds.expires_at < ",
            NOW_MS!(),
            " RETURNING holder"
        ))
        .bind(account)
        .bind(holder)
        .bind(lease_ms)
        .fetch_all(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(!rows.is_empty())
    }

    async fn release_account(&self, account: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM account_holds WHERE account = ?1 AND holder = ?2")
            .bind(account)
            .bind(holder)
            .execute(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}

fn slots_json(slots: &[String]) -> String {
    serde_json::Value::from(slots.to_vec()).to_string()
}
