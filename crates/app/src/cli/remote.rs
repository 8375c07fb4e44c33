//! `--server URL` (or `ATELIER_SERVER`): the commands that act on a remote Atelier through its
//! HTTP API (`client.rs`), signed with `ATELIER_API_KEY`. They print what the same command
//! prints on the data's machine, through the same formatters, and exit with the same codes;
//! commands that run where the data is (serve, workers, migrate…) refuse the flag.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;

use super::args::{
    Command, CreditsCommand, EventsArgs, GenerateArgs, GenerationCommand, ImageCommand,
    JobsCommand, KeyCommand, ListArgs, UserCommand,
};
use super::events::{BATCH, Lines};
use super::load_parsed;
use super::output::Out;
use crate::api::{
    ActionList, ActionRequest, ApiKeyView, AuditEntryView, CreateGeneration, CreditsView,
    EventView, FeedPage, GenerationView, ImageUpdate, ImageView, NewKeyView, Page, UpscaleChoice,
    UserView,
};
use crate::app::AccountView;
use crate::client::Client;
use crate::domain::{
    Email, EventKind, GenerationId, GenerationStatus, ImageId, UpscaleSelection, amount_of,
    key_name, note_of,
};
use crate::error::AppError;

/// A stream that broke is opened again this many times in a row before the command gives up
/// (an event received starts the count again).
const RECONNECTS: u32 = 8;
/// The server's pages are at most this long; longer listings follow the cursor.
const PAGE: u32 = 100;

