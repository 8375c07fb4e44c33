//! Mapping between `SQLite` rows and domain types, from either driver: sqlx's rows on the
//! async paths, rusqlite's on the point reads (`point_reads.rs`), through [`Cells`], so each
//! row's rules are written once.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::{CatalogueError, Result};
use crate::domain::{
    Event, EventKind, Generation, GenerationId, GenerationKind, GenerationStatus, Image, ImageId,
    ImageStatus, Job, JobId, JobKind, JobStatus, Phase, Rgb, Role, UserId,
};

pub(super) use crate::catalogue::stored::corrupt;
use crate::catalogue::stored::{category, clip, failure};

pub(super) fn ts(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn parse_ts(s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| corrupt("timestamp", s))
}

fn parse_opt_ts(s: Option<&str>) -> Result<Option<OffsetDateTime>> {
    s.map(parse_ts).transpose()
}

fn uuid_of(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| corrupt("id", s))
}

/// A column's value type that both drivers decode.
pub(super) trait Cell:
    for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + rusqlite::types::FromSql
{
}

impl<T> Cell for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + rusqlite::types::FromSql
{
}

/// A row whose columns are read by name.
pub(super) trait Cells {
    fn cell<T: Cell>(&self, col: &str) -> Result<T>;
}

impl Cells for SqliteRow {
    fn cell<T: Cell>(&self, col: &str) -> Result<T> {
        self.try_get(col)
            .map_err(|e| CatalogueError::Other(e.into()))
    }
}

fn get<T: Cell>(row: &impl Cells, col: &str) -> Result<T> {
    row.cell(col)
}

pub(super) fn owner_of(row: &impl Cells) -> Result<Option<UserId>> {
    get::<Option<String>>(row, "owner")?
        .map(|o| uuid_of(&o).map(UserId::from_uuid))
        .transpose()
}

pub(super) fn generation(row: &impl Cells) -> Result<Generation> {
    let kind: String = get(row, "kind")?;
    let status: String = get(row, "status")?;
    let phase: Option<String> = get(row, "phase")?;
    let parameters: String = get(row, "parameters")?;
    let refs: String = get(row, "provider_refs")?;
    let parent: Option<String> = get(row, "parent_id")?;
    Ok(Generation {
        id: GenerationId::from_uuid(uuid_of(&get::<String>(row, "id")?)?),
        owner: owner_of(row)?,
        provider: get(row, "provider")?,
        account: get(row, "account")?,
        kind: GenerationKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        parent_id: parent
            .map(|p| uuid_of(&p).map(GenerationId::from_uuid))
            .transpose()?,
        prompt: get(row, "prompt")?,
        negative_prompt: get(row, "negative_prompt")?,
        parameters: serde_json::from_str(&parameters)
            .map_err(|_| corrupt("parameters", &parameters))?,
        category: category(get(row, "category")?)?,
        subject: get(row, "subject")?,
        client_reference: get(row, "client_reference")?,
        version: get::<i64>(row, "version")? as u32,
        status: GenerationStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        phase: phase
            .map(|p| Phase::parse(&p).ok_or_else(|| corrupt("phase", &p)))
            .transpose()?,
        progress: get(row, "progress")?,
        error: failure(get(row, "error_code")?, get(row, "error_message")?)?,
        provider_refs: serde_json::from_str(&refs).map_err(|_| corrupt("provider refs", &refs))?,
        created_at: parse_ts(&get::<String>(row, "created_at")?)?,
        started_at: parse_opt_ts(get::<Option<String>>(row, "started_at")?.as_deref())?,
        completed_at: parse_opt_ts(get::<Option<String>>(row, "completed_at")?.as_deref())?,
    })
}

/// A generation's stage from the columns of `writes::read_stage`.
pub(super) fn stage(id: GenerationId, row: &SqliteRow) -> Result<crate::domain::Stage> {
    let status: String = get(row, "status")?;
    let phase: Option<String> = get(row, "phase")?;
    Ok(crate::domain::Stage {
        id,
        status: GenerationStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        phase: phase
            .map(|p| Phase::parse(&p).ok_or_else(|| corrupt("phase", &p)))
            .transpose()?,
        progress: get(row, "progress")?,
        error: failure(get(row, "error_code")?, get(row, "error_message")?)?,
        started_at: parse_opt_ts(get::<Option<String>>(row, "started_at")?.as_deref())?,
        completed_at: parse_opt_ts(get::<Option<String>>(row, "completed_at")?.as_deref())?,
        last_seq: get::<i64>(row, "last_seq")? as u64,
    })
}

pub(super) fn colours(json: &str) -> Result<Vec<Rgb>> {
    let hexes: Vec<String> = serde_json::from_str(json).map_err(|_| corrupt("palette", json))?;
    hexes
        .iter()
        .map(|h| Rgb::parse_hex(h).ok_or_else(|| corrupt("colour", h)))
        .collect()
}

