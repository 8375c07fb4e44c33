//! The catalogue on `SQLite` (the embedded default): WAL, one file in the data directory.
//!
//! Write transactions start with `BEGIN IMMEDIATE` so that two processes sharing the file
//! (a CLI `generate` beside `serve`) queue on the busy timeout instead of failing on a lock
//! upgrade. Jobs are claimed with a single `UPDATE … RETURNING`, which `SQLite` runs atomically
//! (`sqlite/queue.rs`, the `Queue` half).

mod conns;
mod directory;
mod point_reads;
mod queue;
mod rows;
mod transfer;
mod webhooks;
mod writes;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use time::OffsetDateTime;

use super::{
    AccountRecord, Catalogue, CatalogueError, Change, FeedEntry, FeedFilter, GenerationFilter,
    GenerationRecord, ImageFilter, Imported, Inserted, NewJob, Refusal, Result, Wakeups,
};
use crate::domain::{
    Category, Event, Generation, GenerationId, GenerationStatus, Image, ImageId, ImageStatus,
    MediaKind, Settlement, StepRefused,
};
use conns::Conns;
use point_reads::PointReads;
use rows::ts;
use writes::{
    insert_events, insert_generation_row, insert_image_row, next_version, read_stage, write_stage,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteCatalogue {
    /// The database file, named in the errors of writes it refuses.
    path: PathBuf,
    /// Reads.
    pool: Conns,
    /// Writes: one connection, so this process's writers queue in order.
    writer: Conns,
    /// The hottest reads by id, on the caller's thread; none for a database in memory, which
    /// another driver's connection could not see.
    points: Option<PointReads>,
    /// Told when this process queues or frees work, or writes events. Other processes on
    /// the file are not heard: their waiters find such changes at their timeout.
    work: Wakeups,
    events: Wakeups,
}

/// Connections the catalogue reads with: a few, since WAL lets readers run beside the writer.
const READERS: usize = 4;

fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CatalogueError {
    CatalogueError::Other(e.into())
}

fn db(e: sqlx::Error) -> CatalogueError {
    match e {
        sqlx::Error::RowNotFound => CatalogueError::NotFound("row".into()),
        sqlx::Error::Database(d) if refuses_writes(d.code().as_deref()) => {
            CatalogueError::Refused(Refusal {
                reason: d.message().to_owned(),
                location: None,
            })
        }
        e => other(e),
    }
}

/// `SQLite`'s result codes for storage that will not take a write until someone acts: a
/// read-only file or file system (`SQLITE_READONLY`, 8), an I/O error (`SQLITE_IOERR`, 10), a
/// full disk (`SQLITE_FULL`, 13). sqlx gives the extended code; its low byte is the primary one.
fn refuses_writes(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 8 | 10 | 13))
}

/// Names the file `path` (and the free space beside it) in a refused write that names no place.
fn locate(path: &Path, e: CatalogueError) -> CatalogueError {
    match e {
        CatalogueError::Refused(Refusal {
            reason,
            location: None,
        }) => {
            let free = free_space(path).map_or_else(
                || "free space unknown".to_owned(),
                |n| format!("{} free on its file system", human_bytes(n)),
            );
            CatalogueError::Refused(Refusal {
                reason,
                location: Some(format!("{} ({free})", path.display())),
            })
        }
        e => e,
    }
}

