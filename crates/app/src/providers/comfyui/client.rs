//! The calls to one ComfyUI server: `POST /prompt`, `GET /history/{id}`, `GET /queue`,
//! `GET /view`, `POST /interrupt`, `POST /queue` (delete), `GET /system_stats`, and the
//! WebSocket `/ws?clientId=…`. 429 (from a proxy: ComfyUI has no rate limit of its own), 5xx
//! and lost connections are tried again after `Retry-After` or a backoff with jitter; 401 and
//! 403 (a proxy refusing the token) take the server out until it is fixed. The token goes
//! only into its header, never into a message.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::wire::{
    FileRef, HistoryEntry, PromptAccepted, PromptRefused, PromptRequest, QueueState,
};
use crate::domain::ErrorCode;
use crate::providers::ProviderError;

/// The WebSocket a job follows its prompt on.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How calls are timed and retried.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff: Duration,
    /// A wait asked for beyond this is not spent inside the job.
    pub max_wait: Duration,
}

/// Whether a failure is the token's (the account is then disabled).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Blame {
    Token,
    Other,
}

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

/// A server's root, its token's header and the timing of calls.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:8188`, without the trailing slash.
    pub base: String,
    pub auth: Option<(HeaderName, HeaderValue)>,
    pub timing: Timing,
}

fn unavailable(message: String) -> ProviderError {
    ProviderError::new(ErrorCode::ProviderUnavailable, message)
}

fn fatal(code: ErrorCode, message: String) -> ProviderError {
    ProviderError {
        retryable: false,
        ..ProviderError::new(code, message)
    }
}

