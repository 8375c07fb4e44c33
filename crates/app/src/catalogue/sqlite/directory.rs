//! The `Directory` half of the `SQLite` catalogue: users, keys, sessions, credits, the audit
//! log and idempotent requests (migration 0006). Writes go through the one writer connection
//! in `BEGIN IMMEDIATE` transactions like every other write, so a reservation's check and take
//! are one step for every process on the file. Expiry is the database's clock ([`NOW_MS`]).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::queue::NOW_MS;
use super::rows::{corrupt, ts};
use super::{SqliteCatalogue, db};
use crate::catalogue::directory::{Directory, stored_record, stray_settlement};
use crate::catalogue::{CatalogueError, Result};
use crate::domain::{
    ApiKey, ApiKeyId, AuditAction, AuditEntry, Begun, Credits, Email, GenerationId, Grant,
    IdempotentRequest, LedgerEntry, LedgerKind, Reservation, Session, Settlement, StoredResponse,
    User, UserId, UserRole,
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

fn opt_time(row: &SqliteRow, col: &str) -> Result<Option<OffsetDateTime>> {
    get::<Option<String>>(row, col)?
        .as_deref()
        .map(time_of)
        .transpose()
}

fn uuid_of(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| corrupt("id", s))
}

fn user(row: &SqliteRow) -> Result<User> {
    let role: String = get(row, "role")?;
    Ok(User {
        id: UserId::from_uuid(uuid_of(&get::<String>(row, "id")?)?),
        email: Email::stored(get(row, "email")?),
        role: UserRole::parse(&role).map_err(|_| corrupt("role", &role))?,
        created_at: time_of(&get::<String>(row, "created_at")?)?,
        disabled: get(row, "disabled")?,
    })
}

fn key(row: &SqliteRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(uuid_of(&get::<String>(row, "id")?)?),
        user_id: UserId::from_uuid(uuid_of(&get::<String>(row, "user_id")?)?),
        prefix: get(row, "prefix")?,
        name: get(row, "name")?,
        created_at: time_of(&get::<String>(row, "created_at")?)?,
        last_used_at: opt_time(row, "last_used_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

fn ledger_entry(row: &SqliteRow) -> Result<LedgerEntry> {
    let kind: String = get(row, "kind")?;
    let generation: Option<String> = get(row, "generation_id")?;
    Ok(LedgerEntry {
        id: get(row, "id")?,
        user_id: UserId::from_uuid(uuid_of(&get::<String>(row, "user_id")?)?),
        at: time_of(&get::<String>(row, "at")?)?,
        kind: LedgerKind::parse(&kind).ok_or_else(|| corrupt("ledger kind", &kind))?,
        amount: get(row, "amount")?,
        balance_after: get(row, "balance_after")?,
        generation_id: generation
            .map(|g| uuid_of(&g).map(GenerationId::from_uuid))
            .transpose()?,
        note: get(row, "note")?,
    })
}

fn audit_entry(row: &SqliteRow) -> Result<AuditEntry> {
    let action: String = get(row, "action")?;
    let actor: Option<String> = get(row, "actor_id")?;
    let details: String = get(row, "details")?;
    Ok(AuditEntry {
        id: get(row, "id")?,
        at: time_of(&get::<String>(row, "at")?)?,
        actor: actor
            .map(|a| uuid_of(&a).map(UserId::from_uuid))
            .transpose()?,
        action: AuditAction::parse(&action).ok_or_else(|| corrupt("audit action", &action))?,
        target: get(row, "target")?,
        details: serde_json::from_str(&details).map_err(|_| corrupt("audit details", &details))?,
    })
}

/// A unique constraint's failure as `Conflict` saying `what`; other errors as they are.
fn unique(what: &str) -> impl Fn(sqlx::Error) -> CatalogueError {
    move |e| match e {
        sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            CatalogueError::Conflict(what.to_owned())
        }
        e => db(e),
    }
}

async fn insert_audit(conn: &mut SqliteConnection, e: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, action, target, details) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(ts(e.at))
    .bind(e.actor.map(|a| a.to_string()))
    .bind(e.action.as_str())
    .bind(&e.target)
    .bind(e.details.to_string())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Adds `amount` (signed) to a user's balance and writes its ledger entry; `None` when the
/// user has no credit account, `Conflict` when the balance would leave its bounds.
async fn add_to_ledger(
    conn: &mut SqliteConnection,
    user: UserId,
    kind: LedgerKind,
    amount: i64,
    generation: Option<GenerationId>,
    note: Option<&str>,
) -> Result<Option<LedgerEntry>> {
    let balance: Option<i64> = sqlx::query_scalar(
        "UPDATE credit_accounts SET balance = balance + ?2 WHERE user_id = ?1 RETURNING balance",
    )
    .bind(user.to_string())
    .bind(amount)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::CheckViolation => {
            CatalogueError::Conflict(format!(
                "the balance cannot hold {amount} more credits (at most {})",
                crate::domain::MAX_BALANCE
            ))
        }
        e => db(e),
    })?;
    let Some(balance) = balance else {
        return Ok(None);
    };
    let row = sqlx::query(
        "INSERT INTO credit_ledger (user_id, at, kind, amount, balance_after, generation_id, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING *",
    )
    .bind(user.to_string())
    .bind(ts(crate::domain::now_ms()))
    .bind(kind.as_str())
    .bind(amount)
    .bind(balance)
    .bind(generation.map(|g| g.to_string()))
    .bind(note)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    ledger_entry(&row).map(Some)
}

