//! `/v1/images`: list (filters, cursor), show, update (status, tags), and the bytes of an image
//! or its thumbnail with an `ETag` (the content's SHA-256), `Cache-Control` and single byte
//! ranges (`Range: bytes=a-b`, 206 / 416).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::Caller;
use super::input::{Body, id, param};
use super::problem::Answer;
use super::{Problem, Shared};
use crate::api::{ActionList, ImageQuery, ImageUpdate, ImageView, Page};
use crate::domain::{Category, ImageId, ImageStatus, MediaKind};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<crate::api::ImageStatusName>)]
    status: Option<String>,
    /// `image` (still pictures) or `video` (clips).
    #[param(value_type = Option<crate::api::MediaKindName>)]
    kind: Option<String>,
    #[param(value_type = Option<crate::api::CategoryName>)]
    category: Option<String>,
    subject: Option<String>,
    tag: Option<String>,
    provider: Option<String>,
    /// A generation's id: its images only.
    generation: Option<String>,
    /// RFC 3339: created at or after.
    from: Option<String>,
    /// RFC 3339: created before.
    until: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(minimum = 1)]
    limit: Option<u32>,
}

fn time_param(raw: Option<&str>, name: &str) -> Result<Option<OffsetDateTime>, Problem> {
    param(raw, name, |v| OffsetDateTime::parse(v, &Rfc3339).ok())
}

