//! The job queue on `PostgreSQL` (its `Queue` half): claims, leases, retries, cancellation,
//! and the holds on provider accounts, for several nodes at once.
//!
//! Every time compared is the database's (`statement_timestamp()`: the start of the statement
//! on the server), never a node's. A slot's limit is kept by its tokens (`slot_tokens`,
//! migration 0003): a slot of limit L has tokens 1..L and a running job holds one until its
//! lease ends. A claim is one statement: it picks a job and a free token of the job's slot,
//! both with `FOR UPDATE SKIP LOCKED` (claimers never wait on each other), and takes both.
//! `PostgreSQL` re-checks a locked row's condition against its newest version, so a token taken
//! by a claim that committed meanwhile is not free to another, on any node; claimers of one
//! slot run in parallel up to its limit. `finish` and `retry` give the token back, or a
//! worker ending a job and asking for its next hands the token straight on
//! (`finish_and_claim`); a lease that runs out frees its token by itself (a takeover takes a
//! token like any claim). The pick is a function (migrations 0008 and 0009) so that its plan
//! never depends on the table's statistics. Claims, renewals, finishes and retries run on the
//! queue's own connections (`conns.rs`).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

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

/// A `WITH` item that makes the tokens of slot `$slot` up to its limit `$limit`, unless its
/// last one is there (they are made together).
macro_rules! tokens {
    ($slot:literal, $limit:literal) => {
        concat!(
            "tokens AS (INSERT INTO slot_tokens (slot, n)
                SELECT ",
            $slot,
            ", n FROM generate_series(1, ",
            $limit,
            ") n
                WHERE NOT EXISTS (SELECT 1 FROM slot_tokens
                                  WHERE slot = ",
            $slot,
            " AND n = ",
            $limit,
            ")
                ON CONFLICT DO NOTHING)"
        )
    };
}
pub(super) use tokens;

