//! The webhooks' outbox on `PostgreSQL` (migration 0005), in native types. Several nodes share
//! it: a claim is one statement that leases due deliveries `FOR UPDATE SKIP LOCKED`, so
//! claimers on other nodes pass over the rows one is taking instead of waiting for it, and a
//! lease is compared with the database's `now()`. Queuing is `ON CONFLICT DO NOTHING` and the
//! cursor moves with `GREATEST`, so nodes deriving the same events at once agree.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::rows::corrupt;
use super::{PgCatalogue, db};
use crate::catalogue::{CatalogueError, Outbox, Result, SecretRecord};
use crate::domain::{
    Attempt, Delivery, DeliveryStatus, EventFilter, GenerationId, NewDelivery, Next, Subscription,
    UserId,
};

/// `$n` milliseconds as an interval.
macro_rules! ms {
    ($n:literal) => {
        concat!("make_interval(secs => ", $n, "::float8 / 1000)")
    };
}

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col)
        .map_err(|e| CatalogueError::Other(e.into()))
}

fn owner(row: &PgRow) -> Result<Option<UserId>> {
    Ok(get::<Option<uuid::Uuid>>(row, "owner")?.map(UserId::from_uuid))
}

fn secret(row: &PgRow) -> Result<SecretRecord> {
    Ok(SecretRecord {
        current: get(row, "secret")?,
        previous: get(row, "previous")?,
        rotated_at: get(row, "rotated_at")?,
    })
}

fn delivery(row: &PgRow) -> Result<Delivery> {
    let status: String = get(row, "status")?;
    let status = DeliveryStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?;
    Ok(Delivery {
        id: get(row, "id")?,
        generation_id: GenerationId::from_uuid(get(row, "generation_id")?),
        seq: u64::try_from(get::<i32>(row, "seq")?).map_err(|_| corrupt("seq", "negative"))?,
        owner: owner(row)?,
        event: get(row, "event")?,
        url: get(row, "url")?,
        payload: get(row, "payload")?,
        status,
        attempts: u32::try_from(get::<i32>(row, "attempts")?)
            .map_err(|_| corrupt("attempts", "out of range"))?,
        created_at: get(row, "created_at")?,
        next_attempt_at: if status == DeliveryStatus::Pending {
            Some(get(row, "due_at")?)
        } else {
            None
        },
        log: Vec::new(),
    })
}

