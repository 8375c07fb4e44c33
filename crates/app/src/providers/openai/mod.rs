//! OpenAI-compatible image APIs (`provider = "openai"`): OpenAI itself, or any service that
//! speaks `/v1/images/generations` and `/v1/images/edits`.
//!
//! - `params`: the models' parameters and their rules (sizes, quality, background, formats,
//!   moderation, `n`, streaming), checked before anything is written or sent; the simulator
//!   refuses with the same rules;
//! - `wire`: the API's JSON (images response, usage, error body, stream events) and the
//!   server-sent events reader;
//! - `client`: one call with the service's retry rules and its errors typed;
//! - `account`: the key's health, as `atelier accounts` shows it;
//! - `provider`: the `Provider` (renders as `n` separate outputs; /blend as an edit).

mod account;
pub(crate) mod client;
pub mod params;
mod provider;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use crate::config::OpenAiConfig;
use crate::providers::Registered;

pub use account::Account;
pub use provider::OpenAi;

/// The provider as the configuration describes it. Connects nothing; a key that cannot be read
/// leaves the account disabled, with the reason, so other commands keep working.
pub fn registered(config: &OpenAiConfig, max_download_bytes: u64) -> Registered {
    atelier_discord::install_crypto_provider();
    let base = config.api_base.trim_end_matches('/').to_owned();
    let timing = client::Timing {
        timeout: Duration::from_secs_f64(config.timeout_secs),
        max_retries: config.max_retries,
        backoff: Duration::from_millis(config.retry_backoff_ms),
        max_wait: Duration::from_secs_f64(config.max_retry_wait_secs),
    };
    let client = resolve_key(config.api_key.expose()).and_then(|key| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map(|http| client::Client {
                http,
                base: base.clone(),
                key,
                organization: config.organization.clone(),
                project: config.project.clone(),
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
    Registered {
        provider: Arc::new(OpenAi {
            account: account.clone(),
            model: config.model.clone(),
            stream: config.stream.then_some(config.partial_images),
            max_bytes: max_download_bytes,
            download_attempts: config.download_attempts,
        }),
        account: config.account.clone(),
        concurrency: config.concurrency.max(1),
        upscale_mode: crate::providers::UpscaleMode::Provider,
        synthetic: false,
        accounts: Some(account),
        queue_limit: Some(config.concurrency.max(1) + config.queue_size),
    }
}

/// `env:NAME` reads the variable; anything else is the key itself.
fn resolve_key(spec: &str) -> Result<crate::secret::Secret, String> {
    match spec.trim().strip_prefix("env:") {
        Some(name) => match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(crate::secret::Secret::new(v.trim())),
            _ => Err(format!(
                "the API key's environment variable {name} is not set"
            )),
        },
        None => Ok(crate::secret::Secret::new(spec.trim())),
    }
}
