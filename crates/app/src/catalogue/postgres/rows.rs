//! Mapping between `PostgreSQL` rows and domain types. The database keeps times as
//! `timestamptz` (microseconds) and the domain's jobs keep Unix milliseconds: converted here.

use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use crate::catalogue::{AccountRecord, CatalogueError, Result};
use crate::domain::{
    Event, EventKind, Generation, GenerationId, GenerationKind, GenerationStatus, Image, ImageId,
    ImageStatus, Job, JobId, JobKind, JobStatus, Rgb, Role, UserId,
};

pub(super) use crate::catalogue::stored::corrupt;
use crate::catalogue::stored::{category, clip, failure, phase};

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col)
        .map_err(|e| CatalogueError::Other(e.into()))
}

/// `t` as the database keeps it: whole microseconds.
pub(super) fn micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Unix milliseconds, the domain's job times.
fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn owner_of(row: &PgRow) -> Result<Option<UserId>> {
    Ok(get::<Option<uuid::Uuid>>(row, "owner")?.map(UserId::from_uuid))
}

fn count(row: &PgRow, col: &str) -> Result<u32> {
    let n: i32 = get(row, col)?;
    u32::try_from(n).map_err(|_| corrupt(col, &n.to_string()))
}

pub(super) fn generation(row: &PgRow) -> Result<Generation> {
    let kind: String = get(row, "kind")?;
    let status: String = get(row, "status")?;
    let parameters: serde_json::Value = get(row, "parameters")?;
    Ok(Generation {
        id: GenerationId::from_uuid(get(row, "id")?),
        owner: owner_of(row)?,
        provider: get(row, "provider")?,
        account: get(row, "account")?,
        kind: GenerationKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        parent_id: get::<Option<uuid::Uuid>>(row, "parent_id")?.map(GenerationId::from_uuid),
        prompt: get(row, "prompt")?,
        negative_prompt: get(row, "negative_prompt")?,
        parameters: serde_json::from_value(parameters.clone())
            .map_err(|_| corrupt("parameters", &parameters.to_string()))?,
        category: category(get(row, "category")?)?,
        subject: get(row, "subject")?,
        client_reference: get(row, "client_reference")?,
        version: count(row, "version")?,
        status: GenerationStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        phase: phase(get(row, "phase")?)?,
        progress: get(row, "progress")?,
        error: failure(get(row, "error_code")?, get(row, "error_message")?)?,
        provider_refs: get(row, "provider_refs")?,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        completed_at: get(row, "completed_at")?,
    })
}

/// A palette as stored: a JSON array of `#rrggbb`.
pub(super) fn colours_json(colours: &[Rgb]) -> serde_json::Value {
    colours.iter().map(|c| c.hex()).collect()
}

fn colours(json: &serde_json::Value) -> Result<Vec<Rgb>> {
    let hexes: Vec<String> =
        serde_json::from_value(json.clone()).map_err(|_| corrupt("palette", &json.to_string()))?;
    hexes
        .iter()
        .map(|h| Rgb::parse_hex(h).ok_or_else(|| corrupt("colour", h)))
        .collect()
}

pub(super) fn image(row: &PgRow) -> Result<Image> {
    let role: String = get(row, "role")?;
    let status: String = get(row, "status")?;
    let dominant: Option<String> = get(row, "dominant_color")?;
    let size: i64 = get(row, "size_bytes")?;
    Ok(Image {
        id: ImageId::from_uuid(get(row, "id")?),
        generation_id: GenerationId::from_uuid(get(row, "generation_id")?),
        owner: owner_of(row)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        storage_key: get(row, "storage_key")?,
        public_url: get(row, "public_url")?,
        thumbnail_key: get(row, "thumbnail_key")?,
        width: count(row, "width")?,
        height: count(row, "height")?,
        format: get(row, "format")?,
        size_bytes: u64::try_from(size).map_err(|_| corrupt("size", &size.to_string()))?,
        sha256: get(row, "sha256")?,
        dominant: dominant
            .map(|d| Rgb::parse_hex(&d).ok_or_else(|| corrupt("colour", &d)))
            .transpose()?,
        palette: colours(&get(row, "palette")?)?,
        category: category(get(row, "category")?)?,
        subject: get(row, "subject")?,
        version: count(row, "version")?,
        status: ImageStatus::parse(&status).ok_or_else(|| corrupt("image status", &status))?,
        favourite: get(row, "favourite")?,
        public: get(row, "public")?,
        tags: get(row, "tags")?,
        synthetic: get(row, "synthetic")?,
        created_at: get(row, "created_at")?,
        clip: clip(
            &get::<String>(row, "kind")?,
            get(row, "duration_ms")?,
            get::<Option<i32>>(row, "frames")?.map(i64::from),
            get(row, "codec")?,
        )?,
    })
}

pub(super) fn job(row: &PgRow) -> Result<Job> {
    let kind: String = get(row, "kind")?;
    let status: String = get(row, "status")?;
    Ok(Job {
        id: JobId::from_uuid(get(row, "id")?),
        generation_id: GenerationId::from_uuid(get(row, "generation_id")?),
        kind: JobKind::parse(&kind).ok_or_else(|| corrupt("job kind", &kind))?,
        slot: get(row, "slot")?,
        concurrency: count(row, "concurrency")?,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status", &status))?,
        attempts: count(row, "attempts")?,
        takeovers: count(row, "takeovers")?,
        max_attempts: count(row, "max_attempts")?,
        run_at: unix_ms(get(row, "run_at")?),
        lease_owner: get(row, "lease_owner")?,
        lease_expires_at: get::<Option<OffsetDateTime>>(row, "lease_expires_at")?.map(unix_ms),
        last_error: get(row, "last_error")?,
        cancel_requested: get(row, "cancel_requested")?,
    })
}

pub(super) fn event(row: &PgRow) -> Result<Event> {
    let kind: String = get(row, "kind")?;
    let status: String = get(row, "status")?;
    let seq: i32 = get(row, "seq")?;
    Ok(Event {
        generation_id: GenerationId::from_uuid(get(row, "generation_id")?),
        seq: u64::try_from(seq).map_err(|_| corrupt("seq", &seq.to_string()))?,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
        at: get(row, "created_at")?,
        status: GenerationStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        phase: phase(get(row, "phase")?)?,
        progress: get(row, "progress")?,
        index: get::<Option<i16>>(row, "idx")?
            .map(|i| u8::try_from(i).map_err(|_| corrupt("index", &i.to_string())))
            .transpose()?,
        image_id: get::<Option<uuid::Uuid>>(row, "image_id")?.map(ImageId::from_uuid),
        error: failure(get(row, "error_code")?, get(row, "error_message")?)?,
    })
}

pub(super) fn position(row: &PgRow) -> Result<i64> {
    get(row, "position")
}

pub(super) fn account(row: &PgRow) -> Result<AccountRecord> {
    Ok(AccountRecord {
        provider: get(row, "provider")?,
        account: get(row, "account")?,
        health: get(row, "health")?,
        reason: get(row, "reason")?,
        at: get(row, "recorded_at")?,
    })
}