fn attempt(row: &PgRow) -> Result<Attempt> {
    Ok(Attempt {
        n: u32::try_from(get::<i32>(row, "n")?).map_err(|_| corrupt("attempt", "n"))?,
        at: get(row, "at")?,
        http_status: get::<Option<i32>>(row, "http_status")?.and_then(|s| u16::try_from(s).ok()),
        error: get(row, "error")?,
        duration_ms: u64::try_from(get::<i64>(row, "duration_ms")?).unwrap_or(0),
        response: get(row, "response")?,
    })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Outbox for PgCatalogue {
    async fn webhook_secret(&self, owner: UserId) -> Result<Option<SecretRecord>> {
        sqlx::query("SELECT * FROM webhook_secrets WHERE owner = $1")
            .bind(owner.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(secret)
            .transpose()
    }

    async fn ensure_webhook_secret(&self, owner: UserId, candidate: &str) -> Result<SecretRecord> {
        // The insert is a no-op when a secret exists; then the select sees the one committed.
        sqlx::query(
            "INSERT INTO webhook_secrets (owner, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(owner.as_uuid())
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        let row = sqlx::query("SELECT * FROM webhook_secrets WHERE owner = $1")
            .bind(owner.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        secret(&row)
    }

    async fn rotate_webhook_secret(&self, owner: UserId, new: &str) -> Result<SecretRecord> {
        let row = sqlx::query(
            "INSERT INTO webhook_secrets (owner, secret) VALUES ($1, $2)
             ON CONFLICT (owner) DO UPDATE SET previous = webhook_secrets.secret,
                 secret = excluded.secret, rotated_at = now()
             RETURNING *",
        )
        .bind(owner.as_uuid())
        .bind(new)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        secret(&row)
    }

    async fn subscribe(&self, sub: &Subscription) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_subscriptions (generation_id, owner, url, events)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(sub.generation_id.as_uuid())
        .bind(sub.owner.map(|o| o.as_uuid()))
        .bind(&sub.url)
        .bind(sub.filter.stored())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn subscriptions(&self, ids: &[GenerationId]) -> Result<Vec<Subscription>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<uuid::Uuid> = ids.iter().map(GenerationId::as_uuid).collect();
        let rows = sqlx::query("SELECT * FROM webhook_subscriptions WHERE generation_id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| {
                let events: String = get(row, "events")?;
                Ok(Subscription {
                    generation_id: GenerationId::from_uuid(get(row, "generation_id")?),
                    owner: owner(row)?,
                    url: get(row, "url")?,
                    filter: EventFilter::from_stored(&events)
                        .map_err(|_| corrupt("webhook events", &events))?,
                })
            })
            .collect()
    }

    async fn webhook_cursor(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT position FROM webhook_cursor WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn queue_deliveries(&self, deliveries: &[NewDelivery], position: i64) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if !deliveries.is_empty() {
            // One statement for the batch, from arrays.
            let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
            let gens: Vec<uuid::Uuid> = deliveries
                .iter()
                .map(|d| d.generation_id.as_uuid())
                .collect();
            let seqs: Vec<i32> = deliveries
                .iter()
                .map(|d| i32::try_from(d.seq).unwrap_or(i32::MAX))
                .collect();
            let owners: Vec<Option<uuid::Uuid>> = deliveries
                .iter()
                .map(|d| d.owner.map(|o| o.as_uuid()))
                .collect();
            let events: Vec<&str> = deliveries.iter().map(|d| d.event.as_str()).collect();
            let urls: Vec<&str> = deliveries.iter().map(|d| d.url.as_str()).collect();
            let payloads: Vec<&str> = deliveries.iter().map(|d| d.payload.as_str()).collect();
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, generation_id, seq, owner, event, url,
                    payload, status, created_at, due_at)
                 SELECT i, g, s, o, e, u, p, 'pending', now(), now()
                 FROM unnest($1::text[], $2::uuid[], $3::int[], $4::uuid[], $5::text[],
                     $6::text[], $7::text[]) AS t(i, g, s, o, e, u, p)
                 ON CONFLICT DO NOTHING",
            )
            .bind(ids)
            .bind(gens)
            .bind(seqs)
            .bind(owners)
            .bind(events)
            .bind(urls)
            .bind(payloads)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        sqlx::query("UPDATE webhook_cursor SET position = GREATEST(position, $1) WHERE id = 1")
            .bind(position)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(concat!(
            "UPDATE webhook_deliveries d SET lease_owner = $1, lease_until = now() + ",
            ms!("$3"),
            " FROM (SELECT id FROM webhook_deliveries
                    WHERE status = 'pending' AND due_at <= now()
                      AND (lease_until IS NULL OR lease_until < now())
                    ORDER BY due_at, seq, id LIMIT $2
                    FOR UPDATE SKIP LOCKED) due
             WHERE d.id = due.id
             RETURNING d.*"
        ))
        .bind(owner)
        .bind(i64::from(limit))
        .bind(ms(lease))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(delivery).collect()
    }

    async fn record_attempt(
        &self,
        id: &str,
        owner: &str,
        attempt: &Attempt,
        next: Next,
    ) -> Result<bool> {
        let (status, delay) = match next {
            Next::Delivered => (DeliveryStatus::Delivered, Duration::ZERO),
            Next::Gone => (DeliveryStatus::Gone, Duration::ZERO),
            Next::Failed => (DeliveryStatus::Failed, Duration::ZERO),
            Next::Retry(delay) => (DeliveryStatus::Pending, delay),
        };
        let n = i32::try_from(attempt.n).unwrap_or(i32::MAX);
        // Only the lease's holder, and only once per attempt number; the attempt's row is
        // written by the same statement.
        let written: Option<i32> = sqlx::query_scalar(concat!(
            "WITH moved AS (
                UPDATE webhook_deliveries SET status = $3, attempts = $4,
                    due_at = now() + ",
            ms!("$5"),
            ", lease_owner = NULL, lease_until = NULL
                WHERE id = $1 AND lease_owner = $2 AND attempts = $4 - 1
                RETURNING id)
             INSERT INTO webhook_attempts (delivery_id, n, at, http_status, error, duration_ms,
                 response)
             SELECT id, $4, $6, $7, $8, $9, $10 FROM moved
             RETURNING n"
        ))
        .bind(id)
        .bind(owner)
        .bind(status.as_str())
        .bind(n)
        .bind(ms(delay))
        .bind(attempt.at)
        .bind(attempt.http_status.map(i32::from))
        .bind(&attempt.error)
        .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
        .bind(&attempt.response)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(written.is_some())
    }

    async fn deliveries(&self, generation: GenerationId) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE generation_id = $1 ORDER BY seq, id",
        )
        .bind(generation.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let attempts = sqlx::query(
            "SELECT a.* FROM webhook_attempts a
             JOIN webhook_deliveries d ON d.id = a.delivery_id
             WHERE d.generation_id = $1 ORDER BY a.delivery_id, a.n",
        )
        .bind(generation.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = rows.iter().map(delivery).collect::<Result<Vec<_>>>()?;
        for row in &attempts {
            let of: String = get(row, "delivery_id")?;
            if let Some(d) = out.iter_mut().find(|d| d.id == of) {
                d.log.push(attempt(row)?);
            }
        }
        Ok(out)
    }
}
