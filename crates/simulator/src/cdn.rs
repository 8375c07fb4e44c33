//! The CDN: attachment bytes, signed expiring URLs, and the download route.
//!
//! URLs look like Discord's since 2024:
//! `http://ADDR/attachments/{channel}/{attachment}/{filename}?ex=<hex expiry>&is=<hex issued>&hm=<hex signature>&`.
//! The signature is SHA-256 over a per-run secret, the path, `ex` and `is`; a missing,
//! wrong or expired signature gets Discord's 404 "This content is no longer available.".
//! Blobs are kept first-in first-out up to a byte budget; an evicted one reads as gone.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::faults::Fault;
use crate::ids::unix_secs;
use crate::sim::Sim;

/// Bytes kept before the oldest blobs are forgotten.
const BUDGET: usize = 1 << 30;

struct Blob {
    bytes: Bytes,
    content_type: &'static str,
}

/// Attachment bytes by URL path (`/attachments/…` or `/ephemeral-attachments/…`).
#[derive(Default)]
pub(crate) struct Blobs {
    map: HashMap<String, Blob>,
    order: VecDeque<String>,
    total: usize,
}

impl Blobs {
    pub(crate) fn put(&mut self, path: String, bytes: Bytes, content_type: &'static str) {
        self.total += bytes.len();
        if let Some(old) = self.map.insert(
            path.clone(),
            Blob {
                bytes,
                content_type,
            },
        ) {
            self.total -= old.bytes.len();
        } else {
            self.order.push_back(path);
        }
        while self.total > BUDGET && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front()
                && let Some(blob) = self.map.remove(&old)
            {
                self.total -= blob.bytes.len();
            }
        }
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.map.contains_key(path)
    }

    pub(crate) fn get(&self, path: &str) -> Option<(Bytes, &'static str)> {
        self.map
            .get(path)
            .map(|b| (b.bytes.clone(), b.content_type))
    }
}

/// Signs paths with the run's secret.
pub(crate) struct Signer {
    secret: [u8; 32],
}

impl Signer {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ crate::ids::unix_ms());
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        Self { secret }
    }

    fn signature(&self, path: &str, ex: u64, is: u64) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(path.as_bytes());
        hasher.update(format!("|{ex:x}|{is:x}").as_bytes());
        hasher.finalize().iter().fold(String::new(), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
    }

    /// The query Discord appends: `?ex=…&is=…&hm=…&`.
    pub(crate) fn query(&self, path: &str, ttl_secs: u64) -> String {
        let is = unix_secs();
        let ex = is + ttl_secs;
        format!("?ex={ex:x}&is={is:x}&hm={}&", self.signature(path, ex, is))
    }

    /// True when the signature matches and the expiry lies in the future.
    pub(crate) fn valid(&self, path: &str, ex: &str, is: &str, hm: &str) -> bool {
        let (Ok(ex_n), Ok(is_n)) = (u64::from_str_radix(ex, 16), u64::from_str_radix(is, 16))
        else {
            return false;
        };
        unix_secs() < ex_n && self.signature(path, ex_n, is_n) == hm.to_ascii_lowercase()
    }
}

/// `GET`/`HEAD /attachments/…` and `/ephemeral-attachments/…`.
pub(crate) async fn download(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path();
    let field = |name: &str| query.get(name).map_or("", String::as_str);
    let valid = sim
        .signer
        .valid(path, field("ex"), field("is"), field("hm"));
    let bytes = if valid { sim.blob(path) } else { None };
    let Some((bytes, content_type)) = bytes else {
        return gone();
    };
    sim.stats.count_download();
    let (error, truncate, status) = {
        let mut faults = sim.faults();
        let error = faults.roll(Fault::CdnError);
        let truncate = !error && faults.roll(Fault::CdnTruncate);
        let status = [500, 502, 503][faults.rng(Fault::CdnError).usize(..3)];
        (error, truncate, status)
    };
    if error {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        return (status, "upstream error").into_response();
    }
    let body = if truncate {
        bytes.slice(..bytes.len() / 2)
    } else {
        bytes
    };
    let length = body.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    response
}

fn content_type(path: &str) -> &'static str {
    let extension = std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// Discord's answer for an unknown, unsigned or expired attachment URL.
fn gone() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "This content is no longer available.",
    )
        .into_response()
}

/// The content type a blob is served with, for callers building attachment objects.
pub(crate) fn mime(filename: &str) -> &'static str {
    content_type(filename)
}

#[cfg(test)]
mod tests {
    use super::{Blobs, Signer};
    use axum::body::Bytes;

    #[test]
    fn signatures_check_path_and_expiry() {
        let signer = Signer::new(1);
        let query = signer.query("/attachments/1/2/a.png", 60);
        let fields: Vec<&str> = query
            .trim_start_matches('?')
            .split('&')
            .filter_map(|kv| kv.split_once('=').map(|(_, v)| v))
            .collect();
        let [ex, is, hm] = fields[..] else {
            panic!("query {query}")
        };
        assert!(signer.valid("/attachments/1/2/a.png", ex, is, hm));
        assert!(!signer.valid("/attachments/1/2/b.png", ex, is, hm));
        assert!(!signer.valid("/attachments/1/2/a.png", "1", is, hm));
        let expired = signer.query("/x", 0);
        let fields: Vec<&str> = expired
            .trim_start_matches('?')
            .split('&')
            .filter_map(|kv| kv.split_once('=').map(|(_, v)| v))
            .collect();
        assert!(!signer.valid("/x", fields[0], fields[1], fields[2]));
    }

    #[test]
    fn blobs_replace_and_report() {
        let mut blobs = Blobs::default();
        blobs.put("/a".into(), Bytes::from_static(b"12"), "image/png");
        blobs.put("/a".into(), Bytes::from_static(b"3"), "image/png");
        assert_eq!(blobs.get("/a").map(|b| b.0).as_deref(), Some(&b"3"[..]));
        assert_eq!(blobs.total, 1);
        assert!(!blobs.contains("/b"));
    }
}
