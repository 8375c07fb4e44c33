//! `generate`, `image version` and `generation show`: queue a generation, run it in this
//! process while showing its progress, and print the result.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use super::args::GenerateArgs;
use super::output::Out;
use super::{EXIT_FAILURE, load_parsed};
use crate::api::{ActionList, EventView, GenerationView};
use crate::app::{App, Stop};
use crate::config::Config;
use crate::domain::{
    Actor, Category, GenerationId, GenerationRequest, GenerationStatus, ImageId, UpscaleSelection,
};
use crate::error::AppError;
use crate::wiring;

/// The CLI acts as the operator: whoever runs it on the data's machine.
const ME: Actor = Actor::Operator;

const NOTICE_KEY: &str = "sandbox_notice_shown";

pub async fn generate(config: &Config, args: GenerateArgs, out: &Out) -> Result<u8, AppError> {
    let mut request = GenerationRequest::new(args.prompt);
    request.provider = args.provider;
    request.category = args.category.as_deref().and_then(Category::parse);
    request.subject = args.subject;
    request.client_reference = args.reference;
    request.upscale = UpscaleSelection::parse(&args.upscale)?;
    request.seed = args.seed;
    request.extra = extra_parameters(args.bot, &args.param)?;
    // Everything is checked before anything (even the data directory) is written: the
    // image prompts by their number here (stand-ins), then each file read and verified.
    let providers = wiring::providers(config)?;
    let mut asked = request;
    asked.image_prompts = std::iter::repeat_with(ImageId::new)
        .take(args.images.len())
        .collect();
    let mut request = asked.validated()?;
    crate::domain::banned::check(&request, &config.limits.banned_words)?;
    let parameters = request.parameters()?;
    providers
        .check(&request, &parameters)
        .map_err(AppError::Invalid)?;
    let (app, images) = if args.images.is_empty() {
        (wiring::open(config, providers, true).await?, Vec::new())
    } else {
        drop(providers);
        let provider = request.provider.clone();
        sources(
            config,
            &args.images,
            (provider.as_deref(), crate::domain::GenerationKind::Imagine),
            true,
        )
        .await?
    };
    request.image_prompts = images;
    let generation = app.submit(ME, request).await?;
    sandbox_notice(&app, &generation.provider, out).await;
    follow(&app, generation.id, args.no_wait, out).await
}

/// `--bot` and each `--param NAME=VALUE` as the request's provider parameters: numbers and
/// true/false as themselves, anything else as text.
pub(super) fn extra_parameters(
    bot: Option<String>,
    params: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, AppError> {
    let mut extra = serde_json::Map::new();
    if let Some(bot) = bot {
        extra.insert("bot".into(), serde_json::Value::String(bot));
    }
    for param in params {
        let (name, value) = param
            .split_once('=')
            .ok_or_else(|| AppError::Invalid(format!("--param {param:?}: expected NAME=VALUE")))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(AppError::Invalid(format!(
                "--param {param:?}: the name is empty"
            )));
        }
        let value = match serde_json::from_str::<serde_json::Value>(value) {
            Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v,
            _ => serde_json::Value::String(value.to_owned()),
        };
        extra.insert(name.to_owned(), value);
    }
    Ok(extra)
}

pub async fn version(config: &Config, id: &str, no_wait: bool, out: &Out) -> Result<u8, AppError> {
    let id: ImageId = load_parsed(id)?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let generation = app.new_version(ME, id).await?;
    sandbox_notice(&app, &generation.provider, out).await;
    follow(&app, generation.id, no_wait, out).await
}

/// An action as the command line asks for it.
pub struct Act<'a> {
    pub action: Option<&'a str>,
    pub prompt: Option<&'a str>,
    pub upscale: &'a str,
}

pub async fn action(
    config: &Config,
    id: &str,
    asked: &Act<'_>,
    no_wait: bool,
    out: &Out,
) -> Result<u8, AppError> {
    let id: ImageId = load_parsed(id)?;
    let upscale = UpscaleSelection::parse(asked.upscale)?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let Some(action) = asked.action else {
        if asked.prompt.is_some() {
            return Err(AppError::Invalid(
                "--prompt goes with an action (zoom-custom)".into(),
            ));
        }
        let list = ActionList {
            actions: app.actions(ME, id).await?,
        };
        out.result(&list, || actions_line(&list));
        return Ok(0);
    };
    let generation = app
        .act_with(
            ME,
            id,
            action,
            crate::app::ActOptions {
                prompt: asked.prompt,
                upscale,
                ..crate::app::ActOptions::default()
            },
        )
        .await?;
    sandbox_notice(&app, &generation.provider, out).await;
    follow(&app, generation.id, no_wait, out).await
}

