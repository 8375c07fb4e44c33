//! Tools over the library: `list_images`, `search_images`, `get_image`, `set_image_status`,
//! `tag_image`.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};

use super::args::{CategoryArg, ImageRef, ListImages, SearchImages, SetImageStatus, TagImage};
use super::generations::parse_id;
use super::pictures::{json, link};
use super::server::{Atelier, answer};
use crate::api::ImageQuery;
use crate::domain::{Actor, ImageId};
use crate::error::AppError;

/// Images a page shows by default, and their thumbnails at most.
const PAGE: u32 = 20;
const THUMBNAILS: usize = 8;

#[tool_router(router = image_tools, vis = "pub(super)")]
impl Atelier {
    #[tool(
        description = "List your images, newest first, by kind (image or video: clips, with \
their duration), status, category, subject, tag, provider or generation. Each comes with a link to its resource (atelier://images/ID); with \
`thumbnails`, the first 8 also show as pictures. `next_cursor` pages on.",
        annotations(read_only_hint = true)
    )]
    async fn list_images(
        &self,
        Parameters(args): Parameters<ListImages>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.list(args, &ctx).await)
    }

    #[tool(
        description = "Find your images whose prompt contains `text` (any case), newest first, \
optionally narrowed by status, category, subject or tag; shown as list_images shows them.",
        annotations(read_only_hint = true)
    )]
    async fn search_images(
        &self,
        Parameters(args): Parameters<SearchImages>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let list = ListImages {
            status: args.status,
            category: args.category,
            subject: args.subject,
            tag: args.tag,
            limit: args.limit,
            cursor: args.cursor,
            thumbnails: args.thumbnails,
            ..ListImages::default()
        };
        answer(self.search(list, Some(args.text), &ctx).await)
    }

    #[tool(
        description = "One image: its record (prompt's generation, size, palette, status, tags) \
and its thumbnail as a picture, with a link to the full file.",
        annotations(read_only_hint = true)
    )]
    async fn get_image(
        &self,
        Parameters(args): Parameters<ImageRef>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.show(&args.image_id, &ctx).await)
    }

    #[tool(
        description = "Mark an image draft, final (the one chosen) or archived.",
        annotations(idempotent_hint = true, destructive_hint = false)
    )]
    async fn set_image_status(
        &self,
        Parameters(args): Parameters<SetImageStatus>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.status(args, &ctx).await)
    }

    #[tool(
        description = "Add tags to an image (it keeps its other tags).",
        annotations(idempotent_hint = true, destructive_hint = false)
    )]
    async fn tag_image(
        &self,
        Parameters(args): Parameters<TagImage>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tag(args, &ctx).await)
    }
}

impl Atelier {
    async fn list(
        &self,
        args: ListImages,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        self.search(args, None, ctx).await
    }

    async fn search(
        &self,
        args: ListImages,
        text: Option<String>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        if let Some(t) = &text
            && t.trim().is_empty()
        {
            return Err(AppError::Invalid("text must not be blank".into()));
        }
        let query = ImageQuery {
            status: args.status.map(super::args::StatusArg::domain),
            kind: args.kind.map(super::args::KindArg::domain),
            category: args.category.map(CategoryArg::domain),
            subject: args.subject,
            tag: args.tag.map(|t| t.trim().to_lowercase()),
            provider: args.provider,
            generation_id: args
                .generation_id
                .as_deref()
                .map(|g| parse_id(g, "generation"))
                .transpose()?,
            text,
            before: args
                .cursor
                .as_deref()
                .map(|c| {
                    c.trim().parse().map_err(|_| {
                        AppError::Invalid(format!("cursor {c:?} is not one a page gave"))
                    })
                })
                .transpose()?,
            limit: Some(args.limit.unwrap_or(PAGE).clamp(1, 100)),
            ..ImageQuery::default()
        };
        let page = self.app.images(actor, &query).await?;
        let listed: Vec<serde_json::Value> =
            page.images.iter().map(|i| self.image_json(i)).collect();
        let mut blocks = vec![json(&serde_json::json!({
            "count": listed.len(),
            "images": listed,
            "next_cursor": page.next.map(|n| n.to_string()),
        }))];
        for (n, image) in page.images.iter().enumerate() {
            if args.thumbnails && n < THUMBNAILS {
                blocks.extend(self.picture(actor, image, None).await?);
            } else {
                blocks.push(ContentBlock::resource_link(link(image, None)));
            }
        }
        Ok(CallToolResult::success(blocks))
    }

    async fn show(
        &self,
        raw: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let id: ImageId = parse_id(raw, "image")?;
        let image = self.app.image(actor, id).await?;
        self.shown(actor, &image).await
    }

    /// An image's record with its generation's prompt, and its picture.
    pub(super) async fn shown(
        &self,
        actor: Actor,
        image: &crate::domain::Image,
    ) -> Result<CallToolResult, AppError> {
        let g = self.app.generation(actor, image.generation_id).await?;
        let mut record = self.image_json(image);
        record["prompt"] = serde_json::Value::String(g.generation.prompt.clone());
        record["provider"] = serde_json::Value::String(g.generation.provider.clone());
        let mut blocks = vec![json(&record)];
        blocks.extend(
            self.picture(actor, image, Some(&g.generation.prompt))
                .await?,
        );
        Ok(CallToolResult::success(blocks))
    }

    async fn status(
        &self,
        args: SetImageStatus,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let id: ImageId = parse_id(&args.image_id, "image")?;
        let image = self
            .app
            .set_image_status(actor, id, args.status.domain())
            .await?;
        Ok(CallToolResult::success(vec![
            ContentBlock::text(format!("image {id} is now {}", image.status.as_str())),
            json(&self.image_json(&image)),
        ]))
    }

    async fn tag(
        &self,
        args: TagImage,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let id: ImageId = parse_id(&args.image_id, "image")?;
        let image = self.app.tag(actor, id, &args.tags).await?;
        Ok(CallToolResult::success(vec![
            ContentBlock::text(format!("image {id} is tagged {}", image.tags.join(", "))),
            json(&self.image_json(&image)),
        ]))
    }
}
