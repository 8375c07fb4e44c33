//! Statements shared by several catalogue methods: the next version number, an image row,
//! events, a generation's stage locked, read and written back with its step's events.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::rows::{self, colours_json, micros};
use super::{db, other};
use crate::catalogue::{CatalogueError, Result};
use crate::domain::{Category, Event, Generation, GenerationId, Image, Phase, Stage};

/// The key of the advisory lock every writer of events holds until it commits: positions
/// (an identity) are handed out in the order writers take it, so they are also committed in
/// that order and a follower reading the feed past position `p` never misses a later commit
/// below `p`. (Without it two writers could commit 12 before 11, and a follower that read 12
/// would skip 11.)
const FEED_LOCK: i64 = 0x0a7e_11e2_0000_0001;

/// The next version of a generation (see `Catalogue::next_version`). Inside a transaction,
/// the caller holds [`lock_lineage`] first, so two new generations of one subject never take
/// the same number.
pub(super) async fn next_version(
    conn: &mut PgConnection,
    category: Option<Category>,
    subject: Option<&str>,
    parent: Option<GenerationId>,
) -> Result<i32> {
    if let Some(subject) = subject {
        return sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM generations
             WHERE category IS NOT DISTINCT FROM $1 AND subject = $2",
        )
        .bind(category.map(Category::as_str))
        .bind(subject)
        .fetch_one(&mut *conn)
        .await
        .map_err(db);
    }
    match parent {
        Some(parent) => sqlx::query_scalar("SELECT version + 1 FROM generations WHERE id = $1")
            .bind(parent.as_uuid())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("generation {parent}"))),
        None => Ok(1),
    }
}

/// Serialises, until the transaction ends, the writers of new generations of one subject.
pub(super) async fn lock_lineage(
    conn: &mut PgConnection,
    category: Option<Category>,
    subject: &str,
) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('atelier.lineage:' || $1 || ':' || $2))")
        .bind(category.map_or("", Category::as_str))
        .bind(subject)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Writes an image row; false when its generation already has an image in that role.
pub(super) async fn insert_image_row(conn: &mut PgConnection, i: &Image) -> Result<bool> {
    sqlx::query(
        "INSERT INTO images (id, generation_id, owner, role, storage_key, public_url,
                thumbnail_key, width, height, format, size_bytes, sha256, dominant_color, palette,
                category, subject, version, status, favourite, public, tags, synthetic, created_at,
                kind, duration_ms, frames, codec)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
         ON CONFLICT (generation_id, role) DO NOTHING",
    )
    .bind(i.id.as_uuid())
    .bind(i.generation_id.as_uuid())
    .bind(i.owner.map(|o| o.as_uuid()))
    .bind(i.role.to_string())
    .bind(&i.storage_key)
    .bind(&i.public_url)
    .bind(&i.thumbnail_key)
    .bind(i32::try_from(i.width).map_err(other)?)
    .bind(i32::try_from(i.height).map_err(other)?)
    .bind(&i.format)
    .bind(i64::try_from(i.size_bytes).map_err(other)?)
    .bind(&i.sha256)
    .bind(i.dominant.map(crate::domain::Rgb::hex))
    .bind(colours_json(&i.palette))
    .bind(i.category.map(Category::as_str))
    .bind(&i.subject)
    .bind(i32::try_from(i.version).map_err(other)?)
    .bind(i.status.as_str())
    .bind(i.favourite)
    .bind(i.public)
    .bind(&i.tags)
    .bind(i.synthetic)
    .bind(micros(i.created_at))
    .bind(i.kind().as_str())
    .bind(
        i.clip
            .as_ref()
            .map(|c| i64::try_from(c.duration_ms))
            .transpose()
            .map_err(other)?,
    )
    .bind(
        i.clip
            .as_ref()
            .map(|c| i32::try_from(c.frames))
            .transpose()
            .map_err(other)?,
    )
    .bind(i.clip.as_ref().map(|c| c.codec.as_str()))
    .execute(&mut *conn)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            // Not `Conflict`: that means "the generation ended" to the engine.
            other(format!(
                "storage key {} is taken by another image",
                i.storage_key
            ))
        }
        e => db(e),
    })
    .map(|done| done.rows_affected() == 1)
}

