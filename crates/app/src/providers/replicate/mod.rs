//! Replicate's predictions API (`[providers.replicate]`): Replicate itself, or any service
//! that copies `/v1/predictions`. Each configured model alias is a provider of its own,
//! registered as `replicate:ALIAS`, sharing the one account (token).
//!
//! - `params`: the Amethyst parameters (the inputs of Replicate's common image models, and
//!   the video models' few), with their ranges, checked before anything is written or sent;
//!   the simulator refuses with the same rules;
//! - `wire`: the API's JSON (prediction, create body, problem-details errors) and what is read
//!   from it (the logs' step counter, output URLs, safety refusals);
//! - `client`: the calls (create, get, cancel, account) with the service's retry rules;
//! - `download`: the outputs fetched at once, pictures and clips told apart;
//! - `account`: the token's health, as `atelier accounts` shows it;
//! - `provider`: the `Provider` (one prediction per render, its id saved before anything
//!   else, resumed by polling it; canceled with the generation).

mod account;
mod client;
mod download;
pub mod params;
mod provider;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use crate::config::ReplicateConfig;
use crate::providers::Registered;

pub use account::Account;
pub use provider::{ModelRef, Polling, Replicate};

/// The provider name of alias `alias`.
pub fn provider_name(alias: &str) -> String {
    format!("replicate:{alias}")
}

/// One provider per model alias, as the configuration describes them. Connects nothing; a
/// token that cannot be read leaves the account disabled, with the reason, so other commands
/// keep working.
pub fn registered(config: &ReplicateConfig, max_download_bytes: u64) -> Vec<(String, Registered)> {
    atelier_discord::install_crypto_provider();
    let base = config.api_base.trim_end_matches('/').to_owned();
    let timing = client::Timing {
        timeout: Duration::from_secs_f64(config.timeout_secs),
        max_retries: config.max_retries,
        backoff: Duration::from_millis(config.retry_backoff_ms),
        max_wait: Duration::from_secs_f64(config.max_retry_wait_secs),
    };
    let client = resolve_token(config.api_token.expose()).and_then(|token| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map(|http| client::Client {
                http,
                base: base.clone(),
                token,
                timing,
            })
            .map_err(|e| format!("the HTTP client could not be made: {e}"))
    });
    let account = Arc::new(Account::new(
        config.account.clone(),
        base,
        config.concurrency,
        config.queue_size,
        client,
    ));
    let polling = Polling {
        first: Duration::from_millis(config.poll_ms),
        most: Duration::from_millis(config.poll_max_ms.max(config.poll_ms)),
        deadline: Duration::from_secs_f64(config.prediction_timeout_secs),
        wait: config.wait_secs,
    };
    config
        .models
        .iter()
        .filter_map(|(alias, m)| {
            // The configuration was checked: a model that does not parse is not registered.
            let model = ModelRef::parse(&m.model).ok()?;
            let concurrency = m.concurrency.unwrap_or(config.concurrency).max(1);
            let provider = Replicate {
                alias: alias.clone(),
                model,
                kind: m.kind,
                defaults: m.defaults.clone(),
                account: account.clone(),
                polling,
                max_bytes: max_download_bytes,
                download_attempts: config.download_attempts,
            };
            Some((
                provider_name(alias),
                Registered {
                    provider: Arc::new(provider),
                    account: config.account.clone(),
                    concurrency,
                    upscale_mode: crate::providers::UpscaleMode::Provider,
                    synthetic: false,
                    accounts: Some(account.clone()),
                    queue_limit: Some(concurrency + config.queue_size),
                },
            ))
        })
        .collect()
}

/// `env:NAME` reads the variable; anything else is the token itself.
fn resolve_token(spec: &str) -> Result<crate::secret::Secret, String> {
    match spec.trim().strip_prefix("env:") {
        Some(name) => match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(crate::secret::Secret::new(v.trim())),
            _ => Err(format!(
                "the API token's environment variable {name} is not set"
            )),
        },
        None => Ok(crate::secret::Secret::new(spec.trim())),
    }
}
