//! The webhooks' outbox on `SQLite` (migration 0007): secrets, subscriptions, the cursor over
//! the feed, deliveries and their attempts. Writes go through the writer connection; a claim is
//! one `UPDATE … RETURNING`, which `SQLite` runs atomically, on the database's clock
//! ([`NOW_MS`]).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::SqliteCatalogue;
use super::queue::NOW_MS;
use super::rows::{corrupt, ts};
use crate::catalogue::{CatalogueError, Outbox, Result, SecretRecord};
use crate::domain::{
    Attempt, Delivery, DeliveryStatus, EventFilter, GenerationId, NewDelivery, Next, Subscription,
    UserId,
};

fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(col)
        .map_err(|e| CatalogueError::Other(e.into()))
}

fn time_of(s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| corrupt("timestamp", s))
}

fn ms_time(ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| corrupt("time", &ms.to_string()))
}

fn uuid_of(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| corrupt("id", s))
}

fn owner(row: &SqliteRow) -> Result<Option<UserId>> {
    get::<Option<String>>(row, "owner")?
        .map(|o| uuid_of(&o).map(UserId::from_uuid))
        .transpose()
}

fn secret(row: &SqliteRow) -> Result<SecretRecord> {
    Ok(SecretRecord {
        current: get(row, "secret")?,
        previous: get(row, "previous")?,
        rotated_at: get::<Option<String>>(row, "rotated_at")?
            .as_deref()
            .map(time_of)
            .transpose()?,
    })
}

fn delivery(row: &SqliteRow) -> Result<Delivery> {
    let status: String = get(row, "status")?;
    let status = DeliveryStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?;
    Ok(Delivery {
        id: get(row, "id")?,
        generation_id: GenerationId::from_uuid(uuid_of(&get::<String>(row, "generation_id")?)?),
        seq: u64::try_from(get::<i64>(row, "seq")?).map_err(|_| corrupt("seq", "negative"))?,
        owner: owner(row)?,
        event: get(row, "event")?,
        url: get(row, "url")?,
        payload: get(row, "payload")?,
        status,
        attempts: u32::try_from(get::<i64>(row, "attempts")?)
            .map_err(|_| corrupt("attempts", "out of range"))?,
        created_at: time_of(&get::<String>(row, "created_at")?)?,
        next_attempt_at: if status == DeliveryStatus::Pending {
            Some(ms_time(get(row, "due_ms")?)?)
        } else {
            None
        },
        log: Vec::new(),
    })
}

