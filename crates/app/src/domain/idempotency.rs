//! Idempotent requests, with Stripe's semantics: a client names a request with a key; the same
//! key and the same request replay the first answer, the same key with another request is
//! refused, and a retry while the first is still running is told to wait.

use std::time::Duration;

use super::UserId;

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_hours(24);
/// The longest key accepted (Stripe's limit).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// Why a key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyInvalid {
    #[error(
        "an idempotency key must have 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
    )]
    Shape,
}

/// Whose request, under which key, is what (the request's fingerprint: a hash of its method,
/// path and body, so the same key with another request is caught).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdempotentRequest {
    pub user_id: UserId,
    pub key: String,
    pub fingerprint: String,
}

impl IdempotentRequest {
    pub fn new(user_id: UserId, key: &str, fingerprint: String) -> Result<Self, KeyInvalid> {
        let ok = (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if !ok {
            return Err(KeyInvalid::Shape);
        }
        Ok(Self {
            user_id,
            key: key.to_owned(),
            fingerprint,
        })
    }
}

/// The first answer to a request, kept to replay.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What a key remembers, as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    /// `None` while the first request is in flight.
    pub response: Option<StoredResponse>,
}

/// What to do with a request that carries a key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Begun {
    /// The key is new (or had expired): run the request, then complete it.
    New,
    /// The first request with this key is still running: try again later.
    InFlight,
    /// The first request with this key ended: replay its answer.
    Done(StoredResponse),
    /// The key was used for another request.
    Mismatch,
}

impl IdempotencyRecord {
    /// What a request with `fingerprint` meets when this record holds its key.
    pub fn meet(&self, fingerprint: &str) -> Begun {
        if self.fingerprint != fingerprint {
            return Begun::Mismatch;
        }
        match &self.response {
            None => Begun::InFlight,
            Some(r) => Begun::Done(r.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_replays_its_own_request_only() {
        let mut r = IdempotencyRecord {
            fingerprint: "f1".into(),
            response: None,
        };
        assert_eq!(r.meet("f1"), Begun::InFlight);
        assert_eq!(r.meet("f2"), Begun::Mismatch);
        let done = StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
        };
        r.response = Some(done.clone());
        assert_eq!(r.meet("f1"), Begun::Done(done));
        assert_eq!(r.meet("f2"), Begun::Mismatch);
    }

    #[test]
    fn keys_have_a_shape() {
        let u = UserId::new();
        assert!(IdempotentRequest::new(u, "order-42", "f".into()).is_ok());
        assert_eq!(
            IdempotentRequest::new(u, "", "f".into()),
            Err(KeyInvalid::Shape)
        );
        assert_eq!(
            IdempotentRequest::new(u, &"k".repeat(256), "f".into()),
            Err(KeyInvalid::Shape)
        );
        assert_eq!(
            IdempotentRequest::new(u, "é", "f".into()),
            Err(KeyInvalid::Shape)
        );
    }
}
