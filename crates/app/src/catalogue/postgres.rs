//! The catalogue on `PostgreSQL` (Supabase, or any server): several nodes share one database.
//!
//! Every write is a transaction of its own on a pooled connection. A life-cycle step locks its
//! generation's row (`FOR UPDATE`), asks the domain ([`crate::domain::Stage`]) and writes the
//! outcome; writers of events also hold one advisory lock until they commit, so the feed's
//! positions are committed in order (`postgres/writes.rs`). The queue (`postgres/queue.rs`)
//! claims a job and one of its slot's tokens in one statement, with `FOR UPDATE SKIP LOCKED`,
//! on the database's clock. Changes are announced with `NOTIFY` in the transaction that makes them, and heard
//! by every node's listener (`postgres/listen.rs`).
//!
//! While the database is unreachable every call fails with `CatalogueError::Other` (workers
//! back off and try again); the pool opens new connections when it is back, so the process
//! carries on without a restart.

mod conns;
mod directory;
mod listen;
mod queue;
mod rows;
mod transfer;
mod webhooks;
mod writes;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::{
    AccountRecord, Catalogue, CatalogueError, Change, FeedEntry, FeedFilter, GenerationFilter,
    GenerationRecord, ImageFilter, Imported, Inserted, NewJob, Result,
};
use crate::domain::{
    Category, Event, Generation, GenerationId, GenerationStatus, Image, ImageId, ImageStatus,
    MediaKind, Settlement, StepRefused,
};
use listen::Wakers;
use rows::micros;
use writes::{
    insert_events, insert_generation_row, insert_image_row, lock_lineage, lock_stage, next_version,
    write_step,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per process at most, each opened when first needed: the pool's, and the
/// queue's own (`postgres/conns.rs`), besides the listener's one. Enough for a node's workers
/// (a claim or a finish holds one for a round trip), few enough that several nodes fit a
/// hosted database's limit (Supabase's smallest allows 60; a node with four workers uses
/// about ten).
const CONNECTIONS: u32 = 8;
const QUEUE_CONNECTIONS: usize = 8;
/// How long a call waits for a connection before failing (the database may be down).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PgCatalogue {
    pool: PgPool,
    /// The queue's one-statement calls, without the pool's ping.
    queue_conns: conns::Conns,
    wakers: Arc<Wakers>,
    listener: tokio::task::AbortHandle,
}

impl Drop for PgCatalogue {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CatalogueError {
    CatalogueError::Other(e.into())
}

/// A database error. Nothing is `Refused`: a server that does not answer, or refuses a write,
/// may do better later, so workers back off and retry.
fn db(e: sqlx::Error) -> CatalogueError {
    match e {
        sqlx::Error::RowNotFound => CatalogueError::NotFound("row".into()),
        e => other(e),
    }
}

/// Whether a connection error says the database does not exist (`3D000`).
fn no_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000"))
}

/// The URL without its password, for error messages.
fn shown(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

/// Brings the schema up to date, one process at a time: sqlx's `PostgreSQL` migrator holds a
/// session advisory lock (`pg_advisory_lock`, keyed by the database's name) from before it
/// reads what is applied until it has applied the rest (sqlx-postgres 0.9, `migrate.rs`,
/// `lock`/`unlock`; `Migrator::run_direct` takes it). It runs on a connection of its own,
/// closed afterwards: the migrator does not unlock when a migration fails, and a pooled
/// connection would keep the lock.
async fn migrate(options: &PgConnectOptions, create: bool) -> Result<()> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(|e| opening(options, &e))?;
    if !create {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(db)?;
        if !exists {
            return Err(CatalogueError::NotFound(format!(
                "catalogue in {} (it has no Atelier tables yet)",
                shown(options)
            )));
        }
    }
    let ran = MIGRATOR.run(&mut conn).await.map_err(other);
    let _ = conn.close().await;
    ran
}

fn opening(options: &PgConnectOptions, e: &sqlx::Error) -> CatalogueError {
    if no_database(e) {
        return CatalogueError::NotFound(format!("database {}", shown(options)));
    }
    other(format!("cannot connect to {}: {e}", shown(options)))
}

