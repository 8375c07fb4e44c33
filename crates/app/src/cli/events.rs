//! `atelier events [--follow] [--generation ID]`: the feed of events, as any process or node
//! writes them. A line per event (time, generation, kind, status, progress); with `--json`,
//! one JSON object per line (an `api::FeedEventView`), so a follower reads them as they come.

use std::io::Write;
use std::time::Duration;

use super::args::EventsArgs;
use super::load_parsed;
use super::output::Out;
use crate::api::FeedEventView;
use crate::app::App;
use crate::catalogue::FeedEntry;
use crate::config::Config;
use crate::domain::GenerationId;
use crate::error::AppError;
use crate::wiring;

/// Events read at once.
const BATCH: u32 = 500;

/// Longest wait between two reads of the feed. On `SQLite` another process's writes are heard
/// only when the wait ends, so this is how late a follower may print them.
const WAIT: Duration = Duration::from_millis(200);

pub async fn print(config: &Config, args: &EventsArgs, out: &Out) -> Result<u8, AppError> {
    let generation: Option<GenerationId> =
        args.generation.as_deref().map(load_parsed).transpose()?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    if let Some(id) = generation {
        // An unknown id is bad input (exit 2), not a wait for events that never come.
        app.catalogue.generation(id).await?;
    }
    let after = match (args.after, args.from_start, args.follow) {
        (Some(after), ..) => after,
        (None, true, _) | (None, false, false) => 0,
        (None, false, true) => app.feed_end().await?,
    };
    if !args.follow {
        let mut lines = Lines::new(out);
        read_all(&app, after, generation, &mut lines).await?;
        return Ok(0);
    }
    tokio::select! {
        followed = follow(&app, after, generation, out) => followed?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(0)
}

/// Prints the events after `after` up to the end of the feed; returns the last position read
/// and whether the followed generation has ended among them.
async fn read_all(
    app: &App,
    mut after: i64,
    generation: Option<GenerationId>,
    lines: &mut Lines<'_>,
) -> Result<(i64, bool), AppError> {
    let mut ended = false;
    loop {
        let batch = app.feed(after, generation, BATCH).await?;
        for entry in &batch {
            lines.print(entry)?;
            after = entry.position;
            ended |= generation.is_some() && entry.event.kind.is_terminal();
        }
        if batch.len() < BATCH as usize || ended {
            return Ok((after, ended));
        }
    }
}

/// Prints events as they are written, until the followed generation ends (never without one).
async fn follow(
    app: &App,
    mut after: i64,
    generation: Option<GenerationId>,
    out: &Out,
) -> Result<(), AppError> {
    let mut lines = Lines::new(out);
    loop {
        // Read before looking, so events written after the look wake the wait below.
        let seen = app.events_seen();
        let (last, ended) = read_all(app, after, generation, &mut lines).await?;
        if ended {
            return Ok(());
        }
        if last == after
            && let Some(id) = generation
        {
            // It ended before this follower started: nothing more will come. Its end event,
            // if written after the start, was read above.
            if app.catalogue.generation(id).await?.status.is_terminal() {
                let (_, _) = read_all(app, last, generation, &mut lines).await?;
                return Ok(());
            }
        }
        after = last;
        app.wait_for_events(seen, WAIT).await;
    }
}

/// Writes one line per event on stdout and flushes it, so a pipe gets each event as it comes.
struct Lines<'a> {
    out: &'a Out,
    stdout: std::io::Stdout,
}

impl<'a> Lines<'a> {
    fn new(out: &'a Out) -> Self {
        Self {
            out,
            stdout: std::io::stdout(),
        }
    }

    fn print(&mut self, entry: &FeedEntry) -> Result<(), AppError> {
        let line = if self.out.json {
            serde_json::to_string(&FeedEventView::from(entry))
                .map_err(|e| AppError::Internal(format!("an event did not serialize: {e}")))?
        } else {
            human(entry)
        };
        let mut stdout = self.stdout.lock();
        // A closed pipe (`| head`) ends the command: nobody reads any more.
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(|e| AppError::Internal(format!("cannot write to stdout: {e}")))
    }
}

/// `2026-12-06T15:28:14Z 0193… generation.progress running 42% (grid) note: …`
fn human(entry: &FeedEntry) -> String {
    let view = FeedEventView::from(entry);
    let e = &view.event;
    let mut line = format!(
        "{} {} {} {} {:.0}%",
        e.at, e.generation_id, e.kind, e.status, e.progress
    );
    if let Some(phase) = e.phase {
        let _ = std::fmt::Write::write_fmt(&mut line, format_args!(" ({phase})"));
    }
    if let Some(error) = &entry.event.error {
        let _ = std::fmt::Write::write_fmt(
            &mut line,
            format_args!(" {}: {}", error.code, error.message),
        );
    }
    line
}
