//! Whole generations out of and into `SQLite` as they are stored (`Catalogue::export` and
//! `import`): what moving a deployment to another database copies.

use sqlx::SqliteConnection;

use super::queue::NOW_MS;
use super::writes::{insert_events, insert_generation_row, insert_image_row};
use super::{db, rows};
use crate::catalogue::{CatalogueError, GenerationRecord, Imported, Result};
use crate::domain::{GenerationId, Job};

/// Up to `limit` generations after `after`, in id order (ids are lower-case text, so text
/// order is the ids' order), each with its images, events and job.
pub(super) async fn export(
    conn: &mut SqliteConnection,
    after: Option<GenerationId>,
    limit: u32,
) -> Result<Vec<GenerationRecord>> {
    let generations =
        sqlx::query("SELECT * FROM generations WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2")
            .bind(after.map(|a| a.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
    let mut records = Vec::with_capacity(generations.len());
    for row in &generations {
        let generation = rows::generation(row)?;
        records.push(record_of(conn, generation).await?);
    }
    Ok(records)
}

/// The rest of a generation's record: its images by role, events by number, and job.
async fn record_of(
    conn: &mut SqliteConnection,
    generation: crate::domain::Generation,
) -> Result<GenerationRecord> {
    let id = generation.id.to_string();
    let images = sqlx::query("SELECT * FROM images WHERE generation_id = ?1 ORDER BY role")
        .bind(&id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let events = sqlx::query("SELECT * FROM events WHERE generation_id = ?1 ORDER BY seq")
        .bind(&id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let job = sqlx::query("SELECT * FROM jobs WHERE generation_id = ?1")
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    Ok(GenerationRecord {
        generation,
        images: images.iter().map(rows::image).collect::<Result<_>>()?,
        events: events.iter().map(rows::event).collect::<Result<_>>()?,
        job: job.as_ref().map(rows::job).transpose()?,
    })
}

/// Writes `r` in the caller's write transaction, or compares it with what is there.
pub(super) async fn import(conn: &mut SqliteConnection, r: &GenerationRecord) -> Result<Imported> {
    let g = &r.generation;
    let existing = sqlx::query("SELECT * FROM generations WHERE id = ?1")
        .bind(g.id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if let Some(row) = existing {
        let stored = record_of(conn, rows::generation(&row)?).await?;
        return Ok(match stored.first_difference(r) {
            None => Imported::Same,
            Some(what) => Imported::Different(what),
        });
    }
    if let Some(parent) = g.parent_id {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM generations WHERE id = ?1")
            .bind(parent.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if found.is_none() {
            return Err(CatalogueError::NotFound(format!(
                "parent generation {parent}"
            )));
        }
    }
    insert_generation_row(conn, g, i64::from(g.version)).await?;
    insert_events(conn, &r.events).await?;
    for image in &r.images {
        if !insert_image_row(conn, image).await? {
            return Err(CatalogueError::Conflict(format!(
                "generation {} has two images in role {}",
                g.id, image.role
            )));
        }
    }
    if let Some(job) = &r.job {
        insert_job_row(conn, job).await?;
    }
    Ok(Imported::New)
}

/// A job's row as given; its creation and update times are the database's now.
async fn insert_job_row(conn: &mut SqliteConnection, j: &Job) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO jobs (id, generation_id, kind, slot, concurrency, status, attempts,
            takeovers, max_attempts, run_at, lease_owner, lease_expires_at, last_error,
            cancel_requested, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, now, now
         FROM (SELECT ",
        NOW_MS!(),
        " AS now)"
    ))
    .bind(j.id.to_string())
    .bind(j.generation_id.to_string())
    .bind(j.kind.as_str())
    .bind(&j.slot)
    .bind(i64::from(j.concurrency))
    .bind(j.status.as_str())
    .bind(i64::from(j.attempts))
    .bind(i64::from(j.takeovers))
    .bind(i64::from(j.max_attempts))
    .bind(j.run_at)
    .bind(&j.lease_owner)
    .bind(j.lease_expires_at)
    .bind(&j.last_error)
    .bind(j.cancel_requested)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}
