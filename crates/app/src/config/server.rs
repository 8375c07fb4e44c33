//! `[server]`: how `atelier serve` listens, whom it lets in and what one request may cost.

use serde::{Deserialize, Serialize};

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
    /// Longest `Prefer: wait=N` honoured: a create waits at most this for the generation's end.
    pub max_wait_secs: u64,
    /// Comment lines sent on an idle event stream so proxies keep it open.
    pub heartbeat_secs: f64,
    /// Origins a browser may call the API from (`*` for any); none by default.
    pub cors_origins: Vec<String>,
    /// Workers this process runs beside the API; unset: as many as its providers take at once,
    /// 0: none (an API-only node).
    pub workers: Option<u32>,
    /// Host names (`host` or `host:port`) clients reach the server by, such as its DNS name
    /// behind a proxy. `/mcp` refuses a request addressed to any other host (DNS rebinding);
    /// loopback names and the bind address are always accepted.
    pub public_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8787".into(),
            auth: ServerAuth::Keys,
            max_body_kib: 1024,
            request_timeout_secs: 30.0,
            max_wait_secs: 60,
            heartbeat_secs: 15.0,
            cors_origins: Vec::new(),
            workers: None,
            public_hosts: Vec::new(),
        }
    }
}