/// Image ids as given, files imported first, and the app opened (to write in any case when
/// `write`). Every file is read and checked before anything is written.
async fn sources(
    config: &Config,
    given: &[String],
    (provider, kind): (Option<&str>, crate::domain::GenerationKind),
    write: bool,
) -> Result<(Arc<App>, Vec<ImageId>), AppError> {
    let providers = wiring::providers(config)?;
    providers.resolve(provider).map_err(AppError::Invalid)?;
    let mut ids = Vec::new();
    let mut files = Vec::new();
    for s in given {
        if let Ok(id) = s.parse::<ImageId>() {
            ids.push(Some(id));
        } else {
            let path = std::path::PathBuf::from(s);
            if !path.is_file() {
                return Err(AppError::Invalid(format!(
                    "{s} is neither an image id nor a file"
                )));
            }
            let prepared = crate::app::ImportRequest {
                files: vec![path],
                grid: false,
                prompt: Some("imported for a provider job".into()),
                category: None,
                subject: None,
                png: config.pipeline.png_compression,
                max_file_bytes: config.limits.max_file_bytes(),
                limits: config.limits.pipeline(),
            }
            .prepare()
            .await?;
            files.push(prepared);
            ids.push(None);
        }
    }
    // `generate` writes its generation in any case; the others only write what they import.
    let app = wiring::open(config, providers, !files.is_empty() || write).await?;
    // Admission (the provider's queue) before the files are imported: a refusal imports none.
    if !files.is_empty() {
        app.admits(ME, provider, kind).await?;
    }
    let mut files = files.into_iter();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = if let Some(id) = id {
            app.image(ME, id).await?;
            id
        } else {
            let prepared = files
                .next()
                .ok_or_else(|| AppError::Invalid("internal: missing import".into()))?;
            let imported = app.import(ME, prepared).await?;
            imported
                .first()
                .and_then(|g| g.images.first())
                .map(|i| i.id)
                .ok_or_else(|| AppError::Invalid("the import stored no image".into()))?
        };
        out.push(id);
    }
    Ok((app, out))
}

pub async fn describe(
    config: &Config,
    source: &str,
    provider: Option<&str>,
    no_wait: bool,
    out: &Out,
) -> Result<u8, AppError> {
    let (app, ids) = sources(
        config,
        &[source.to_owned()],
        (provider, crate::domain::GenerationKind::Describe),
        false,
    )
    .await?;
    let image = ids
        .first()
        .copied()
        .ok_or_else(|| AppError::Invalid("give one image".into()))?;
    let generation = app.describe(ME, image, provider).await?;
    sandbox_notice(&app, &generation.provider, out).await;
    follow(&app, generation.id, no_wait, out).await
}

pub async fn shorten(
    config: &Config,
    prompt: &str,
    provider: Option<&str>,
    no_wait: bool,
    out: &Out,
) -> Result<u8, AppError> {
    let mut request = crate::domain::GenerationRequest::new(prompt.to_owned());
    request.provider = provider.map(str::to_owned);
    // Checked before anything (even the data directory) is written.
    let providers = wiring::providers(config)?;
    let request = crate::app::shorten_request(request, &config.limits.banned_words, &providers)?;
    let app = wiring::open(config, providers, true).await?;
    let generation = app.shorten(ME, request, None).await?;
    sandbox_notice(&app, &generation.provider, out).await;
    follow(&app, generation.id, no_wait, out).await
}

pub struct Blend<'a> {
    pub sources: &'a [String],
    pub dimensions: Option<&'a str>,
    pub upscale: &'a str,
    pub provider: Option<&'a str>,
}

pub async fn blend(
    config: &Config,
    blend: &Blend<'_>,
    no_wait: bool,
    out: &Out,
) -> Result<u8, AppError> {
    let upscale = UpscaleSelection::parse(blend.upscale)?;
    let (app, ids) = sources(
        config,
        blend.sources,
        (blend.provider, crate::domain::GenerationKind::Blend),
        false,
    )
    .await?;
    let generation = app
        .blend(ME, &ids, blend.dimensions, &upscale, blend.provider)
        .await?;
    sandbox_notice(&app, &generation.provider, out).await;
    follow(&app, generation.id, no_wait, out).await
}

