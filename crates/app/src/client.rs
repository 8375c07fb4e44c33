//! A client of Atelier's own HTTP API: the door the CLI's `--server` mode acts through. It
//! speaks the wire types of `api` that the server writes, and turns a problem document back
//! into the `AppError` the same use case returns on the data's machine, so a command prints
//! the same error and exits with the same code either way.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::secret::Secret;

/// The variable holding the API key the client signs with (never a flag: a flag shows in
/// process lists and shell history).
pub const KEY_VARIABLE: &str = "ATELIER_API_KEY";

/// The largest answer read into memory: a page of views is far smaller.
const MAX_BODY_BYTES: usize = 16 << 20;
/// The largest server-sent event: one event's JSON is a few hundred bytes.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// Connecting and each non-streaming request give up after these.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_mins(2);

/// An Atelier server and the key that signs requests to it.
#[derive(Clone)]
pub struct Client {
    base: reqwest::Url,
    key: Option<Secret>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("key", &self.key.as_ref().map(|_| crate::secret::REDACTED))
            .finish_non_exhaustive()
    }
}

/// A problem document as the server writes it (`http/problem.rs`).
#[derive(serde::Deserialize)]
struct Problem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: String,
}

impl Client {
    /// A client of the server at `server` (`http://` or `https://`, with no query), signing
    /// with `key` when there is one.
    pub fn new(server: &str, key: Option<Secret>) -> Result<Self, AppError> {
        let mut base = reqwest::Url::parse(server.trim()).map_err(|e| {
            AppError::Invalid(format!(
                "--server {server:?} is not a URL ({e}); give one such as http://127.0.0.1:8080"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(AppError::Invalid(format!(
                "--server {server:?} must be an http:// or https:// URL with a host"
            )));
        }
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err(AppError::Invalid(format!(
                "--server {server:?} must have no query, fragment or user name (the key goes in {KEY_VARIABLE})"
            )));
        }
        // Paths join under the base, whatever prefix a proxy serves Atelier at.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        atelier_discord::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("atelier-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AppError::Internal(format!("cannot make an HTTP client: {e}")))?;
        if key
            .as_ref()
            .is_some_and(|k| k.expose().chars().any(char::is_control))
        {
            return Err(AppError::Invalid(format!(
                "{KEY_VARIABLE} holds a line break or another control character"
            )));
        }
        Ok(Self { base, key, http })
    }

    /// The key from `ATELIER_API_KEY`, if set and not empty.
    #[must_use]
    pub fn key_from_env() -> Option<Secret> {
        std::env::var(KEY_VARIABLE)
            .ok()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .map(Secret::new)
    }

    /// A request to the path made of `segments` under the base, each percent-encoded (an
    /// email or an id is one segment, whatever it holds).
    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let mut r = self.http.request(method, url);
        if let Some(key) = &self.key {
            r = r.bearer_auth(key.expose());
        }
        r
    }

    /// Sends a request and reads its JSON answer (or its problem, as an error).
    async fn call<T: DeserializeOwned>(&self, r: RequestBuilder) -> Result<T, AppError> {
        let response = r
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = read_capped(response, MAX_BODY_BYTES)
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(error_of(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            AppError::Internal(format!(
                "the server's answer is not what this client expects ({e}): is {} an Atelier server of the same version?",
                self.base
            ))
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, AppError> {
        self.call(
            self.request(Method::GET, path)
                .query(query)
                .header(reqwest::header::ACCEPT, "application/json"),
        )
        .await
    }

    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: &impl Serialize,
    ) -> Result<T, AppError> {
        self.call(self.request(method, path).json(body)).await
    }

    /// A create request with an `Idempotency-Key`, tried again (with the same key, so the
    /// server makes one thing) when the connection fails or the first try is still running.
    pub async fn create<T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: &impl Serialize,
    ) -> Result<T, AppError> {
        let key = uuid::Uuid::new_v4().to_string();
        let mut wait = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            tries += 1;
            let r = self
                .request(Method::POST, path)
                .header("idempotency-key", &key)
                .json(body);
            match self.call(r).await {
                Err(AppError::Remote { code, .. })
                    if tries < 5 && code == "idempotency_in_flight" => {}
                Err(AppError::Unreachable(_)) if tries < 3 => {}
                other => return other,
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    /// A stream of server-sent events from `path`, resumed after `last_event_id`.
    pub async fn events(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> Result<impl Stream<Item = Result<sse_stream::Sse, AppError>> + use<>, AppError> {
        let mut r = self
            .request(Method::GET, path)
            .query(query)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            r = r.header("last-event-id", id);
        }
        let response = r.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = read_capped(response, MAX_BODY_BYTES)
                .await
                .map_err(|e| self.unreachable(&e))?;
            return Err(error_of(status, &body));
        }
        let base = self.base.to_string();
        let bytes = capped_events(response.bytes_stream());
        Ok(
            sse_stream::SseStream::from_bytes_stream(bytes).map(move |r| {
                r.map_err(|e| {
                    AppError::Unreachable(format!("the event stream from {base} broke: {e}"))
                })
            }),
        )
    }

    fn unreachable(&self, e: &reqwest::Error) -> AppError {
        let why = if e.is_timeout() {
            "it did not answer in time".to_owned()
        } else if e.is_connect() {
            "cannot connect".to_owned()
        } else {
            // reqwest's chain names the cause (refused, reset, TLS…).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        };
        AppError::Unreachable(format!("server {}: {why}", self.base))
    }
}

/// Reads a body, refusing one larger than `cap`.
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > cap {
            // Truncated: the parse that follows says the answer is not what was expected.
            body.extend_from_slice(&chunk[..cap - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The bytes of an event stream, ended with an error when one event grows past
/// `MAX_EVENT_BYTES` (a blank line ends an event), so a broken server cannot fill memory.
fn capped_events<S>(
    bytes: S,
) -> impl Stream<Item = Result<bytes::Bytes, EventStreamError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
{
    let mut since_blank = 0usize;
    let mut last = 0u8;
    bytes.map(move |chunk| {
        let chunk = chunk.map_err(|e| EventStreamError(e.to_string()))?;
        for &b in &chunk {
            if b == b'\n' && (last == b'\n' || since_blank == 0) {
                since_blank = 0;
            } else if b != b'\r' {
                since_blank += 1;
            }
            if b != b'\r' {
                last = b;
            }
            if since_blank > MAX_EVENT_BYTES {
                return Err(EventStreamError(format!(
                    "an event is larger than {MAX_EVENT_BYTES} bytes"
                )));
            }
        }
        Ok(chunk)
    })
}

/// Why the bytes of an event stream stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EventStreamError(String);

/// The error a problem document stands for: the variant the use case returned on the
/// server, so exit codes and messages match a local run.
fn error_of(status: StatusCode, body: &[u8]) -> AppError {
    let problem: Problem = serde_json::from_slice(body).unwrap_or_else(|_| Problem {
        code: String::new(),
        detail: String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned(),
    });
    let detail = if problem.detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        problem.detail
    };
    match (status.as_u16(), problem.code.as_str()) {
        (400 | 422, "invalid_input" | "") => AppError::Invalid(detail),
        // A 404 that names no resource is a route the server does not have: a wrong URL.
        (404, _) => match detail.strip_suffix(" not found") {
            Some(what) => AppError::NotFound(what.to_owned()),
            None => AppError::Remote {
                status: 404,
                code: "not_found".into(),
                message: format!("{detail}: is --server the address of an Atelier server?"),
            },
        },
        // Of the two 409s, only the in-flight retry may succeed later; it is retried.
        (409, "conflict") => AppError::WrongState(detail),
        (403, "forbidden") => AppError::Forbidden(detail),
        (503, "queue_full") => AppError::QueueFull(detail),
        (402, _) => insufficient(&detail).unwrap_or(AppError::Remote {
            status: 402,
            code: problem.code,
            message: detail,
        }),
        (401, _) => AppError::Remote {
            status: 401,
            code: "unauthorized".into(),
            message: format!("{detail} (the key is read from {KEY_VARIABLE})"),
        },
        (status, _) => AppError::Remote {
            status,
            code: if problem.code.is_empty() {
                "server_error".into()
            } else {
                problem.code
            },
            message: detail,
        },
    }
}

/// `InsufficientCredits` again from its message: `"{needed} credits needed, {balance} left…"`.
fn insufficient(detail: &str) -> Option<AppError> {
    let (needed, rest) = detail.split_once(" credits needed, ")?;
    let (balance, _) = rest.split_once(" left")?;
    Some(AppError::InsufficientCredits {
        needed: needed.trim().parse().ok()?,
        balance: balance.trim().parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_become_the_errors_of_the_use_cases() {
        let p = |status: u16, code: &str, detail: &str| {
            error_of(
                StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
                serde_json::json!({"code": code, "detail": detail})
                    .to_string()
                    .as_bytes(),
            )
        };
        assert!(matches!(p(422, "invalid_input", "bad"), AppError::Invalid(m) if m == "bad"));
        let e = p(404, "not_found", "generation 01 not found");
        assert_eq!(e.to_string(), "generation 01 not found");
        assert!(e.is_usage());
        assert!(p(409, "conflict", "it ended").is_usage());
        let credits = p(
            402,
            "insufficient_credits",
            "5 credits needed, 2 left: nothing was queued",
        );
        assert!(matches!(
            credits,
            AppError::InsufficientCredits {
                needed: 5,
                balance: 2
            }
        ));
        assert!(
            matches!(p(429, "rate_limited", "slow down"), AppError::Remote { status: 429, ref code, .. } if code == "rate_limited")
        );
        // A body that is no problem document still says something.
        let e = error_of(StatusCode::BAD_GATEWAY, b"<html>proxy error</html>");
        assert!(e.to_string().contains("proxy error"), "{e}");
        assert!(!e.is_usage());
    }

    #[test]
    fn a_server_must_be_an_http_url() {
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http://h/?a=1",
            "http://u@h",
        ] {
            assert!(Client::new(bad, None).is_err(), "{bad}");
        }
        let c = Client::new("http://127.0.0.1:9/prefix", Some(Secret::new("ak_secret")));
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.base.as_str(), "http://127.0.0.1:9/prefix/");
        assert!(!format!("{c:?}").contains("ak_secret"));
    }

    #[tokio::test]
    async fn an_event_larger_than_the_cap_ends_the_stream() {
        let big = vec![b'x'; MAX_EVENT_BYTES + 10];
        let chunks: Vec<Result<bytes::Bytes, reqwest::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"data: {}\n\n")),
            Ok(bytes::Bytes::from(big)),
        ];
        let mut s = Box::pin(capped_events(futures_util::stream::iter(chunks)));
        assert!(matches!(s.next().await, Some(Ok(_))));
        assert!(matches!(s.next().await, Some(Err(_))));
    }
}
