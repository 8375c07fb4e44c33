//! `image list | show | status | tag | import`.

use std::fmt::Write;

use super::args::{ImportArgs, ListArgs};
use super::load_parsed;
use super::output::Out;
use crate::api::{GenerationView, ImageQuery, ImageView};
use crate::app::ImportRequest;
use crate::config::Config;
use crate::domain::{Actor, Category, GenerationId, ImageId, ImageStatus, MediaKind};
use crate::error::AppError;
use crate::wiring;

/// The human form of a generation: a status line and one line per image.
pub fn describe_generation(g: &GenerationView) -> String {
    let mut s = format!("generation {} {} ({}%)", g.id, g.status, g.progress);
    if let Some(e) = &g.error {
        let _ = write!(s, ": {} {}", e.code, e.message);
    }
    for i in &g.images {
        s.push('\n');
        s.push_str(&describe_image(i));
    }
    for (n, p) in g.prompts.iter().enumerate() {
        let _ = write!(s, "\n{}. {p}", n + 1);
    }
    s
}

pub(super) fn describe_image(i: &ImageView) -> String {
    let place = i
        .path
        .as_deref()
        .or(i.url.as_deref())
        .unwrap_or(&i.storage_key);
    let synthetic = if i.synthetic { " synthetic" } else { "" };
    let clip = i.duration_ms.map_or_else(String::new, |ms| {
        format!(" video {}.{:03}s", ms / 1000, ms % 1000)
    });
    format!(
        "{:<10} {}  {}x{} {}{} {}{}  {}",
        i.role, i.id, i.width, i.height, i.format, clip, i.status, synthetic, place
    )
}

pub async fn list(config: &Config, args: ListArgs, out: &Out) -> Result<u8, AppError> {
    let generation_id = args
        .generation
        .as_deref()
        .map(load_parsed::<GenerationId>)
        .transpose()?;
    if args.limit == 0 {
        return Err(AppError::Invalid("--limit must be at least 1".into()));
    }
    let query = ImageQuery {
        status: args.status.as_deref().and_then(ImageStatus::parse),
        kind: args.kind.as_deref().and_then(MediaKind::parse),
        category: args.category.as_deref().and_then(Category::parse),
        tag: args.tag.map(|t| t.trim().to_lowercase()),
        generation_id,
        limit: Some(args.limit),
        ..ImageQuery::default()
    };
    let app = match wiring::open(config, wiring::providers(config)?, false).await {
        Err(AppError::NotFound(_)) => {
            out.result(&Vec::<ImageView>::new(), String::new);
            return Ok(0);
        }
        other => other?,
    };
    let page = app.images(Actor::Operator, &query).await?;
    let views: Vec<ImageView> = page.images.iter().map(|i| app.image_view(i)).collect();
    out.result(&views, || {
        views
            .iter()
            .map(describe_image)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}

pub async fn show(config: &Config, id: &str, out: &Out) -> Result<u8, AppError> {
    let id: ImageId = load_parsed(id)?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let view = app.image_view(&app.image(Actor::Operator, id).await?);
    out.result(&view, || image_text(&view));
    Ok(0)
}

/// `image show`'s human form.
pub(super) fn image_text(view: &ImageView) -> String {
    let mut s = describe_image(view);
    let _ = write!(
        s,
        "\n  generation {}  sha256 {}  {} bytes\n  palette {}  tags {}",
        view.generation_id,
        view.sha256,
        view.size_bytes,
        view.palette.join(" "),
        if view.tags.is_empty() {
            "-".to_owned()
        } else {
            view.tags.join(", ")
        }
    );
    s
}

pub(super) fn status_line(view: &ImageView) -> String {
    format!("image {} is now {}", view.id, view.status)
}

pub(super) fn tags_line(view: &ImageView) -> String {
    format!("image {} tags: {}", view.id, view.tags.join(", "))
}

pub async fn status(config: &Config, id: &str, status: &str, out: &Out) -> Result<u8, AppError> {
    let id: ImageId = load_parsed(id)?;
    let status = ImageStatus::parse(status)
        .ok_or_else(|| AppError::Invalid(format!("unknown status {status:?}")))?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let view = app.image_view(&app.set_image_status(Actor::Operator, id, status).await?);
    out.result(&view, || status_line(&view));
    Ok(0)
}

pub async fn tag(config: &Config, id: &str, tags: &[String], out: &Out) -> Result<u8, AppError> {
    let id: ImageId = load_parsed(id)?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let view = app.image_view(&app.tag(Actor::Operator, id, tags).await?);
    out.result(&view, || tags_line(&view));
    Ok(0)
}

pub async fn import(config: &Config, args: ImportArgs, out: &Out) -> Result<u8, AppError> {
    let request = ImportRequest {
        files: args.files,
        grid: args.grid,
        prompt: args.prompt,
        category: args.category.as_deref().and_then(Category::parse),
        subject: args.subject,
        png: config.pipeline.png_compression,
        max_file_bytes: config.limits.max_file_bytes(),
        limits: config.limits.pipeline(),
    };
    // Every file is read and verified before the data directory is even opened.
    let prepared = request.prepare().await?;
    let app = wiring::open(config, wiring::providers(config)?, true).await?;
    let done = app.import(Actor::Operator, prepared).await?;
    let views: Vec<GenerationView> = done.iter().map(|g| app.generation_view(g)).collect();
    out.result(&views, || {
        views
            .iter()
            .map(describe_generation)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}
