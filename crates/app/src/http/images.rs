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
use crate::api::{ImageQuery, ImageUpdate, ImageView, Page};
use crate::domain::{Category, ImageId, ImageStatus};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    category: Option<String>,
    subject: Option<String>,
    tag: Option<String>,
    provider: Option<String>,
    generation: Option<String>,
    /// RFC 3339: created at or after.
    from: Option<String>,
    /// RFC 3339: created before.
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn time_param(raw: Option<&str>, name: &str) -> Result<Option<OffsetDateTime>, Problem> {
    param(raw, name, |v| OffsetDateTime::parse(v, &Rfc3339).ok())
}

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

pub async fn show(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<axum::Json<ImageView>> {
    let image = s.app.image(actor, id(&raw, "image")?).await?;
    Ok(axum::Json(s.app.image_view(&image).without_paths()))
}

pub async fn update(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
    Body(body): Body<ImageUpdate>,
) -> Answer<axum::Json<ImageView>> {
    let image: ImageId = id(&raw, "image")?;
    // Everything is checked before anything changes.
    let status = body
        .status
        .as_deref()
        .map(|v| {
            ImageStatus::parse(v).ok_or_else(|| {
                Problem::invalid(format!("status {v:?} is not one of draft, final, archived"))
            })
        })
        .transpose()?;
    let tags = body
        .tags
        .as_deref()
        .map(crate::domain::tags::normalise)
        .transpose()
        .map_err(|e| Problem::invalid(e.to_string()))?;
    let mut current = s.app.image(actor, image).await?;
    if let Some(tags) = &tags {
        crate::domain::tags::merged(&current.tags, tags)
            .map_err(|e| Problem::invalid(e.to_string()))?;
    }
    if let Some(status) = status {
        current = s.app.set_image_status(actor, image, status).await?;
    }
    if let Some(tags) = &tags {
        current = s.app.tag(actor, image, tags).await?;
    }
    if body.favourite.is_some() || body.public.is_some() {
        current = s
            .app
            .set_image_marks(actor, image, body.favourite, body.public)
            .await?;
    }
    Ok(axum::Json(s.app.image_view(&current).without_paths()))
}

pub async fn file(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Answer<Response> {
    bytes(&s, actor, &headers, &raw, false).await
}

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
        format!("image/{}", image.format)
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
