//! Midjourney over Discord: the provider and what it is made of.
//!
//! - `reading`: what one bot message means (pure; also `atelier midjourney parse`);
//! - `router`: which waiting job a message belongs to (nonce, interaction id, message ids,
//!   reply reference, prompt last);
//! - `account`: one Discord account — gateway session, REST client, health;
//! - `pool`: which account runs a job (least busy, sticky per job);
//! - `holds`: this node's holds on its accounts (one node at a time connects an account);
//! - `exchange`: one interaction and the messages up to its result (progress, deadlines,
//!   errors, the channel-history fallback);
//! - `download`: CDN downloads with retries and fresh signed URLs;
//! - `press`: which button an action presses and the result it waits for;
//! - `refs`: the references a job saves as it goes (account, result messages, pending sends);
//! - `commands`: the slash commands a job sends (which bot, /imagine's prompt, /blend, uploads);
//! - `provider`: the `Provider` implementation (/imagine, U1–U4, actions, /describe, /blend).

mod account;
mod commands;
mod download;
mod exchange;
mod forms;
mod holds;
mod pool;
mod press;
mod provider;
pub mod reading;
mod refs;
mod router;
mod video;

use std::sync::Arc;
use std::time::Duration;

use atelier_discord::{ClientProperties, GatewayConfig, RestClient, RestConfig, Token};
use tokio::sync::Notify;

use crate::config::MidjourneyConfig;
use crate::providers::Registered;

pub use account::{Account, Health, Hold, Identity, Place};
pub use commands::imagine_prompt;
pub use pool::Pool;
pub use provider::Midjourney;
pub use refs::Refs;

/// The Midjourney provider as the configuration describes it. Builds no connection: each
/// account connects on its first job. An account whose token cannot be read starts disabled,
/// with the reason, so other commands keep working.
/// Downloads larger than `max_download_bytes` are refused.
pub fn registered(config: &MidjourneyConfig, max_download_bytes: u64) -> Registered {
    atelier_discord::install_crypto_provider();
    let changes = Arc::new(Notify::new());
    let properties = ClientProperties::default();
    let mut accounts = Vec::new();
    for a in config.accounts.iter().filter(|a| a.enabled) {
        let (token, problem) = match resolve_token(a.token.expose()) {
            Ok(t) => (t, None),
            Err(why) => (Token::new(String::new()), Some(why)),
        };
        let rest_config = RestConfig {
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            cdn_base: config.cdn_base.trim_end_matches('/').to_owned(),
            properties: properties.clone(),
            interaction_gap: Duration::from_millis(config.interaction_gap_ms),
            interaction_jitter: Duration::from_millis(config.interaction_jitter_ms),
            ..RestConfig::default()
        };
        let gateway_config = GatewayConfig {
            url: config.gateway_url.trim_end_matches('/').to_owned(),
            properties: properties.clone(),
            connect_timeout: Duration::from_secs_f64(config.connect_timeout_secs),
            ..GatewayConfig::default()
        };
        let (rest, problem) = match RestClient::new(&rest_config, &token) {
            Ok(rest) => (rest, problem),
            Err(e) => {
                let fallback = RestClient::new(&RestConfig::default(), &token);
                match fallback {
                    Ok(rest) => (rest, Some(format!("invalid REST settings: {e}"))),
                    Err(_) => continue,
                }
            }
        };
        let identity = Identity {
            name: a.name.clone(),
            place: Place {
                guild_id: a.guild_id.clone(),
                channel_id: a.channel_id.clone(),
            },
            concurrency: a.concurrency,
            queue_size: a.queue_size,
        };
        let account = Arc::new(Account::new(
            identity,
            token,
            rest,
            gateway_config,
            changes.clone(),
        ));
        if let Some(reason) = problem {
            account.start_disabled(reason);
        }
        accounts.push(account);
    }
    // Accounts that start disabled take no jobs: the engine should not claim any for them.
    let usable = || {
        accounts
            .iter()
            .filter(|a| !matches!(a.health(), Health::Disabled(_)))
    };
    let concurrency = usable().map(|a| a.concurrency).sum::<u32>().max(1);
    let queue_limit = usable()
        .map(|a| a.concurrency + a.queue_size)
        .sum::<u32>()
        .max(1);
    let pool = Arc::new(Pool::new(
        accounts,
        changes,
        Duration::from_secs_f64(config.hold_secs),
    ));
    Registered {
        provider: Arc::new(Midjourney {
            pool: pool.clone(),
            timing: exchange::Timing {
                timeout: Duration::from_secs_f64(config.timeout_secs),
                queued_timeout: Duration::from_secs_f64(config.queued_timeout_secs),
                history_poll: Duration::from_secs_f64(config.history_poll_secs),
                connect: Duration::from_secs_f64(config.unavailable_after_secs),
            },
            retries: download::Retries {
                attempts: config.download_attempts,
                backoff: Duration::from_millis(config.download_backoff_ms),
                max_bytes: max_download_bytes,
            },
            upscales_at_once: config.upscales_at_once as usize,
            reserved: std::sync::Mutex::default(),
        }),
        // One concurrency slot for the whole pool: the pool picks the account at run time.
        account: "pool".into(),
        concurrency,
        upscale_mode: config.upscale_mode.into(),
        synthetic: false,
        accounts: Some(pool),
        queue_limit: Some(queue_limit),
    }
}

/// `env:NAME` reads the variable; anything else is the token itself.
fn resolve_token(spec: &str) -> Result<Token, String> {
    match spec.trim().strip_prefix("env:") {
        Some(name) => match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(Token::new(v.trim().to_owned())),
            _ => Err(format!(
                "the token's environment variable {name} is not set"
            )),
        },
        None => Ok(Token::new(spec.trim().to_owned())),
    }
}