pub async fn dispatch(server: &str, command: Command, out: &Out) -> Result<u8, AppError> {
    let local_only = |name: &str| {
        Err(AppError::Invalid(format!(
            "`atelier {name}` runs on the machine that holds the data; it has no --server form \
             (drop --server, or unset ATELIER_SERVER)"
        )))
    };
    let not_in_api = |name: &str| {
        Err(AppError::Invalid(format!(
            "`atelier {name}` reads files on this machine, which the HTTP API does not take yet; \
             run it where the data is"
        )))
    };
    // Input is checked before anything is sent, as a local run checks it before opening the
    // catalogue.
    let client = || Client::new(server, Client::key_from_env());
    match command {
        Command::Generate(args) => generate(&client()?, args, out).await,
        Command::Image { command } => match command {
            ImageCommand::List(args) => list(&client()?, &args, out).await,
            ImageCommand::Show { id } => {
                let id: ImageId = load_parsed(&id)?;
                let view: ImageView = client()?.get(&segments(&image_path(id)), &[]).await?;
                out.result(&view, || super::images::image_text(&view));
                Ok(0)
            }
            ImageCommand::Status { id, status } => {
                let update = ImageUpdate {
                    status: Some(status),
                    ..ImageUpdate::default()
                };
                let view = update_image(&client()?, &id, &update).await?;
                out.result(&view, || super::images::status_line(&view));
                Ok(0)
            }
            ImageCommand::Tag { id, tags } => {
                let update = ImageUpdate {
                    tags: Some(tags),
                    ..ImageUpdate::default()
                };
                let view = update_image(&client()?, &id, &update).await?;
                out.result(&view, || super::images::tags_line(&view));
                Ok(0)
            }
            ImageCommand::Version { id, no_wait } => {
                let id: ImageId = load_parsed(&id)?;
                let client = client()?;
                let mut path = image_path(id);
                path.push("versions".into());
                let view: GenerationView = client
                    .create(&segments(&path), &serde_json::json!({}))
                    .await?;
                follow(&client, &view, no_wait, out).await
            }
            ImageCommand::Action {
                id,
                action,
                prompt,
                upscale,
                no_wait,
            } => {
                let id: ImageId = load_parsed(&id)?;
                UpscaleSelection::parse(&upscale)?;
                let client = client()?;
                let mut path = image_path(id);
                path.push("actions".into());
                let Some(action) = action else {
                    if prompt.is_some() {
                        return Err(AppError::Invalid(
                            "--prompt goes with an action (zoom-custom)".into(),
                        ));
                    }
                    let list: ActionList = client.get(&segments(&path), &[]).await?;
                    out.result(&list, || super::generate::actions_line(&list));
                    return Ok(0);
                };
                let body = ActionRequest {
                    action,
                    prompt,
                    upscale: Some(UpscaleChoice::Text(upscale)),
                };
                let view: GenerationView = client.create(&segments(&path), &body).await?;
                follow(&client, &view, no_wait, out).await
            }
            ImageCommand::Import(_) => not_in_api("image import"),
        },
        Command::Generation {
            command: GenerationCommand::Show { id, events },
        } => show_generation(&client()?, &id, events, out).await,
        Command::Jobs { command } => match command {
            JobsCommand::Cancel { id } => {
                let id: GenerationId = load_parsed(&id)?;
                let mut path = generation_path(id);
                path.push("cancel".into());
                let view: GenerationView = client()?
                    .send(Method::POST, &segments(&path), &serde_json::json!({}))
                    .await?;
                out.result(&view, || super::jobs::canceled_line(&view));
                Ok(0)
            }
            JobsCommand::Run { .. } => local_only("jobs run"),
        },
        Command::Events(args) => events(&client()?, &args, out).await,
        Command::Accounts(args) => {
            if args.check {
                return Err(AppError::Invalid(
                    "`accounts --check` connects the accounts from this process; with --server \
                     the server's node holds them: run `atelier accounts` for their health"
                        .into(),
                ));
            }
            let views: Vec<AccountView> = client()?.get(&["v1", "admin", "accounts"], &[]).await?;
            out.result(&views, || super::accounts::table(&views));
            Ok(0)
        }
        Command::User { command } => user(&client()?, command, out).await,
        Command::Key { command } => key(&client()?, command, out).await,
        Command::Credits { command } => credits(&client()?, command, out).await,
        Command::Audit { limit, before } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(before) = before {
                query.push(("before", before.to_string()));
            }
            let views: Vec<AuditEntryView> =
                client()?.get(&["v1", "admin", "audit"], &query).await?;
            out.result(&views, || super::users::audit_table(&views));
            Ok(0)
        }
        Command::Describe { .. } => not_in_api("describe"),
        Command::Shorten { .. } => Err(AppError::Invalid(
            "`atelier shorten` has no route in the HTTP API yet (its clients use /mj/submit/shorten); run it where the data is"
                .into(),
        )),
        Command::Blend { .. } => not_in_api("blend"),
        Command::Worker(_) => local_only("worker"),
        Command::Serve(_) => local_only("serve"),
        Command::Mcp(_) => local_only("mcp"),
        Command::Bench(_) => local_only("bench"),
        Command::Migrate(_) => local_only("migrate"),
        Command::Config { .. } => local_only("config show"),
        Command::Midjourney { .. } | Command::Simulate { .. } => local_only("simulate"),
    }
}

/// A stream that could not be opened for a reason trying again does not mend (an unknown id,
/// bad input, a refused key), as opposed to a server away or a connection broken.
fn lasting(e: &AppError) -> bool {
    matches!(
        e,
        AppError::NotFound(_) | AppError::Invalid(_) | AppError::Forbidden(_)
    ) || matches!(e, AppError::Remote { status: 401, .. })
}

fn image_path(id: ImageId) -> Vec<String> {
    vec!["v1".into(), "images".into(), id.to_string()]
}

fn generation_path(id: GenerationId) -> Vec<String> {
    vec!["v1".into(), "generations".into(), id.to_string()]
}

