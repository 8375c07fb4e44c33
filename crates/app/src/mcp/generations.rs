//! Tools that make and follow generations: `generate_image`, `get_generation`,
//! `wait_for_generation`, `cancel_generation`, `run_action`, `create_version`.

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};

use super::args::{CreateVersion, GenerateImage, GenerationRef, RunAction, WaitForGeneration};
use super::server::{Atelier, answer};
use crate::domain::{
    Actor, GenerationId, GenerationRequest, GenerationStatus, ImageId, UpscaleSelection,
};
use crate::error::AppError;

/// An id from the caller: one that is not even a UUID names nothing.
pub(super) fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, AppError> {
    raw.trim()
        .parse()
        .map_err(|_| AppError::NotFound(format!("{what} {raw:?} (not a valid id)")))
}

fn upscales(asked: Option<&[u8]>, default: UpscaleSelection) -> Result<UpscaleSelection, AppError> {
    match asked {
        Some(list) => Ok(UpscaleSelection::from_indices(list)?),
        None => Ok(default),
    }
}

#[tool_router(router = generation_tools, vis = "pub(super)")]
impl Atelier {
    #[tool(
        description = "Generate pictures from a prompt: a 2x2 grid, then the upscales asked for. \
Waits up to `wait` seconds (with progress notifications) and shows the finished pictures as \
thumbnails with links to the full files; if it is not done by then, answers with the \
generation's id and status: call wait_for_generation to keep waiting (the generation goes on \
either way)."
    )]
    async fn generate_image(
        &self,
        Parameters(args): Parameters<GenerateImage>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.generate(args, &ctx).await)
    }

    #[tool(
        description = "A generation's status, progress and pictures (thumbnails once it has \
succeeded).",
        annotations(read_only_hint = true)
    )]
    async fn get_generation(
        &self,
        Parameters(args): Parameters<GenerationRef>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(
            self.show_generation(&args.generation_id, Duration::ZERO, &ctx)
                .await,
        )
    }

    #[tool(
        description = "Wait for a running generation to end, up to `wait` seconds, with \
progress notifications; then show it as get_generation does.",
        annotations(read_only_hint = true)
    )]
    async fn wait_for_generation(
        &self,
        Parameters(args): Parameters<WaitForGeneration>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let wait = self.wait(args.wait);
        answer(self.show_generation(&args.generation_id, wait, &ctx).await)
    }

    #[tool(
        description = "Cancel a generation that is queued or running. One that has already \
ended cannot be canceled.",
        annotations(destructive_hint = true, idempotent_hint = false)
    )]
    async fn cancel_generation(
        &self,
        Parameters(args): Parameters<GenerationRef>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.cancel(&args.generation_id, &ctx).await)
    }

    #[tool(
        description = "Press one of Midjourney's buttons on an earlier picture: u1-u4 (upscale \
one picture of a grid), v1-v4 (variations of one picture of a grid), reroll (the prompt \
again), or on an upscaled picture vary-strong, vary-subtle, upscale-subtle, upscale-creative, \
zoom-out-2x, zoom-out-1.5x, pan-left/right/up/down, animate-high/low (a video grid); on a video \
grid video-u1-video-u4 (one clip); on a clip extend-high/low (a longer clip). Makes a new \
generation and waits for it as generate_image does."
    )]
    async fn run_action(
        &self,
        Parameters(args): Parameters<RunAction>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.action(args, &ctx).await)
    }

    #[tool(
        description = "Run an image's generation again as its next version: the same prompt, \
settings, category and subject (a seed the provider drew is drawn anew). Waits as \
generate_image does."
    )]
    async fn create_version(
        &self,
        Parameters(args): Parameters<CreateVersion>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.version(args, &ctx).await)
    }
}

