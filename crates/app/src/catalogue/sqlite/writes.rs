//! Statements shared by several catalogue methods: the next version number, an image row,
//! an event row, the life-cycle steps.

use time::OffsetDateTime;

use super::rows::{colours_json, ts};
use super::{db, other};
use crate::catalogue::{CatalogueError, Change, Result};
use crate::domain::{Category, Event, GenerationId, Image};

const NEXT_VERSION: &str = "SELECT COALESCE(MAX(version), 0) + 1 FROM generations
     WHERE category IS ?1 AND subject = ?2";

pub(super) async fn next_version(
    conn: &mut sqlx::SqliteConnection,
    category: Option<Category>,
    subject: Option<&str>,
    parent: Option<GenerationId>,
) -> Result<i64> {
    if let Some(subject) = subject {
        return sqlx::query_scalar(NEXT_VERSION)
            .bind(category.map(Category::as_str))
            .bind(subject)
            .fetch_one(&mut *conn)
            .await
            .map_err(db);
    }
    match parent {
        Some(parent) => sqlx::query_scalar("SELECT version + 1 FROM generations WHERE id = ?1")
            .bind(parent.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
            .ok_or_else(|| CatalogueError::NotFound(format!("generation {parent}"))),
        None => Ok(1),
    }
}

/// Writes an image row; false when its generation already has an image in that role.
pub(super) async fn insert_image_row(conn: &mut sqlx::SqliteConnection, i: &Image) -> Result<bool> {
    sqlx::query(
        "INSERT INTO images (id, generation_id, owner, role, storage_key, public_url,
                thumbnail_key, width, height, format, size_bytes, sha256, dominant_color, palette,
                category, subject, version, status, favourite, public, tags, synthetic, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23)
             ON CONFLICT (generation_id, role) DO NOTHING",
    )
    .bind(i.id.to_string())
    .bind(i.generation_id.to_string())
    .bind(&i.owner)
    .bind(i.role.to_string())
    .bind(&i.storage_key)
    .bind(&i.public_url)
    .bind(&i.thumbnail_key)
    .bind(i64::from(i.width))
    .bind(i64::from(i.height))
    .bind(&i.format)
    .bind(i.size_bytes as i64)
    .bind(&i.sha256)
    .bind(i.dominant.map(crate::domain::Rgb::hex))
    .bind(colours_json(&i.palette))
    .bind(i.category.map(Category::as_str))
    .bind(&i.subject)
    .bind(i64::from(i.version))
    .bind(i.status.as_str())
    .bind(i.favourite)
    .bind(i.public)
    .bind(serde_json::to_string(&i.tags).map_err(other)?)
    .bind(i.synthetic)
    .bind(ts(i.created_at))
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

pub(super) async fn insert_event(
    conn: &mut sqlx::SqliteConnection,
    id: GenerationId,
    seq: i64,
    c: &Change,
    at: OffsetDateTime,
) -> Result<Event> {
    let query = sqlx::query(
        "INSERT INTO events (generation_id, seq, kind, status, phase, progress, idx, image_id,
            error_code, error_message, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .bind(id.to_string())
    .bind(seq);
    bind_change(query, c)
        .bind(ts(at))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(Event {
        generation_id: id,
        seq: seq as u64,
        kind: c.kind,
        at,
        status: c.status,
        phase: c.phase,
        progress: c.progress,
        index: c.index,
        image_id: c.image_id,
        error: c.error.clone(),
    })
}

/// How many steps one `advance_all` statement takes at most; its SQL is built once per count.
pub(super) const MAX_STEPS: usize = 8;

/// The statement that appends `n` steps' events (`?1` the generation, `?2` the time, then eight
/// parameters per step), each computed from the generation as stored: the status rules of
/// `GenerationStatus::can_become`, progress only raised, phase kept when unset. The trigger
/// `events_apply_to_generation` writes each back, in order. A terminal generation selects no
/// row, so nothing is written.
///
/// One statement rather than one per step: `SQLite` runs an `INSERT … SELECT` that reads its own
/// table (here, for the next `seq`) from a temporary copy of the selected rows, so every step
/// sees the generation and its events as they were before the statement; the steps are
/// therefore numbered `MAX(seq) + n` and carried forward beforehand (`carried_forward`), which
/// makes each as judged after the ones before it. `n` is 1 to [`MAX_STEPS`].
pub(super) fn advance_sql(n: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| (1..=MAX_STEPS).map(build_advance_sql).collect());
    &all[n.clamp(1, MAX_STEPS) - 1]
}

fn build_advance_sql(n: usize) -> String {
    let steps: Vec<String> = (0..n)
        .map(|i| {
            let p = 3 + i * 8;
            format!(
                "({}, ?{p}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                i + 1,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            )
        })
        .collect();
    format!(
        "INSERT INTO events (generation_id, seq, kind, status, phase, progress, idx, image_id,
            error_code, error_message, created_at)
         SELECT g.id,
            (SELECT COALESCE(MAX(seq), 0) FROM events WHERE generation_id = g.id) + c.column1,
            c.column2,
            CASE WHEN c.column3 IN ('succeeded', 'failed', 'canceled')
                   OR (g.status = 'queued' AND c.column3 IN ('submitted', 'running'))
                   OR (g.status = 'submitted' AND c.column3 = 'running')
                 THEN c.column3 ELSE g.status END,
            COALESCE(c.column4, g.phase), MAX(g.progress, c.column5), c.column6, c.column7,
            c.column8, c.column9, ?2
         FROM generations g, (VALUES {}) AS c
         WHERE g.id = ?1 AND g.status NOT IN ('succeeded', 'failed', 'canceled')
         ORDER BY c.column1
         RETURNING seq, status, phase, progress",
        steps.join(", ")
    )
}

/// The steps as each would be stored after the ones before it: a status never moves back
/// (`can_become` decides), a missing phase is the previous step's, progress is only raised.
pub(super) fn carried_forward(changes: &[Change]) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::with_capacity(changes.len());
    for c in changes {
        let mut c = c.clone();
        if let Some(before) = out.last() {
            if !before.status.can_become(c.status) {
                c.status = before.status;
            }
            c.phase = c.phase.or(before.phase);
            c.progress = c.progress.max(before.progress);
        }
        out.push(c);
    }
    out
}

/// Binds a step's eight values, in the order of the events table's columns from `kind` to
/// `error_message`.
pub(super) fn bind_change<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    c: &'q Change,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    query
        .bind(c.kind.as_str())
        .bind(c.status.as_str())
        .bind(c.phase.map(crate::domain::Phase::as_str))
        .bind(c.progress)
        .bind(c.index.map(i64::from))
        .bind(c.image_id.map(|i| i.to_string()))
        .bind(c.error.as_ref().map(|e| e.code.as_str()))
        .bind(c.error.as_ref().map(|e| e.message.as_str()))
}
