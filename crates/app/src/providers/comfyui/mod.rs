//! ComfyUI (`provider = "comfyui"`): a ComfyUI server running workflows a user exported in
//! API format, with the inputs Atelier fills in named in the configuration.
//!
//! - `workflow`: a template file and its named inputs (`6.text`, `Positive.text`), checked
//!   when the configuration loads;
//! - `params`: a request's parameters for a workflow (which one, size, batch, seed, the
//!   workflow's own), checked before anything is written or sent, and the graph they make;
//! - `wire`: ComfyUI's JSON (`/prompt`, the WebSocket's messages, `/history`, `/queue`);
//! - `client`: the HTTP calls and the WebSocket, with retries and the optional proxy token;
//! - `account`: the server's health, as `atelier accounts` shows it;
//! - `session`: one render, from submission (or resumption) to its last output, surviving a
//!   dropped socket and a server restart;
//! - `provider`: the `Provider`.

mod account;
mod client;
pub mod params;
mod provider;
mod session;
pub mod wire;
mod workflow;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ComfyUiConfig;
use crate::providers::Registered;

pub use account::Account;
pub use provider::ComfyUi;
pub use workflow::{Kind, Target, Workflow};

/// The provider as the configuration describes it, its workflows read again. Connects
/// nothing; a token that cannot be read leaves the server disabled, with the reason.
pub fn registered(config: &ComfyUiConfig, max_download_bytes: u64) -> Result<Registered, String> {
    atelier_discord::install_crypto_provider();
    let mut by_name = BTreeMap::new();
    for (name, workflow) in &config.workflows {
        let loaded = Workflow::load(name, workflow)
            .map_err(|e| format!("providers.comfyui.workflows.{name}: {e}"))?;
        by_name.insert(name.clone(), loaded);
    }
    let default = config
        .default_name()
        .ok_or("providers.comfyui has no workflow")?
        .to_owned();
    let base = config.api_base.trim_end_matches('/').to_owned();
    let timing = client::Timing {
        timeout: Duration::from_secs_f64(config.timeout_secs),
        max_retries: config.max_retries,
        backoff: Duration::from_millis(config.retry_backoff_ms),
        max_wait: Duration::from_secs_f64(config.max_retry_wait_secs),
    };
    let client = auth(config).and_then(|auth| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map(|http| client::Client {
                http,
                base: base.clone(),
                auth,
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
    Ok(Registered {
        provider: Arc::new(ComfyUi {
            account: account.clone(),
            workflows: params::Workflows { by_name, default },
            max_bytes: max_download_bytes,
            stall: Duration::from_secs_f64(config.stall_secs),
            poll: Duration::from_secs_f64(config.poll_secs),
            in_flight: std::sync::Mutex::default(),
        }),
        account: config.account.clone(),
        concurrency: config.concurrency.max(1),
        upscale_mode: crate::providers::UpscaleMode::Provider,
        synthetic: false,
        accounts: Some(account),
        queue_limit: Some(config.concurrency.max(1) + config.queue_size),
    })
}

/// The token's header, if a token is configured: `env:NAME` reads the variable.
fn auth(
    config: &ComfyUiConfig,
) -> Result<Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>, String> {
    let Some(token) = &config.token else {
        return Ok(None);
    };
    let spec = token.expose().trim();
    let value = match spec.strip_prefix("env:") {
        Some(name) => match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
            _ => {
                return Err(format!(
                    "the token's environment variable {name} is not set"
                ));
            }
        },
        None => spec.to_owned(),
    };
    let name = reqwest::header::HeaderName::from_bytes(config.auth_header.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a header name", config.auth_header))?;
    let text = if name == reqwest::header::AUTHORIZATION {
        format!("Bearer {value}")
    } else {
        value
    };
    let mut value = reqwest::header::HeaderValue::from_str(&text)
        .map_err(|_| "the token has characters a header cannot carry".to_owned())?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

/// A random id in the UUID form ComfyUI's clients use.
pub fn new_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}