pub async fn show(config: &Config, id: &str, events: bool, out: &Out) -> Result<u8, AppError> {
    let id: GenerationId = load_parsed(id)?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let g = app.generation(ME, id).await?;
    let mut view = serde_json::to_value(app.generation_view(&g)).unwrap_or_default();
    if events {
        let list: Vec<EventView> = app
            .events(ME, id, 0)
            .await?
            .iter()
            .map(EventView::from)
            .collect();
        view["events"] = serde_json::to_value(list).unwrap_or_default();
    }
    out.result(&view, || {
        super::images::describe_generation(&app.generation_view(&g))
    });
    Ok(0)
}

/// Says once per data directory, on a terminal, that sandbox images are synthetic.
async fn sandbox_notice(app: &App, provider: &str, out: &Out) {
    if provider != "sandbox" || !out.tty || out.json {
        return;
    }
    if matches!(app.setting(NOTICE_KEY).await, Ok(Some(_))) {
        return;
    }
    out.notice(
        "note: no real provider is configured, so the `sandbox` provider drew these images.\n      \
         They are synthetic (flagged so in the catalogue). To generate real images, configure a\n      \
         provider (see `atelier config default` and the README).",
    );
    let _ = app.set_setting(NOTICE_KEY, "yes").await;
}

/// Runs the generation here (unless `no_wait`), shows its progress, prints the result.
async fn follow(
    app: &Arc<App>,
    id: GenerationId,
    no_wait: bool,
    out: &Out,
) -> Result<u8, AppError> {
    if no_wait {
        let g = app.generation(ME, id).await?;
        let view = app.generation_view(&g);
        out.result(&view, || {
            format!("queued {id}\nrun it with: atelier jobs run --until-idle")
        });
        return Ok(0);
    }
    let bar = progress_bar(out);
    let mut events = app.follow(ME, id, 0).await?;
    // Shows progress; never ends the command by itself: the workers, not the generation's last
    // event, say when it is done, since they stop only once its job's end is recorded (so no
    // job stays leased after this process exits).
    let watch = async {
        while let Some(e) = events.next().await {
            if let (Ok(e), Some(bar)) = (e, &bar) {
                show_event(bar, &EventView::from(&e));
            }
        }
        std::future::pending::<()>().await;
    };
    let worked = tokio::select! {
        worked = app.run_workers(1, Stop::UntilDone(id)) => worked,
        () = watch => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            if let Some(bar) = &bar { bar.abandon(); }
            eprintln!("interrupted: generation {id} stays queued; resume it with `atelier jobs run --until-idle`");
            app.release_accounts().await;
            return Ok(130);
        }
    };
    // Another node may connect this one's accounts at once rather than after their holds' lease.
    app.release_accounts().await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    worked?;
    if !app.job_ended(ME, id).await? {
        return Err(AppError::Internal(format!(
            "generation {id} ended, but its job could not be recorded as finished; \
             `atelier jobs run --until-idle` ends it"
        )));
    }
    let g = app.generation(ME, id).await?;
    Ok(print_ended(&app.generation_view(&g), out))
}

/// Prints a generation that ended, says why when it failed, and gives the exit code.
pub(super) fn print_ended(view: &GenerationView, out: &Out) -> u8 {
    out.result(view, || super::images::describe_generation(view));
    let failed = view.status != GenerationStatus::Succeeded.as_str();
    if failed
        && !out.json
        && let Some(e) = &view.error
    {
        eprintln!(
            "error: generation {} {}: {}: {}",
            view.id, view.status, e.code, e.message
        );
    }
    if failed { EXIT_FAILURE } else { 0 }
}

/// One event on the bar: its notice above it, its progress and phase on it.
pub(super) fn show_event(bar: &ProgressBar, e: &EventView) {
    // What the job waits for, above the bar: the bar alone would sit still.
    if let Some(line) = super::output::notice_line(e) {
        bar.println(line);
    }
    bar.set_position(e.progress.round() as u64);
    bar.set_message(e.phase.as_deref().unwrap_or(&e.status).to_owned());
}

pub(super) fn progress_bar(out: &Out) -> Option<ProgressBar> {
    if !out.tty || out.json {
        return None;
    }
    let bar = ProgressBar::new(100);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:40}] {pos:>3}% {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// What `image action ID` prints for the actions an image offers.
pub fn actions_line(list: &ActionList) -> String {
    if list.actions.is_empty() {
        "this image offers no action".to_owned()
    } else {
        list.actions.join(" ")
    }
}
