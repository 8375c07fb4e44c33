//! `atelier migrate`: the destination as the user names it, a progress bar on a terminal, and
//! the report (exit 1 when anything was refused).

use std::fmt::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::args::MigrateArgs;
use super::{EXIT_FAILURE, Out};
use crate::config::Config;
use crate::error::AppError;
use crate::migrate::{Destination, MigrateError, Progress, Report, StorageDestination};

pub async fn migrate(config: &Config, args: &MigrateArgs, out: &Out) -> Result<u8, AppError> {
    let to = Destination {
        database: args.to_database.clone(),
        storage: args
            .to_storage
            .as_deref()
            .map(|s| storage_destination(s, args))
            .transpose()?,
        public_base_url: args.public_base_url.clone(),
    };
    let migration = crate::wiring::migration(config, &to, pause()).await?;
    let bar = Bar::new(out);
    let report = migration.run(&bar).await.map_err(|e| match e {
        MigrateError::WorkersRunning(_) => AppError::Conflict(e.to_string()),
        MigrateError::Source(e) | MigrateError::Target(e) => AppError::from(e),
        MigrateError::Blob(e) => AppError::Internal(e.to_string()),
    })?;
    if let Some(bar) = bar.0 {
        bar.finish_and_clear();
    }
    out.result(&report, || human(&report));
    Ok(if report.refused.is_empty() {
        0
    } else {
        EXIT_FAILURE
    })
}

/// `--to-storage`: `s3://BUCKET[/PREFIX]`, a `file://` URL, or a folder.
fn storage_destination(s: &str, args: &MigrateArgs) -> Result<StorageDestination, AppError> {
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, root) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(AppError::Invalid(format!(
                "--to-storage {s:?} names no bucket: s3://BUCKET[/PREFIX]"
            )));
        }
        return Ok(StorageDestination::S3 {
            bucket: bucket.to_owned(),
            root: root.trim_matches('/').to_owned(),
            endpoint: args.endpoint.clone(),
            region: args.region.clone(),
        });
    }
    if args.endpoint.is_some() {
        return Err(AppError::Invalid(
            "--endpoint is for an s3:// destination".into(),
        ));
    }
    let path = s.strip_prefix("file://").unwrap_or(s);
    if s.contains("://") && !s.starts_with("file://") {
        return Err(AppError::Invalid(format!(
            "--to-storage must be a folder or s3://BUCKET[/PREFIX], not {s:?}"
        )));
    }
    Ok(StorageDestination::Folder(path.into()))
}

/// Test builds only: `ATELIER_MIGRATE_PAUSE_MS` pauses after each generation's blobs, so a
/// test can kill a run in the middle. Release builds never read it.
fn pause() -> Option<Duration> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var("ATELIER_MIGRATE_PAUSE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
}

/// The progress bar, on a terminal only.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(out: &Out) -> Self {
        if !out.tty || out.json {
            return Self(None);
        }
        let bar = ProgressBar::new(0);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} generations {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }
}

impl Progress for Bar {
    fn total(&self, generations: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(generations);
        }
    }

    fn step(&self, r: &Report) {
        if let Some(bar) = &self.0 {
            bar.set_position(r.generations_copied + r.generations_present + r.refused.len() as u64);
            bar.set_message(format!("{} copied", bytes(r.bytes_copied)));
        }
    }
}

fn human(r: &Report) -> String {
    let mut text = format!(
        "{} generations: {} copied ({} images, {} events, {} jobs queued again), {} already there\n\
         blobs: {} copied ({}), {} already there and verified",
        r.generations,
        r.generations_copied,
        r.images_copied,
        r.events_copied,
        r.jobs_requeued,
        r.generations_present,
        r.blobs_copied,
        bytes(r.bytes_copied),
        r.blobs_present,
    );
    if r.urls_rewritten > 0 {
        let _ = write!(text, "\npublic URLs rewritten: {}", r.urls_rewritten);
    }
    if !r.refused.is_empty() {
        let _ = write!(text, "\nrefused {}:", r.refused.len());
        for refused in &r.refused {
            let _ = write!(text, "\n  {}: {}", refused.generation, refused.reason);
        }
    }
    text
}

fn bytes(n: u64) -> String {
    if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}