impl Atelier {
    async fn generate(
        &self,
        args: GenerateImage,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let mut request = GenerationRequest::new(args.prompt);
        request.negative_prompt = args.negative_prompt;
        request.provider = args.provider;
        request.category = args.category.map(super::args::CategoryArg::domain);
        request.subject = args.subject;
        request.aspect_ratio = args.aspect_ratio;
        request.seed = args.seed;
        request.extra = args.parameters.unwrap_or_default();
        request.upscale = upscales(args.upscale.as_deref(), UpscaleSelection::all())?;
        let generation = self.app.submit(actor, request).await?;
        self.after_wait(actor, generation.id, self.wait(args.wait), ctx)
            .await
    }

    async fn action(
        &self,
        args: RunAction,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let image: ImageId = parse_id(&args.image_id, "image")?;
        let upscale = upscales(args.upscale.as_deref(), UpscaleSelection::none())?;
        let generation = self
            .app
            .act_with(
                actor,
                image,
                args.action.name(),
                crate::app::ActOptions {
                    prompt: args.prompt.as_deref(),
                    upscale,
                    ..crate::app::ActOptions::default()
                },
            )
            .await?;
        self.after_wait(actor, generation.id, self.wait(args.wait), ctx)
            .await
    }

    async fn version(
        &self,
        args: CreateVersion,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let image: ImageId = parse_id(&args.image_id, "image")?;
        let generation = self.app.new_version(actor, image).await?;
        self.after_wait(actor, generation.id, self.wait(args.wait), ctx)
            .await
    }

    async fn cancel(
        &self,
        raw: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let id: GenerationId = parse_id(raw, "generation")?;
        self.app.cancel(actor, id).await?;
        let g = self.app.generation(actor, id).await?;
        Ok(CallToolResult::success(vec![
            ContentBlock::text(format!(
                "generation {id} is {} (a running one stops at its next step)",
                g.generation.status.as_str()
            )),
            self.generation_json(&g),
        ]))
    }

    async fn show_generation(
        &self,
        raw: &str,
        wait: Duration,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let id: GenerationId = parse_id(raw, "generation")?;
        self.after_wait(actor, id, wait, ctx).await
    }

    /// Waits (within `wait`) for generation `id`, then shows it: its pictures when it has
    /// succeeded, a tool error saying why when it failed or was canceled, else where it
    /// stands and how to keep waiting.
    async fn after_wait(
        &self,
        actor: Actor,
        id: GenerationId,
        wait: Duration,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        self.wait_for_end(actor, id, wait, ctx).await?;
        let g = self.app.generation(actor, id).await?;
        let status = g.generation.status;
        match status {
            GenerationStatus::Succeeded => {
                let mut blocks = vec![ContentBlock::text(format!(
                    "generation {id} succeeded: {} pictures below, each with a link to its \
                     full file (atelier://images/ID)",
                    g.images.len()
                ))];
                blocks.extend(self.generation_pictures(actor, &g).await?);
                Ok(CallToolResult::success(blocks))
            }
            GenerationStatus::Failed | GenerationStatus::Canceled => {
                let why = g
                    .generation
                    .error
                    .as_ref()
                    .map_or_else(|| "no reason recorded".to_owned(), ToString::to_string);
                Ok(CallToolResult::error(vec![
                    ContentBlock::text(format!(
                        "generation {id} {}: {why}",
                        if status == GenerationStatus::Failed {
                            "failed"
                        } else {
                            "was canceled"
                        }
                    )),
                    self.generation_json(&g),
                ]))
            }
            _ => Ok(CallToolResult::success(vec![
                ContentBlock::text(format!(
                    "generation {id} is {} ({:.0}%{}); it goes on without you: call \
                     wait_for_generation with generation_id \"{id}\" to keep waiting, or \
                     get_generation to look later",
                    status.as_str(),
                    g.generation.progress,
                    g.generation
                        .phase
                        .map(|p| format!(", {}", p.as_str()))
                        .unwrap_or_default(),
                )),
                self.generation_json(&g),
            ])),
        }
    }
}