pub(super) fn colours_json(colours: &[Rgb]) -> String {
    let hexes: Vec<String> = colours.iter().map(|c| c.hex()).collect();
    serde_json::Value::from(hexes).to_string()
}

pub(super) fn image(row: &impl Cells) -> Result<Image> {
    let role: String = get(row, "role")?;
    let status: String = get(row, "status")?;
    let tags: String = get(row, "tags")?;
    let dominant: Option<String> = get(row, "dominant_color")?;
    Ok(Image {
        id: ImageId::from_uuid(uuid_of(&get::<String>(row, "id")?)?),
        generation_id: GenerationId::from_uuid(uuid_of(&get::<String>(row, "generation_id")?)?),
        owner: owner_of(row)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        storage_key: get(row, "storage_key")?,
        public_url: get(row, "public_url")?,
        thumbnail_key: get(row, "thumbnail_key")?,
        width: get::<i64>(row, "width")? as u32,
        height: get::<i64>(row, "height")? as u32,
        format: get(row, "format")?,
        size_bytes: get::<i64>(row, "size_bytes")? as u64,
        sha256: get(row, "sha256")?,
        dominant: dominant
            .map(|d| Rgb::parse_hex(&d).ok_or_else(|| corrupt("colour", &d)))
            .transpose()?,
        palette: colours(&get::<String>(row, "palette")?)?,
        category: category(get(row, "category")?)?,
        subject: get(row, "subject")?,
        version: get::<i64>(row, "version")? as u32,
        status: ImageStatus::parse(&status).ok_or_else(|| corrupt("image status", &status))?,
        favourite: get(row, "favourite")?,
        public: get(row, "public")?,
        tags: serde_json::from_str(&tags).map_err(|_| corrupt("tags", &tags))?,
        synthetic: get(row, "synthetic")?,
        created_at: parse_ts(&get::<String>(row, "created_at")?)?,
        clip: clip(
            &get::<String>(row, "kind")?,
            get(row, "duration_ms")?,
            get(row, "frames")?,
            get(row, "codec")?,
        )?,
    })
}

pub(super) fn job(row: &SqliteRow) -> Result<Job> {
    let kind: String = get(row, "kind")?;
    let status: String = get(row, "status")?;
    Ok(Job {
        id: JobId::from_uuid(uuid_of(&get::<String>(row, "id")?)?),
        generation_id: GenerationId::from_uuid(uuid_of(&get::<String>(row, "generation_id")?)?),
        kind: JobKind::parse(&kind).ok_or_else(|| corrupt("job kind", &kind))?,
        slot: get(row, "slot")?,
        concurrency: get::<i64>(row, "concurrency")? as u32,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status", &status))?,
        attempts: get::<i64>(row, "attempts")? as u32,
        takeovers: get::<i64>(row, "takeovers")? as u32,
        max_attempts: get::<i64>(row, "max_attempts")? as u32,
        run_at: get(row, "run_at")?,
        lease_owner: get(row, "lease_owner")?,
        lease_expires_at: get(row, "lease_expires_at")?,
        last_error: get(row, "last_error")?,
        cancel_requested: get(row, "cancel_requested")?,
    })
}

pub(super) fn event(row: &SqliteRow) -> Result<Event> {
    let kind: String = get(row, "kind")?;
    let status: String = get(row, "status")?;
    let phase: Option<String> = get(row, "phase")?;
    let image_id: Option<String> = get(row, "image_id")?;
    Ok(Event {
        generation_id: GenerationId::from_uuid(uuid_of(&get::<String>(row, "generation_id")?)?),
        seq: get::<i64>(row, "seq")? as u64,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
        at: parse_ts(&get::<String>(row, "created_at")?)?,
        status: GenerationStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        phase: phase
            .map(|p| Phase::parse(&p).ok_or_else(|| corrupt("phase", &p)))
            .transpose()?,
        progress: get(row, "progress")?,
        index: get::<Option<i64>>(row, "idx")?.map(|i| i as u8),
        image_id: image_id
            .map(|i| uuid_of(&i).map(ImageId::from_uuid))
            .transpose()?,
        error: failure(get(row, "error_code")?, get(row, "error_message")?)?,
    })
}

pub(super) fn account(row: &SqliteRow) -> Result<crate::catalogue::AccountRecord> {
    Ok(crate::catalogue::AccountRecord {
        provider: get(row, "provider")?,
        account: get(row, "account")?,
        health: get(row, "health")?,
        reason: get(row, "reason")?,
        at: parse_ts(&get::<String>(row, "recorded_at")?)?,
    })
}
