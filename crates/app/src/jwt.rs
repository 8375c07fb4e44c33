//! Sign-in tokens issued by another service (Supabase Auth): JSON Web Tokens checked against
//! the project's HS256 secret or the public keys of its JWKS document, so an app's users call
//! the API with the token their app already holds.
//!
//! Only what proves a token is checked here (signature, algorithm, expiry, audience, issuer);
//! who the token's subject is in Atelier is the app layer's business (`app/users.rs`).
//! A JWKS is fetched on first use and kept for `jwks_cache_secs`; a token signed by a key the
//! cache does not hold (the project rotated its keys) fetches the document again, at most once
//! every few seconds whatever callers send.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::JwtConfig;

/// The longest token looked at: Supabase's are well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Unknown key ids fetch the document again at most this often.
const REFETCH_EVERY: Duration = Duration::from_secs(5);
/// Clock difference tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The token is not one of ours: bad signature, expired, another audience… (HTTP 401.)
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// The keys to check it with cannot be had now (the JWKS URL does not answer). (HTTP 503.)
    #[error("the signing keys cannot be fetched: {0}")]
    Unavailable(String),
}

/// Who a valid token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSubject {
    /// The `sub` claim: Supabase's user id (`auth.uid()`).
    pub id: uuid::Uuid,
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    /// Supabase keeps `email_verified` here.
    #[serde(default)]
    user_metadata: Option<serde_json::Value>,
}

impl Claims {
    /// The address, unless the token says it is not verified (an address anyone could type
    /// must not claim a name first).
    fn verified_email(self) -> Option<String> {
        let unverified = self.email_verified == Some(false)
            || self
                .user_metadata
                .as_ref()
                .and_then(|m| m.get("email_verified"))
                .and_then(serde_json::Value::as_bool)
                == Some(false);
        self.email.filter(|e| !e.is_empty() && !unverified)
    }
}

/// Checks tokens with the keys `[server.jwt]` names.
pub struct JwtVerifier {
    keys: Keys,
    audience: String,
    issuer: Option<String>,
}

enum Keys {
    Secret(DecodingKey),
    Jwks(Arc<Jwks>),
}

struct Jwks {
    url: String,
    client: reqwest::Client,
    keep_for: Duration,
    /// Held only to copy from or write into, never across a fetch.
    cache: RwLock<Cached>,
    /// One fetch at a time.
    fetching: Mutex<()>,
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    /// When the document was last read successfully.
    fetched: Option<Instant>,
    /// When a fetch was last tried, whatever came of it.
    tried: Option<Instant>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            Keys::Secret(_) => "secret".to_owned(),
            Keys::Jwks(j) => format!("jwks {}", j.url),
        };
        f.debug_struct("JwtVerifier")
            .field("keys", &keys)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts, a JSON header first), so an
/// API key or session token is never sent through the JWT checks.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ")
        && token.len() <= MAX_TOKEN_BYTES
        && token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether the token's header has a `crit` parameter: extensions the recipient must understand
/// or refuse the token (RFC 7515, 4.1.11). This server understands none, so any is refused;
/// `jsonwebtoken` does not read the parameter, hence this look at the header itself.
fn names_critical_parameters(token: &str) -> bool {
    use base64::Engine as _;
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&h).ok())
        .is_some_and(|h| h.contains_key("crit"))
}

