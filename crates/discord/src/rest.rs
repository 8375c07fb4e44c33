//! REST client for one user account.
//!
//! Every Discord call goes through [`RestClient::execute`]: wait for the route's rate-limit
//! bucket (and the pacing gap for interactions), send with the account's headers, record
//! the limits the response announces, and retry 429s after `retry_after`. Uploads to the
//! storage URL Discord hands out and CDN downloads use the same HTTP client but never the
//! Discord headers, so the token only ever goes to the API host.

mod attachments;
mod commands;
mod error;
mod interactions;
mod messages;
mod ratelimit;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::properties::ClientProperties;
use crate::token::Token;

pub use attachments::UploadedAttachment;
pub use commands::{CommandInfo, CommandScope};
pub use error::RestError;
pub use interactions::{Component, InteractionContext, ModalSubmit, SlashCommand};
pub use messages::MessageQuery;

use ratelimit::{Hit, Pacer, RateLimiter, Route};

/// REST settings; `Default` targets discord.com.
#[derive(Clone, Debug)]
pub struct RestConfig {
    /// API root including the version, e.g. `https://discord.com/api/v9`.
    pub api_base: String,
    /// CDN root that attachment URLs are rewritten to (a reverse proxy, or a test server).
    pub cdn_base: String,
    pub properties: ClientProperties,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// How many times a 429 is retried before [`RestError::RateLimited`].
    pub max_retries: u32,
    /// A 429 asking to wait longer than this fails at once instead of sleeping.
    pub max_retry_wait: Duration,
    /// Minimum time between two interactions of this account.
    pub interaction_gap: Duration,
    /// Random extra time (0 to this) added to each gap.
    pub interaction_jitter: Duration,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            api_base: "https://discord.com/api/v9".to_owned(),
            cdn_base: DISCORD_CDN.to_owned(),
            properties: ClientProperties::default(),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            max_retry_wait: Duration::from_mins(1),
            interaction_gap: Duration::from_millis(1200),
            interaction_jitter: Duration::from_millis(800),
        }
    }
}

const DISCORD_CDN: &str = "https://cdn.discordapp.com";

/// A cheap-to-clone handle; clones share rate limits, pacing and the command cache.
#[derive(Clone)]
pub struct RestClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_base: String,
    cdn_base: String,
    max_retries: u32,
    max_retry_wait: Duration,
    /// Browser-like headers plus `Authorization`; only ever sent to `api_base`.
    discord_headers: HeaderMap,
    limiter: RateLimiter,
    pacer: Pacer,
    commands: commands::Cache,
}

impl fmt::Debug for RestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient")
            .field("api_base", &self.inner.api_base)
            .field("cdn_base", &self.inner.cdn_base)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One API call, described before it is sent so it can be retried.
#[derive(Debug)]
struct Call {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    /// Interactions wait for the pacing gap.
    paced: bool,
}

impl Call {
    fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            paced: false,
        }
    }

    fn post(path: String, body: Value) -> Self {
        Self {
            method: Method::POST,
            body: Some(body),
            ..Self::get(path)
        }
    }
}

impl RestClient {
    /// Builds a client for the account owning `token`. Installs the ring crypto provider
    /// if none is installed yet (reqwest is built without one).
    pub fn new(config: &RestConfig, token: &Token) -> Result<Self, RestError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(config.properties.user_agent.as_str())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| RestError::Config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_base: config.api_base.trim_end_matches('/').to_owned(),
                cdn_base: config.cdn_base.trim_end_matches('/').to_owned(),
                max_retries: config.max_retries,
                max_retry_wait: config.max_retry_wait,
                discord_headers: discord_headers(&config.properties, token)?,
                limiter: RateLimiter::default(),
                pacer: Pacer::new(config.interaction_gap, config.interaction_jitter),
                commands: commands::Cache::default(),
            }),
        })
    }

    /// `GET users/@me`: the account's own user object; a cheap token check.
    pub async fn current_user(&self) -> Result<Value, RestError> {
        self.execute_json(Call::get("users/@me".to_owned())).await
    }

    async fn execute_json<T: DeserializeOwned>(&self, call: Call) -> Result<T, RestError> {
        let body = self.execute(call).await?;
        serde_json::from_slice(&body).map_err(|e| RestError::Decode(e.to_string()))
    }

    /// Sends a call with rate limiting and 429 retries; returns the success body.
    async fn execute(&self, call: Call) -> Result<Bytes, RestError> {
        let inner = &self.inner;
        let route = Route::new(&call.method, &call.path);
        let mut url = Url::parse(&format!("{}/{}", inner.api_base, call.path))
            .map_err(|e| RestError::Config(format!("bad API URL: {e}")))?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        if call.paced {
            inner.pacer.wait().await;
        }
        let mut retries = 0;
        loop {
            inner.limiter.acquire(&route).await;
            let mut request = inner
                .http
                .request(call.method.clone(), url.clone())
                .headers(inner.discord_headers.clone());
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(RestError::Transport)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            inner.limiter.update(&route, &headers).await;
            let body = response.bytes().await.map_err(RestError::Transport)?;
            match status {
                429 => {
                    let hit = Hit::parse(&headers, &body);
                    inner.limiter.hit(&route, &hit).await;
                    if retries >= inner.max_retries || hit.retry_after > inner.max_retry_wait {
                        return Err(RestError::RateLimited {
                            route: route.key,
                            retry_after: hit.retry_after,
                            global: hit.global,
                        });
                    }
                    retries += 1;
                    tracing::warn!(route = %route.key, retry_after = ?hit.retry_after, global = hit.global, retries, "rest: rate limited; retrying");
                }
                401 => return Err(RestError::Unauthorized),
                200..=299 => return Ok(body),
                _ => {
                    let error = RestError::from_body(status, &body);
                    tracing::debug!(route = %route.key, %error, "rest: request failed");
                    return Err(error);
                }
            }
        }
    }
}

/// The web client's headers for API calls. The token header is marked sensitive so
/// HTTP-level debug output redacts it too.
fn discord_headers(props: &ClientProperties, token: &Token) -> Result<HeaderMap, RestError> {
    let mut headers = HeaderMap::new();
    let mut auth = HeaderValue::from_str(token.expose()).map_err(|_| {
        RestError::Config("the token contains characters not allowed in a header".into())
    })?;
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    let pairs = [
        ("accept", "*/*".to_owned()),
        ("accept-language", props.system_locale.clone()),
        ("origin", "https://discord.com".to_owned()),
        ("referer", "https://discord.com/channels/@me".to_owned()),
        ("sec-fetch-dest", "empty".to_owned()),
        ("sec-fetch-mode", "cors".to_owned()),
        ("sec-fetch-site", "same-origin".to_owned()),
        ("x-debug-options", "bugReporterEnabled".to_owned()),
        ("x-discord-locale", props.system_locale.clone()),
        ("x-super-properties", props.super_properties()),
    ];
    for (name, value) in pairs {
        let value = HeaderValue::from_str(&value)
            .map_err(|_| RestError::Config(format!("invalid value for header {name}")))?;
        headers.insert(HeaderName::from_static(name), value);
    }
    Ok(headers)
}

/// Checks that an id is a snowflake before it goes into a URL path.
fn snowflake(id: &str) -> Result<&str, RestError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(RestError::InvalidId(id.chars().take(40).collect()))
    }
}