impl PgCatalogue {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`) and migrates it.
    /// With `create` false a database without Atelier's tables is `NotFound`, so read-only
    /// commands never create them.
    pub async fn open(url: &str, create: bool) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| other(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("atelier");
        migrate(&options, create).await?;
        // Connections are not pinged before each use (sqlx's default), which would double the
        // round trips of every one-statement call: a connection that died is found by the
        // call that uses it, which fails like any database error (workers back off and
        // retry), and the pool drops it.
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        let queue_conns = conns::Conns::new(options.clone(), QUEUE_CONNECTIONS);
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        let wakers = Arc::new(Wakers::default());
        let listener = tokio::spawn(listen::run(listener_pool, wakers.clone())).abort_handle();
        Ok(Self {
            pool,
            queue_conns,
            wakers,
            listener,
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(db)
    }
}

#[async_trait]
impl Catalogue for PgCatalogue {
    async fn create_generation(
        &self,
        g: &Generation,
        job: Option<&NewJob>,
        images: &[Image],
    ) -> Result<Generation> {
        let mut tx = self.begin().await?;
        let version = if g.version > 0 {
            i32::try_from(g.version).map_err(other)?
        } else {
            if let Some(subject) = g.subject.as_deref() {
                lock_lineage(&mut tx, g.category, subject).await?;
            }
            next_version(&mut tx, g.category, g.subject.as_deref(), g.parent_id).await?
        };
        let stored = Generation {
            version: u32::try_from(version).map_err(other)?,
            created_at: micros(g.created_at),
            started_at: g.started_at.map(micros),
            completed_at: g.completed_at.map(micros),
            ..g.clone()
        };
        insert_generation_row(&mut tx, &stored).await?;
        if let Some(job) = job {
            queue::insert_job(&mut tx, g.id, job).await?;
        }
        insert_events(&mut tx, &crate::domain::creation_events(&stored)).await?;
        for image in images {
            let image = Image {
                version: stored.version,
                ..image.clone()
            };
            if !insert_image_row(&mut tx, &image).await? {
                return Err(CatalogueError::Conflict(format!(
                    "generation {} has two images in role {}",
                    g.id, image.role
                )));
            }
        }
        tx.commit().await.map_err(db)?;
        self.wakers.events.wake();
        if job.is_some() {
            self.wakers.work.wake();
        }
        Ok(stored)
    }

    async fn generation(&self, id: GenerationId) -> Result<Generation> {
        let row = sqlx::query("SELECT * FROM generations WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("generation {id}")))?;
        rows::generation(&row)
    }

    async fn generations(&self, f: &GenerationFilter) -> Result<Vec<Generation>> {
        let rows = sqlx::query(
            "SELECT * FROM generations
             WHERE ($1::uuid IS NULL OR owner = $1) AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR provider = $3) AND ($4::uuid IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
        )
        .bind(f.owner.map(|o| o.as_uuid()))
        .bind(f.status.map(GenerationStatus::as_str))
        .bind(&f.provider)
        .bind(f.before.map(|g| g.as_uuid()))
        .bind(f.limit.map(i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::generation).collect()
    }

    async fn next_version(
        &self,
        category: Option<Category>,
        subject: Option<&str>,
        parent: Option<GenerationId>,
    ) -> Result<u32> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let v = next_version(&mut conn, category, subject, parent).await?;
        u32::try_from(v).map_err(other)
    }

    async fn advance_all(&self, id: GenerationId, changes: &[Change]) -> Result<Vec<Event>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let (mut stage, now) = lock_stage(&mut tx, id).await?;
        let events = stage.apply_all(changes, now).map_err(|e| match e {
            StepRefused::Ended(..) => CatalogueError::Conflict(e.to_string()),
            StepRefused::EndBeforeLast => other(e),
        })?;
        write_step(&mut tx, &stage, &events).await?;
        // A generation that ended here settles its credits in the same commit.
        if let Some(settlement) = Settlement::on(stage.status) {
            directory::settle_in(&mut tx, id, settlement).await?;
        }
        tx.commit().await.map_err(db)?;
        self.wakers.events.wake();
        Ok(events)
    }

    async fn set_provider_refs(
        &self,
        id: GenerationId,
        refs: &serde_json::Value,
        account: Option<&str>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE generations SET provider_refs = $2, account = COALESCE($3, account)
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(refs)
        .bind(account)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("generation {id}")));
        }
        Ok(())
    }

    async fn insert_image(&self, i: &Image) -> Result<Inserted> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        if insert_image_row(&mut conn, i).await? {
            return Ok(Inserted::New(Image {
                created_at: micros(i.created_at),
                ..i.clone()
            }));
        }
        let row = sqlx::query("SELECT * FROM images WHERE generation_id = $1 AND role = $2")
            .bind(i.generation_id.as_uuid())
            .bind(i.role.to_string())
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        Ok(Inserted::Existing(rows::image(&row)?))
    }

    async fn image(&self, id: ImageId) -> Result<Image> {
        let row = sqlx::query("SELECT * FROM images WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("image {id}")))?;
        rows::image(&row)
    }

    async fn images(&self, f: &ImageFilter) -> Result<Vec<Image>> {
        let rows = sqlx::query(
            "SELECT * FROM images
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR category = $2)
               AND ($3::text IS NULL OR $3 = ANY (tags))
               AND ($4::uuid IS NULL OR generation_id = $4)
               AND ($6::uuid IS NULL OR owner = $6) AND ($7::text IS NULL OR subject = $7)
               AND ($8::text IS NULL
                    OR generation_id IN (SELECT id FROM generations WHERE provider = $8))
               AND ($9::timestamptz IS NULL OR created_at >= $9)
               AND ($10::timestamptz IS NULL OR created_at < $10)
               AND ($11::uuid IS NULL OR id < $11)
               AND ($12::text IS NULL OR generation_id IN
                    (SELECT id FROM generations WHERE prompt ILIKE $12 ESCAPE '\\'))
               AND ($13::text IS NULL OR kind = $13)
             ORDER BY id DESC LIMIT $5",
        )
        .bind(f.status.map(ImageStatus::as_str))
        .bind(f.category.map(Category::as_str))
        .bind(&f.tag)
        .bind(f.generation_id.map(|g| g.as_uuid()))
        .bind(f.limit.map(i64::from))
        .bind(f.owner.map(|o| o.as_uuid()))
        .bind(&f.subject)
        .bind(&f.provider)
        .bind(f.created_from)
        .bind(f.created_until)
        .bind(f.before.map(|i| i.as_uuid()))
        .bind(f.text.as_deref().map(super::contains_pattern))
        .bind(f.kind.map(MediaKind::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::image).collect()
    }

    async fn generation_images(&self, id: GenerationId) -> Result<Vec<Image>> {
        let rows = sqlx::query("SELECT * FROM images WHERE generation_id = $1")
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(rows::image).collect()
    }

    async fn set_image_status(&self, id: ImageId, status: ImageStatus) -> Result<Image> {
        let row = sqlx::query("UPDATE images SET status = $2 WHERE id = $1 RETURNING *")
            .bind(id.as_uuid())
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .pop()
            .ok_or_else(|| CatalogueError::NotFound(format!("image {id}")))?;
        rows::image(&row)
    }

    async fn set_image_marks(
        &self,
        id: ImageId,
        favourite: Option<bool>,
        public: Option<bool>,
    ) -> Result<Image> {
        let row = sqlx::query(
            "UPDATE images SET favourite = COALESCE($2, favourite), public = COALESCE($3, public)
             WHERE id = $1 RETURNING *",
        )
        .bind(id.as_uuid())
        .bind(favourite)
        .bind(public)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .pop()
        .ok_or_else(|| CatalogueError::NotFound(format!("image {id}")))?;
        rows::image(&row)
    }

    async fn set_image_labels(
        &self,
        id: ImageId,
        category: Option<Category>,
        subject: Option<Option<&str>>,
    ) -> Result<Image> {
        let row = sqlx::query(
            "UPDATE images SET category = COALESCE($2, category),
                 subject = CASE WHEN $3 THEN $4 ELSE subject END
             WHERE id = $1 RETURNING *",
        )
        .bind(id.as_uuid())
        .bind(category.map(Category::as_str))
        .bind(subject.is_some())
        .bind(subject.flatten())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .pop()
        .ok_or_else(|| CatalogueError::NotFound(format!("image {id}")))?;
        rows::image(&row)
    }

    async fn delete_image(&self, id: ImageId) -> Result<()> {
        let done = sqlx::query("DELETE FROM images WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("image {id}")));
        }
        Ok(())
    }

    async fn set_public_url(&self, id: ImageId, url: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE images SET public_url = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(url)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("image {id}")));
        }
        Ok(())
    }

    async fn add_tags(&self, id: ImageId, tags: &[String]) -> Result<Image> {
        let mut tx = self.begin().await?;
        let current: Vec<String> =
            sqlx::query_scalar("SELECT tags FROM images WHERE id = $1 FOR UPDATE")
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .ok_or_else(|| CatalogueError::NotFound(format!("image {id}")))?;
        // Checked again here, under the row lock: another node may have tagged the image since
        // the caller looked.
        let all = crate::domain::tags::merged(&current, tags)
            .map_err(|e| CatalogueError::Conflict(e.to_string()))?;
        let row = sqlx::query("UPDATE images SET tags = $2 WHERE id = $1 RETURNING *")
            .bind(id.as_uuid())
            .bind(&all)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows::image(&row)
    }

    async fn events(&self, id: GenerationId, after: u64) -> Result<Vec<Event>> {
        let rows =
            sqlx::query("SELECT * FROM events WHERE generation_id = $1 AND seq > $2 ORDER BY seq")
                .bind(id.as_uuid())
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter().map(rows::event).collect()
    }

    async fn feed(&self, after: i64, f: &FeedFilter, limit: u32) -> Result<Vec<FeedEntry>> {
        let rows = sqlx::query(
            "SELECT e.*, g.owner AS owner FROM events e
             JOIN generations g ON g.id = e.generation_id
             WHERE e.position > $1 AND ($2::uuid IS NULL OR e.generation_id = $2)
               AND ($4::uuid IS NULL OR g.owner = $4)
             ORDER BY e.position LIMIT $3",
        )
        .bind(after)
        .bind(f.generation.map(|g| g.as_uuid()))
        .bind(i64::from(limit))
        .bind(f.owner.map(|o| o.as_uuid()))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(FeedEntry {
                    position: rows::position(row)?,
                    owner: rows::owner_of(row)?,
                    event: rows::event(row)?,
                })
            })
            .collect()
    }

    async fn feed_end(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    fn events_seen(&self) -> u64 {
        self.wakers.events.seen()
    }

    async fn wait_for_events(&self, seen: u64, timeout: Duration) {
        self.wakers.events.wait(seen, timeout).await;
    }

    async fn record_account(&self, r: &AccountRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (provider, account, health, reason, recorded_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (provider, account) DO UPDATE SET health = excluded.health,
                reason = excluded.reason, recorded_at = excluded.recorded_at",
        )
        .bind(&r.provider)
        .bind(&r.account)
        .bind(&r.health)
        .bind(&r.reason)
        .bind(micros(r.at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn account_record(&self, provider: &str, account: &str) -> Result<Option<AccountRecord>> {
        sqlx::query("SELECT * FROM accounts WHERE provider = $1 AND account = $2")
            .bind(provider)
            .bind(account)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::account)
            .transpose()
    }

    async fn export(
        &self,
        after: Option<GenerationId>,
        limit: u32,
    ) -> Result<Vec<GenerationRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        transfer::export(&mut conn, after, limit).await
    }

    async fn import(&self, record: &GenerationRecord) -> Result<Imported> {
        let mut tx = self.begin().await?;
        let imported = transfer::import(&mut tx, record).await?;
        tx.commit().await.map_err(db)?;
        if imported == Imported::New {
            self.wakers.events.wake();
            if record.job.is_some() {
                self.wakers.work.wake();
            }
        }
        Ok(imported)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}
