//! The calls of the Replicate predictions API, with the service's retry rules: 429 waits for
//! its `Retry-After` (else the `ratelimit-reset` header), 5xx and lost connections are tried
//! again after an exponential backoff with jitter; every other answer becomes a typed
//! [`ProviderError`] from the problem-details body. The token goes only into the
//! `Authorization` header.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::wire::{AccountInfo, Create, Prediction, Problem};
use crate::domain::ErrorCode;
use crate::providers::ProviderError;
use crate::providers::openai::client::{read_capped, retry_wait};
use crate::secret::Secret;

/// How calls are timed and retried.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// One call's whole answer must come within it (plus the `Prefer: wait` of a create).
    pub timeout: Duration,
    /// Tries after the first for a call the service may answer better later.
    pub max_retries: u32,
    /// First backoff, doubled each try, with jitter.
    pub backoff: Duration,
    /// A longer wait asked for is not spent inside the job: it goes back to the queue.
    pub max_wait: Duration,
}

/// How a refused call bears on the account.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Blame {
    /// The token was refused (401): the account cannot work until it is fixed.
    Token,
    Other,
}

/// A call's failure, and whether the token is to blame.
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
    /// `https://api.replicate.com/v1`, without the trailing slash.
    pub base: String,
    pub token: Secret,
    pub timing: Timing,
}

/// What a failed answer means.
enum Refused {
    Retry {
        error: ProviderError,
        wait: Option<Duration>,
    },
    Final(CallError),
}

impl Client {
    /// Creates a prediction: `POST /predictions` with a version, else the official model's
    /// `POST /models/{owner}/{name}/predictions`; with `wait` seconds, `Prefer: wait=N`
    /// holds the answer until the prediction ends or the time is up.
    pub async fn create(
        &self,
        model: &str,
        body: &Create,
        wait: u32,
    ) -> Result<Prediction, CallError> {
        let path = if body.version.is_some() {
            "/predictions".to_owned()
        } else {
            format!("/models/{model}/predictions")
        };
        let extra = Duration::from_secs(u64::from(wait));
        self.call(reqwest::Method::POST, &path, Some(body), wait, extra)
            .await
    }

    /// `GET /predictions/{id}`.
    pub async fn get(&self, id: &str) -> Result<Prediction, CallError> {
        self.call::<Create, _>(
            reqwest::Method::GET,
            &format!("/predictions/{id}"),
            None,
            0,
            Duration::ZERO,
        )
        .await
    }

    /// `POST /predictions/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Prediction, CallError> {
        self.call::<Create, _>(
            reqwest::Method::POST,
            &format!("/predictions/{id}/cancel"),
            None,
            0,
            Duration::ZERO,
        )
        .await
    }

    /// `GET /account`: whether the token is accepted (`atelier accounts --check`).
    pub async fn account(&self) -> Result<AccountInfo, CallError> {
        self.call::<Create, _>(reqwest::Method::GET, "/account", None, 0, Duration::ZERO)
            .await
    }

    async fn call<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        wait: u32,
        extra: Duration,
    ) -> Result<T, CallError> {
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(self.token.expose())
                .timeout(self.timing.timeout + extra);
            if wait > 0 {
                request = request.header("Prefer", format!("wait={wait}"));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let bytes = read_capped(response, 16 << 20).await;
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        CallError::from(ProviderError::new(
                            ErrorCode::ProviderUnavailable,
                            format!(
                                "Replicate's answer to {path} is not what the API returns: {e}"
                            ),
                        ))
                    });
                }
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
                    tracing::debug!(path, attempt, ?wait, error = %error, "Replicate call tried again");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

fn connection_error(e: &reqwest::Error) -> ProviderError {
    // The message of a reqwest error names the URL (a prediction's, never a query with a
    // secret), never a header: no token in it.
    if e.is_timeout() {
        ProviderError::new(
            ErrorCode::Timeout,
            format!("Replicate did not answer in time: {e}"),
        )
    } else {
        ProviderError::new(
            ErrorCode::ProviderUnavailable,
            format!("Replicate could not be reached: {e}"),
        )
    }
}

/// `Retry-After`, else `ratelimit-reset` (seconds).
fn wait_asked(headers: &HeaderMap) -> Option<Duration> {
    retry_wait(headers).or_else(|| {
        headers
            .get("ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3600.0)))
    })
}

/// Reads an error answer (at most 64 KiB of it) into its meaning.
async fn refused(response: reqwest::Response) -> Refused {
    let status = response.status();
    let headers = response.headers().clone();
    let wait = wait_asked(&headers);
    let bytes = read_capped(response, 64 * 1024).await;
    let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
    let said = match (problem.title.is_empty(), problem.detail.trim()) {
        (_, "") if problem.title.is_empty() => format!("HTTP {status}"),
        (true, detail) => detail.to_owned(),
        (false, "") => problem.title.clone(),
        (false, detail) => format!("{}: {detail}", problem.title),
    };
    let said = said.replace('\n', " ").trim().to_owned();
    let fatal = |code: ErrorCode, message: String| {
        Refused::Final(CallError {
            error: ProviderError {
                retryable: false,
                ..ProviderError::new(code, message)
            },
            blame: Blame::Other,
        })
    };
    match status {
        StatusCode::UNAUTHORIZED => Refused::Final(CallError {
            error: ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("Replicate refused the API token: {said}"),
                )
            },
            blame: Blame::Token,
        }),
        StatusCode::PAYMENT_REQUIRED => fatal(
            ErrorCode::ProviderUnavailable,
            format!("the Replicate account cannot pay for predictions: {said}"),
        ),
        StatusCode::TOO_MANY_REQUESTS => Refused::Retry {
            error: ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("Replicate's rate limit: {said}"),
            ),
            wait,
        },
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Refused::Retry {
            error: ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("Replicate answered {s}: {said}"),
            ),
            wait,
        },
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => fatal(
            ErrorCode::InvalidParameter,
            format!("Replicate refused the input: {said}"),
        ),
        StatusCode::NOT_FOUND => fatal(
            ErrorCode::InvalidParameter,
            format!("Replicate does not know it (a model, version or prediction): {said}"),
        ),
        s => fatal(
            ErrorCode::ProviderUnavailable,
            format!("Replicate answered {s}: {said}"),
        ),
    }
}

/// The `attempt`-th backoff from `base`: doubled each time, up to 32 times `base`, with up to
/// a quarter of jitter either way.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let plain = base.saturating_mul(1 << attempt.min(5));
    plain.mul_f64(0.75 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_come_from_retry_after_then_the_rate_limit_reset() {
        let mut h = HeaderMap::new();
        assert_eq!(wait_asked(&h), None);
        h.insert("ratelimit-reset", "3".parse().unwrap());
        assert_eq!(wait_asked(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", "1".parse().unwrap());
        assert_eq!(wait_asked(&h), Some(Duration::from_secs(1)));
    }
}
