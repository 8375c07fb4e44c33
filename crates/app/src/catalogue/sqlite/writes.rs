//! Statements shared by several catalogue methods: the next version number, an image row,
//! an event row, a generation's stage read and written back.

use super::rows::{colours_json, ts};
use super::{db, other};
use crate::catalogue::{CatalogueError, Result};
use crate::domain::{Category, Event, Generation, GenerationId, Image, Phase, Stage};

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

/// Writes a generation's row as given, with `version`.
pub(super) async fn insert_generation_row(
    conn: &mut sqlx::SqliteConnection,
    g: &Generation,
    version: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO generations (id, owner, provider, account, kind, parent_id, prompt,
            negative_prompt, parameters, category, subject, version, status, phase, progress,
            error_code, error_message, provider_refs, created_at, started_at, completed_at,
            client_reference)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22)",
    )
    .bind(g.id.to_string())
    .bind(g.owner.map(|o| o.to_string()))
    .bind(&g.provider)
    .bind(&g.account)
    .bind(g.kind.as_str())
    .bind(g.parent_id.map(|p| p.to_string()))
    .bind(&g.prompt)
    .bind(&g.negative_prompt)
    .bind(serde_json::to_string(&g.parameters).map_err(other)?)
    .bind(g.category.map(Category::as_str))
    .bind(&g.subject)
    .bind(version)
    .bind(g.status.as_str())
    .bind(g.phase.map(Phase::as_str))
    .bind(g.progress)
    .bind(g.error.as_ref().map(|e| e.code.as_str()))
    .bind(g.error.as_ref().map(|e| e.message.as_str()))
    .bind(g.provider_refs.to_string())
    .bind(ts(g.created_at))
    .bind(g.started_at.map(ts))
    .bind(g.completed_at.map(ts))
    .bind(&g.client_reference)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Writes an image row; false when its generation already has an image in that role.
pub(super) async fn insert_image_row(conn: &mut sqlx::SqliteConnection, i: &Image) -> Result<bool> {
    sqlx::query(
        "INSERT INTO images (id, generation_id, owner, role, storage_key, public_url,
                thumbnail_key, width, height, format, size_bytes, sha256, dominant_color, palette,
                category, subject, version, status, favourite, public, tags, synthetic, created_at,
                kind, duration_ms, frames, codec)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
             ON CONFLICT (generation_id, role) DO NOTHING",
    )
    .bind(i.id.to_string())
    .bind(i.generation_id.to_string())
    .bind(i.owner.map(|o| o.to_string()))
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
    .bind(i.kind().as_str())
    .bind(
        i.clip
            .as_ref()
            .map(|c| i64::try_from(c.duration_ms))
            .transpose()
            .map_err(other)?,
    )
    .bind(i.clip.as_ref().map(|c| i64::from(c.frames)))
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

/// Writes events as the domain decided them, in one statement.
pub(super) async fn insert_events(
    conn: &mut sqlx::SqliteConnection,
    events: &[Event],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO events (generation_id, seq, kind, status, phase, progress, idx, image_id,
            error_code, error_message, created_at) ",
    );
    q.push_values(events, |mut row, e| {
        row.push_bind(e.generation_id.to_string())
            .push_bind(e.seq as i64)
            .push_bind(e.kind.as_str())
            .push_bind(e.status.as_str())
            .push_bind(e.phase.map(Phase::as_str))
            .push_bind(e.progress)
            .push_bind(e.index.map(i64::from))
            .push_bind(e.image_id.map(|i| i.to_string()))
            .push_bind(e.error.as_ref().map(|f| f.code.as_str()))
            .push_bind(e.error.as_ref().map(|f| f.message.clone()))
            .push_bind(ts(e.at));
    });
    q.build().execute(&mut *conn).await.map_err(db)?;
    Ok(())
}

/// The generation's stage and its last event's number, read inside the caller's write
/// transaction (which holds `SQLite`'s write lock, so nobody moves it meanwhile).
pub(super) async fn read_stage(
    conn: &mut sqlx::SqliteConnection,
    id: GenerationId,
) -> Result<Stage> {
    // Only the stage's columns: the prompt and parameters are not the step's business.
    let row = sqlx::query(
        "SELECT status, phase, progress, error_code, error_message, started_at, completed_at,
            (SELECT COALESCE(MAX(seq), 0) FROM events WHERE generation_id = g.id) AS last_seq
         FROM generations g WHERE g.id = ?1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or_else(|| CatalogueError::NotFound(format!("generation {id}")))?;
    super::rows::stage(id, &row)
}

/// Writes back what a stage holds of its generation.
pub(super) async fn write_stage(conn: &mut sqlx::SqliteConnection, s: &Stage) -> Result<()> {
    sqlx::query(
        "UPDATE generations SET status = ?2, phase = ?3, progress = ?4, error_code = ?5,
            error_message = ?6, started_at = ?7, completed_at = ?8
         WHERE id = ?1",
    )
    .bind(s.id.to_string())
    .bind(s.status.as_str())
    .bind(s.phase.map(Phase::as_str))
    .bind(s.progress)
    .bind(s.error.as_ref().map(|f| f.code.as_str()))
    .bind(s.error.as_ref().map(|f| f.message.as_str()))
    .bind(s.started_at.map(ts))
    .bind(s.completed_at.map(ts))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}