/// Writes a generation's row as given: its version and times (whole microseconds) included.
pub(super) async fn insert_generation_row(conn: &mut PgConnection, g: &Generation) -> Result<()> {
    sqlx::query(
        "INSERT INTO generations (id, owner, provider, account, kind, parent_id, prompt,
            negative_prompt, parameters, category, subject, version, status, phase, progress,
            error_code, error_message, provider_refs, created_at, started_at, completed_at,
            client_reference)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
            $18, $19, $20, $21, $22)",
    )
    .bind(g.id.as_uuid())
    .bind(g.owner.map(|o| o.as_uuid()))
    .bind(&g.provider)
    .bind(&g.account)
    .bind(g.kind.as_str())
    .bind(g.parent_id.map(|p| p.as_uuid()))
    .bind(&g.prompt)
    .bind(&g.negative_prompt)
    .bind(serde_json::to_value(&g.parameters).map_err(other)?)
    .bind(g.category.map(Category::as_str))
    .bind(&g.subject)
    .bind(i32::try_from(g.version).map_err(other)?)
    .bind(g.status.as_str())
    .bind(g.phase.map(Phase::as_str))
    .bind(g.progress)
    .bind(g.error.as_ref().map(|e| e.code.as_str()))
    .bind(g.error.as_ref().map(|e| e.message.as_str()))
    .bind(&g.provider_refs)
    .bind(micros(g.created_at))
    .bind(g.started_at.map(micros))
    .bind(g.completed_at.map(micros))
    .bind(&g.client_reference)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// A batch of events as columns, bound as arrays: one statement writes them all.
struct EventColumns<'e> {
    generation: Vec<uuid::Uuid>,
    seq: Vec<i32>,
    kind: Vec<&'e str>,
    status: Vec<&'e str>,
    phase: Vec<Option<&'e str>>,
    progress: Vec<f64>,
    index: Vec<Option<i16>>,
    image: Vec<Option<uuid::Uuid>>,
    code: Vec<Option<&'e str>>,
    message: Vec<Option<&'e str>>,
    at: Vec<OffsetDateTime>,
}

impl<'e> EventColumns<'e> {
    fn of(events: &'e [Event]) -> Result<Self> {
        let mut c = Self {
            generation: Vec::with_capacity(events.len()),
            seq: Vec::with_capacity(events.len()),
            kind: Vec::with_capacity(events.len()),
            status: Vec::with_capacity(events.len()),
            phase: Vec::with_capacity(events.len()),
            progress: Vec::with_capacity(events.len()),
            index: Vec::with_capacity(events.len()),
            image: Vec::with_capacity(events.len()),
            code: Vec::with_capacity(events.len()),
            message: Vec::with_capacity(events.len()),
            at: Vec::with_capacity(events.len()),
        };
        for e in events {
            c.generation.push(e.generation_id.as_uuid());
            c.seq.push(i32::try_from(e.seq).map_err(other)?);
            c.kind.push(e.kind.as_str());
            c.status.push(e.status.as_str());
            c.phase.push(e.phase.map(Phase::as_str));
            c.progress.push(e.progress);
            c.index.push(e.index.map(i16::from));
            c.image.push(e.image_id.map(|i| i.as_uuid()));
            c.code.push(e.error.as_ref().map(|f| f.code.as_str()));
            c.message.push(e.error.as_ref().map(|f| f.message.as_str()));
            c.at.push(micros(e.at));
        }
        Ok(c)
    }