/// Writes a generation's job, due `delay_ms` from now by the database's clock, with its slot's
/// tokens, and tells every node's workers when the transaction commits.
pub(super) async fn insert_job(
    conn: &mut PgConnection,
    generation: GenerationId,
    job: &NewJob,
) -> Result<()> {
    sqlx::query(concat!(
        "WITH ",
        tokens!("$3", "$4"),
        " INSERT INTO jobs (id, generation_id, kind, slot, concurrency, max_attempts, run_at)
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

/// Whether token `t` is free for job `x`: nobody holds it, its holder's lease ran out, or it
/// is `x`'s own (a takeover).
macro_rules! free {
    ($t:literal, $x:literal) => {
        concat!(
            "(",
            $t,
            ".job_id IS NULL OR ",
            $t,
            ".expires_at < statement_timestamp() OR ",
            $t,
            ".job_id = ",
            $x,
            ".id)"
        )
    };
}

/// The `WITH` items that take the picked `job` with the chosen `token` for worker `$worker`,
/// leased for `$lease` ms: the token held for the lease (`held`: its slot, number and job)
/// and the job running (`taken`: its row). A job taken from the queue spends an attempt; one
/// taken over from a stopped worker counts a takeover instead.
macro_rules! take {
    ($worker:literal, $lease:literal) => {
        concat!(
            "held AS (UPDATE slot_tokens t SET job_id = job.id, expires_at = statement_timestamp() + ",
            ms!($lease),
            " FROM token, job WHERE t.slot = token.slot AND t.n = token.n
                RETURNING t.slot, t.n, t.job_id),
             taken AS (UPDATE jobs SET status = 'running', lease_owner = ",
            $worker,
            ", lease_expires_at = statement_timestamp() + ",
            ms!($lease),
            ", attempts = attempts + (status = 'pending')::int,
                  takeovers = takeovers + (status = 'running')::int,
                  updated_at = statement_timestamp()
               FROM held WHERE jobs.id = held.job_id RETURNING jobs.*)"
        )
    };
}

/// A claim in one statement./// A claim in one statement. `job` is the next runnable job, picked and locked by
/// `atelier_next_job` (migration 0008, which says why the pick is a function): jobs whose
/// worker died (an expired lease) first, since they started first, then pending ones, among
/// the claim's slots (`$1`) less those found full (`$2`), and of generation `$3` when given; a
/// slot with no free token is passed over there. The scalar subquery runs it once. `token` is a
/// free token of its slot, its own first. The job is taken only with a token. A job taken from
/// the queue spends an attempt; one taken over from a stopped worker counts a takeover instead
/// (`Job::on_claim` judges both). A claim that finds no job marks each of its slots where a
/// due job waits for a token (none free within the job's limit): `waits`, into `slot_waits`,
/// in the slots' order, so two claims marking the same slots never wait on each other. The
/// next `finish` in that slot tells every node (a claimer elsewhere may be waiting for room),
/// and only then. Its one row is the picked
/// job's slot and the taken job, whose columns are all null when the slot had no free token;
/// no row when there was no job.
const CLAIM: &str = concat!(
    "WITH job AS (SELECT j.id, j.slot, j.concurrency FROM jobs j
                 WHERE j.id = (SELECT atelier_next_job($1, $2, $3::uuid))),
     waits AS (INSERT INTO slot_waits (slot)
               SELECT DISTINCT s FROM unnest($1::text[]) s
               WHERE NOT EXISTS (SELECT 1 FROM job)
                 AND EXISTS (SELECT 1 FROM jobs x
                             WHERE x.slot = s AND x.status = 'pending'
                               AND x.run_at <= statement_timestamp()
                               AND NOT EXISTS (SELECT 1 FROM slot_tokens t
                                               WHERE t.slot = s AND t.n <= x.concurrency
                                                 AND (t.job_id IS NULL
                                                      OR t.expires_at < statement_timestamp())))
               ORDER BY s
               ON CONFLICT DO NOTHING),
     token AS (SELECT t.slot, t.n FROM slot_tokens t, job
               WHERE t.slot = job.slot AND t.n <= job.concurrency AND ",
    free!("t", "job"),
    " ORDER BY t.job_id IS NOT DISTINCT FROM job.id DESC, t.n
               LIMIT 1 FOR UPDATE OF t SKIP LOCKED),
     ",
    take!("$4", "$5"),
    "
     SELECT job.slot AS picked_slot, taken.* FROM job LEFT JOIN taken ON true"
);

/// The end of a statement whose `done` (`id`, `slot`, `concurrency`) is the job that stopped
/// running, if its worker still held it: gives its token back and tells every node's workers
/// on `$5` once for each row of `$tell` (a `FROM` clause). Its row counts the jobs done and
/// told (`told` is a plain `SELECT`: `PostgreSQL` runs it only if the statement reads it).
macro_rules! give_back {
    ($($tell:tt)+) => {
        concat!(
            "freed AS (UPDATE slot_tokens t SET job_id = NULL, expires_at = NULL FROM done
                WHERE t.slot = done.slot AND t.job_id = done.id),
             told AS (SELECT pg_notify($5, '') ",
            $($tell)+,
            ") SELECT (SELECT COUNT(*) FROM done), (SELECT COUNT(*) FROM told)"
        )
    };
}

/// How many times in a row a claim finds every token of a slot taken under its eyes before it
/// leaves that slot out. Not once: with as many claimers as tokens a miss is common, and a
/// claim that gave up would send its worker to sleep while the slot has room.
const MISSES: u32 = 4;

/// Ends a running job, if its worker still holds it (see `give_back!`), and tells other nodes
/// only when a claimer found its slot full (`slot_waits`, see `CLAIM`), taking the mark off:
/// `NOTIFY` serialises the commits of every transaction that sends it, so not on every finish.
const FINISH: &str = concat!(
    "WITH done AS (
        UPDATE jobs SET status = $3, last_error = COALESCE($4, last_error),
            lease_owner = NULL, lease_expires_at = NULL, updated_at = statement_timestamp()
        WHERE id = $1 AND lease_owner = $2 AND status = 'running'
        RETURNING id, slot, concurrency),
     woken AS (DELETE FROM slot_waits w USING done WHERE w.slot = done.slot RETURNING w.slot), ",
    give_back!("FROM woken")
);

