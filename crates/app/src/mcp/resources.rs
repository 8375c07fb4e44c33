//! Resources: each image the caller may see is `atelier://images/{id}`. Reading one gives its
//! record (JSON, with its generation's prompt) and its full file (base64, its own MIME type);
//! listing gives the caller's newest images.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::model::{ListResourcesResult, ReadResourceResult, ResourceContents, ResourceTemplate};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::pictures::{link, uri};
use super::server::Atelier;
use crate::api::ImageQuery;
use crate::domain::ImageId;
use crate::error::AppError;

const PREFIX: &str = "atelier://images/";
/// Images `resources/list` shows: the newest.
const LISTED: u32 = 50;

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{PREFIX}{{id}}"), "image")
            .with_title("An image and its record")
            .with_description(
                "An image by id: its record as JSON (prompt, size, status, tags, palette) and \
                 its full file",
            ),
    ]
}

/// A resource error as the protocol has it: a URI that names nothing this caller may see is
/// "resource not found"; the server's own failures are logged, not shown.
fn resource_error(e: &AppError, uri: &str) -> ErrorData {
    match e {
        AppError::NotFound(_) | AppError::Invalid(_) | AppError::Forbidden(_) => {
            ErrorData::resource_not_found(format!("{uri}: {e}"), None)
        }
        _ => {
            tracing::error!(error = %e, "an MCP resource failed");
            ErrorData::internal_error("Atelier could not read this resource", None)
        }
    }
}

pub async fn list(
    atelier: &Atelier,
    ctx: &RequestContext<RoleServer>,
) -> Result<ListResourcesResult, ErrorData> {
    let listed = async {
        let actor = atelier.actor(ctx)?;
        let query = ImageQuery {
            limit: Some(LISTED),
            ..ImageQuery::default()
        };
        let page = atelier.app.images(actor, &query).await?;
        Ok::<_, AppError>(page.images.iter().map(|i| link(i, None)).collect())
    };
    match listed.await {
        Ok(resources) => Ok(ListResourcesResult::with_all_items(resources)),
        Err(e) => Err(resource_error(&e, PREFIX)),
    }
}

pub async fn read(
    atelier: &Atelier,
    asked: &str,
    ctx: &RequestContext<RoleServer>,
) -> Result<ReadResourceResult, ErrorData> {
    let read = async {
        let actor = atelier.actor(ctx)?;
        let raw = asked
            .strip_prefix(PREFIX)
            .ok_or_else(|| AppError::NotFound(format!("resource {asked:?}")))?;
        let id: ImageId = super::generations::parse_id(raw, "image")?;
        let (image, bytes) = atelier.app.image_bytes(actor, id, false).await?;
        let g = atelier.app.generation(actor, image.generation_id).await?;
        let mut record = atelier.image_json(&image);
        record["prompt"] = serde_json::Value::String(g.generation.prompt.clone());
        let here = uri(&image);
        Ok::<_, AppError>(ReadResourceResult::new(vec![
            ResourceContents::text(
                serde_json::to_string_pretty(&record).unwrap_or_default(),
                here.clone(),
            )
            .with_mime_type("application/json"),
            ResourceContents::blob(STANDARD.encode(bytes), here).with_mime_type(image.media_type()),
        ]))
    };
    read.await.map_err(|e| resource_error(&e, asked))
}