fn attempt(row: &SqliteRow) -> Result<Attempt> {
    Ok(Attempt {
        n: u32::try_from(get::<i64>(row, "n")?).map_err(|_| corrupt("attempt", "n"))?,
        at: time_of(&get::<String>(row, "at")?)?,
        http_status: get::<Option<i64>>(row, "http_status")?.and_then(|s| u16::try_from(s).ok()),
        error: get(row, "error")?,
        duration_ms: u64::try_from(get::<i64>(row, "duration_ms")?).unwrap_or(0),
        response: get(row, "response")?,
    })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Outbox for SqliteCatalogue {
    async fn webhook_secret(&self, owner: UserId) -> Result<Option<SecretRecord>> {
        sqlx::query("SELECT * FROM webhook_secrets WHERE owner = ?1")
            .bind(owner.to_string())
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?
            .as_ref()
            .map(secret)
            .transpose()
    }

    async fn ensure_webhook_secret(&self, owner: UserId, candidate: &str) -> Result<SecretRecord> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (owner, secret) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .bind(owner.to_string())
        .bind(candidate)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        let row = sqlx::query("SELECT * FROM webhook_secrets WHERE owner = ?1")
            .bind(owner.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        secret(&row)
    }

    async fn rotate_webhook_secret(&self, owner: UserId, new: &str) -> Result<SecretRecord> {
        let row = sqlx::query(
            "INSERT INTO webhook_secrets (owner, secret) VALUES (?1, ?2)
             ON CONFLICT (owner) DO UPDATE SET previous = secret, secret = excluded.secret,
                 rotated_at = ?3
             RETURNING *",
        )
        .bind(owner.to_string())
        .bind(new)
        .bind(ts(crate::domain::now_ms()))
        .fetch_one(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        secret(&row)
    }

    async fn subscribe(&self, sub: &Subscription) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_subscriptions (generation_id, owner, url, events)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(sub.generation_id.to_string())
        .bind(sub.owner.map(|o| o.to_string()))
        .bind(&sub.url)
        .bind(sub.filter.stored())
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn subscriptions(&self, ids: &[GenerationId]) -> Result<Vec<Subscription>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(&ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| CatalogueError::Other(e.into()))?;
        let rows = sqlx::query(
            "SELECT * FROM webhook_subscriptions
             WHERE generation_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(list)
        .fetch_all(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|row| {
                let events: String = get(row, "events")?;
                Ok(Subscription {
                    generation_id: GenerationId::from_uuid(uuid_of(&get::<String>(
                        row,
                        "generation_id",
                    )?)?),
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
            .fetch_one(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))
    }

    async fn queue_deliveries(&self, deliveries: &[NewDelivery], position: i64) -> Result<()> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let now = ts(crate::domain::now_ms());
        for d in deliveries {
            sqlx::query(concat!(
                "INSERT INTO webhook_deliveries (id, generation_id, seq, owner, event, url,
                    payload, status, created_at, due_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ",
                NOW_MS!(),
                ") ON CONFLICT DO NOTHING"
            ))
            .bind(&d.id)
            .bind(d.generation_id.to_string())
            .bind(i64::try_from(d.seq).unwrap_or(i64::MAX))
            .bind(d.owner.map(|o| o.to_string()))
            .bind(&d.event)
            .bind(&d.url)
            .bind(&d.payload)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        }
        sqlx::query("UPDATE webhook_cursor SET position = MAX(position, ?1) WHERE id = 1")
            .bind(position)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Delivery>> {
        // A read first, on a reader: the writer (and the file's write lock, which other
        // processes on it share) is taken only when something is due.
        let due: bool = sqlx::query_scalar(concat!(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND due_ms <= ",
            NOW_MS!(),
            " AND (lease_ms IS NULL OR lease_ms < ",
            NOW_MS!(),
            "))"
        ))
        .fetch_one(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        if !due {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            "UPDATE webhook_deliveries SET lease_owner = ?1, lease_ms = ",
            NOW_MS!(),
            " + ?3
             WHERE id IN (
                SELECT id FROM webhook_deliveries
                WHERE status = 'pending' AND due_ms <= ",
            NOW_MS!(),
            " AND (lease_ms IS NULL OR lease_ms < ",
            NOW_MS!(),
            ") ORDER BY due_ms, seq, id LIMIT ?2)
             RETURNING *"
        ))
        .bind(owner)
        .bind(i64::from(limit))
        .bind(ms(lease))
        .fetch_all(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
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
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        // Only the lease's holder, and only once per attempt number.
        let moved = sqlx::query(concat!(
            "UPDATE webhook_deliveries SET status = ?3, attempts = ?4, due_ms = ",
            NOW_MS!(),
            " + ?5, lease_owner = NULL, lease_ms = NULL
             WHERE id = ?1 AND lease_owner = ?2 AND attempts = ?4 - 1"
        ))
        .bind(id)
        .bind(owner)
        .bind(status.as_str())
        .bind(i64::from(attempt.n))
        .bind(ms(delay))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?
        .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, n, at, http_status, error, duration_ms,
                response) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(id)
        .bind(i64::from(attempt.n))
        .bind(ts(attempt.at))
        .bind(attempt.http_status.map(i64::from))
        .bind(&attempt.error)
        .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
        .bind(&attempt.response)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(true)
    }

    async fn deliveries(&self, generation: GenerationId) -> Result<Vec<Delivery>> {
        let mut conn = self.pool.get().await?;
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE generation_id = ?1 ORDER BY seq, id",
        )
        .bind(generation.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| self.db(e))?;
        let attempts = sqlx::query(
            "SELECT a.* FROM webhook_attempts a
             JOIN webhook_deliveries d ON d.id = a.delivery_id
             WHERE d.generation_id = ?1 ORDER BY a.delivery_id, a.n",
        )
        .bind(generation.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| self.db(e))?;
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