/// Borrowed segments of an owned path.
fn segments(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

async fn update_image(
    client: &Client,
    id: &str,
    update: &ImageUpdate,
) -> Result<ImageView, AppError> {
    let id: ImageId = load_parsed(id)?;
    client
        .send(Method::PATCH, &segments(&image_path(id)), update)
        .await
}

async fn generate(client: &Client, args: GenerateArgs, out: &Out) -> Result<u8, AppError> {
    // What the server would refuse, refused here with the local wording.
    UpscaleSelection::parse(&args.upscale)?;
    if let Some(reference) = &args.reference {
        crate::domain::check_client_reference(reference)?;
    }
    let parameters = super::generate::extra_parameters(args.bot, &args.param)?;
    // The server takes image prompts it stores already; a file would need importing there.
    if let Some(file) = args.images.iter().find(|i| i.parse::<ImageId>().is_err()) {
        return Err(AppError::Invalid(format!(
            "--image {file}: with --server, give the id of an image the server stores (a file is imported only into a local data directory)"
        )));
    }
    let body = CreateGeneration {
        image_prompts: args.images,
        prompt: args.prompt,
        provider: args.provider,
        category: args.category,
        subject: args.subject,
        upscale: Some(UpscaleChoice::Text(args.upscale)),
        seed: args.seed,
        parameters,
        client_reference: args.reference,
        ..CreateGeneration::default()
    };
    let view: GenerationView = client.create(&["v1", "generations"], &body).await?;
    follow(client, &view, args.no_wait, out).await
}

/// Shows a generation's progress from its event stream until it ends (opening the stream
/// again after the last event seen if it breaks), then prints it as a local run does. The
/// server runs it: an interrupted command leaves it running there.
async fn follow(
    client: &Client,
    created: &GenerationView,
    no_wait: bool,
    out: &Out,
) -> Result<u8, AppError> {
    let id = created.id.clone();
    if no_wait {
        out.result(created, || {
            format!(
                "queued {id}\nfollow it with: atelier --server … generation show {id} (the server runs it)"
            )
        });
        return Ok(0);
    }
    let bar = super::generate::progress_bar(out);
    let generation: GenerationId = load_parsed(&id)?;
    let mut path = generation_path(generation);
    path.push("events".into());
    let path = segments(&path);
    let watch = async {
        let mut last: Option<String> = None;
        let mut failures = 0;
        loop {
            let stream = client.events(&path, &[], last.as_deref()).await;
            let ended = match stream {
                Ok(stream) => {
                    let mut stream = Box::pin(stream);
                    let mut ended = false;
                    while let Some(item) = stream.next().await {
                        let Ok(sse) = item else { break };
                        if sse.event.as_deref() == Some("error") {
                            break;
                        }
                        let Some(data) = sse.data.as_deref() else {
                            continue;
                        };
                        let Ok(event) = serde_json::from_str::<EventView>(data) else {
                            continue;
                        };
                        failures = 0;
                        last = sse.id.or(last);
                        if let Some(bar) = &bar {
                            super::generate::show_event(bar, &event);
                        }
                        if EventKind::parse(&event.kind).is_some_and(EventKind::is_terminal) {
                            ended = true;
                            break;
                        }
                    }
                    ended
                }
                Err(e) if lasting(&e) => return Err(e),
                Err(_) => false,
            };
            if ended {
                return Ok(());
            }
            // The stream ended without the generation's end: the server stopped or the
            // connection broke. Ask where it stands, then open the stream again.
            failures += 1;
            if failures > RECONNECTS {
                return Err(AppError::Unreachable(format!(
                    "lost the event stream of generation {id} {RECONNECTS} times; it goes on on the server"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(failures.min(5)))).await;
        }
    };
    let watched = tokio::select! {
        watched = watch => watched,
        _ = tokio::signal::ctrl_c() => {
            if let Some(bar) = &bar { bar.abandon(); }
            eprintln!("interrupted: generation {id} goes on on the server; see it with `atelier --server … generation show {id}`");
            return Ok(130);
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    watched?;
    let view: GenerationView = client
        .get(&segments(&generation_path(generation)), &[])
        .await?;
    Ok(super::generate::print_ended(&view, out))
}

async fn show_generation(
    client: &Client,
    id: &str,
    with_events: bool,
    out: &Out,
) -> Result<u8, AppError> {
    let generation: GenerationId = load_parsed(id)?;
    let view: GenerationView = client
        .get(&segments(&generation_path(generation)), &[])
        .await?;
    if !with_events {
        out.result(&view, || super::images::describe_generation(&view));
        return Ok(0);
    }
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = feed_page(client, after, Some(&view.id), BATCH).await?;
        let short = page.data.len() < BATCH as usize;
        for e in page.data {
            after = e.position;
            events.push(e.event);
        }
        if short {
            break;
        }
    }
    let mut shown = serde_json::to_value(&view).unwrap_or_default();
    shown["events"] = serde_json::to_value(events).unwrap_or_default();
    out.result(&shown, || super::images::describe_generation(&view));
    Ok(0)
}

async fn feed_page(
    client: &Client,
    after: i64,
    generation: Option<&str>,
    limit: u32,
) -> Result<FeedPage, AppError> {
    let mut query = vec![("after", after.to_string()), ("limit", limit.to_string())];
    if let Some(g) = generation {
        query.push(("generation", g.to_owned()));
    }
    client.get(&["v1", "events"], &query).await
}

async fn list(client: &Client, args: &ListArgs, out: &Out) -> Result<u8, AppError> {
    if args.limit == 0 {
        return Err(AppError::Invalid("--limit must be at least 1".into()));
    }
    if let Some(g) = &args.generation {
        load_parsed::<GenerationId>(g)?;
    }
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("status", &args.status),
        ("category", &args.category),
        ("tag", &args.tag),
        ("generation", &args.generation),
        ("kind", &args.kind),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    let mut views: Vec<ImageView> = Vec::new();
    let mut cursor: Option<String> = None;
    while views.len() < args.limit as usize {
        let wanted = (args.limit as usize - views.len()).min(PAGE as usize);
        let mut q = query.clone();
        q.push(("limit", wanted.to_string()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page: Page<ImageView> = client.get(&["v1", "images"], &q).await?;
        views.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    views.truncate(args.limit as usize);
    out.result(&views, || {
        views
            .iter()
            .map(super::images::describe_image)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}

/// `events`: the stored ones page by page; with `--follow`, the stream (from the feed's end
/// unless told where), opened again after the last position seen when it breaks.
async fn events(client: &Client, args: &EventsArgs, out: &Out) -> Result<u8, AppError> {
    let generation = args
        .generation
        .as_deref()
        .map(load_parsed::<GenerationId>)
        .transpose()?
        .map(|g| g.to_string());
    let mut lines = Lines::new(out);
    let mut after = match (args.after, args.from_start, args.follow) {
        (Some(after), ..) => after,
        (None, true, _) | (None, false, false) => 0,
        (None, false, true) => feed_page(client, 0, None, 1).await?.end,
    };
    let ended = match &generation {
        Some(g) => {
            let id: GenerationId = load_parsed(g)?;
            let view: GenerationView = client.get(&segments(&generation_path(id)), &[]).await?;
            GenerationStatus::parse(&view.status).is_some_and(GenerationStatus::is_terminal)
        }
        None => false,
    };
    if !args.follow || ended {
        // A generation that ended before this follower started: what is left after `after`.
        loop {
            let page = feed_page(client, after, generation.as_deref(), BATCH).await?;
            let short = page.data.len() < BATCH as usize;
            for e in &page.data {
                lines.print_view(e)?;
                after = e.position;
            }
            if short {
                return Ok(0);
            }
        }
    }
    let mut query = Vec::new();
    if let Some(g) = &generation {
        query.push(("generation", g.clone()));
    }
    let follow = async {
        let mut failures = 0;
        loop {
            let last = after.to_string();
            match client.events(&["v1", "events"], &query, Some(&last)).await {
                Ok(stream) => {
                    let mut stream = Box::pin(stream);
                    while let Some(Ok(sse)) = stream.next().await {
                        if sse.event.as_deref() == Some("error") {
                            break;
                        }
                        let Some(Ok(view)) = sse
                            .data
                            .as_deref()
                            .map(serde_json::from_str::<crate::api::FeedEventView>)
                        else {
                            continue;
                        };
                        failures = 0;
                        lines.print_view(&view)?;
                        after = view.position;
                        if generation.is_some()
                            && EventKind::parse(&view.event.kind)
                                .is_some_and(EventKind::is_terminal)
                        {
                            return Ok(());
                        }
                    }
                }
                Err(e) if lasting(&e) => return Err(e),
                Err(_) => {}
            }
            failures += 1;
            if failures > RECONNECTS {
                return Err(AppError::Unreachable(format!(
                    "lost the event stream {RECONNECTS} times in a row"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(failures.min(5)))).await;
        }
    };
    tokio::select! {
        followed = follow => followed?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(0)
}

fn user_path(email: &str, rest: &'static str) -> Result<[String; 5], AppError> {
    let email = Email::parse(email)?;
    Ok([
        "v1".into(),
        "admin".into(),
        "users".into(),
        email.to_string(),
        rest.into(),
    ])
}

async fn user(client: &Client, command: UserCommand, out: &Out) -> Result<u8, AppError> {
    match command {
        UserCommand::Add {
            email,
            admin,
            password_stdin,
        } => {
            Email::parse(&email)?;
            let password = super::users::new_password(password_stdin)?;
            let body = serde_json::json!({"email": email, "admin": admin, "password": password});
            let view: UserView = client
                .send(Method::POST, &["v1", "admin", "users"], &body)
                .await?;
            out.result(&view, || super::users::user_line(&view));
            Ok(0)
        }
        UserCommand::List { limit } => {
            let views: Vec<UserView> = client
                .get(&["v1", "admin", "users"], &[("limit", limit.to_string())])
                .await?;
            out.result(&views, || super::users::users_table(&views));
            Ok(0)
        }
    }
}

async fn key(client: &Client, command: KeyCommand, out: &Out) -> Result<u8, AppError> {
    match command {
        KeyCommand::Create { user, name } => {
            key_name(&name)?;
            let path = user_path(&user, "keys")?;
            let view: NewKeyView = client
                .send(
                    Method::POST,
                    &segments(&path),
                    &serde_json::json!({"name": name}),
                )
                .await?;
            super::users::print_new_key(out, &view, &user);
            Ok(0)
        }
        KeyCommand::List { user } => {
            let path = user_path(&user, "keys")?;
            let views: Vec<ApiKeyView> = client.get(&segments(&path), &[]).await?;
            out.result(&views, || super::users::keys_table(&views));
            Ok(0)
        }
        KeyCommand::Revoke { id } => {
            let id: crate::domain::ApiKeyId = load_parsed(&id)?;
            let view: ApiKeyView = client
                .send(
                    Method::DELETE,
                    &["v1", "admin", "keys", &id.to_string()],
                    &serde_json::json!({}),
                )
                .await?;
            out.result(&view, || super::users::revoked_line(&view));
            Ok(0)
        }
    }
}

async fn credits(client: &Client, command: CreditsCommand, out: &Out) -> Result<u8, AppError> {
    let (user, limit) = match command {
        CreditsCommand::Grant {
            user,
            amount,
            note,
            kind,
        } => {
            amount_of(amount)?;
            note_of(note.as_deref())?;
            crate::domain::GrantKind::parse(&kind)?;
            let path = user_path(&user, "credits")?;
            let body = serde_json::json!({"amount": amount, "kind": kind, "note": note});
            let _: serde_json::Value = client.send(Method::POST, &segments(&path), &body).await?;
            (user, 1)
        }
        CreditsCommand::Show { user, limit } => (user, limit),
    };
    // Shown as the server keeps it, as a local run shows it.
    let user = Email::parse(&user)?.to_string();
    let path = user_path(&user, "credits")?;
    let view: CreditsView = client
        .get(&segments(&path), &[("limit", limit.to_string())])
        .await?;
    out.result(&view, || super::users::credits_text(&user, &view));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_one_path_segment() {
        let path = user_path("a+b@example.com", "keys").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(path[3], "a+b@example.com");
        assert!(user_path("not an address", "keys").is_err());
    }
}
