//! Whole generations out of and into `PostgreSQL` as they are stored (`Catalogue::export` and
//! `import`): what moving a deployment to another database copies.

use sqlx::PgConnection;

use super::rows::{self, micros};
use super::writes::{insert_events, insert_generation_row, insert_image_row};
use super::{db, other};
use crate::catalogue::{CatalogueError, GenerationRecord, Imported, Result};
use crate::domain::{GenerationId, Job};

/// Up to `limit` generations after `after`, in id order (a uuid's order is its text's, as
/// in `SQLite`), each with its images, events and job.
pub(super) async fn export(
    conn: &mut PgConnection,
    after: Option<GenerationId>,
    limit: u32,
) -> Result<Vec<GenerationRecord>> {
    let generations = sqlx::query(
        "SELECT * FROM generations WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
    )
    .bind(after.map(|a| a.as_uuid()))
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
    conn: &mut PgConnection,
    generation: crate::domain::Generation,
) -> Result<GenerationRecord> {
    let id = generation.id.as_uuid();
    let images = sqlx::query("SELECT * FROM images WHERE generation_id = $1 ORDER BY role")
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let events = sqlx::query("SELECT * FROM events WHERE generation_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let job = sqlx::query("SELECT * FROM jobs WHERE generation_id = $1")
        .bind(id)
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

/// A record's times as this database keeps them (whole microseconds), so a record copied
/// from a catalogue that keeps nanoseconds compares equal to its stored copy.
fn as_kept(r: &GenerationRecord) -> GenerationRecord {
    let mut r = r.clone();
    let g = &mut r.generation;
    g.created_at = micros(g.created_at);
    g.started_at = g.started_at.map(micros);
    g.completed_at = g.completed_at.map(micros);
    for i in &mut r.images {
        i.created_at = micros(i.created_at);
    }
    for e in &mut r.events {
        e.at = micros(e.at);
    }
    r
}

/// Writes `r` in the caller's transaction, or compares it with what is there.
pub(super) async fn import(conn: &mut PgConnection, r: &GenerationRecord) -> Result<Imported> {
    let r = as_kept(r);
    let g = &r.generation;
    // Two imports of one generation at once: the second waits here for the first to commit.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('atelier.import:' || $1::text))")
        .bind(g.id.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let existing = sqlx::query("SELECT * FROM generations WHERE id = $1")
        .bind(g.id.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if let Some(row) = existing {
        let stored = record_of(conn, rows::generation(&row)?).await?;
        return Ok(match stored.first_difference(&r) {
            None => Imported::Same,
            Some(what) => Imported::Different(what),
        });
    }
    if let Some(parent) = g.parent_id {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM generations WHERE id = $1")
            .bind(parent.as_uuid())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if found.is_none() {
            return Err(CatalogueError::NotFound(format!(
                "parent generation {parent}"
            )));
        }
    }
    insert_generation_row(conn, g).await?;
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

/// A job's row as given (its times are Unix milliseconds); its creation and update times are
/// the database's now.
async fn insert_job_row(conn: &mut PgConnection, j: &Job) -> Result<()> {
    // With its slot's tokens; a running job holds none (its worker is another deployment's):
    // it takes one when it is taken over.
    sqlx::query(concat!(
        "WITH ",
        super::queue::tokens!("$4", "$5"),
        " INSERT INTO jobs (id, generation_id, kind, slot, concurrency, status, attempts,
            takeovers, max_attempts, run_at, lease_owner, lease_expires_at, last_error,
            cancel_requested)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10::float8 / 1000), $11,
            to_timestamp($12::float8 / 1000), $13, $14)"
    ))
    .bind(j.id.as_uuid())
    .bind(j.generation_id.as_uuid())
    .bind(j.kind.as_str())
    .bind(&j.slot)
    .bind(i32::try_from(j.concurrency).map_err(other)?)
    .bind(j.status.as_str())
    .bind(i32::try_from(j.attempts).map_err(other)?)
    .bind(i32::try_from(j.takeovers).map_err(other)?)
    .bind(i32::try_from(j.max_attempts).map_err(other)?)
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
