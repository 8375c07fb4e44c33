//! One HTTP call to an OpenAI-compatible Images API, with the service's retry rules: 429 and
//! 5xx (and 408, 409, lost connections) are tried again after `retry-after-ms`, `Retry-After`
//! or the rate-limit reset headers, else after an exponential backoff with jitter; every other
//! answer becomes a typed [`ProviderError`] from OpenAI's error body. The API key goes only
//! into the `Authorization` header.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::wire::ErrorBody;
use crate::domain::ErrorCode;
use crate::providers::ProviderError;
use crate::secret::Secret;

/// How calls are timed and retried.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// A request's whole answer (or, streamed, the gap between two chunks) must come within it.
    pub timeout: Duration,
    /// Tries after the first for a call the service may answer better later.
    pub max_retries: u32,
    /// First backoff, doubled each try, with jitter.
    pub backoff: Duration,
    /// A wait longer than this (a `Retry-After` of minutes) is not spent inside the job: the
    /// job goes back to the queue with it instead.
    pub max_wait: Duration,
}

/// What a call sends.
pub enum Body {
    Json(serde_json::Value),
    /// A `multipart/form-data` body and its boundary.
    Multipart {
        boundary: String,
        bytes: Vec<u8>,
    },
}

/// How a refused call bears on the account.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Blame {
    /// The key was refused (401): the account cannot work until it is fixed.
    Key,
    Other,
}

/// A call's failure, and whether the key is to blame.
#[derive(Debug)]
pub struct CallError {
    pub error: ProviderError,
    pub blame: Blame,
}

impl From<ProviderError> for CallError {
    fn from(error: ProviderError) -> Self {
        Self {
            error,
            blame: Blame::Other,
        }
    }
}

/// The API's root and credentials.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    /// `https://api.openai.com/v1`, without the trailing slash.
    pub base: String,
    pub key: Secret,
    pub organization: Option<String>,
    pub project: Option<String>,
    pub timing: Timing,
}

impl Client {
    /// Sends `body` to `path` (e.g. `/images/generations`), trying again as the service
    /// allows; the answer of a call that succeeded, its body not read yet.
    pub async fn send(&self, path: &str, body: &Body) -> Result<reqwest::Response, CallError> {
        let mut attempt = 0;
        loop {
            let failure = match self.once(path, body).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => refused(response).await,
                Err(e) => Refused::Retry {
                    error: connection_error(&e),
                    wait: None,
                },
            };
            match failure {
                Refused::Final(e) => return Err(e),
                Refused::Retry { error, wait } => {
                    let wait = wait.unwrap_or_else(|| backoff(self.timing.backoff, attempt));
                    if attempt >= self.timing.max_retries || wait > self.timing.max_wait {
                        return Err(ProviderError {
                            retry_after: Some(wait),
                            ..error
                        }
                        .into());
                    }
                    tracing::debug!(path, attempt, ?wait, error = %error, "OpenAI call tried again");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn once(&self, path: &str, body: &Body) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .timeout(self.timing.timeout);
        if let Some(org) = &self.organization {
            request = request.header("OpenAI-Organization", org);
        }
        if let Some(project) = &self.project {
            request = request.header("OpenAI-Project", project);
        }
        request = match body {
            Body::Json(json) => request.json(json),
            Body::Multipart { boundary, bytes } => request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(bytes.clone()),
        };
        request.send().await
    }

    /// `GET /models`: whether the key is accepted (`atelier accounts --check`).
    pub async fn probe(&self) -> Result<(), CallError> {
        let response = self
            .http
            .get(format!("{}/models", self.base))
            .bearer_auth(self.key.expose())
            .timeout(self.timing.timeout)
            .send()
            .await
            .map_err(|e| CallError::from(connection_error(&e)))?;
        if response.status().is_success() {
            return Ok(());
        }
        match refused(response).await {
            Refused::Final(e) => Err(e),
            Refused::Retry { error, .. } => Err(error.into()),
        }
    }
}

/// What a failed answer means.
enum Refused {
    Retry {
        error: ProviderError,
        wait: Option<Duration>,
    },
    Final(CallError),
}

fn connection_error(e: &reqwest::Error) -> ProviderError {
    // The message of a reqwest error names the URL, never a header: no key in it.
    if e.is_timeout() {
        ProviderError::new(
            ErrorCode::Timeout,
            format!("OpenAI did not answer in time: {e}"),
        )
    } else {
        ProviderError::new(
            ErrorCode::ProviderUnavailable,
            format!("OpenAI could not be reached: {e}"),
        )
    }
}

/// The request id OpenAI gives every answer, for the operator's support tickets.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| format!(" (request {id})"))
        .unwrap_or_default()
}

/// Reads an error answer (at most 64 KiB of it) into its meaning.
async fn refused(response: reqwest::Response) -> Refused {
    let status = response.status();
    let headers = response.headers().clone();
    let wait = retry_wait(&headers);
    let bytes = read_capped(response, 64 * 1024).await;
    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
    let detail = body.error;
    let id = request_id(&headers);
    let said = if detail.message.is_empty() {
        format!("HTTP {status}")
    } else {
        detail.message.clone()
    };
    let code = detail.code.as_deref().unwrap_or_default();
    let kind = detail.kind.as_deref().unwrap_or_default();
    let fatal = |code: ErrorCode, message: String| {
        Refused::Final(CallError {
            error: ProviderError {
                retryable: false,
                ..ProviderError::new(code, message)
            },
            blame: Blame::Other,
        })
    };
    let should_retry = headers
        .get("x-should-retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v == "true");
    match status {
        StatusCode::UNAUTHORIZED => Refused::Final(CallError {
            error: ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("OpenAI refused the API key: {said}{id}"),
                )
            },
            blame: Blame::Key,
        }),
        StatusCode::TOO_MANY_REQUESTS
            if matches!(code, "insufficient_quota" | "billing_hard_limit_reached") =>
        {
            fatal(
                ErrorCode::ProviderUnavailable,
                format!("the OpenAI account is out of quota: {said}{id}"),
            )
        }
        StatusCode::BAD_REQUEST
            if matches!(code, "moderation_blocked" | "content_policy_violation")
                || kind == "image_generation_user_error" =>
        {
            fatal(
                ErrorCode::BannedPrompt,
                format!("OpenAI's safety system refused the request: {said}{id}"),
            )
        }
        s if should_retry == Some(false) => fatal(
            ErrorCode::ProviderUnavailable,
            format!("OpenAI answered {s}: {said}{id}"),
        ),
        StatusCode::TOO_MANY_REQUESTS => Refused::Retry {
            error: ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("OpenAI's rate limit: {said}{id}"),
            ),
            wait,
        },
        s if s.is_server_error()
            || s == StatusCode::REQUEST_TIMEOUT
            || s == StatusCode::CONFLICT
            || should_retry == Some(true) =>
        {
            Refused::Retry {
                error: ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("OpenAI answered {s}: {said}{id}"),
                ),
                wait,
            }
        }
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => {
            let about = detail
                .param
                .as_deref()
                .map(|p| format!("{p}: "))
                .unwrap_or_default();
            fatal(
                ErrorCode::InvalidParameter,
                format!("OpenAI refused the request: {about}{said}{id}"),
            )
        }
        s => fatal(
            ErrorCode::ProviderUnavailable,
            format!("OpenAI answered {s}: {said}{id}"),
        ),
    }
}

