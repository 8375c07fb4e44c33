//! `[server]`: how `atelier serve` listens, whom it lets in and what one request may cost.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// How the server knows who calls.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServerAuth {
    /// `Authorization: Bearer <API key or session token>`; the caller sees only their own work.
    #[default]
    Keys,
    /// No credentials: every caller is the operator and sees everything. Only on a loopback
    /// address (a development server on one machine).
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on (`--bind` wins).
    pub bind: String,
    pub auth: ServerAuth,
    /// Largest request body, in KiB.
    pub max_body_kib: u64,
    /// Longest time a request (other than an event stream or a `Prefer: wait`) may take.
    pub request_timeout_secs: f64,
    /// Longest time a client may take to send a request's head (method, path, headers).
    pub header_timeout_secs: f64,
    /// Longest `Prefer: wait=N` honoured: a create waits at most this for the generation's end.
    pub max_wait_secs: u64,
    /// Comment lines sent on an idle event stream so proxies keep it open.
    pub heartbeat_secs: f64,
    /// Origins a browser may call the API from (`*` for any); none by default.
    pub cors_origins: Vec<String>,
    /// Workers this process runs beside the API; unset: as many as its providers take at once,
    /// 0: none (an API-only node).
    pub workers: Option<u32>,
    /// Requests one API key (or session, or signed-in token) may make per minute; 0: no limit.
    pub rate_limit_per_minute: u32,
    /// Requests a key may make at once above its steady rate before it is slowed.
    pub rate_limit_burst: u32,
    /// Sign-in attempts (`POST /v1/sessions`) one client address may make per minute.
    pub sign_in_per_minute: u32,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// Host names (`host` or `host:port`) clients reach the server by, such as its DNS name
    /// behind a proxy. `/mcp` refuses a request addressed to any other host (DNS rebinding);
    /// loopback names and the bind address are always accepted.
    pub public_hosts: Vec<String>,
    /// Tokens of another sign-in service (Supabase Auth) accepted as bearer tokens.
    pub jwt: JwtConfig,
    /// The drop-in OpenAI Images route, `POST /v1/images/generations`.
    pub openai_images: OpenAiImagesConfig,
    /// The drop-in midjourney-proxy routes, `/mj/submit/*` and `/mj/task/*`.
    pub mj_proxy: MjProxyConfig,
}

/// `[server.mj_proxy]`: the midjourney-proxy drop-in routes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MjProxyConfig {
    /// The provider `/mj/submit/imagine`, `/blend` and `/describe` use for `botType:
    /// MID_JOURNEY` (or none); unset: the default provider. Checked when `serve` starts.
    pub provider: Option<String>,
    /// The provider for `botType: NIJI_JOURNEY`; unset: the same as `provider`. Either way its
    /// requests carry the parameter `bot = "niji"` (the Midjourney provider then talks to the
    /// niji・journey bot).
    pub niji_provider: Option<String>,
    /// The address the links to pictures (`imageUrl`) begin with, such as the server's public
    /// name behind a proxy; unset: the address the client reached the server by (and, in a
    /// notify hook's body, the address `serve` listens on).
    pub public_url: Option<String>,
    /// How long a link to a picture opens, in seconds (60 to 30 days).
    pub link_ttl_secs: u64,
    /// Signs the links (`env:NAME` works); unset: a random key of this process's own, so a
    /// link opens only on the node that made it until the process restarts. Set it when several
    /// nodes serve one deployment.
    pub link_secret: Option<Secret>,
}

impl Default for MjProxyConfig {
    fn default() -> Self {
        Self {
            provider: None,
            niji_provider: None,
            public_url: None,
            link_ttl_secs: 86_400,
            link_secret: None,
        }
    }
}

/// `[server.openai_images]`: which provider answers each `model` an OpenAI client names.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiImagesConfig {
    /// `model` → `"PROVIDER"` or `"PROVIDER:MODEL"` (the model handed to a provider that takes
    /// one, such as `openai`). A model named nowhere here may name a provider itself; a request
    /// naming no model goes to the default provider.
    pub models: std::collections::BTreeMap<String, String>,
    /// Longest time the route waits for the images before it answers 504 (the generation goes
    /// on, and can be followed at `/v1/generations/{id}`).
    pub wait_secs: u64,
}

impl Default for OpenAiImagesConfig {
    fn default() -> Self {
        Self {
            models: std::collections::BTreeMap::new(),
            wait_secs: 300,
        }
    }
}

/// Who may read the Prometheus metrics.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetricsAccess {
    /// Administrators (and the operator when auth is off).
    #[default]
    Admin,
    /// Anyone who reaches the server (behind a private network).
    Public,
    /// Not served.
    Off,
}

/// `[server.jwt]`: JSON Web Tokens signed by the project's Supabase Auth (or any issuer of the
/// same kind), checked with its HS256 secret or the keys of its JWKS document. Their subject
/// (`sub`, a UUID) is the Atelier user's id, made on first sight.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// The project's JWT secret (HS256; Supabase's "legacy JWT secret").
    pub secret: Option<Secret>,
    /// The project's JWKS document, e.g.
    /// `https://<project>.supabase.co/auth/v1/.well-known/jwks.json` (`ES256`, `RS256`, `EdDSA` keys).
    pub jwks_url: Option<String>,
    /// The audience tokens must be for (`aud`); Supabase's signed-in users: `authenticated`.
    pub audience: String,
    /// The issuer tokens must come from (`iss`), e.g. `https://<project>.supabase.co/auth/v1`;
    /// unset: any.
    pub issuer: Option<String>,
    /// How long a fetched JWKS is trusted before it is read again.
    pub jwks_cache_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            secret: None,
            jwks_url: None,
            audience: "authenticated".into(),
            issuer: None,
            jwks_cache_secs: 600,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8787".into(),
            auth: ServerAuth::Keys,
            max_body_kib: 1024,
            request_timeout_secs: 30.0,
            header_timeout_secs: 10.0,
            max_wait_secs: 60,
            heartbeat_secs: 15.0,
            cors_origins: Vec::new(),
            workers: None,
            rate_limit_per_minute: 600,
            rate_limit_burst: 60,
            sign_in_per_minute: 10,
            metrics: MetricsAccess::Admin,
            jwt: JwtConfig::default(),
            public_hosts: Vec::new(),
            openai_images: OpenAiImagesConfig::default(),
            mj_proxy: MjProxyConfig::default(),
        }
    }
}
