//! `[providers.replicate]`: Replicate's predictions API (or a service that copies it), one
//! account, and the model aliases `[providers.replicate.models.ALIAS]`, each a provider of its
//! own (`replicate:ALIAS`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::providers::replicate::params::{self, Kind};
use crate::providers::replicate::{ModelRef, provider_name};
use crate::secret::Secret;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicateConfig {
    pub enabled: bool,
    /// The API's root, up to and with `/v1`.
    pub api_base: String,
    /// `env:NAME` reads the token from that environment variable (the default,
    /// `env:REPLICATE_API_TOKEN`); anything else is the token itself. Never printed.
    pub api_token: Secret,
    /// The account's name in `atelier accounts` and on each generation.
    pub account: String,
    /// Predictions one alias runs at once (an alias may say otherwise), and jobs that may wait.
    pub concurrency: u32,
    pub queue_size: u32,
    /// One call's whole answer must come within this.
    pub timeout_secs: f64,
    /// A prediction not ended this long after it was created is canceled and made again.
    pub prediction_timeout_secs: f64,
    /// `Prefer: wait=N` on creates, 1 to 60 (0: off). The create's answer then carries the
    /// outputs of a fast model, saving the polls; but a crash while it waits loses the
    /// prediction's id, so a resumed job makes it again.
    pub wait_secs: u32,
    /// First interval between polls, growing by half each poll up to `poll_max_ms`.
    pub poll_ms: u64,
    pub poll_max_ms: u64,
    /// Tries after the first for 429, 5xx and lost connections, within one job.
    pub max_retries: u32,
    /// First wait between those tries when the service names none; doubled each time.
    pub retry_backoff_ms: u64,
    /// A longer wait asked for (`Retry-After`) sends the job back to the queue instead.
    pub max_retry_wait_secs: f64,
    /// Tries per output download.
    pub download_attempts: u32,
    /// The model aliases, by name.
    pub models: BTreeMap<String, ReplicateModel>,
}

/// One model alias.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReplicateModel {
    /// `owner/name` (an official model, always its latest version), `owner/name:VERSION`, or a
    /// 64-hex version id.
    pub model: String,
    /// What it makes: `image` (the default) or `video`.
    #[serde(default)]
    pub kind: Kind,
    /// Predictions at once for this alias [default: the provider's `concurrency`].
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Inputs sent unless a request says otherwise (`num_inference_steps = 4`), checked like
    /// a request's.
    #[serde(default)]
    pub defaults: serde_json::Map<String, serde_json::Value>,
}

impl Default for ReplicateConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_base: "https://api.replicate.com/v1".into(),
            api_token: Secret::new("env:REPLICATE_API_TOKEN"),
            account: "default".into(),
            concurrency: 4,
            queue_size: 50,
            timeout_secs: 60.0,
            prediction_timeout_secs: 900.0,
            wait_secs: 0,
            poll_ms: 500,
            poll_max_ms: 5000,
            max_retries: 3,
            retry_backoff_ms: 500,
            max_retry_wait_secs: 60.0,
            download_attempts: 3,
            models: BTreeMap::new(),
        }
    }
}

impl ReplicateConfig {
    /// A URL, a token, numbers in range, and each alias's model and defaults.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(self.api_base.starts_with("http://") || self.api_base.starts_with("https://")) {
            return bad(format!(
                "providers.replicate.api_base must be an http(s) URL, not {:?}",
                self.api_base
            ));
        }
        let token = self.api_token.expose().trim();
        if token.is_empty() || token == "env:" {
            return bad("providers.replicate.api_token is empty".into());
        }
        if self.account.trim().is_empty() || self.account.contains(char::is_whitespace) {
            return bad("providers.replicate.account must be a non-empty word".into());
        }
        if self.concurrency == 0 || self.download_attempts == 0 || self.poll_ms == 0 {
            return bad(
                "providers.replicate.concurrency, download_attempts and poll_ms must be at least 1"
                    .into(),
            );
        }
        if self.wait_secs > 60 {
            return bad(format!(
                "providers.replicate.wait_secs must be from 0 (off) to 60, not {}",
                self.wait_secs
            ));
        }
        for (name, v) in [
            ("timeout_secs", self.timeout_secs),
            ("prediction_timeout_secs", self.prediction_timeout_secs),
            ("max_retry_wait_secs", self.max_retry_wait_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return bad(format!(
                    "providers.replicate.{name} must be more than 0 and at most a day, not {v}"
                ));
            }
        }
        if self.enabled && self.models.is_empty() {
            return bad(
                "providers.replicate has no model: add [providers.replicate.models.ALIAS] with model = \"owner/name\""
                    .into(),
            );
        }
        for (alias, m) in &self.models {
            let at = format!("providers.replicate.models.{alias}");
            let word = !alias.is_empty()
                && alias.len() <= 64
                && alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !word {
                return bad(format!(
                    "{at}: an alias is a word of letters, digits, '-', '_' or '.' (it becomes the provider {:?})",
                    provider_name(alias)
                ));
            }
            if let Err(e) = ModelRef::parse(&m.model) {
                return bad(format!("{at}.model: {e}"));
            }
            if m.concurrency == Some(0) {
                return bad(format!("{at}.concurrency must be at least 1"));
            }
            if let Err(e) = params::check_defaults(&m.defaults, m.kind) {
                return bad(format!("{at}.defaults: {e}"));
            }
        }
        Ok(())
    }
}
