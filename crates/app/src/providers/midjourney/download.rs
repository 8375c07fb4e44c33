//! Fetching a result image from Discord's CDN.
//!
//! Attachment URLs are signed (`?ex=…&is=…&hm=…`) and expire: the query is kept intact, and
//! a URL that no longer works is replaced by reading the message again, which gives a fresh
//! signature. CDN errors and truncated bodies are retried with a doubling backoff; the
//! engine's pipeline then decodes the file in full, and a file it finds corrupt sends the job
//! back here for another download.

use std::time::Duration;

use atelier_discord::RestError;

use super::account::Account;
use crate::domain::ErrorCode;
use crate::pipeline::{self, Format};
use crate::providers::ProviderError;

#[derive(Clone, Debug)]
pub struct Retries {
    pub attempts: u32,
    pub backoff: Duration,
    /// Largest image accepted (`[limits] max_file_mib`): a `Content-Length` over it is refused,
    /// a body without one is cut there.
    pub max_bytes: u64,
}

/// Downloads the attachment of `message_id` from `url`.
pub async fn fetch(
    account: &Account,
    message_id: &str,
    url: &str,
    retries: &Retries,
) -> Result<Vec<u8>, ProviderError> {
    let mut url = url.to_owned();
    let mut wait = retries.backoff;
    let mut last = String::new();
    let mut code = ErrorCode::DownloadFailed;
    for attempt in 1..=retries.attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(jitter(wait)).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
        let max = usize::try_from(retries.max_bytes).unwrap_or(usize::MAX);
        match account.rest.download(&url, max).await {
            Ok(bytes) if Format::looks_complete(&bytes) => return Ok(bytes),
            Ok(bytes) => {
                last = format!("the file arrived incomplete ({} bytes)", bytes.len());
                code = ErrorCode::IntegrityFailed;
            }
            Err(e) if matches!(e.status(), Some(403 | 404 | 410)) => {
                // Expired or revoked signature: the message holds a freshly signed URL.
                last = format!("the CDN refused the URL ({e})");
                code = ErrorCode::DownloadFailed;
                match fresh_url(account, message_id).await {
                    Some(fresh) => url = fresh,
                    None => break,
                }
            }
            Err(RestError::TooLarge { .. }) => {
                // The same file would be refused again: no retry.
                return Err(ProviderError {
                    retryable: false,
                    ..ProviderError::new(
                        ErrorCode::DownloadFailed,
                        pipeline::file_too_large(
                            "the image on Discord's CDN",
                            None,
                            retries.max_bytes,
                        ),
                    )
                });
            }
            Err(e) => {
                last = e.to_string();
                code = ErrorCode::DownloadFailed;
            }
        }
        tracing::warn!(account = %account.name, attempt, error = %last, "midjourney: download failed; trying again");
    }
    Err(ProviderError::new(
        code,
        format!("could not download the image from Discord: {last}"),
    ))
}

async fn fresh_url(account: &Account, message_id: &str) -> Option<String> {
    let message = account
        .rest
        .message(&account.place.channel_id, message_id)
        .await
        .ok()?;
    let reading = account.read(&message)?;
    reading.attachment?.url
}

/// ±20 %, so retries of many jobs do not arrive together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}
