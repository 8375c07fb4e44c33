//! Standard Webhooks signatures: secrets (`whsec_` and the base64 of 32 random bytes) and the
//! `webhook-signature` header (`v1,` and the base64 of the HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` under the secret's bytes).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit as _, Mac as _};

/// What every secret starts with.
pub const PREFIX: &str = "whsec_";

type HmacSha256 = hmac::Hmac<sha2_hmac::Sha256>;

/// Why a secret cannot sign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook secret is \"whsec_\" followed by the base64 of 24 to 64 random bytes")]
pub struct BadSecret;

/// A new secret from the system's random source.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The key a secret stands for; the prefix is optional, as in the Standard Webhooks libraries.
pub fn key_of(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let b64 = secret.strip_prefix(PREFIX).unwrap_or(secret);
    let key = STANDARD.decode(b64).map_err(|_| BadSecret)?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(BadSecret)
    }
}

/// One signature: `v1,<base64>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(&tag[..]))
}

/// The header's value: one signature per key, separated by spaces (a receiver accepts the
/// message when any of them verifies, so a rotated secret keeps working for a while).
pub fn header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| signature(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_reference_does() {
        // The reference libraries' test vector.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_random_and_refused_when_malformed() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(key_of(&a).unwrap().len(), 32);
        assert_eq!(key_of("whsec_!!"), Err(BadSecret));
        assert_eq!(key_of("whsec_c2hvcnQ="), Err(BadSecret));
        let keys = [key_of(&a).unwrap(), key_of(&b).unwrap()];
        let h = header(&keys, "msg_1", 1, b"{}");
        assert_eq!(h.split(' ').count(), 2);
    }
}