#[utoipa::path(
    get,
    path = "/images",
    tag = "images",
    operation_id = "list_images",
    summary = "The caller's images, newest first, filtered",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = Page<ImageView>),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub async fn list(
    State(s): State<Shared>,
    Caller(actor): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<axum::Json<Page<ImageView>>> {
    let Query(q) = query.map_err(|e| Problem::invalid(e.body_text()))?;
    if q.limit == Some(0) {
        return Err(Problem::invalid("limit must be at least 1"));
    }
    let query = ImageQuery {
        status: param(q.status.as_deref(), "status", ImageStatus::parse)?,
        kind: param(q.kind.as_deref(), "kind", MediaKind::parse)?,
        category: param(q.category.as_deref(), "category", Category::parse)?,
        subject: q.subject,
        tag: q.tag.map(|t| t.trim().to_lowercase()),
        provider: q.provider,
        generation_id: param(q.generation.as_deref(), "generation", |g| g.parse().ok())?,
        text: None,
        created_from: time_param(q.from.as_deref(), "from")?,
        created_until: time_param(q.until.as_deref(), "until")?,
        before: param(q.cursor.as_deref(), "cursor", |c| c.parse().ok())?,
        limit: Some(q.limit.unwrap_or(50)),
    };
    let page = s.app.images(actor, &query).await?;
    Ok(axum::Json(Page {
        data: page
            .images
            .iter()
            .map(|i| s.app.image_view(i).without_paths())
            .collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    }))
}

#[utoipa::path(
    get,
    path = "/images/{id}",
    tag = "images",
    operation_id = "get_image",
    summary = "An image's metadata",
    params(("id" = uuid::Uuid, Path, description = "The image's id")),
    responses(
        (status = 200, description = "The image", body = ImageView),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn show(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<axum::Json<ImageView>> {
    let image = s.app.image(actor, id(&raw, "image")?).await?;
    Ok(axum::Json(s.app.image_view(&image).without_paths()))
}

#[utoipa::path(
    get,
    path = "/images/{id}/actions",
    tag = "images",
    operation_id = "list_image_actions",
    summary = "The buttons an image offers (press one with POST on the same path)",
    params(("id" = uuid::Uuid, Path, description = "The image's id")),
    responses(
        (status = 200, description = "The actions", body = ActionList),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn actions(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<axum::Json<ActionList>> {
    let actions = s.app.actions(actor, id(&raw, "image")?).await?;
    Ok(axum::Json(ActionList { actions }))
}

#[utoipa::path(
    patch,
    path = "/images/{id}",
    tag = "images",
    operation_id = "update_image",
    summary = "Change an image's status, tags and marks (everything is checked before anything changes)",
    params(("id" = uuid::Uuid, Path, description = "The image's id")),
    request_body = ImageUpdate,
    responses(
        (status = 200, description = "The image as it is now", body = ImageView),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub async fn update(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
    Body(body): Body<ImageUpdate>,
) -> Answer<axum::Json<ImageView>> {
    let image: ImageId = id(&raw, "image")?;
    let current = s.app.update_image(actor, image, &body).await?;
    Ok(axum::Json(s.app.image_view(&current).without_paths()))
}

/// `DELETE /v1/images/{id}`: the image, its file and its thumbnail.
#[utoipa::path(
    delete,
    path = "/images/{id}",
    tag = "images",
    operation_id = "delete_image",
    summary = "Delete an image, its file and its thumbnail",
    params(("id" = uuid::Uuid, Path, description = "The image's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub async fn delete(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<StatusCode> {
    s.app.delete_image(actor, id(&raw, "image")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The request headers of a file read.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct Conditional {
    /// A single range, `bytes=a-b`, `bytes=a-` or `bytes=-n` (several ranges, or another unit,
    /// get the whole file).
    #[param(rename = "Range")]
    range: Option<String>,
    /// The `ETag` the client holds: a 304 when it is still this file's.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
    /// Honour `Range` only if the file's `ETag` is still this one.
    #[param(rename = "If-Range")]
    if_range: Option<String>,
}

/// An image's bytes, as the document shows them.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct ImageBytes(Vec<u8>);

#[utoipa::path(
    get,
    path = "/images/{id}/file",
    tag = "images",
    operation_id = "get_image_file",
    summary = "An image's bytes, with ETag, caching and ranges",
    params(("id" = uuid::Uuid, Path, description = "The image's id"), Conditional),
    responses(
        (status = 200, description = "The whole file", content(
            (ImageBytes = "image/png"),
            (ImageBytes = "image/jpeg"),
            (ImageBytes = "image/webp"),
            (ImageBytes = "video/mp4"),
        ), headers(
            ("ETag" = String, description = "The content's SHA-256, quoted (`-thumb` added for a thumbnail)"),
            ("Cache-Control" = String, description = "The bytes never change under this id"),
            ("Accept-Ranges" = String, description = "`bytes`"),
        )),
        (status = 206, description = "One range of the file", content(
            (ImageBytes = "image/png"),
            (ImageBytes = "image/jpeg"),
            (ImageBytes = "image/webp"),
            (ImageBytes = "video/mp4"),
        ), headers(
            ("Content-Range" = String, description = "`bytes a-b/size`"),
            ("ETag" = String, description = "The content's SHA-256, quoted"),
        )),
        (status = 304, description = "The client's copy is current (`If-None-Match`)", headers(
            ("ETag" = String, description = "The content's SHA-256, quoted"),
        )),
        (status = 404, response = super::openapi::NotFound),
        (status = 416, response = super::openapi::RangeNotSatisfiable),
    )
)]
pub async fn file(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Answer<Response> {
    bytes(&s, actor, &headers, &raw, false).await
}

#[utoipa::path(
    get,
    path = "/images/{id}/thumbnail",
    tag = "images",
    operation_id = "get_image_thumbnail",
    summary = "An image's thumbnail (WebP), with ETag, caching and ranges",
    params(("id" = uuid::Uuid, Path, description = "The image's id"), Conditional),
    responses(
        (status = 200, description = "The whole file", content(
            (ImageBytes = "image/webp"),
        ), headers(
            ("ETag" = String, description = "The content's SHA-256, quoted (`-thumb` added for a thumbnail)"),
            ("Cache-Control" = String, description = "The bytes never change under this id"),
            ("Accept-Ranges" = String, description = "`bytes`"),
        )),
        (status = 206, description = "One range of the file", content(
            (ImageBytes = "image/webp"),
        ), headers(
            ("Content-Range" = String, description = "`bytes a-b/size`"),
            ("ETag" = String, description = "The content's SHA-256, quoted"),
        )),
        (status = 304, description = "The client's copy is current (`If-None-Match`)", headers(
            ("ETag" = String, description = "The content's SHA-256, quoted"),
        )),
        (status = 404, response = super::openapi::NotFound),
        (status = 416, response = super::openapi::RangeNotSatisfiable),
    )
)]
pub async fn thumbnail(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Answer<Response> {
    bytes(&s, actor, &headers, &raw, true).await
}

async fn bytes(
    s: &Shared,
    actor: crate::domain::Actor,
    headers: &HeaderMap,
    raw: &str,
    thumbnail: bool,
) -> Answer<Response> {
    let image: ImageId = id(raw, "image")?;
    let (image, data) = s.app.image_bytes(actor, image, thumbnail).await?;
    // An image's bytes never change under its id: the SHA-256 is its version. A thumbnail's
    // tag is the image's too, marked, since the thumbnail is made from it.
    let etag = if thumbnail {
        format!("\"{}-thumb\"", image.sha256)
    } else {
        format!("\"{}\"", image.sha256)
    };
    let content_type = if thumbnail {
        "image/webp".to_owned()
    } else {
        image.media_type()
    };
    let mut out = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put(&mut out, header::ETAG, &etag);
    put(&mut out, header::CONTENT_TYPE, &content_type);
    put(
        &mut out,
        header::CACHE_CONTROL,
        "private, max-age=31536000, immutable",
    );
    put(&mut out, header::ACCEPT_RANGES, "bytes");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    // A range of another unit, several ranges, or an `If-Range` that names other bytes get
    // the whole file (RFC 9110), never a part of something else.
    let if_range_holds = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|r| if_range_holds && r.trim().starts_with("bytes=") && !r.contains(','));
    let Some(range) = range else {
        return Ok((StatusCode::OK, out, data).into_response());
    };
    let total = data.len() as u64;
    if let Some((start, end)) = byte_range(range, total) {
        put(
            &mut out,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{end}/{total}"),
        );
        let part = data[start as usize..=end as usize].to_vec();
        return Ok((StatusCode::PARTIAL_CONTENT, out, part).into_response());
    }
    let mut refused = Problem::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("the range {range:?} is outside the {total} bytes of this file"),
    )
    .into_response();
    put(
        refused.headers_mut(),
        header::CONTENT_RANGE,
        &format!("bytes */{total}"),
    );
    Ok(refused)
}

/// One range of `bytes=a-b`, `bytes=a-` or `bytes=-n` within `total` bytes, as inclusive
/// bounds; `None` when it cannot be satisfied (several ranges are answered with none).
fn byte_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (total.saturating_sub(n), total - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            total - 1
        } else {
            b.parse::<u64>().ok()?.min(total - 1)
        };
        (start, end)
    };
    (start <= end && start < total).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(byte_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=-1000", 100), Some((0, 99)));
        assert_eq!(byte_range("bytes=50-1000", 100), Some((50, 99)));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("bytes=9-0", 100), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("bytes=-0", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=x-1", 100), None);
        assert_eq!(byte_range("bytes=0-0", 0), None);
    }
}