impl Client {
    /// One call, tried again as the server allows; the answer of a call that succeeded, or
    /// one whose status `accept` takes, its body not read yet.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        accept: &[StatusCode],
    ) -> Result<reqwest::Response, CallError> {
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .timeout(self.timing.timeout);
            if let Some((name, value)) = &self.auth {
                request = request.header(name, value.clone());
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let (error, wait) = match request.send().await {
                Ok(r) if r.status().is_success() || accept.contains(&r.status()) => return Ok(r),
                Ok(r) => {
                    let status = r.status();
                    let wait = retry_after(r.headers());
                    let text = read_capped(r, 4096).await;
                    let said = String::from_utf8_lossy(&text)
                        .trim()
                        .chars()
                        .take(300)
                        .collect::<String>();
                    let said = if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    };
                    match status {
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                            return Err(CallError {
                                error: fatal(
                                    ErrorCode::ProviderUnavailable,
                                    format!(
                                        "the ComfyUI server (or its proxy) refused the token: {status}{said}"
                                    ),
                                ),
                                blame: Blame::Token,
                            });
                        }
                        s if s == StatusCode::TOO_MANY_REQUESTS
                            || s.is_server_error()
                            || s == StatusCode::REQUEST_TIMEOUT =>
                        {
                            (
                                unavailable(format!("ComfyUI answered {s} to {path}{said}")),
                                wait,
                            )
                        }
                        s => {
                            return Err(fatal(
                                ErrorCode::ProviderUnavailable,
                                format!("ComfyUI answered {s} to {path}{said}"),
                            )
                            .into());
                        }
                    }
                }
                // A request that may have reached the server is not sent again when sending
                // it twice would queue it twice: the caller finds it by its id instead.
                Err(e) if !(e.is_connect() || method == reqwest::Method::GET) => {
                    return Err(connection_error(&e).into());
                }
                Err(e) => (connection_error(&e), None),
            };
            let wait = wait.unwrap_or_else(|| backoff(self.timing.backoff, attempt));
            if attempt >= self.timing.max_retries || wait > self.timing.max_wait {
                return Err(ProviderError {
                    retry_after: Some(wait),
                    ..error
                }
                .into());
            }
            tracing::debug!(path, attempt, ?wait, error = %error, "ComfyUI call tried again");
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
        what: &str,
    ) -> Result<T, CallError> {
        let bytes = read_capped(response, 64 << 20).await;
        serde_json::from_slice(&bytes).map_err(|e| {
            CallError::from(unavailable(format!(
                "ComfyUI's answer to {what} is not what it should be: {e}"
            )))
        })
    }

    /// Queues a graph. A refused graph (400, the server's validation) fails for good, with
    /// the server's reasons.
    pub async fn submit(&self, request: &PromptRequest) -> Result<PromptAccepted, CallError> {
        let body = serde_json::to_value(request)
            .map_err(|e| CallError::from(ProviderError::new(ErrorCode::Internal, e.to_string())))?;
        let response = self
            .call(
                reqwest::Method::POST,
                "/prompt",
                Some(&body),
                &[StatusCode::BAD_REQUEST],
            )
            .await?;
        if response.status() == StatusCode::BAD_REQUEST {
            let refused: PromptRefused = Self::json(response, "/prompt").await.unwrap_or_default();
            return Err(fatal(
                ErrorCode::InvalidParameter,
                format!("ComfyUI refused the workflow: {}", refused.summary()),
            )
            .into());
        }
        Self::json(response, "/prompt").await
    }

    /// The prompt's history entry, once it has ended.
    pub async fn history(&self, prompt_id: &str) -> Result<Option<HistoryEntry>, CallError> {
        let path = format!("/history/{prompt_id}");
        let response = self.call(reqwest::Method::GET, &path, None, &[]).await?;
        let mut all: serde_json::Map<String, Value> = Self::json(response, "/history").await?;
        all.remove(prompt_id)
            .map(|entry| {
                serde_json::from_value(entry).map_err(|e| {
                    CallError::from(unavailable(format!(
                        "ComfyUI's history entry is not one: {e}"
                    )))
                })
            })
            .transpose()
    }

    pub async fn queue(&self) -> Result<QueueState, CallError> {
        let response = self.call(reqwest::Method::GET, "/queue", None, &[]).await?;
        Self::json(response, "/queue").await
    }

    /// A saved file, at most `max` bytes. Gone (404) is a `download_failed`: the caller
    /// decides whether to make it again.
    pub async fn view(&self, file: &FileRef, max: u64) -> Result<Vec<u8>, CallError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filename", &file.filename)
            .append_pair("subfolder", &file.subfolder)
            .append_pair("type", &file.kind)
            .finish();
        let response = self
            .call(
                reqwest::Method::GET,
                &format!("/view?{query}"),
                None,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ProviderError::new(
                ErrorCode::DownloadFailed,
                format!("ComfyUI no longer has the output {:?} (404)", file.filename),
            )
            .into());
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_large(max).into());
        }
        let cap = usize::try_from(max).unwrap_or(usize::MAX);
        let mut response = response;
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > cap {
                        return Err(too_large(max).into());
                    }
                }
                Ok(None) => return Ok(bytes),
                Err(e) => {
                    return Err(ProviderError::new(
                        ErrorCode::DownloadFailed,
                        format!(
                            "the download of {:?} broke off: {}",
                            file.filename,
                            e.without_url()
                        ),
                    )
                    .into());
                }
            }
        }
    }

    /// Stops the prompt wherever it is: deleted from the queue if it waits there,
    /// interrupted (by its id, so no other prompt is) if it runs.
    pub async fn cancel(&self, prompt_id: &str) -> Result<(), CallError> {
        let body = serde_json::json!({"delete": [prompt_id]});
        self.call(reqwest::Method::POST, "/queue", Some(&body), &[])
            .await?;
        if self.queue().await?.place(prompt_id) == super::wire::Place::Running {
            let body = serde_json::json!({"prompt_id": prompt_id});
            self.call(reqwest::Method::POST, "/interrupt", Some(&body), &[])
                .await?;
        }
        Ok(())
    }

    /// `GET /system_stats`: the server answers (`atelier accounts --check`).
    pub async fn system_stats(&self) -> Result<Value, CallError> {
        let response = self
            .call(reqwest::Method::GET, "/system_stats", None, &[])
            .await?;
        Self::json(response, "/system_stats").await
    }

    /// Opens the WebSocket for `client_id` (messages about its prompts come to it alone).
    pub async fn connect(&self, client_id: &str) -> Result<Socket, CallError> {
        let root = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", self.base.trim_start_matches("http://"))
        };
        let url = format!("{root}/ws?clientId={client_id}");
        let mut request = url.into_client_request().map_err(|e| {
            CallError::from(fatal(
                ErrorCode::ProviderUnavailable,
                format!("bad WebSocket URL: {e}"),
            ))
        })?;
        if let Some((name, value)) = &self.auth {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let connecting = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(self.timing.timeout, connecting).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
                if matches!(response.status().as_u16(), 401 | 403) =>
            {
                Err(CallError {
                    error: fatal(
                        ErrorCode::ProviderUnavailable,
                        format!(
                            "the ComfyUI server (or its proxy) refused the token on its WebSocket: {}",
                            response.status()
                        ),
                    ),
                    blame: Blame::Token,
                })
            }
            Ok(Err(e)) => {
                Err(unavailable(format!("ComfyUI's WebSocket could not be opened: {e}")).into())
            }
            Err(_) => Err(ProviderError::new(
                ErrorCode::Timeout,
                "ComfyUI's WebSocket did not open in time".to_owned(),
            )
            .into()),
        }
    }
}

fn too_large(max: u64) -> ProviderError {
    ProviderError::new(
        ErrorCode::IntegrityFailed,
        format!("an output from ComfyUI is larger than the {max} bytes allowed"),
    )
}

fn connection_error(e: &reqwest::Error) -> ProviderError {
    // A reqwest error names the URL, never a header: no token in it.
    if e.is_timeout() {
        ProviderError::new(
            ErrorCode::Timeout,
            format!("ComfyUI did not answer in time: {e}"),
        )
    } else {
        unavailable(format!("ComfyUI could not be reached: {e}"))
    }
}

/// `Retry-After` in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
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

/// The `attempt`-th backoff from `base`: doubled each time up to 32 times, with up to a
/// quarter of jitter either way.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.min(5))
        .mul_f64(0.75 + fastrand::f64() * 0.5)
}
