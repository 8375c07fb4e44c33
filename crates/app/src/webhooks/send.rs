//! One attempt over HTTP: a `POST` with the signed headers, no redirects, no proxy, a deadline
//! for the whole exchange, and the start of the answer kept.
//!
//! The client resolves names through [`Guarded`], which hands the connector only the addresses
//! the guard allows (`target::allowed`), so the address checked is the address connected to: a
//! name cannot pass the check and then resolve elsewhere. A host written as an address is
//! checked before the request, since no resolver is asked for it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::target;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most of an answer read (the log keeps less, `domain::truncated`).
const READ_AT_MOST: usize = 4096;

/// How an attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub response: Option<String>,
    pub duration: Duration,
}

/// Names resolved to the addresses the guard allows, or an error naming why none is.
struct Guarded {
    allow_private: bool,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<_> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError { Box::new(e) })?
                .collect();
            let allowed = target::allowed(found, allow_private);
            if allowed.is_empty() {
                let refused: BoxError = format!(
                    "{host} resolves to no public address (refused: [webhooks] allow_private_targets is off)"
                )
                .into();
                return Err(refused);
            }
            Ok::<Addrs, BoxError>(Box::new(allowed.into_iter()))
        })
    }
}

/// The webhooks' HTTP client.
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

impl Sender {
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, reqwest::Error> {
        atelier_discord::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect to the target itself, past the guard.
            .no_proxy()
            .dns_resolver(Guarded { allow_private })
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("Atelier-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            allow_private,
            timeout,
        })
    }

    /// Posts `body` to `url` with `headers`; never longer than the attempt's timeout.
    pub async fn send(&self, url: &str, headers: &[(&str, String)], body: String) -> Sent {
        let started = Instant::now();
        let done = |status, error: Option<String>, response| Sent {
            status,
            error,
            response,
            duration: started.elapsed(),
        };
        let parsed = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return done(None, Some(format!("bad URL: {e}")), None),
        };
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !self.allow_private
            && !target::is_public(ip)
        {
            return done(
                None,
                Some(format!(
                    "{ip} is not a public address (refused: [webhooks] allow_private_targets is off)"
                )),
                None,
            );
        }
        let mut request = self
            .client
            .post(parsed)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let exchange = async {
            let mut response = request.body(body).send().await?;
            let status = response.status().as_u16();
            let mut kept = Vec::new();
            while kept.len() < READ_AT_MOST {
                match response.chunk().await? {
                    Some(chunk) => kept.extend_from_slice(&chunk),
                    None => break,
                }
            }
            kept.truncate(READ_AT_MOST);
            Ok::<_, reqwest::Error>((status, String::from_utf8_lossy(&kept).into_owned()))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => done(None, Some(timed_out(self.timeout)), None),
            Ok(Err(e)) if e.is_timeout() => done(None, Some(timed_out(self.timeout)), None),
            Ok(Err(e)) => done(None, Some(error_chain(&e)), None),
            Ok(Ok((status, text))) => {
                let error = (!(200..300).contains(&status)).then(|| match status {
                    410 => "410 Gone: the receiver asked for no more deliveries".to_owned(),
                    300..=399 => format!("{status}: redirects are not followed"),
                    _ => format!("the receiver answered {status}"),
                });
                let response = (!text.is_empty()).then(|| crate::domain::truncated(&text));
                done(Some(status), error, response)
            }
        }
    }
}

fn timed_out(after: Duration) -> String {
    format!("no answer within {:.1} s", after.as_secs_f64())
}

/// An error with its causes, which say what failed (the resolver's refusal, a refused
/// connection, a TLS failure).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
