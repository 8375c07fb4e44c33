//! Where a webhook may go: the URL's form, checked when a generation is created, and the
//! addresses it resolves to, checked again when each attempt connects (a name that pointed
//! outside at creation may point inside later).
//!
//! By default a target must be a public address: loopback, private (RFC 1918, unique local),
//! link-local (cloud metadata services live there), shared (carrier-grade NAT), unspecified,
//! broadcast, multicast and documentation addresses are refused, so a caller cannot make the
//! server reach into its own network. `[webhooks] allow_private_targets` lifts this for a
//! deployment whose receivers are inside (and for the tests, on 127.0.0.1).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use url::{Host, Url};

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadTarget {
    #[error("the webhook URL is {0} characters long; the limit is {1}")]
    TooLong(usize, usize),
    #[error("the webhook URL is not a URL: {0}")]
    Malformed(String),
    #[error("the webhook URL must be http or https, not {0:?}")]
    Scheme(String),
    #[error("the webhook URL must not carry a user name or password")]
    Credentials,
    #[error("the webhook URL has no host")]
    NoHost,
    #[error(
        "the webhook URL's host {0} is a loopback, private, link-local or otherwise non-public address; \
         set [webhooks] allow_private_targets = true to deliver inside your network"
    )]
    Private(String),
}

/// `raw` as a webhook URL, or why not. A host given as an address, or `localhost`, is judged
/// here; a name is judged on the addresses it resolves to at each attempt.
pub fn check(raw: &str, max_chars: usize, allow_private: bool) -> Result<Url, BadTarget> {
    let chars = raw.chars().count();
    if chars > max_chars {
        return Err(BadTarget::TooLong(chars, max_chars));
    }
    let url = Url::parse(raw.trim()).map_err(|e| BadTarget::Malformed(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BadTarget::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BadTarget::Credentials);
    }
    let private = match url.host() {
        None => return Err(BadTarget::NoHost),
        Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(BadTarget::Private(
            url.host_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(url)
}

/// Whether `ip` is an address of the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || first & 0xffc0 == 0xfec0
                // Documentation 2001:db8::/32; IPv4-compatible and NAT64 forms of any address.
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || v6.segments()[..6].iter().all(|s| *s == 0)
                || (first == 0x0064 && v6.segments()[1] == 0xff9b))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT) 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Protocol assignments 192.0.0.0/24, benchmarking 198.18.0.0/15, reserved 240/4.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

/// The addresses an attempt may connect to among `addrs`: all when private targets are
/// allowed, else the public ones.
pub fn allowed(addrs: Vec<SocketAddr>, allow_private: bool) -> Vec<SocketAddr> {
    if allow_private {
        addrs
    } else {
        addrs.into_iter().filter(|a| is_public(a.ip())).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn urls_are_checked_for_form_and_private_hosts() {
        let ok = check("https://hooks.example.com/atelier?x=1", 2048, false).unwrap();
        assert_eq!(ok.host_str(), Some("hooks.example.com"));
        assert!(matches!(
            check("ftp://example.com/", 2048, false),
            Err(BadTarget::Scheme(_))
        ));
        assert_eq!(
            check("https://user:pw@example.com/", 2048, false),
            Err(BadTarget::Credentials)
        );
        assert!(matches!(
            check("not a url", 2048, false),
            Err(BadTarget::Malformed(_))
        ));
        let long = format!("https://example.com/{}", "a".repeat(100));
        assert!(matches!(
            check(&long, 50, false),
            Err(BadTarget::TooLong(_, 50))
        ));
        for private in [
            "http://127.0.0.1:9/",
            "http://localhost/",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:192.168.1.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            assert!(
                matches!(check(private, 2048, false), Err(BadTarget::Private(_))),
                "{private}"
            );
            assert!(check(private, 2048, true).is_ok(), "{private}");
        }
    }

    #[test]
    fn only_public_addresses_pass_the_guard() {
        let public: SocketAddr = "93.184.215.14:443".parse().unwrap();
        let inside: SocketAddr = "192.168.0.2:80".parse().unwrap();
        let v6: SocketAddr = "[2606:4700::1111]:443".parse().unwrap();
        assert_eq!(allowed(vec![public, inside, v6], false), vec![public, v6]);
        assert_eq!(allowed(vec![inside], true), vec![inside]);
        assert!(!is_public(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }
}