/// `FINISH` and `CLAIM` in one statement, for a worker that asks for its next job as it ends
/// one (`$1`, held by worker `$2`). Unless a claimer waits for room in the ended job's slot
/// (`hand`: no mark in `slot_waits`), the pick (`job`) counts the ended job's token as free,
/// and `token` prefers it, so that when the next job is of the same slot the token passes to
/// it in one update, and the slot's count never dips: nobody is told of room that is not
/// there. A claimer that waits (another node's, say) is never passed over that way: the token
/// is then given back and the waiters told, as `FINISH` does, and they and this worker's own
/// next claim meet on equal terms. The token is handed on only if the ender still held the
/// job (`done`: a lease taken over meanwhile keeps its token); otherwise, or when the next job
/// is of another slot, it is freed as `FINISH` frees it (`freed`, never the row `held` took).
/// Its one row counts the jobs ended and told, and, as `CLAIM`'s does, names the picked job's
/// slot and the taken job (all null when none was taken).
const FINISH_AND_CLAIM: &str = concat!(
    "WITH done AS (
        UPDATE jobs SET status = $3, last_error = COALESCE($4, last_error),
            lease_owner = NULL, lease_expires_at = NULL, updated_at = statement_timestamp()
        WHERE id = $1 AND lease_owner = $2 AND status = 'running'
        RETURNING id, slot),
     hand AS (SELECT $1::uuid AS id WHERE NOT EXISTS (
                SELECT 1 FROM slot_waits w JOIN jobs a ON a.slot = w.slot WHERE a.id = $1)),
     job AS (SELECT j.id, j.slot, j.concurrency FROM jobs j
             WHERE j.id = (SELECT atelier_next_job($6, '{}'::text[], $7::uuid,
                                                   (SELECT id FROM hand)))),
     token AS (SELECT t.slot, t.n FROM slot_tokens t, job
               WHERE t.slot = job.slot AND t.n <= job.concurrency
                 AND (",
    free!("t", "job"),
    " OR (t.job_id = (SELECT id FROM hand) AND EXISTS (SELECT 1 FROM done)))
               ORDER BY t.job_id IS NOT DISTINCT FROM job.id DESC,
                        t.job_id IS NOT DISTINCT FROM $1 DESC, t.n
               LIMIT 1 FOR UPDATE OF t SKIP LOCKED),
     ",
    take!("$2", "$8"),
    ",
     freed AS (UPDATE slot_tokens t SET job_id = NULL, expires_at = NULL FROM done
               WHERE t.slot = done.slot AND t.job_id = done.id
                 AND NOT EXISTS (SELECT 1 FROM held WHERE held.slot = t.slot AND held.n = t.n)
               RETURNING t.slot),
     woken AS (DELETE FROM slot_waits w USING freed WHERE w.slot = freed.slot RETURNING w.slot),
     told AS (SELECT pg_notify($5, '') FROM woken)
     SELECT (SELECT COUNT(*) FROM done) AS ended, (SELECT COUNT(*) FROM told) AS told,
            job.slot AS picked_slot, taken.*
     FROM (VALUES (1)) one LEFT JOIN job ON true LEFT JOIN taken ON true"
);

#[async_trait]
impl Queue for PgCatalogue {
    async fn claim(&self, claim: &Claim<'_>) -> Result<Option<Job>> {
        let mut full: Vec<String> = Vec::new();
        let mut missed = 0;
        let mut held = self.queue_conns.get().await?;
        loop {
            // Read to its end (`fetch_all`): an error at its commit comes after its row.
            let Some(row) = sqlx::query(CLAIM)
                .bind(claim.slots)
                .bind(&full)
                .bind(claim.only.map(|g| g.as_uuid()))
                .bind(claim.worker)
                .bind(claim.lease_ms)
                .fetch_all(held.conn()?)
                .await
                .map_err(|e| held.failed(e))?
                .pop()
            else {
                return Ok(None);
            };
            let taken: Option<uuid::Uuid> = row.try_get("id").map_err(other)?;
            if taken.is_some() {
                return rows::job(&row).map(Some);
            }
            // The slot had a free token in the statement's snapshot, but other claimers took
            // or were taking every one by the time it came to lock one: each miss is another
            // claim's success. Look again (a slot full by then is passed over by the look
            // itself), and leave the slot out only after a few misses in a row.
            missed += 1;
            if missed >= MISSES {
                missed = 0;
                full.push(row.try_get("picked_slot").map_err(other)?);
            }
        }
    }