/// Brings the schema up to date, one process at a time: processes started together on a new
/// data directory would otherwise each create the tables (`SQLite`'s migrator takes no lock).
/// The write lock (`BEGIN IMMEDIATE`, waited for on the busy timeout) is held from before the
/// migrator reads what is applied until the rest is applied; the migrator's own transactions
/// nest as savepoints. A catalogue already up to date is only read, so a read-only file still
/// opens for reading. (On `PostgreSQL` an advisory lock plays the write lock's part.)
async fn migrate(conn: &mut SqliteConnection) -> Result<(), sqlx::migrate::MigrateError> {
    if up_to_date(conn).await {
        return Ok(());
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    MIGRATOR.run(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// `SQLITE_BUSY` (5), whatever its extended code.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

/// Whether exactly this build's migrations are applied, as shipped. Any doubt (no table yet,
/// an error, a migration this build does not know) is a no: the migrator then decides, and
/// reports, under the lock.
async fn up_to_date(conn: &mut SqliteConnection) -> bool {
    let Ok(applied) = sqlx::query_as::<_, (i64, Vec<u8>)>(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return false;
    };
    let applied: std::collections::HashMap<i64, Vec<u8>> = applied.into_iter().collect();
    applied.len() == MIGRATOR.iter().count()
        && MIGRATOR.iter().all(|m| {
            applied
                .get(&m.version)
                .is_some_and(|c| c.as_slice() == &*m.checksum)
        })
}

/// How many bytes a user may still write on the file system holding `path`, if it can be
/// known.
fn free_space(path: &Path) -> Option<u64> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

impl SqliteCatalogue {
    /// Opens (and migrates) the database at `url`. With `create` false a missing file is an
    /// error, so read-only commands never leave an empty catalogue behind.
    pub async fn open(url: &str, create: bool) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(other)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = options.get_filename().to_path_buf();
        let open_err = |e: sqlx::Error| match e {
            sqlx::Error::Database(d) if !create && d.code().as_deref() == Some("14") => {
                CatalogueError::NotFound(format!("catalogue {url}"))
            }
            e => locate(&path, db(e)),
        };
        let writer = Conns::open(&options, 1).await.map_err(open_err)?;
        migrate(&mut *writer.get().await?)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => locate(&path, db(e)),
                e => other(e),
            })?;
        let pool = Conns::open(&options.clone().read_only(true), READERS)
            .await
            .map_err(open_err)?;
        Ok(Self::with(url, path, pool, writer))
    }

    /// Opens the database at `url` to read it only: every connection is read-only, nothing
    /// is migrated (a catalogue at another schema is refused, saying so), and the file's bytes
    /// stay as they are, since a read-only connection never checkpoints the WAL into it.
    pub async fn open_read_only(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(other)?
            .create_if_missing(false)
            .read_only(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = options.get_filename().to_path_buf();
        if !path.is_file() {
            return Err(CatalogueError::NotFound(format!("catalogue {url}")));
        }
        let writer = Conns::open(&options, 1).await.map_err(db)?;
        if !up_to_date(&mut *writer.get().await?).await {
            return Err(other(format!(
                "the catalogue {} is not at this version's schema: run any atelier command on \
                 it once (e.g. `atelier image list`) to bring it up to date",
                path.display()
            )));
        }
        let pool = Conns::open(&options, READERS).await.map_err(db)?;
        Ok(Self::with(url, path, pool, writer))
    }

    /// The catalogue `url` names, at `path`.
    fn with(url: &str, path: PathBuf, pool: Conns, writer: Conns) -> Self {
        Self {
            points: (!super::in_memory(url) && path.is_file())
                .then(|| PointReads::new(path.clone())),
            path,
            pool,
            writer,
            work: Wakeups::default(),
            events: Wakeups::default(),
        }
    }

    /// `read` among the point reads, if this catalogue has them; `None` to take the ordinary
    /// path. The task yields first, so that the runtime's parked threads are told of work: a
    /// read held inside `SQLite` then holds only its own thread, and another goes on polling
    /// the sockets. (Without it, a task woken by I/O runs in its thread's unstealable slot
    /// and no parked thread is woken, so one read held for seconds stalled every connection.)
    async fn point_read<T>(
        &self,
        read: impl FnOnce(&PointReads) -> Option<Result<T>>,
    ) -> Option<Result<T>> {
        let points = self.points.as_ref()?;
        tokio::task::yield_now().await;
        read(points)
    }

    /// A database error, a refused write naming this catalogue's file and its free space.
    fn db(&self, e: sqlx::Error) -> CatalogueError {
        locate(&self.path, db(e))
    }

    /// Names this catalogue's file (and the free space beside it) in a refused write.
    fn locate(&self, e: CatalogueError) -> CatalogueError {
        locate(&self.path, e)
    }

    /// The one row `sql` selects by `id`, or `NotFound` naming `what`.
    async fn row_by_id(
        &self,
        sql: &'static str,
        id: &str,
        what: &str,
    ) -> Result<sqlx::sqlite::SqliteRow> {
        sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| CatalogueError::NotFound(format!("{what} {id}")))
    }

    /// A write transaction on the writer connection `conn` (from `self.writer`).
    async fn write_tx<'c>(
        &self,
        conn: &'c mut SqliteConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Sqlite>> {
        conn.begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.db(e))
    }
}