/// Settles a generation's open hold, inside the caller's write transaction: the catalogue's
/// terminal step calls it, so a generation's end and its credits are one commit. False when
/// there is no open hold.
pub(super) async fn settle_in(
    conn: &mut SqliteConnection,
    generation: GenerationId,
    settlement: Settlement,
) -> Result<bool> {
    let hold: Option<(String, i64)> = sqlx::query_as(
        "UPDATE credit_holds SET settled_at = ?2, settlement = ?3
         WHERE generation_id = ?1 AND settled_at IS NULL RETURNING user_id, amount",
    )
    .bind(generation.to_string())
    .bind(ts(crate::domain::now_ms()))
    .bind(settlement.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some((user, amount)) = hold else {
        return Ok(false);
    };
    sqlx::query("UPDATE credit_accounts SET held = held - ?2 WHERE user_id = ?1")
        .bind(&user)
        .bind(amount)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if settlement == Settlement::Refunded {
        let user = UserId::from_uuid(uuid_of(&user)?);
        add_to_ledger(
            conn,
            user,
            LedgerKind::Refund,
            amount,
            Some(generation),
            None,
        )
        .await?;
    }
    Ok(true)
}

fn expiry_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

impl SqliteCatalogue {
    async fn user_where(&self, sql: &'static str, value: String) -> Result<User> {
        let row = sqlx::query(sql)
            .bind(&value)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {value}")))?;
        user(&row)
    }

    async fn update_user(&self, id: UserId, sql: &'static str, value: &str) -> Result<User> {
        let row = sqlx::query(sql)
            .bind(id.to_string())
            .bind(value)
            .fetch_optional(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {id}")))?;
        user(&row)
    }
}

#[async_trait]
impl Directory for SqliteCatalogue {
    async fn add_user(
        &self,
        u: &User,
        password_hash: Option<&str>,
        initial: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        sqlx::query(
            "INSERT INTO users (id, email, role, disabled, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(u.id.to_string())
        .bind(u.email.as_str())
        .bind(u.role.as_str())
        .bind(u.disabled)
        .bind(password_hash)
        .bind(ts(u.created_at))
        .execute(&mut *tx)
        .await
        .map_err(unique(&format!(
            "a user with email {} already exists",
            u.email
        )))?;
        sqlx::query("INSERT INTO credit_accounts (user_id, balance) VALUES (?1, 0)")
            .bind(u.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        if initial > 0 {
            let note = Some("initial credits");
            add_to_ledger(&mut tx, u.id, LedgerKind::Bonus, initial, None, note).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    async fn user(&self, id: UserId) -> Result<User> {
        self.user_where("SELECT * FROM users WHERE id = ?1", id.to_string())
            .await
    }

    async fn user_by_email(&self, email: &Email) -> Result<User> {
        self.user_where(
            "SELECT * FROM users WHERE email = ?1",
            email.as_str().to_owned(),
        )
        .await
    }

    async fn users(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // Ids are UUIDv7 written as text: their order is their creation's.
        let rows = sqlx::query("SELECT * FROM users WHERE id > ?1 ORDER BY id LIMIT ?2")
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        rows.iter().map(user).collect()
    }

    async fn set_role(&self, id: UserId, role: UserRole) -> Result<User> {
        self.update_user(
            id,
            "UPDATE users SET role = ?2 WHERE id = ?1 RETURNING *",
            role.as_str(),
        )
        .await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<User> {
        let flag = if disabled { "1" } else { "0" };
        self.update_user(
            id,
            "UPDATE users SET disabled = CAST(?2 AS INTEGER) WHERE id = ?1 RETURNING *",
            flag,
        )
        .await
    }

    async fn set_password_hash(&self, id: UserId, hash: Option<&str>) -> Result<()> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let done = sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("user {id}")));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = ?1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        sqlx::query_scalar::<_, Option<String>>("SELECT password_hash FROM users WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {id}")))
    }

    async fn add_key(&self, k: &ApiKey, hash: &str, audit: &AuditEntry) -> Result<()> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, hash, prefix, name, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(k.id.to_string())
        .bind(k.user_id.to_string())
        .bind(hash)
        .bind(&k.prefix)
        .bind(&k.name)
        .bind(ts(k.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
                CatalogueError::NotFound(format!("user {}", k.user_id))
            }
            e => unique("that key exists already")(e),
        })?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, User)>> {
        let row = sqlx::query(
            "SELECT k.*, u.email, u.role, u.disabled, u.created_at AS user_created_at
             FROM api_keys k JOIN users u ON u.id = k.user_id
             WHERE k.hash = ?1 AND k.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let k = key(&row)?;
        let role: String = get(&row, "role")?;
        let u = User {
            id: k.user_id,
            email: Email::stored(get(&row, "email")?),
            role: UserRole::parse(&role).map_err(|_| corrupt("role", &role))?,
            created_at: time_of(&get::<String>(&row, "user_created_at")?)?,
            disabled: get(&row, "disabled")?,
        };
        Ok(Some((k, u)))
    }

    async fn keys(&self, user: UserId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE user_id = ?1 ORDER BY created_at, id")
            .bind(user.to_string())
            .fetch_all(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        rows.iter().map(key).collect()
    }

    async fn key(&self, id: ApiKeyId) -> Result<ApiKey> {
        let row = self
            .row_by_id(
                "SELECT * FROM api_keys WHERE id = ?1",
                &id.to_string(),
                "key",
            )
            .await?;
        key(&row)
    }

    async fn revoke_key(&self, id: ApiKeyId) -> Result<ApiKey> {
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1 RETURNING *",
        )
        .bind(id.to_string())
        .bind(ts(crate::domain::now_ms()))
        .fetch_optional(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?
        .ok_or_else(|| CatalogueError::NotFound(format!("key {id}")))?;
        key(&row)
    }

    async fn touch_key(&self, id: ApiKeyId) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(ts(crate::domain::now_ms()))
            .execute(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn add_session(&self, s: &Session, hash: &str) -> Result<()> {
        let ttl_ms = ((s.expires_at - s.created_at).whole_milliseconds()).max(0) as i64;
        sqlx::query(concat!(
            "INSERT INTO sessions (hash, user_id, created_at, expires_ms) VALUES (?1, ?2, ?3, ",
            NOW_MS!(),
            " + ?4)"
        ))
        .bind(hash)
        .bind(s.user_id.to_string())
        .bind(ts(s.created_at))
        .bind(ttl_ms)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn session_user(&self, hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.hash = ?1 AND NOT u.disabled AND s.expires_ms > ",
            NOW_MS!()
        ))
        .bind(hash)
        .fetch_optional(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        row.as_ref().map(user).transpose()
    }

    async fn end_session(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = ?1")
            .bind(hash)
            .execute(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn credits(&self, user: UserId) -> Result<Credits> {
        let (balance, held): (i64, i64) =
            sqlx::query_as("SELECT balance, held FROM credit_accounts WHERE user_id = ?1")
                .bind(user.to_string())
                .fetch_optional(&mut *self.pool.get().await?)
                .await
                .map_err(|e| self.db(e))?
                .ok_or_else(|| CatalogueError::NotFound(format!("user {user}")))?;
        Ok(Credits { balance, held })
    }

    async fn ledger(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM credit_ledger WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        )
        .bind(user.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter().map(ledger_entry).collect()
    }

    async fn grant(&self, g: &Grant, audit: &AuditEntry) -> Result<LedgerEntry> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let kind = g.kind.ledger_kind();
        let entry = add_to_ledger(&mut tx, g.user_id, kind, g.amount, None, g.note.as_deref())
            .await
            .map_err(|e| self.locate(e))?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {}", g.user_id)))?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(entry)
    }

    async fn reserve(
        &self,
        user: UserId,
        generation: GenerationId,
        amount: i64,
    ) -> Result<Reservation> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        // The check and the take are one statement in a write transaction: nothing runs
        // between them, in this process or another.
        let taken: Option<i64> = sqlx::query_scalar(
            "UPDATE credit_accounts SET balance = balance - ?2, held = held + ?2
             WHERE user_id = ?1 AND balance >= ?2 RETURNING balance",
        )
        .bind(user.to_string())
        .bind(amount)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        let Some(balance) = taken else {
            let balance: i64 =
                sqlx::query_scalar("SELECT balance FROM credit_accounts WHERE user_id = ?1")
                    .bind(user.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| self.db(e))?
                    .ok_or_else(|| CatalogueError::NotFound(format!("user {user}")))?;
            return Ok(Reservation::Insufficient { balance });
        };
        sqlx::query(
            "INSERT INTO credit_holds (generation_id, user_id, amount, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(generation.to_string())
        .bind(user.to_string())
        .bind(amount)
        .bind(ts(crate::domain::now_ms()))
        .execute(&mut *tx)
        .await
        .map_err(unique(&format!(
            "generation {generation} already has credits reserved"
        )))?;
        sqlx::query(
            "INSERT INTO credit_ledger (user_id, at, kind, amount, balance_after, generation_id)
             VALUES (?1, ?2, 'usage', ?3, ?4, ?5)",
        )
        .bind(user.to_string())
        .bind(ts(crate::domain::now_ms()))
        .bind(-amount)
        .bind(balance)
        .bind(generation.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(Reservation::Reserved { balance })
    }

    async fn settle(&self, generation: GenerationId, settlement: Settlement) -> Result<bool> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let settled = settle_in(&mut tx, generation, settlement)
            .await
            .map_err(|e| self.locate(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(settled)
    }

    async fn settle_stray_holds(&self, older_than: Duration, limit: u32) -> Result<u64> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let stray: Vec<(String, Option<String>)> = sqlx::query_as(concat!(
            "SELECT h.generation_id, g.status FROM credit_holds h
             LEFT JOIN generations g ON g.id = h.generation_id
             WHERE h.settled_at IS NULL
               AND (g.id IS NULL OR g.status IN ('succeeded', 'failed', 'canceled'))
               AND unixepoch(h.created_at, 'subsec') * 1000 <= ",
            NOW_MS!(),
            " - ?1 LIMIT ?2"
        ))
        .bind(expiry_ms(older_than))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        let mut settled = 0;
        for (generation, status) in stray {
            let id = GenerationId::from_uuid(uuid_of(&generation)?);
            if let Some(settlement) = stray_settlement(status.as_deref())?
                && settle_in(&mut tx, id, settlement)
                    .await
                    .map_err(|e| self.locate(e))?
            {
                settled += 1;
            }
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(settled)
    }

    async fn audit(&self, entry: &AuditEntry) -> Result<()> {
        insert_audit(&mut *self.writer.get().await?, entry)
            .await
            .map_err(|e| self.locate(e))
    }

    async fn audit_log(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE id < ?1 ORDER BY id DESC LIMIT ?2")
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        rows.iter().map(audit_entry).collect()
    }

    async fn begin_request(&self, r: &IdempotentRequest, ttl: Duration) -> Result<Begun> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        sqlx::query(concat!(
            "DELETE FROM idempotency_keys WHERE user_id = ?1 AND key = ?2 AND expires_ms <= ",
            NOW_MS!()
        ))
        .bind(r.user_id.to_string())
        .bind(&r.key)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ",
            NOW_MS!(),
            " + ?5) ON CONFLICT DO NOTHING"
        ))
        .bind(r.user_id.to_string())
        .bind(&r.key)
        .bind(&r.fingerprint)
        .bind(ts(crate::domain::now_ms()))
        .bind(expiry_ms(ttl))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?
        .rows_affected()
            == 1;
        let begun = if inserted {
            Begun::New
        } else {
            let (fingerprint, status, body): (String, Option<i64>, Option<Vec<u8>>) =
                sqlx::query_as(
                    "SELECT fingerprint, status, body FROM idempotency_keys
                     WHERE user_id = ?1 AND key = ?2",
                )
                .bind(r.user_id.to_string())
                .bind(&r.key)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
            stored_record(fingerprint, status, body)?.meet(&r.fingerprint)
        };
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(begun)
    }

    async fn complete_request(
        &self,
        r: &IdempotentRequest,
        response: &StoredResponse,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET status = ?4, body = ?5
             WHERE user_id = ?1 AND key = ?2 AND fingerprint = ?3",
        )
        .bind(r.user_id.to_string())
        .bind(&r.key)
        .bind(&r.fingerprint)
        .bind(i64::from(response.status))
        .bind(&response.body)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!(
                "idempotency key {:?}",
                r.key
            )));
        }
        Ok(())
    }

    async fn abandon_request(&self, r: &IdempotentRequest) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys
             WHERE user_id = ?1 AND key = ?2 AND fingerprint = ?3 AND status IS NULL",
        )
        .bind(r.user_id.to_string())
        .bind(&r.key)
        .bind(&r.fingerprint)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn purge_requests(&self) -> Result<u64> {
        let done = sqlx::query(concat!(
            "DELETE FROM idempotency_keys WHERE expires_ms <= ",
            NOW_MS!()
        ))
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(done.rows_affected())
    }
}
