//! Signed, expiring links to pictures for the midjourney-proxy routes' `imageUrl`: made by
//! this server's key, opened by `GET /mj/image/{link}` without any other credential.

use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};

use crate::domain::ImageId;

type HmacSha256 = hmac::Hmac<sha2_hmac::Sha256>;

/// Signed links to pictures: `{image}.{expiry}.{signature}`, opened by `GET /mj/image/{link}`
/// without a key until they expire. Only this server's key makes one, so a link says that a
/// user who could see the picture asked for it.
#[derive(Clone)]
pub struct Links {
    key: Vec<u8>,
    pub ttl: Duration,
    /// `[server.mj_proxy] public_url`: the address links begin with (else the one the client
    /// reached the server by, or for a notify hook, the server's bind address).
    pub public_url: Option<String>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("ttl", &self.ttl)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Why a link does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("this image link is not one of this server's")]
    Invalid,
    #[error("this image link has expired: fetch the task again for a fresh one")]
    Expired,
}

impl Links {
    pub fn new(key: Vec<u8>, ttl: Duration, public_url: Option<String>) -> Self {
        Self {
            key,
            ttl,
            public_url,
        }
    }

    fn mac(&self, message: &str) -> String {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(message.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest.iter().take(16).fold(String::new(), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// A link to `image` valid for the ttl from `now` (Unix seconds), under `origin`.
    pub fn url(&self, origin: &str, image: ImageId, now: i64) -> String {
        let expiry = now.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX));
        let message = format!("{}.{expiry}", image.as_uuid().simple());
        let base = self
            .public_url
            .as_deref()
            .unwrap_or(origin)
            .trim_end_matches('/');
        format!("{base}/mj/image/{message}.{}", self.mac(&message))
    }

    /// The image a link opens at `now` (Unix seconds).
    pub fn open(&self, link: &str, now: i64) -> Result<ImageId, LinkError> {
        let link = link.trim_end_matches(".png");
        let mut parts = link.split('.');
        let (Some(image), Some(expiry), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Invalid);
        };
        let expected = self.mac(&format!("{image}.{expiry}"));
        // Constant time: a signature is never guessed byte by byte.
        let same = expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(LinkError::Invalid);
        }
        let expiry: i64 = expiry.parse().map_err(|_| LinkError::Invalid)?;
        if now > expiry {
            return Err(LinkError::Expired);
        }
        image.parse().map_err(|_| LinkError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_open_until_they_expire_and_only_as_signed() {
        let links = Links::new(b"k".to_vec(), Duration::from_mins(1), None);
        let image = ImageId::new();
        let url = links.url("http://h:1", image, 1000);
        let link = url.strip_prefix("http://h:1/mj/image/").unwrap();
        assert_eq!(links.open(link, 1000), Ok(image));
        assert_eq!(links.open(&format!("{link}.png"), 1060), Ok(image));
        assert_eq!(links.open(link, 1061), Err(LinkError::Expired));
        let other = Links::new(b"j".to_vec(), Duration::from_mins(1), None);
        assert_eq!(other.open(link, 1000), Err(LinkError::Invalid));
        let forged = link.replacen(
            &image.as_uuid().simple().to_string(),
            &ImageId::new().as_uuid().simple().to_string(),
            1,
        );
        assert_eq!(links.open(&forged, 1000), Err(LinkError::Invalid));
        assert_eq!(links.open("nope", 1000), Err(LinkError::Invalid));
    }
}
