//! The HTTP/1.1 client of the HTTP measurements (`bench rate`, `bench sse`): keep-alive
//! requests on a plain TCP connection, written from prepared bytes and read with no more
//! parsing than the measurement needs, so that the client costs as little CPU as it can on
//! the two cores it shares with the server it measures.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::AppError;

/// Longest wait for any one answer: a server that stops answering fails the measurement.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

/// The parts of a base URL (`http://127.0.0.1:8787`) a plain connection needs.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port`, for the connection and the `Host` header.
    pub authority: String,
}

impl Target {
    /// Only `http://` URLs: the measurements run on loopback, without TLS.
    pub fn parse(url: &str) -> Result<Self, AppError> {
        let parsed = url::Url::parse(url).map_err(|e| AppError::Invalid(format!("--url: {e}")))?;
        if parsed.scheme() != "http" {
            return Err(AppError::Invalid("--url must be an http:// URL".into()));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| AppError::Invalid("--url has no host".into()))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        Ok(Self {
            authority: format!("{host}:{port}"),
        })
    }

    /// A request's bytes: `method path` with the key as a bearer token and `body` as JSON.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: &str,
        extra: &str,
        body: Option<&str>,
    ) -> Vec<u8> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n{extra}",
            self.authority
        );
        if let Some(body) = body {
            let _ = write!(
                head,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        } else {
            head.push_str("\r\n");
        }
        head.into_bytes()
    }

    pub async fn connect(&self) -> Result<Conn, AppError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| internal(format!("cannot connect to {}: {e}", self.authority)))?;
        stream.set_nodelay(true).map_err(internal)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }
}

/// One keep-alive connection.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read and not yet consumed.
    pub buf: Vec<u8>,
}

/// The head of an answer: its status and where its body starts in the buffer.
pub struct Head {
    pub status: u16,
    pub content_length: Option<usize>,
    pub body_start: usize,
}

impl Conn {
    /// Reads more bytes into the buffer; an error at the end of the stream.
    pub async fn fill(&mut self) -> Result<(), AppError> {
        self.buf.reserve(4096);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(internal)?;
        if n == 0 {
            return Err(internal("the server closed the connection"));
        }
        Ok(())
    }

    /// Reads until an answer's head is in the buffer.
    pub async fn head(&mut self) -> Result<Head, AppError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                return parse_head(&self.buf[..end], end + 4);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(internal("an answer's head is over 64 KiB"));
            }
            self.fill().await?;
        }
    }

    /// Sends `request` and reads the whole answer (with a `Content-Length`): its status and
    /// body.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), AppError> {
        self.stream.write_all(request).await.map_err(internal)?;
        let head = tokio::time::timeout(ANSWER_TIMEOUT, self.head())
            .await
            .map_err(|_| internal("no answer within 30 s"))??;
        let len = head
            .content_length
            .ok_or_else(|| internal("an answer without Content-Length"))?;
        while self.buf.len() < head.body_start + len {
            tokio::time::timeout(ANSWER_TIMEOUT, self.fill())
                .await
                .map_err(|_| internal("no answer within 30 s"))??;
        }
        let body = self.buf[head.body_start..head.body_start + len].to_vec();
        self.buf.drain(..head.body_start + len);
        Ok((head.status, body))
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8], body_start: usize) -> Result<Head, AppError> {
    let text = std::str::from_utf8(head).map_err(|_| internal("an answer's head is not text"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| internal("an answer without a status line"))?;
    let content_length = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    });
    Ok(Head {
        status,
        content_length,
        body_start,
    })
}

/// The `q` quantile (0 to 1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// CPU time (user + system) of process `pid` (or `self`) in seconds, from `/proc`.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields counted here come after its `)`.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_gives_its_status_and_length() {
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-type: x\r\nContent-Length: 12\r\n\r\n";
        let end = find(raw, b"\r\n\r\n").unwrap_or(0);
        let head = parse_head(&raw[..end], end + 4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.status, 404);
        assert_eq!(head.content_length, Some(12));
        assert_eq!(head.body_start, raw.len());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((quantile(&v, 0.99) - 99.0).abs() < f64::EPSILON);
        assert!((quantile(&v, 0.5) - 50.0).abs() < f64::EPSILON);
        assert!((quantile(&v, 1.0) - 100.0).abs() < f64::EPSILON);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn only_http_urls_are_targets() {
        assert!(Target::parse("https://127.0.0.1:1").is_err());
        let t = Target::parse("http://127.0.0.1:8787").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.authority, "127.0.0.1:8787");
    }
}
