//! What a result shows the assistant: the record as JSON text, and for each image its WebP
//! thumbnail (longest side at most 512 px, what the pipeline stored) as image content with a
//! `resource_link` to `atelier://images/{id}`, where the full file and its metadata are read.
//! Never the full-size file inline: it can be megabytes, more than clients accept.

use std::fmt::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::model::{ContentBlock, Resource};
use serde::Serialize;

use super::server::Atelier;
use crate::app::GenerationWithImages;
use crate::domain::{Actor, Image};
use crate::error::AppError;

/// The URI of an image's resource.
pub fn uri(image: &Image) -> String {
    format!("atelier://images/{}", image.id)
}

/// A link to an image's resource, named and described so a client can list it.
pub fn link(image: &Image, prompt: Option<&str>) -> Resource {
    let mut name = String::new();
    if let Some(c) = image.category {
        name.push_str(c.as_str());
        name.push('_');
    }
    if let Some(s) = &image.subject {
        name.push_str(s);
        name.push('_');
    }
    let _ = write!(name, "v{}_{}", image.version, image.role);
    let mut description = format!(
        "{} {}x{} {}, {}",
        image.role,
        image.width,
        image.height,
        image.format,
        image.status.as_str()
    );
    if let Some(p) = prompt {
        description.push_str(": ");
        description.push_str(p);
    }
    Resource::new(uri(image), name)
        .with_title(format!("image {}", image.id))
        .with_description(description)
        .with_mime_type(image.media_type())
        .with_size(image.size_bytes)
}

/// Pretty JSON as text content.
pub fn json(value: &impl Serialize) -> ContentBlock {
    ContentBlock::text(serde_json::to_string_pretty(value).unwrap_or_default())
}

impl Atelier {
    /// An image's thumbnail (image content) and its link; only the link when it has no
    /// thumbnail.
    pub(super) async fn picture(
        &self,
        actor: Actor,
        image: &Image,
        prompt: Option<&str>,
    ) -> Result<Vec<ContentBlock>, AppError> {
        let mut blocks = Vec::with_capacity(2);
        if image.thumbnail_key.is_some() {
            let (_, webp) = self.app.image_bytes(actor, image.id, true).await?;
            blocks.push(ContentBlock::image(STANDARD.encode(webp), "image/webp"));
        }
        blocks.push(ContentBlock::resource_link(link(image, prompt)));
        Ok(blocks)
    }

    /// A generation as JSON (the API's view), without the store's paths unless the caller is
    /// on the data's machine.
    pub(super) fn generation_json(&self, g: &GenerationWithImages) -> ContentBlock {
        let view = self.app.generation_view(g);
        if self.settings.paths {
            json(&view)
        } else {
            json(&view.without_paths())
        }
    }

    /// An image as JSON (the API's view), paths as for [`Atelier::generation_json`].
    pub(super) fn image_json(&self, image: &Image) -> serde_json::Value {
        let view = self.app.image_view(image);
        let view = if self.settings.paths {
            view
        } else {
            view.without_paths()
        };
        serde_json::to_value(view).unwrap_or_default()
    }

    /// A generation's record and every picture it made.
    pub(super) async fn generation_pictures(
        &self,
        actor: Actor,
        g: &GenerationWithImages,
    ) -> Result<Vec<ContentBlock>, AppError> {
        let mut blocks = vec![self.generation_json(g)];
        for image in &g.images {
            blocks.extend(
                self.picture(actor, image, Some(&g.generation.prompt))
                    .await?,
            );
        }
        Ok(blocks)
    }
}