    async fn renew(&self, id: JobId, worker: &str, lease_ms: i64) -> Result<Lease> {
        // The job's token, if it still holds it, is kept as long as the lease.
        let mut held = self.queue_conns.get().await?;
        let cancel: Option<bool> = sqlx::query_scalar(concat!(
            "WITH renewed AS (
                UPDATE jobs SET lease_expires_at = statement_timestamp() + ",
            ms!("$3"),
            ", updated_at = statement_timestamp()
                WHERE id = $1 AND lease_owner = $2 AND status = 'running'
                RETURNING id, slot, lease_expires_at, cancel_requested),
             kept AS (UPDATE slot_tokens t SET expires_at = renewed.lease_expires_at
                FROM renewed WHERE t.slot = renewed.slot AND t.job_id = renewed.id)
             SELECT cancel_requested FROM renewed"
        ))
        .bind(id.as_uuid())
        .bind(worker)
        .bind(lease_ms)
        .fetch_all(held.conn()?)
        .await
        .map_err(|e| held.failed(e))?
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
        let mut held = self.queue_conns.get().await?;
        let (done, _told): (i64, i64) = sqlx::query_as(FINISH)
            .bind(id.as_uuid())
            .bind(worker)
            .bind(status.as_str())
            .bind(error)
            .bind(WORK)
            .fetch_one(held.conn()?)
            .await
            .map_err(|e| held.failed(e))?;
        drop(held);
        self.wakers.work.wake();
        Ok(done == 1)
    }

    async fn finish_and_claim(
        &self,
        id: JobId,
        status: JobStatus,
        error: Option<&str>,
        claim: &Claim<'_>,
    ) -> Result<(bool, Option<Job>)> {
        let mut held = self.queue_conns.get().await?;
        // Read to its end (`fetch_all`): an error at its commit comes after its row.
        let row = sqlx::query(FINISH_AND_CLAIM)
            .bind(id.as_uuid())
            .bind(claim.worker)
            .bind(status.as_str())
            .bind(error)
            .bind(WORK)
            .bind(claim.slots)
            .bind(claim.only.map(|g| g.as_uuid()))
            .bind(claim.lease_ms)
            .fetch_all(held.conn()?)
            .await
            .map_err(|e| held.failed(e))?
            .pop()
            .ok_or_else(|| other("finishing a job and claiming the next returned no row"))?;
        drop(held);
        self.wakers.work.wake();
        let ended = row.try_get::<i64, _>("ended").map_err(other)? == 1;
        if row
            .try_get::<Option<uuid::Uuid>, _>("id")
            .map_err(other)?
            .is_some()
        {
            return Ok((ended, Some(rows::job(&row)?)));
        }
        // None taken: none was due, and the ordinary claim marks the slots found full (so
        // that a finish there wakes this worker); or claimers waited for the slot, and this
        // worker's claim meets them; or the token went to another claim under the
        // statement's eyes, and the ordinary claim looks again.
        Ok((ended, self.claim(claim).await?))
    }

    async fn retry(&self, id: JobId, worker: &str, delay_ms: i64, error: &str) -> Result<bool> {
        // Always told: the job is due again, maybe before what the waiters know of.
        let mut held = self.queue_conns.get().await?;
        let (done, _told): (i64, i64) = sqlx::query_as(concat!(
            "WITH done AS (
                UPDATE jobs SET status = 'pending', run_at = statement_timestamp() + ",
            ms!("$3"),
            ", last_error = $4, lease_owner = NULL, lease_expires_at = NULL,
                    updated_at = statement_timestamp()
                WHERE id = $1 AND lease_owner = $2 AND status = 'running'
                RETURNING id, slot, concurrency), ",
            give_back!("FROM done")
        ))
        .bind(id.as_uuid())
        .bind(worker)
        .bind(delay_ms.max(0))
        .bind(error)
        .bind(WORK)
        .fetch_one(held.conn()?)
        .await
        .map_err(|e| held.failed(e))?;
        drop(held);
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