#[async_trait]
impl Catalogue for SqliteCatalogue {
    async fn create_generation(
        &self,
        g: &Generation,
        job: Option<&NewJob>,
        images: &[Image],
    ) -> Result<Generation> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let version = if g.version > 0 {
            i64::from(g.version)
        } else {
            next_version(&mut tx, g.category, g.subject.as_deref(), g.parent_id)
                .await
                .map_err(|e| self.locate(e))?
        };
        insert_generation_row(&mut tx, g, version)
            .await
            .map_err(|e| self.locate(e))?;
        if let Some(job) = job {
            sqlx::query(concat!(
                "INSERT INTO jobs (id, generation_id, kind, slot, concurrency, max_attempts,
                    run_at, created_at, updated_at)
                 SELECT ?1, ?2, 'generate', ?3, ?4, ?5, now + ?6, now, now FROM (SELECT ",
                queue::NOW_MS!(),
                " AS now)"
            ))
            .bind(job.id.to_string())
            .bind(g.id.to_string())
            .bind(&job.slot)
            .bind(i64::from(job.concurrency.max(1)))
            .bind(i64::from(job.max_attempts.max(1)))
            .bind(job.delay_ms.max(0))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        }
        insert_events(&mut tx, &crate::domain::creation_events(g))
            .await
            .map_err(|e| self.locate(e))?;
        for image in images {
            let image = Image {
                version: version as u32,
                ..image.clone()
            };
            if !insert_image_row(&mut tx, &image)
                .await
                .map_err(|e| self.locate(e))?
            {
                return Err(CatalogueError::Conflict(format!(
                    "generation {} has two images in role {}",
                    g.id, image.role
                )));
            }
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        self.events.wake();
        if job.is_some() {
            self.work.wake();
        }
        Ok(Generation {
            version: version as u32,
            ..g.clone()
        })
    }

    async fn generation(&self, id: GenerationId) -> Result<Generation> {
        if let Some(read) = self.point_read(|p| p.generation(id)).await {
            return read;
        }
        let row = self
            .row_by_id(
                "SELECT * FROM generations WHERE id = ?1",
                &id.to_string(),
                "generation",
            )
            .await?;
        rows::generation(&row)
    }