    /// Binds `$1`..`$13` of `events!`.
    fn bind<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        q.bind(FEED_LOCK)
            .bind(super::listen::EVENTS)
            .bind(&self.generation)
            .bind(&self.seq)
            .bind(&self.kind)
            .bind(&self.status)
            .bind(&self.phase)
            .bind(&self.progress)
            .bind(&self.index)
            .bind(&self.image)
            .bind(&self.code)
            .bind(&self.message)
            .bind(&self.at)
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The `WITH` items that write a batch of events (`$1`..`$13`, [`EventColumns::bind`]) in the
/// feed's order (see [`FEED_LOCK`]) and tell every node's followers when the transaction
/// commits. The lock is taken before any row is inserted: every row inserted is joined with
/// it. `new` is the batch.
macro_rules! events {
    () => {
        "feed AS (SELECT pg_advisory_xact_lock($1), pg_notify($2, '')),
         new AS (SELECT * FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[],
                    $8::float8[], $9::smallint[], $10::uuid[], $11::text[], $12::text[],
                    $13::timestamptz[])
                 AS e (generation_id, seq, kind, status, phase, progress, idx, image_id,
                       error_code, error_message, created_at)),
         inserted AS (INSERT INTO events (generation_id, seq, kind, status, phase, progress,
                    idx, image_id, error_code, error_message, created_at)
                 SELECT new.* FROM feed, new)"
    };
}

/// Writes events as the domain decided them, in one statement (see [`events!`]), and keeps
/// their generation's last event number (`last_seq`, read by [`lock_stage`]).
pub(super) async fn insert_events(conn: &mut PgConnection, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let columns = EventColumns::of(events)?;
    columns
        .bind(sqlx::query(concat!(
            "WITH ",
            events!(),
            " UPDATE generations g SET last_seq = GREATEST(g.last_seq, l.seq)
             FROM (SELECT generation_id, MAX(seq) AS seq FROM new GROUP BY generation_id) l
             WHERE g.id = l.generation_id"
        )))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Writes a step: the stage as the domain left it (its last event number included) and its
/// events, in one statement.
pub(super) async fn write_step(conn: &mut PgConnection, s: &Stage, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return write_stage(conn, s).await;
    }
    let columns = EventColumns::of(events)?;
    columns
        .bind(sqlx::query(concat!(
            "WITH ",
            events!(),
            " UPDATE generations SET status = $15, phase = $16, progress = $17,
                error_code = $18, error_message = $19, started_at = $20, completed_at = $21,
                last_seq = $22
             WHERE id = $14"
        )))
        .bind(s.id.as_uuid())
        .bind(s.status.as_str())
        .bind(s.phase.map(Phase::as_str))
        .bind(s.progress)
        .bind(s.error.as_ref().map(|f| f.code.as_str()))
        .bind(s.error.as_ref().map(|f| f.message.as_str()))
        .bind(s.started_at.map(micros))
        .bind(s.completed_at.map(micros))
        .bind(i32::try_from(s.last_seq).map_err(other)?)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Locks the generation's row until the transaction ends and reads its stage, with the
/// database's clock at that moment (the time of the steps about to be applied). The row a
/// lock waited for is read as its holder left it, `last_seq` included.
pub(super) async fn lock_stage(
    conn: &mut PgConnection,
    id: GenerationId,
) -> Result<(Stage, OffsetDateTime)> {
    let row = sqlx::query(
        "SELECT *, statement_timestamp() AS now FROM generations WHERE id = $1 FOR UPDATE",
    )
    .bind(id.as_uuid())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or_else(|| CatalogueError::NotFound(format!("generation {id}")))?;
    let generation = rows::generation(&row)?;
    let now: OffsetDateTime = sqlx::Row::try_get(&row, "now").map_err(other)?;
    let last_seq: i32 = sqlx::Row::try_get(&row, "last_seq").map_err(other)?;
    let last_seq = u64::try_from(last_seq).map_err(other)?;
    Ok((Stage::of(&generation, last_seq), now))
}

/// Writes back what a stage holds of its generation, its last event number included.
async fn write_stage(conn: &mut PgConnection, s: &Stage) -> Result<()> {
    sqlx::query(
        "UPDATE generations SET status = $2, phase = $3, progress = $4, error_code = $5,
            error_message = $6, started_at = $7, completed_at = $8, last_seq = $9
         WHERE id = $1",
    )
    .bind(s.id.as_uuid())
    .bind(s.status.as_str())
    .bind(s.phase.map(Phase::as_str))
    .bind(s.progress)
    .bind(s.error.as_ref().map(|f| f.code.as_str()))
    .bind(s.error.as_ref().map(|f| f.message.as_str()))
    .bind(s.started_at.map(micros))
    .bind(s.completed_at.map(micros))
    .bind(i32::try_from(s.last_seq).map_err(other)?)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}