/// The body of an answer, cut at `max` bytes.
pub async fn read_capped(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= max {
            bytes.truncate(max);
            break;
        }
    }
    bytes
}

/// How long the service asks to wait: `retry-after-ms`, `Retry-After` (seconds), else the
/// sooner of the rate-limit resets (`6m0s`, `1s`, `20ms`).
pub fn retry_wait(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(s) = header("retry-after").and_then(|v| v.trim().parse::<f64>().ok())
        && s.is_finite()
        && s >= 0.0
    {
        return Some(Duration::from_secs_f64(s.min(86_400.0)));
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|name| header(name).and_then(parse_reset))
        .min()
}

/// `6m0s`, `1.5s`, `20ms`, `1h2m3s` as a duration.
pub fn parse_reset(text: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        total += value * unit;
        rest = &rest[len..];
    }
    (total.is_finite() && total <= 86_400.0).then(|| Duration::from_secs_f64(total))
}

/// The `attempt`-th backoff from `base`: doubled each time, up to 32 times `base`, with up to
/// a quarter of jitter either way.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let plain = base.saturating_mul(1 << attempt.min(5));
    plain.mul_f64(0.75 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_come_from_the_headers_openai_sends() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_wait(&h), None);
        h.insert("x-ratelimit-reset-requests", "6m0s".parse().unwrap());
        h.insert("x-ratelimit-reset-tokens", "1.5s".parse().unwrap());
        assert_eq!(retry_wait(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_wait(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_wait(&h), Some(Duration::from_millis(250)));
        assert_eq!(parse_reset("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_reset("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_reset("soon"), None);
        assert_eq!(parse_reset("3x"), None);
    }

    #[test]
    fn backoff_doubles_within_its_jitter() {
        let base = Duration::from_millis(100);
        for attempt in 0..8 {
            let wait = backoff(base, attempt);
            let plain = base * (1 << attempt.min(5));
            assert!(wait >= plain.mul_f64(0.75) && wait <= plain.mul_f64(1.25));
        }
    }
}