    async fn generations(&self, f: &GenerationFilter) -> Result<Vec<Generation>> {
        let rows = sqlx::query(
            "SELECT * FROM generations
             WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR provider = ?3) AND (?4 IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(f.owner.map(|o| o.to_string()))
        .bind(f.status.map(GenerationStatus::as_str))
        .bind(&f.provider)
        .bind(f.before.map(|g| g.to_string()))
        .bind(f.limit.map_or(-1, i64::from))
        .fetch_all(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter().map(rows::generation).collect()
    }

    async fn next_version(
        &self,
        category: Option<Category>,
        subject: Option<&str>,
        parent: Option<GenerationId>,
    ) -> Result<u32> {
        let mut conn = self.pool.get().await?;
        Ok(next_version(&mut conn, category, subject, parent).await? as u32)
    }

    async fn advance_all(&self, id: GenerationId, changes: &[Change]) -> Result<Vec<Event>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let mut stage = read_stage(&mut tx, id).await.map_err(|e| self.locate(e))?;
        let events = stage
            .apply_all(changes, OffsetDateTime::now_utc())
            .map_err(|e| match e {
                StepRefused::Ended(..) => CatalogueError::Conflict(e.to_string()),
                StepRefused::EndBeforeLast => other(e),
            })?;
        insert_events(&mut tx, &events)
            .await
            .map_err(|e| self.locate(e))?;
        write_stage(&mut tx, &stage)
            .await
            .map_err(|e| self.locate(e))?;
        // A generation that ended here settles its credits in the same commit.
        if let Some(settlement) = Settlement::on(stage.status) {
            directory::settle_in(&mut tx, id, settlement)
                .await
                .map_err(|e| self.locate(e))?;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        self.events.wake();
        Ok(events)
    }

    async fn set_provider_refs(
        &self,
        id: GenerationId,
        refs: &serde_json::Value,
        account: Option<&str>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE generations SET provider_refs = ?2, account = COALESCE(?3, account)
             WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(refs.to_string())
        .bind(account)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("generation {id}")));
        }
        Ok(())
    }

    async fn insert_image(&self, i: &Image) -> Result<Inserted> {
        let mut conn = self.writer.get().await?;
        if insert_image_row(&mut conn, i)
            .await
            .map_err(|e| self.locate(e))?
        {
            return Ok(Inserted::New(i.clone()));
        }
        let row = sqlx::query("SELECT * FROM images WHERE generation_id = ?1 AND role = ?2")
            .bind(i.generation_id.to_string())
            .bind(i.role.to_string())
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        Ok(Inserted::Existing(rows::image(&row)?))
    }

    async fn image(&self, id: ImageId) -> Result<Image> {
        if let Some(read) = self.point_read(|p| p.image(id)).await {
            return read;
        }
        let row = self
            .row_by_id(
                "SELECT * FROM images WHERE id = ?1",
                &id.to_string(),
                "image",
            )
            .await?;
        rows::image(&row)
    }

    async fn images(&self, f: &ImageFilter) -> Result<Vec<Image>> {
        let rows = sqlx::query(
            "SELECT * FROM images
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR category = ?2)
               AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(images.tags) WHERE value = ?3))
               AND (?4 IS NULL OR generation_id = ?4)
               AND (?6 IS NULL OR owner = ?6) AND (?7 IS NULL OR subject = ?7)
               AND (?8 IS NULL OR generation_id IN (SELECT id FROM generations WHERE provider = ?8))
               AND (?9 IS NULL OR unixepoch(created_at, 'subsec') >= ?9)
               AND (?10 IS NULL OR unixepoch(created_at, 'subsec') < ?10)
               AND (?11 IS NULL OR id < ?11)
               AND (?12 IS NULL OR generation_id IN
                    (SELECT id FROM generations WHERE prompt LIKE ?12 ESCAPE '\\'))
               AND (?13 IS NULL OR kind = ?13)
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(f.status.map(ImageStatus::as_str))
        .bind(f.category.map(Category::as_str))
        .bind(&f.tag)
        .bind(f.generation_id.map(|g| g.to_string()))
        .bind(f.limit.map_or(-1, i64::from))
        .bind(f.owner.map(|o| o.to_string()))
        .bind(&f.subject)
        .bind(&f.provider)
        .bind(f.created_from.map(unix_secs))
        .bind(f.created_until.map(unix_secs))
        .bind(f.before.map(|i| i.to_string()))
        .bind(f.text.as_deref().map(super::contains_pattern))
        .bind(f.kind.map(MediaKind::as_str))
        .fetch_all(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter().map(rows::image).collect()
    }

    async fn generation_images(&self, id: GenerationId) -> Result<Vec<Image>> {
        let rows = sqlx::query("SELECT * FROM images WHERE generation_id = ?1")
            .bind(id.to_string())
            .fetch_all(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        rows.iter().map(rows::image).collect()
    }

    async fn generation_with_images(&self, id: GenerationId) -> Result<(Generation, Vec<Image>)> {
        // When the point read cannot answer: both statements in one call, one hand-off to the
        // connection's thread (on a status read the hand-offs, not the statements, were most
        // of the cost). Prepared once and kept, like every statement here. (Several
        // statements in one prepared query is the SQLite driver's alone; the conformance
        // suite reads both ways and compares.)
        const BOTH: &str = "SELECT * FROM generations WHERE id = ?1;
                            SELECT * FROM images WHERE generation_id = ?1";
        if let Some(read) = self.point_read(|p| p.generation_with_images(id)).await {
            return read;
        }
        let mut conn = self.pool.get().await?;
        let query = sqlx::query(BOTH).bind(id.to_string());
        let mut steps = sqlx::Executor::fetch_many(&mut *conn, query);
        let (mut generation, mut images, mut statement) = (None, Vec::new(), 0);
        while let Some(step) = steps.try_next().await.map_err(|e| self.db(e))? {
            match step {
                sqlx::Either::Left(_) => statement += 1,
                sqlx::Either::Right(row) if statement == 0 => {
                    generation = Some(rows::generation(&row)?);
                }
                sqlx::Either::Right(row) => images.push(rows::image(&row)?),
            }
        }
        let generation =
            generation.ok_or_else(|| CatalogueError::NotFound(format!("generation {id}")))?;
        Ok((generation, images))
    }

    async fn set_image_status(&self, id: ImageId, status: ImageStatus) -> Result<Image> {
        let done = sqlx::query("UPDATE images SET status = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(status.as_str())
            .execute(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("image {id}")));
        }
        self.image(id).await
    }

    async fn set_image_marks(
        &self,
        id: ImageId,
        favourite: Option<bool>,
        public: Option<bool>,
    ) -> Result<Image> {
        let done = sqlx::query(
            "UPDATE images SET favourite = COALESCE(?2, favourite), public = COALESCE(?3, public)
             WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(favourite)
        .bind(public)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("image {id}")));
        }
        self.image(id).await
    }

    async fn set_image_labels(
        &self,
        id: ImageId,
        category: Option<Category>,
        subject: Option<Option<&str>>,
    ) -> Result<Image> {
        let done = sqlx::query(
            "UPDATE images SET category = COALESCE(?2, category),
                 subject = CASE WHEN ?3 THEN ?4 ELSE subject END
             WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(category.map(Category::as_str))
        .bind(subject.is_some())
        .bind(subject.flatten())
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("image {id}")));
        }
        self.image(id).await
    }

    async fn delete_image(&self, id: ImageId) -> Result<()> {
        let done = sqlx::query("DELETE FROM images WHERE id = ?1")
            .bind(id.to_string())
            .execute(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("image {id}")));
        }
        Ok(())
    }

    async fn set_public_url(&self, id: ImageId, url: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE images SET public_url = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(url)
            .execute(&mut *self.writer.get().await?)
            .await
            .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(CatalogueError::NotFound(format!("image {id}")));
        }
        Ok(())
    }

    async fn add_tags(&self, id: ImageId, tags: &[String]) -> Result<Image> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let current: String = sqlx::query_scalar("SELECT tags FROM images WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| CatalogueError::NotFound(format!("image {id}")))?;
        let current: Vec<String> =
            serde_json::from_str(&current).map_err(|_| rows::corrupt("tags", &current))?;
        // Checked again here, in the transaction: another process may have tagged the image
        // since the caller looked.
        let all = crate::domain::tags::merged(&current, tags)
            .map_err(|e| CatalogueError::Conflict(e.to_string()))?;
        sqlx::query("UPDATE images SET tags = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(serde_json::to_string(&all).map_err(other)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        self.image(id).await
    }

    async fn events(&self, id: GenerationId, after: u64) -> Result<Vec<Event>> {
        let rows =
            sqlx::query("SELECT * FROM events WHERE generation_id = ?1 AND seq > ?2 ORDER BY seq")
                .bind(id.to_string())
                .bind(after as i64)
                .fetch_all(&mut *self.pool.get().await?)
                .await
                .map_err(|e| self.db(e))?;
        rows.iter().map(rows::event).collect()
    }

    async fn feed(&self, after: i64, f: &FeedFilter, limit: u32) -> Result<Vec<FeedEntry>> {
        // An event's rowid is its feed position: rows are appended and never deleted alone.
        let rows = sqlx::query(
            "SELECT e.rowid AS position, e.*, g.owner AS owner FROM events e
             JOIN generations g ON g.id = e.generation_id
             WHERE e.rowid > ?1 AND (?2 IS NULL OR e.generation_id = ?2)
               AND (?4 IS NULL OR g.owner = ?4)
             ORDER BY e.rowid LIMIT ?3",
        )
        .bind(after)
        .bind(f.generation.map(|g| g.to_string()))
        .bind(i64::from(limit))
        .bind(f.owner.map(|o| o.to_string()))
        .fetch_all(&mut *self.pool.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|row| {
                Ok(FeedEntry {
                    position: row.try_get("position").map_err(other)?,
                    owner: rows::owner_of(row)?,
                    event: rows::event(row)?,
                })
            })
            .collect()
    }

    async fn feed_end(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM events")
            .fetch_one(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))
    }

    fn events_seen(&self) -> u64 {
        self.events.seen()
    }

    async fn wait_for_events(&self, seen: u64, timeout: Duration) {
        self.events.wait(seen, timeout).await;
    }

    async fn record_account(&self, r: &AccountRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (provider, account, health, reason, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (provider, account) DO UPDATE SET health = excluded.health,
                reason = excluded.reason, recorded_at = excluded.recorded_at",
        )
        .bind(&r.provider)
        .bind(&r.account)
        .bind(&r.health)
        .bind(&r.reason)
        .bind(ts(r.at))
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    async fn account_record(&self, provider: &str, account: &str) -> Result<Option<AccountRecord>> {
        sqlx::query("SELECT * FROM accounts WHERE provider = ?1 AND account = ?2")
            .bind(provider)
            .bind(account)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))?
            .as_ref()
            .map(rows::account)
            .transpose()
    }

    async fn export(
        &self,
        after: Option<GenerationId>,
        limit: u32,
    ) -> Result<Vec<GenerationRecord>> {
        let mut conn = self.pool.get().await?;
        transfer::export(&mut conn, after, limit)
            .await
            .map_err(|e| self.locate(e))
    }

    async fn import(&self, record: &GenerationRecord) -> Result<Imported> {
        let mut conn = self.writer.get().await?;
        let mut tx = self.write_tx(&mut conn).await?;
        let imported = transfer::import(&mut tx, record)
            .await
            .map_err(|e| self.locate(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        if imported == Imported::New {
            self.events.wake();
            if record.job.as_ref().is_some_and(|j| !j.status.is_terminal()) {
                self.work.wake();
            }
        }
        Ok(imported)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(|e| self.db(e))
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.writer.get().await?)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }
}

/// A time as Unix seconds with a fraction, as `SQLite`'s `unixepoch(…, 'subsec')` reads stored
/// RFC 3339 texts (compared as numbers: texts with fractions of different lengths do not sort).
fn unix_secs(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}