impl JwtVerifier {
    /// The verifier `[server.jwt]` asks for, or `None` when it names no keys.
    pub fn from_config(config: &JwtConfig) -> Result<Option<Self>, String> {
        let keys = match (&config.secret, &config.jwks_url) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(
                    "[server.jwt] names both a secret and a jwks_url: keep the one your project signs with"
                        .into(),
                );
            }
            (Some(secret), None) => {
                if secret.expose().len() < 32 {
                    return Err("[server.jwt] secret is shorter than 32 characters; HS256 needs a long random secret".into());
                }
                Keys::Secret(DecodingKey::from_secret(secret.expose().as_bytes()))
            }
            (None, Some(url)) => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| format!("[server.jwt] jwks_url {url:?} is not a URL: {e}"))?;
                if !matches!(parsed.scheme(), "https" | "http") {
                    return Err(format!("[server.jwt] jwks_url {url:?} is not http(s)"));
                }
                // The TLS client's one crypto provider (ring), shared with the other clients.
                atelier_discord::install_crypto_provider();
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .connect_timeout(FETCH_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::limited(3))
                    .build()
                    .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
                Keys::Jwks(Arc::new(Jwks {
                    url: url.clone(),
                    client,
                    keep_for: Duration::from_secs(config.jwks_cache_secs.max(1)),
                    cache: RwLock::new(Cached::default()),
                    fetching: Mutex::new(()),
                }))
            }
        };
        Ok(Some(Self {
            keys,
            audience: config.audience.clone(),
            issuer: config.issuer.clone().filter(|i| !i.is_empty()),
        }))
    }

    /// The subject of a valid token.
    pub async fn verify(&self, token: &str) -> Result<JwtSubject, JwtError> {
        if !looks_like_jwt(token) {
            return Err(JwtError::Invalid("not a JWT".into()));
        }
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        if names_critical_parameters(token) {
            return Err(JwtError::Invalid(
                "the token's header names critical extensions (crit), which this server does not \
                 understand"
                    .into(),
            ));
        }
        let (key, alg) = match &self.keys {
            Keys::Secret(key) => (key.clone(), Algorithm::HS256),
            Keys::Jwks(jwks) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| JwtError::Invalid("the token names no key (kid)".into()))?;
                Jwks::key(jwks, kid).await?
            }
        };
        if header.alg != alg {
            return Err(JwtError::Invalid(format!(
                "the token is signed with {:?}; its key is for {alg:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(invalid)?;
        let id = uuid::Uuid::parse_str(&data.claims.sub)
            .ok()
            .filter(|id| !id.is_nil())
            .ok_or_else(|| {
                JwtError::Invalid("the token's subject (sub) is not a user id (a UUID)".into())
            })?;
        Ok(JwtSubject {
            id,
            email: data.claims.verified_email(),
        })
    }
}

#[allow(clippy::needless_pass_by_value)] // the shape `map_err` calls
fn invalid(e: jsonwebtoken::errors::Error) -> JwtError {
    JwtError::Invalid(e.to_string())
}

impl Jwks {
    fn cached(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key `kid` names. A known key is used at once, even while the document is being
    /// read again (a stale cache is refreshed in the background, so a slow or dead JWKS never
    /// slows a request whose key is known); an unknown one waits for a fresh read, at most
    /// one every `REFETCH_EVERY`, counted from the end of the last.
    async fn key(this: &Arc<Self>, kid: &str) -> Result<(DecodingKey, Algorithm), JwtError> {
        let (known, fresh, tried_lately) = this.look(kid);
        if let Some(key) = known {
            if !fresh && !tried_lately {
                let jwks = this.clone();
                tokio::spawn(async move {
                    if let Ok(_one) = jwks.fetching.try_lock() {
                        jwks.refresh().await;
                    }
                });
            }
            return Ok(key);
        }
        if !tried_lately {
            let _one = this.fetching.lock().await;
            // Another request may have read the document while this one waited.
            let (known, _, lately) = this.look(kid);
            if known.is_none() && !lately {
                this.refresh().await;
            }
        }
        let cache = this.cached();
        match cache.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if cache.fetched.is_some() => Err(unknown_kid(kid)),
            None => Err(JwtError::Unavailable(format!(
                "{} did not answer; it is asked again in a few seconds",
                this.url
            ))),
        }
    }

    /// The key if known, whether the cache is fresh, and whether a read ended lately.
    fn look(&self, kid: &str) -> (Option<(DecodingKey, Algorithm)>, bool, bool) {
        let cache = self.cached();
        (
            cache.keys.get(kid).cloned(),
            cache.fetched.is_some_and(|t| t.elapsed() < self.keep_for),
            cache.tried.is_some_and(|t| t.elapsed() < REFETCH_EVERY),
        )
    }

    /// Reads the document and keeps its keys; on failure the keys known stay.
    async fn refresh(&self) {
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.tried = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
            }
            Err(e) => tracing::warn!(url = %self.url, error = %e, "cannot fetch the JWKS"),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, String> {
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "{} sent more than {MAX_JWKS_BYTES} bytes",
                    self.url
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("{} is not a JWKS document: {e}", self.url))?;
        let keys: HashMap<_, _> = set.keys.iter().filter_map(usable).collect();
        if keys.is_empty() {
            return Err(format!("{} holds no usable signing key", self.url));
        }
        Ok(keys)
    }
}

fn unknown_kid(kid: &str) -> JwtError {
    JwtError::Invalid(format!("no signing key {kid:?} in the project's JWKS"))
}

/// A JWKS entry as a key and the one algorithm it checks, or `None` for an entry that is not
/// a public signing key we can use. Symmetric keys (`oct`) are never taken from a JWKS: a
/// published secret would let anyone sign.
fn usable(jwk: &Jwk) -> Option<(String, (DecodingKey, Algorithm))> {
    let kid = jwk.common.key_id.clone()?;
    let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::OctetKey(_) | AlgorithmParameters::Other(_), _) => return None,
        (_, Some(stated)) => Algorithm::try_from(stated).ok()?,
        (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        (AlgorithmParameters::OctetKeyPair(_), None) => Algorithm::EdDSA,
        (_, None) => return None,
    };
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, (key, alg)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn only_jwt_shaped_tokens_are_checked_as_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("atl_0123456789abcdef"));
        assert!(!looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0"));
        assert!(!looks_like_jwt("eyJ a.b.c"));
        assert!(!looks_like_jwt(&format!(
            "eyJ{}.a.b",
            "x".repeat(MAX_TOKEN_BYTES)
        )));
    }

    #[tokio::test]
    async fn a_token_naming_critical_extensions_is_refused() {
        use base64::Engine as _;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let secret = "s".repeat(40);
        let claims = serde_json::json!({
            "sub": "6f2b1c1e-8d8a-4b8e-9a57-1f0f3c2d4e5f",
            "aud": "authenticated",
            "exp": 4_102_444_800_u64,
        });
        let signed = |header: serde_json::Value| {
            let input = format!("{}.{}", b64(header), b64(claims.clone()));
            let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
            format!("{input}.{sig}")
        };
        let verifier = JwtVerifier::from_config(&JwtConfig {
            secret: Some(Secret::new(secret.clone())),
            ..JwtConfig::default()
        })
        .unwrap()
        .unwrap();
        let plain = signed(serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        assert!(verifier.verify(&plain).await.is_ok());
        let critical =
            signed(serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"], "exp": 1}));
        assert!(names_critical_parameters(&critical));
        assert!(!names_critical_parameters(&plain));
        match verifier.verify(&critical).await {
            Err(JwtError::Invalid(why)) => assert!(why.contains("crit"), "{why}"),
            other => panic!("a token with crit was not refused: {other:?}"),
        }
    }

    #[test]
    fn a_short_secret_or_two_kinds_of_keys_are_refused() {
        let short = JwtConfig {
            secret: Some(Secret::new("short")),
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::from_config(&short).is_err());
        let both = JwtConfig {
            secret: Some(Secret::new("x".repeat(40))),
            jwks_url: Some("https://example.test/jwks.json".into()),
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::from_config(&both).is_err());
        assert!(
            JwtVerifier::from_config(&JwtConfig::default())
                .expect("no keys is fine")
                .is_none()
        );
    }
}
