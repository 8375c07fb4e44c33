//! The `Directory` half of the `PostgreSQL` catalogue: users, keys, sessions, credits, the
//! audit log and idempotent requests (migration 0004), in native types. A reservation is one
//! conditional `UPDATE … WHERE balance >= amount`: concurrent ones queue on the row's lock and
//! each sees the balance the one before left, so several nodes never take it below zero.
//! Expiry is the database's clock (`now()`).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::rows::corrupt;
use super::{PgCatalogue, db};
use crate::catalogue::directory::{Directory, stored_record, stray_settlement};
use crate::catalogue::{CatalogueError, Result};
use crate::domain::{
    ApiKey, ApiKeyId, AuditAction, AuditEntry, Begun, Credits, Email, GenerationId, Grant,
    IdempotentRequest, LedgerEntry, LedgerKind, Reservation, Session, Settlement, StoredResponse,
    User, UserId, UserRole,
};

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col)
        .map_err(|e| CatalogueError::Other(e.into()))
}

fn role_of(row: &PgRow) -> Result<UserRole> {
    let role: String = get(row, "role")?;
    UserRole::parse(&role).map_err(|_| corrupt("role", &role))
}

fn user(row: &PgRow) -> Result<User> {
    Ok(User {
        id: UserId::from_uuid(get(row, "id")?),
        email: Email::stored(get(row, "email")?),
        role: role_of(row)?,
        created_at: get(row, "created_at")?,
        disabled: get(row, "disabled")?,
    })
}

