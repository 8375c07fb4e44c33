//! `atelier events [--follow] [--generation ID]`: the feed of events, as any process or node
//! writes them. A line per event (time, generation, kind, status, progress); with `--json`,
//! one JSON object per line (an `api::FeedEventView`), so a follower reads them as they come.

use std::io::Write;

use super::args::EventsArgs;
use super::load_parsed;
use super::output::Out;
use crate::api::FeedEventView;
use crate::app::{App, FeedEntry};
use crate::config::Config;
use crate::domain::{Actor, GenerationId};
use crate::error::AppError;
use crate::wiring;

/// Events read at once.
pub(super) const BATCH: u32 = 500;

pub async fn print(config: &Config, args: &EventsArgs, out: &Out) -> Result<u8, AppError> {
    let generation: Option<GenerationId> =
        args.generation.as_deref().map(load_parsed).transpose()?;
    let app = wiring::open(config, wiring::providers(config)?, false).await?;
    let after = match (args.after, args.from_start, args.follow) {
        (Some(after), ..) => after,
        (None, true, _) | (None, false, false) => 0,
        (None, false, true) => app.feed_end().await?,
    };
    let mut lines = Lines::new(out);
    if !args.follow {
        // An unknown id is bad input (exit 2), as `feed` checks it.
        let mut after = after;
        loop {
            let batch = app.feed(Actor::Operator, after, generation, BATCH).await?;
            for entry in &batch {
                lines.print(entry)?;
                after = entry.position;
            }
            if batch.len() < BATCH as usize {
                return Ok(0);
            }
        }
    }
    tokio::select! {
        followed = follow(&app, after, generation, &mut lines) => followed?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(0)
}

/// Prints events as they are written, until the followed generation ends (never without one).
async fn follow(
    app: &App,
    after: i64,
    generation: Option<GenerationId>,
    lines: &mut Lines<'_>,
) -> Result<(), AppError> {
    if let Some(id) = generation
        && app
            .generation(Actor::Operator, id)
            .await?
            .generation
            .status
            .is_terminal()
    {
        // It ended before this follower started: print what is left after `after`.
        for entry in app
            .feed(Actor::Operator, after, generation, u32::MAX)
            .await?
        {
            lines.print(&entry)?;
        }
        return Ok(());
    }
    let mut feed = app.follow_feed(Actor::Operator, after, generation).await?;
    while let Some(entry) = feed.next().await {
        let entry = entry?;
        lines.print(&entry)?;
        if generation.is_some() && entry.event.kind.is_terminal() {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes one line per event on stdout and flushes it, so a pipe gets each event as it comes.
pub(super) struct Lines<'a> {
    out: &'a Out,
    stdout: std::io::Stdout,
}

impl<'a> Lines<'a> {
    pub(super) fn new(out: &'a Out) -> Self {
        Self {
            out,
            stdout: std::io::stdout(),
        }
    }

    fn print(&mut self, entry: &FeedEntry) -> Result<(), AppError> {
        self.print_view(&FeedEventView::from(entry))
    }

    /// One event as the feed shows it, whichever door it came through.
    pub(super) fn print_view(&mut self, view: &FeedEventView) -> Result<(), AppError> {
        let line = if self.out.json {
            serde_json::to_string(view)
                .map_err(|e| AppError::Internal(format!("an event did not serialize: {e}")))?
        } else {
            human(view)
        };
        let mut stdout = self.stdout.lock();
        // A closed pipe (`| head`) ends the command: nobody reads any more.
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(|e| AppError::Internal(format!("cannot write to stdout: {e}")))
    }
}

/// `2026-12-06T15:28:14Z 0193… generation.progress running 42% (grid) note: …`
fn human(view: &FeedEventView) -> String {
    let e = &view.event;
    let mut line = format!(
        "{} {} {} {} {:.0}%",
        e.at, e.generation_id, e.kind, e.status, e.progress
    );
    if let Some(phase) = &e.phase {
        let _ = std::fmt::Write::write_fmt(&mut line, format_args!(" ({phase})"));
    }
    if let Some(error) = &e.error {
        let _ = std::fmt::Write::write_fmt(
            &mut line,
            format_args!(" {}: {}", error.code, error.message),
        );
    }
    line
}
