//! `atelier accounts`: the pooled provider accounts, their health and why one is disabled.

use std::fmt::Write as _;
use std::time::Duration;

use super::args::AccountsArgs;
use super::output::Out;
use crate::app::{AccountView, account_views};
use crate::config::Config;
use crate::error::AppError;
use crate::wiring;

pub async fn list(config: &Config, args: &AccountsArgs, out: &Out) -> Result<u8, AppError> {
    let providers = wiring::providers(config)?;
    // --check records what it finds, so it may create the catalogue; a plain listing writes
    // nothing.
    let check = args.check.then(|| Duration::from_secs(args.wait));
    let views = match wiring::open(config, providers.clone(), args.check).await {
        Ok(app) if args.check => {
            // Connecting an account needs this process to hold it, as a node does.
            app.hold_accounts();
            let views = app.accounts(check).await;
            app.release_accounts().await;
            views?
        }
        Ok(app) => app.accounts(check).await?,
        // Nothing was ever generated here: no recorded state to show.
        Err(AppError::NotFound(_)) => account_views(&providers, None, check).await?,
        Err(e) => return Err(e),
    };
    out.result(&views, || table(&views));
    // A check passes only when every account is ready to take a job.
    let not_ready: Vec<String> = views
        .iter()
        .filter(|v| v.status.health != "ready")
        .map(|v| {
            let s = &v.status;
            match &s.reason {
                Some(reason) => format!("{} is {}: {reason}", s.name, s.health),
                None => format!("{} is {}", s.name, s.health),
            }
        })
        .collect();
    if !args.check || not_ready.is_empty() {
        return Ok(0);
    }
    if !out.json {
        eprintln!(
            "error: not every account is ready: {}",
            not_ready.join("; ")
        );
    }
    Ok(1)
}

/// The accounts as a table, with why each is not ready.
pub(super) fn table(views: &[AccountView]) -> String {
    if views.is_empty() {
        return "no provider accounts are configured (see [[providers.midjourney.accounts]] in `atelier config default`)".into();
    }
    // Provider and account names vary in length (`replicate:ALIAS`): columns fit the longest.
    let pw = views
        .iter()
        .map(|v| v.provider.len())
        .max()
        .unwrap_or(0)
        .max(12);
    let aw = views
        .iter()
        .map(|v| v.status.name.len())
        .max()
        .unwrap_or(0)
        .max(11);
    let mut text = format!(
        "{:<pw$} {:<aw$} {:<10} {:>4} {:>5}  {:<20} {}\n",
        "PROVIDER", "ACCOUNT", "HEALTH", "BUSY", "QUEUE", "CHANNEL", "NOTE"
    );
    for v in views {
        let s = &v.status;
        let note = match (&s.reason, &v.last_known) {
            (Some(reason), _) => reason.clone(),
            (None, Some(last)) if s.health == "idle" => format!(
                "last {} at {}{}",
                last.health,
                last.at,
                last.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            text,
            "{:<pw$} {:<aw$} {:<10} {:>4} {:>5}  {:<20} {}",
            v.provider,
            s.name,
            s.health,
            format!("{}/{}", s.busy, s.concurrency),
            s.queue_size,
            s.channel_id,
            note
        );
    }
    text.trim_end().to_owned()
}