fn key(row: &PgRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(get(row, "id")?),
        user_id: UserId::from_uuid(get(row, "user_id")?),
        prefix: get(row, "prefix")?,
        name: get(row, "name")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

fn ledger_entry(row: &PgRow) -> Result<LedgerEntry> {
    let kind: String = get(row, "kind")?;
    Ok(LedgerEntry {
        id: get(row, "id")?,
        user_id: UserId::from_uuid(get(row, "user_id")?),
        at: get(row, "at")?,
        kind: LedgerKind::parse(&kind).ok_or_else(|| corrupt("ledger kind", &kind))?,
        amount: get(row, "amount")?,
        balance_after: get(row, "balance_after")?,
        generation_id: get::<Option<uuid::Uuid>>(row, "generation_id")?
            .map(GenerationId::from_uuid),
        note: get(row, "note")?,
    })
}

fn audit_entry(row: &PgRow) -> Result<AuditEntry> {
    let action: String = get(row, "action")?;
    Ok(AuditEntry {
        id: get(row, "id")?,
        at: get(row, "at")?,
        actor: get::<Option<uuid::Uuid>>(row, "actor_id")?.map(UserId::from_uuid),
        action: AuditAction::parse(&action).ok_or_else(|| corrupt("audit action", &action))?,
        target: get(row, "target")?,
        details: get(row, "details")?,
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

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

async fn insert_audit(conn: &mut PgConnection, e: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, action, target, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(e.at)
    .bind(e.actor.map(|a| a.as_uuid()))
    .bind(e.action.as_str())
    .bind(&e.target)
    .bind(&e.details)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Adds `amount` (signed) to a user's balance and writes its ledger entry; `None` when the
/// user has no credit account, `Conflict` when the balance would leave its bounds.
async fn add_to_ledger(
    conn: &mut PgConnection,
    user: UserId,
    kind: LedgerKind,
    amount: i64,
    generation: Option<GenerationId>,
    note: Option<&str>,
) -> Result<Option<LedgerEntry>> {
    let balance: Option<i64> = sqlx::query_scalar(
        "UPDATE credit_accounts SET balance = balance + $2 WHERE user_id = $1 RETURNING balance",
    )
    .bind(user.as_uuid())
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
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
    )
    .bind(user.as_uuid())
    .bind(crate::domain::now_ms())
    .bind(kind.as_str())
    .bind(amount)
    .bind(balance)
    .bind(generation.map(|g| g.as_uuid()))
    .bind(note)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    ledger_entry(&row).map(Some)
}

/// Settles a generation's open hold, inside the caller's transaction: the catalogue's terminal
/// step calls it, so a generation's end and its credits are one commit. False when there is
/// no open hold. The hold's row is locked by the `UPDATE`, so two settlements never both win.
pub(super) async fn settle_in(
    conn: &mut PgConnection,
    generation: GenerationId,
    settlement: Settlement,
) -> Result<bool> {
    let hold: Option<(uuid::Uuid, i64)> = sqlx::query_as(
        "UPDATE credit_holds SET settled_at = now(), settlement = $2
         WHERE generation_id = $1 AND settled_at IS NULL RETURNING user_id, amount",
    )
    .bind(generation.as_uuid())
    .bind(settlement.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some((user, amount)) = hold else {
        return Ok(false);
    };
    sqlx::query("UPDATE credit_accounts SET held = held - $2 WHERE user_id = $1")
        .bind(user)
        .bind(amount)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if settlement == Settlement::Refunded {
        let user = UserId::from_uuid(user);
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

impl PgCatalogue {
    async fn update_user<T>(&self, id: UserId, sql: &'static str, value: T) -> Result<User>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
    {
        let row = sqlx::query(sql)
            .bind(id.as_uuid())
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {id}")))?;
        user(&row)
    }
}

#[async_trait]
impl Directory for PgCatalogue {
    async fn add_user(
        &self,
        u: &User,
        password_hash: Option<&str>,
        initial: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, email, role, disabled, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(u.id.as_uuid())
        .bind(u.email.as_str())
        .bind(u.role.as_str())
        .bind(u.disabled)
        .bind(password_hash)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await
        .map_err(unique(&format!(
            "a user with email {} already exists",
            u.email
        )))?;
        sqlx::query("INSERT INTO credit_accounts (user_id, balance) VALUES ($1, 0)")
            .bind(u.id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if initial > 0 {
            let note = Some("initial credits");
            add_to_ledger(&mut tx, u.id, LedgerKind::Bonus, initial, None, note).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn user(&self, id: UserId) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {id}")))?;
        user(&row)
    }

    async fn user_by_email(&self, email: &Email) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE lower(email) = lower($1)")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {email}")))?;
        user(&row)
    }

    async fn users(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // Ids are UUIDv7: their order is their creation's.
        let rows = sqlx::query(
            "SELECT * FROM users WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.map(|a| a.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(user).collect()
    }

    async fn set_role(&self, id: UserId, role: UserRole) -> Result<User> {
        self.update_user(
            id,
            "UPDATE users SET role = $2 WHERE id = $1 RETURNING *",
            role.as_str(),
        )
        .await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<User> {
        self.update_user(
            id,
            "UPDATE users SET disabled = $2 WHERE id = $1 RETURNING *",
            disabled,
        )
        .await
    }

    async fn set_password_hash(&self, id: UserId, hash: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("user {id}")));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        sqlx::query_scalar::<_, Option<String>>("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {id}")))
    }

    async fn add_key(&self, k: &ApiKey, hash: &str, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, hash, prefix, name, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(k.id.as_uuid())
        .bind(k.user_id.as_uuid())
        .bind(hash)
        .bind(&k.prefix)
        .bind(&k.name)
        .bind(k.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
                CatalogueError::NotFound(format!("user {}", k.user_id))
            }
            e => unique("that key exists already")(e),
        })?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, User)>> {
        let row = sqlx::query(
            "SELECT k.*, u.email, u.role, u.disabled, u.created_at AS user_created_at
             FROM api_keys k JOIN users u ON u.id = k.user_id
             WHERE k.hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let k = key(&row)?;
        let u = User {
            id: k.user_id,
            email: Email::stored(get(&row, "email")?),
            role: role_of(&row)?,
            created_at: get(&row, "user_created_at")?,
            disabled: get(&row, "disabled")?,
        };
        Ok(Some((k, u)))
    }

    async fn keys(&self, user: UserId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE user_id = $1 ORDER BY created_at, id")
            .bind(user.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(key).collect()
    }

    async fn key(&self, id: ApiKeyId) -> Result<ApiKey> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("key {id}")))?;
        key(&row)
    }

    async fn revoke_key(&self, id: ApiKeyId) -> Result<ApiKey> {
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *",
        )
        .bind(id.as_uuid())
        .bind(crate::domain::now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or_else(|| CatalogueError::NotFound(format!("key {id}")))?;
        key(&row)
    }

    async fn touch_key(&self, id: ApiKeyId) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(crate::domain::now_ms())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn add_session(&self, s: &Session, hash: &str) -> Result<()> {
        let ttl_ms = ((s.expires_at - s.created_at).whole_milliseconds()).max(0) as i64;
        sqlx::query(
            "INSERT INTO sessions (hash, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')",
        )
        .bind(hash)
        .bind(s.user_id.as_uuid())
        .bind(s.created_at)
        .bind(ttl_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn session_user(&self, hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.* FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.hash = $1 AND NOT u.disabled AND s.expires_at > now()",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(user).transpose()
    }

    async fn end_session(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn credits(&self, user: UserId) -> Result<Credits> {
        let (balance, held): (i64, i64) =
            sqlx::query_as("SELECT balance, held FROM credit_accounts WHERE user_id = $1")
                .bind(user.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?
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
            "SELECT * FROM credit_ledger WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(user.as_uuid())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(ledger_entry).collect()
    }

    async fn grant(&self, g: &Grant, audit: &AuditEntry) -> Result<LedgerEntry> {
        let mut tx = self.begin().await?;
        let kind = g.kind.ledger_kind();
        let entry = add_to_ledger(&mut tx, g.user_id, kind, g.amount, None, g.note.as_deref())
            .await?
            .ok_or_else(|| CatalogueError::NotFound(format!("user {}", g.user_id)))?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(entry)
    }

    async fn reserve(
        &self,
        user: UserId,
        generation: GenerationId,
        amount: i64,
    ) -> Result<Reservation> {
        let mut tx = self.begin().await?;
        // Under READ COMMITTED a concurrent reservation waits for this row's lock, then
        // checks its condition again against the balance this one left.
        let taken: Option<i64> = sqlx::query_scalar(
            "UPDATE credit_accounts SET balance = balance - $2, held = held + $2
             WHERE user_id = $1 AND balance >= $2 RETURNING balance",
        )
        .bind(user.as_uuid())
        .bind(amount)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(balance) = taken else {
            let balance: i64 =
                sqlx::query_scalar("SELECT balance FROM credit_accounts WHERE user_id = $1")
                    .bind(user.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| CatalogueError::NotFound(format!("user {user}")))?;
            return Ok(Reservation::Insufficient { balance });
        };
        sqlx::query(
            "INSERT INTO credit_holds (generation_id, user_id, amount, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(generation.as_uuid())
        .bind(user.as_uuid())
        .bind(amount)
        .bind(crate::domain::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(unique(&format!(
            "generation {generation} already has credits reserved"
        )))?;
        sqlx::query(
            "INSERT INTO credit_ledger (user_id, at, kind, amount, balance_after, generation_id)
             VALUES ($1, $2, 'usage', $3, $4, $5)",
        )
        .bind(user.as_uuid())
        .bind(crate::domain::now_ms())
        .bind(-amount)
        .bind(balance)
        .bind(generation.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Reservation::Reserved { balance })
    }

    async fn settle(&self, generation: GenerationId, settlement: Settlement) -> Result<bool> {
        let mut tx = self.begin().await?;
        let settled = settle_in(&mut tx, generation, settlement).await?;
        tx.commit().await.map_err(db)?;
        Ok(settled)
    }

    async fn settle_stray_holds(&self, older_than: Duration, limit: u32) -> Result<u64> {
        let mut tx = self.begin().await?;
        // Locked, skipping holds another node is settling: each is settled once.
        let stray: Vec<(uuid::Uuid, Option<String>)> = sqlx::query_as(
            "SELECT h.generation_id, g.status FROM credit_holds h
             LEFT JOIN generations g ON g.id = h.generation_id
             WHERE h.settled_at IS NULL
               AND (g.id IS NULL OR g.status IN ('succeeded', 'failed', 'canceled'))
               AND h.created_at <= now() - $1 * interval '1 millisecond'
             LIMIT $2 FOR UPDATE OF h SKIP LOCKED",
        )
        .bind(millis(older_than))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut settled = 0;
        for (generation, status) in stray {
            let id = GenerationId::from_uuid(generation);
            if let Some(settlement) = stray_settlement(status.as_deref())?
                && settle_in(&mut tx, id, settlement).await?
            {
                settled += 1;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(settled)
    }

    async fn audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        insert_audit(&mut conn, entry).await
    }

    async fn audit_log(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2")
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(audit_entry).collect()
    }

    async fn begin_request(&self, r: &IdempotentRequest, ttl: Duration) -> Result<Begun> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND expires_at <= now()",
        )
        .bind(r.user_id.as_uuid())
        .bind(&r.key)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // A concurrent first request with the same key makes this insert wait for its
        // commit, then do nothing: the select below then reads its row.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at, expires_at)
             VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')
             ON CONFLICT DO NOTHING",
        )
        .bind(r.user_id.as_uuid())
        .bind(&r.key)
        .bind(&r.fingerprint)
        .bind(crate::domain::now_ms())
        .bind(millis(ttl))
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        let begun = if inserted {
            Begun::New
        } else {
            let (fingerprint, status, body): (String, Option<i32>, Option<Vec<u8>>) =
                sqlx::query_as(
                    "SELECT fingerprint, status, body FROM idempotency_keys
                     WHERE user_id = $1 AND key = $2",
                )
                .bind(r.user_id.as_uuid())
                .bind(&r.key)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            stored_record(fingerprint, status.map(i64::from), body)?.meet(&r.fingerprint)
        };
        tx.commit().await.map_err(db)?;
        Ok(begun)
    }

    async fn complete_request(
        &self,
        r: &IdempotentRequest,
        response: &StoredResponse,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET status = $4, body = $5
             WHERE user_id = $1 AND key = $2 AND fingerprint = $3",
        )
        .bind(r.user_id.as_uuid())
        .bind(&r.key)
        .bind(&r.fingerprint)
        .bind(i32::from(response.status))
        .bind(&response.body)
        .execute(&self.pool)
        .await
        .map_err(db)?;
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
             WHERE user_id = $1 AND key = $2 AND fingerprint = $3 AND status IS NULL",
        )
        .bind(r.user_id.as_uuid())
        .bind(&r.key)
        .bind(&r.fingerprint)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn purge_requests(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= now()")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
