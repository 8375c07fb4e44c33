//! `[webhooks]`: how generations' events are delivered to their webhooks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::webhooks::{WebhookSettings, sign};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Signs the deliveries of the operator's generations (made at the CLI, or by a server
    /// with `auth = "none"`): `whsec_` and base64. Users have secrets of their own.
    pub secret: Option<Secret>,
    /// Lets webhooks reach loopback, private, link-local and other non-public addresses.
    pub allow_private_targets: bool,
    /// Seconds before each retry; a delivery gets one attempt more than there are entries.
    pub retry_schedule_secs: Vec<f64>,
    /// The longest one attempt may take, connection and answer included.
    pub attempt_timeout_secs: f64,
    /// Attempts one node makes at once.
    pub concurrency: u32,
    /// The longest webhook URL accepted, in characters.
    pub max_url_chars: usize,
    /// How long after a rotation deliveries also carry a signature by the previous secret.
    pub rotation_overlap_secs: f64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let d = WebhookSettings::default();
        Self {
            secret: None,
            allow_private_targets: d.allow_private_targets,
            retry_schedule_secs: d.retry_schedule.iter().map(Duration::as_secs_f64).collect(),
            attempt_timeout_secs: d.attempt_timeout.as_secs_f64(),
            concurrency: d.concurrency,
            max_url_chars: d.max_url_chars,
            rotation_overlap_secs: d.rotation_overlap.as_secs_f64(),
        }
    }
}

/// The most retries a schedule may have.
const MAX_RETRIES: usize = 20;
/// The longest delay before a retry, and the longest overlap: a week.
const WEEK: f64 = 7.0 * 86_400.0;

impl WebhooksConfig {
    /// The settings the engine runs, or what is wrong with them.
    pub fn settings(&self) -> Result<WebhookSettings, String> {
        let secs = |v: f64, key: &str, min: f64, max: f64| {
            if v.is_finite() && (min..=max).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!(
                    "[webhooks] {key} must be between {min} and {max} seconds, not {v}"
                ))
            }
        };
        if self.retry_schedule_secs.len() > MAX_RETRIES {
            return Err(format!(
                "[webhooks] retry_schedule_secs has {} entries; at most {MAX_RETRIES}",
                self.retry_schedule_secs.len()
            ));
        }
        let retry_schedule = self
            .retry_schedule_secs
            .iter()
            .map(|v| secs(*v, "retry_schedule_secs", 0.0, WEEK))
            .collect::<Result<Vec<Duration>, String>>()?;
        if let Some(secret) = &self.secret {
            sign::key_of(secret.expose()).map_err(|e| format!("[webhooks] secret: {e}"))?;
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(format!(
                "[webhooks] concurrency must be between 1 and 256, not {}",
                self.concurrency
            ));
        }
        if !(16..=65_536).contains(&self.max_url_chars) {
            return Err(format!(
                "[webhooks] max_url_chars must be between 16 and 65536, not {}",
                self.max_url_chars
            ));
        }
        Ok(WebhookSettings {
            operator_secret: self.secret.clone(),
            allow_private_targets: self.allow_private_targets,
            retry_schedule,
            attempt_timeout: secs(
                self.attempt_timeout_secs,
                "attempt_timeout_secs",
                0.1,
                300.0,
            )?,
            concurrency: self.concurrency,
            max_url_chars: self.max_url_chars,
            rotation_overlap: secs(
                self.rotation_overlap_secs,
                "rotation_overlap_secs",
                0.0,
                WEEK,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_engine_defaults_and_bad_values_are_named() {
        let s = WebhooksConfig::default().settings().unwrap();
        assert_eq!(s.retry_schedule.len(), 7);
        assert!(!s.allow_private_targets);
        let bad = WebhooksConfig {
            retry_schedule_secs: vec![1.0, -2.0],
            ..WebhooksConfig::default()
        };
        assert!(bad.settings().unwrap_err().contains("retry_schedule_secs"));
        let bad = WebhooksConfig {
            secret: Some(Secret::new("whsec_short")),
            ..WebhooksConfig::default()
        };
        let err = bad.settings().unwrap_err();
        assert!(
            err.contains("[webhooks] secret") && !err.contains("short"),
            "{err}"
        );
        let bad = WebhooksConfig {
            concurrency: 0,
            ..WebhooksConfig::default()
        };
        assert!(bad.settings().is_err());
    }

    #[test]
    fn the_secret_never_prints() {
        let c = WebhooksConfig {
            secret: Some(Secret::new(sign::new_secret().unwrap())),
            ..WebhooksConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("whsec_"), "{shown}");
    }
}
