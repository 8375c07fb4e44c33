//! Users, their API keys, password sessions and credits, and the audit log: the use cases a
//! server's accounts need (the CLI's `user`, `key` and `credits`; the HTTP API's sign-in).
//!
//! Secrets are made here from the system's random source and kept only as hashes: API keys
//! and session tokens (`atl_`/`ats_` and 64 hex digits, 256 random bits) by SHA-256, which is
//! enough for secrets nobody can guess; passwords, which people choose, by argon2id, on a
//! blocking thread. Administrators' use cases are refused to plain users (`Forbidden`); a
//! user asking for another user's things is told they do not exist (`NotFound`).

use std::sync::LazyLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

use super::App;
use crate::catalogue::CatalogueError;
use crate::domain::{
    Actor, ApiKey, ApiKeyId, AuditAction, AuditEntry, Begun, Credits, Email, GenerationId,
    GenerationKind, Grant, GrantKind, IDEMPOTENCY_TTL, IdempotentRequest, KEY_PREFIX, LedgerEntry,
    Reservation, SESSION_PREFIX, Session, Settlement, StoredResponse, User, UserId, UserRole,
    check_password, now_ms,
};
use crate::error::AppError;
use crate::secret::Secret;

/// How long a password session lasts.
pub const SESSION_TTL: Duration = Duration::from_hours(24 * 30);
/// The most entries one page of a ledger, an audit log or a user list holds.
pub const MAX_PAGE: u32 = 500;
/// A key's last use is recorded at most this often: a server checks a key on every request,
/// and a write each time would be most of a request's cost.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

/// A new secret: `prefix` and 32 random bytes in hex.
fn new_secret(prefix: &str) -> Result<Secret, AppError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::Internal(format!("no random bytes from the system: {e}")))?;
    Ok(Secret::new(format!("{prefix}{}", hex(&bytes))))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What is stored of a key or token: the SHA-256 of the secret, in hex.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A request's fingerprint for idempotency: the SHA-256 of its method, path and body, so one
/// key reused for another request is caught.
pub fn request_fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    hex(&h.finalize())
}

async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(format!("cannot hash the password: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
}

/// A hash no password matches, checked when the address is unknown so that a wrong address
/// takes as long as a wrong password and sign-in tells nobody which addresses exist.
static DECOY: LazyLock<Option<String>> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"no password is this one")
        .ok()
        .map(|h| h.to_string())
});

async fn password_matches(password: String, hash: Option<String>) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (DECOY.clone().unwrap_or_default(), false),
        };
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))
}

/// Refuses a use case to an actor that is not the operator or an administrator.
fn admin_only(actor: Actor, what: &str) -> Result<(), AppError> {
    if actor.sees_all() {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "only an administrator may {what}"
        )))
    }
}

/// A page size within bounds.
fn page(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

impl App {
    /// Adds a user (the operator or an administrator only), with a password when given and
    /// the configured initial credits. A taken address is bad input.
    pub async fn add_user(
        &self,
        actor: Actor,
        email: &str,
        role: UserRole,
        password: Option<&str>,
    ) -> Result<User, AppError> {
        admin_only(actor, "add users")?;
        let email = Email::parse(email)?;
        if let Some(p) = password {
            check_password(p)?;
        }
        let hash = match password {
            Some(p) => Some(hash_password(p.to_owned()).await?),
            None => None,
        };
        let user = User::new(email, role);
        let initial = i64::from(self.credits.initial);
        let audit = AuditEntry::new(
            actor,
            AuditAction::UserAdd,
            format!("user:{}", user.id),
            serde_json::json!({"email": user.email.as_str(), "role": role.as_str(), "initial_credits": initial}),
        );
        self.directory
            .add_user(&user, hash.as_deref(), initial, &audit)
            .await
            .map_err(|e| match e {
                CatalogueError::Conflict(m) => AppError::Invalid(m),
                e => e.into(),
            })?;
        Ok(user)
    }

    /// Users in creation order, a page at a time (the operator or an administrator only).
    pub async fn users(
        &self,
        actor: Actor,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<User>, AppError> {
        admin_only(actor, "list users")?;
        Ok(self.directory.users(after, page(limit)).await?)
    }

    /// Makes the user with this address an administrator or a plain user (the operator or an
    /// administrator only).
    pub async fn set_role(
        &self,
        actor: Actor,
        email: &str,
        role: UserRole,
    ) -> Result<User, AppError> {
        admin_only(actor, "change roles")?;
        let user = self.user_by_email(actor, email).await?;
        let changed = self.directory.set_role(user.id, role).await?;
        self.verified_keys.forget_all();
        self.audit_change(actor, &changed, serde_json::json!({"role": role.as_str()}))
            .await?;
        Ok(changed)
    }

    /// Disables (or enables again) the user with this address: a disabled user's keys and
    /// sessions sign nobody in (the operator or an administrator only).
    pub async fn set_disabled(
        &self,
        actor: Actor,
        email: &str,
        disabled: bool,
    ) -> Result<User, AppError> {
        admin_only(actor, "disable users")?;
        let user = self.user_by_email(actor, email).await?;
        let changed = self.directory.set_disabled(user.id, disabled).await?;
        self.verified_keys.forget_all();
        self.audit_change(actor, &changed, serde_json::json!({"disabled": disabled}))
            .await?;
        Ok(changed)
    }

    async fn audit_change(
        &self,
        actor: Actor,
        user: &User,
        details: serde_json::Value,
    ) -> Result<(), AppError> {
        let entry = AuditEntry::new(
            actor,
            AuditAction::UserChange,
            format!("user:{}", user.id),
            details,
        );
        Ok(self.directory.audit(&entry).await?)
    }

    /// A user by id, if the actor may see them (`/v1/me` is the actor's own).
    pub async fn user(&self, actor: Actor, id: UserId) -> Result<User, AppError> {
        if !actor.may_see(Some(id)) {
            return Err(AppError::NotFound(format!("user {id}")));
        }
        Ok(self.directory.user(id).await?)
    }

    /// The user with this address, if the actor may see them.
    pub async fn user_by_email(&self, actor: Actor, email: &str) -> Result<User, AppError> {
        let email = Email::parse(email)?;
        let user = self.directory.user_by_email(&email).await?;
        if !actor.may_see(Some(user.id)) {
            return Err(AppError::NotFound(format!("user {email}")));
        }
        Ok(user)
    }

    /// Makes an API key for the user with this address; returns its record and its secret,
    /// which is shown this once and never stored.
    pub async fn create_key(
        &self,
        actor: Actor,
        email: &str,
        name: &str,
    ) -> Result<(ApiKey, Secret), AppError> {
        let user = self.user_by_email(actor, email).await?;
        let secret = new_secret(KEY_PREFIX)?;
        let key = ApiKey::new(user.id, secret.expose(), name)?;
        let audit = AuditEntry::new(
            actor,
            AuditAction::KeyCreate,
            format!("key:{}", key.id),
            serde_json::json!({"user": user.id.to_string(), "name": key.name, "prefix": key.prefix}),
        );
        self.directory
            .add_key(&key, &secret_hash(secret.expose()), &audit)
            .await?;
        Ok((key, secret))
    }

    /// The keys of the user with this address, revoked ones too.
    pub async fn keys(&self, actor: Actor, email: &str) -> Result<Vec<ApiKey>, AppError> {
        let user = self.user_by_email(actor, email).await?;
        Ok(self.directory.keys(user.id).await?)
    }

    /// Revokes a key: it no longer signs anyone in. Revoking it again changes nothing.
    pub async fn revoke_key(&self, actor: Actor, id: ApiKeyId) -> Result<ApiKey, AppError> {
        let key = self.directory.key(id).await?;
        if !actor.may_see(Some(key.user_id)) {
            return Err(AppError::NotFound(format!("key {id}")));
        }
        let revoked = self.directory.revoke_key(id).await?;
        self.verified_keys.forget_all();
        if key.revoked_at.is_none() {
            let audit = AuditEntry::new(
                actor,
                AuditAction::KeyRevoke,
                format!("key:{id}"),
                serde_json::json!({"user": key.user_id.to_string(), "name": key.name}),
            );
            self.directory.audit(&audit).await?;
        }
        Ok(revoked)
    }

    /// Who an API key's secret signs in, if anyone: `None` for an unknown, revoked or
    /// malformed key or a disabled user.
    pub async fn authenticate_key(&self, secret: &str) -> Result<Option<Actor>, AppError> {
        if !secret.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let hash = secret_hash(secret);
        if let Some(actor) = self.verified_keys.get(&hash) {
            return Ok(Some(actor));
        }
        let lookup = self.verified_keys.lookup();
        let Some((key, user)) = self.directory.key_by_hash(&hash).await? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        let stale = key
            .last_used_at
            .is_none_or(|at| now_ms() - at >= TOUCH_EVERY);
        if stale {
            self.directory.touch_key(key.id).await?;
        }
        self.verified_keys.keep(hash, user.actor(), lookup);
        Ok(Some(user.actor()))
    }

    /// Signs in with an address and a password: a new session's token (shown once) and its
    /// user, or `None` when either is wrong or the user is disabled (the same answer, after
    /// the same work, whichever it is).
    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<(Secret, User)>, AppError> {
        let user = match Email::parse(email) {
            Ok(email) => match self.directory.user_by_email(&email).await {
                Ok(user) => Some(user),
                Err(CatalogueError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
            Err(_) => None,
        };
        let hash = match &user {
            Some(u) => self.directory.password_hash(u.id).await?,
            None => None,
        };
        let matches = password_matches(password.to_owned(), hash).await?;
        let Some(user) = user.filter(|u| matches && !u.disabled) else {
            return Ok(None);
        };
        let token = new_secret(SESSION_PREFIX)?;
        let created_at = now_ms();
        let session = Session {
            user_id: user.id,
            created_at,
            expires_at: created_at + SESSION_TTL,
        };
        self.directory
            .add_session(&session, &secret_hash(token.expose()))
            .await?;
        let audit = AuditEntry::new(
            user.actor(),
            AuditAction::Login,
            format!("user:{}", user.id),
            serde_json::json!({"method": "password"}),
        );
        self.directory.audit(&audit).await?;
        Ok(Some((token, user)))
    }

    /// Who a session token signs in while the session lasts, if anyone.
    pub async fn authenticate_session(&self, token: &str) -> Result<Option<Actor>, AppError> {
        if !token.starts_with(SESSION_PREFIX) {
            return Ok(None);
        }
        let user = self.directory.session_user(&secret_hash(token)).await?;
        Ok(user.map(|u| u.actor()))
    }

    /// Ends a session (signing out); an unknown token changes nothing.
    pub async fn logout(&self, token: &str) -> Result<(), AppError> {
        Ok(self.directory.end_session(&secret_hash(token)).await?)
    }

    /// Sets (or with `None` removes) the password of the user with this address, ending
    /// their sessions.
    pub async fn set_password(
        &self,
        actor: Actor,
        email: &str,
        password: Option<&str>,
    ) -> Result<(), AppError> {
        let user = self.user_by_email(actor, email).await?;
        if let Some(p) = password {
            check_password(p)?;
        }
        let hash = match password {
            Some(p) => Some(hash_password(p.to_owned()).await?),
            None => None,
        };
        self.directory
            .set_password_hash(user.id, hash.as_deref())
            .await?;
        let audit = AuditEntry::new(
            actor,
            AuditAction::PasswordSet,
            format!("user:{}", user.id),
            serde_json::json!({"removed": password.is_none()}),
        );
        Ok(self.directory.audit(&audit).await?)
    }

    /// The user an actor is (`None` for the operator, who is no user).
    pub async fn me(&self, actor: Actor) -> Result<Option<User>, AppError> {
        match actor.owner() {
            Some(id) => Ok(Some(self.directory.user(id).await?)),
            None => Ok(None),
        }
    }

    /// A user's credits, if the actor may see them.
    pub async fn credits(&self, actor: Actor, user: UserId) -> Result<Credits, AppError> {
        if !actor.may_see(Some(user)) {
            return Err(AppError::NotFound(format!("user {user}")));
        }
        Ok(self.directory.credits(user).await?)
    }

    /// A page of a user's ledger, newest first, before entry `before`.
    pub async fn ledger(
        &self,
        actor: Actor,
        user: UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, AppError> {
        if !actor.may_see(Some(user)) {
            return Err(AppError::NotFound(format!("user {user}")));
        }
        Ok(self.directory.ledger(user, before, page(limit)).await?)
    }

    /// Grants credits to the user with this address (the operator or an administrator only),
    /// recorded in the ledger and the audit log together.
    pub async fn grant(
        &self,
        actor: Actor,
        email: &str,
        amount: i64,
        kind: GrantKind,
        note: Option<&str>,
    ) -> Result<LedgerEntry, AppError> {
        admin_only(actor, "grant credits")?;
        let user = self.user_by_email(actor, email).await?;
        let grant = Grant::new(actor, user.id, amount, kind, note)?;
        let audit = AuditEntry::new(
            actor,
            AuditAction::CreditChange,
            format!("user:{}", user.id),
            serde_json::json!({
                "amount": grant.amount,
                "kind": kind.ledger_kind().as_str(),
                "note": grant.note,
            }),
        );
        self.directory
            .grant(&grant, &audit)
            .await
            .map_err(|e| match e {
                CatalogueError::Conflict(m) => AppError::Invalid(m),
                e => e.into(),
            })
    }

    /// Takes a generation's cost from its owner's balance before it is created (the caller
    /// then creates it with this id), when credits are enabled and the actor is a user;
    /// `InsufficientCredits` when the balance is short. The catalogue gives it back if the
    /// generation fails or is canceled; [`App::release_credits`] if it is never created.
    pub async fn reserve_credits(
        &self,
        actor: Actor,
        generation: GenerationId,
        provider: &str,
        kind: GenerationKind,
    ) -> Result<Option<Reservation>, AppError> {
        let Some(user) = actor.owner() else {
            return Ok(None);
        };
        let cost = self.credits.cost(provider, kind);
        if !self.credits.enabled || cost == 0 {
            return Ok(None);
        }
        match self.directory.reserve(user, generation, cost).await? {
            Reservation::Insufficient { balance } => Err(AppError::InsufficientCredits {
                needed: cost,
                balance,
            }),
            reserved @ Reservation::Reserved { .. } => Ok(Some(reserved)),
        }
    }

    /// Refuses, taking nothing, a generation `actor`'s credits do not cover now.
    pub(super) async fn credits_cover(
        &self,
        actor: Actor,
        provider: &str,
        kind: GenerationKind,
    ) -> Result<(), AppError> {
        let Some(user) = actor.owner() else {
            return Ok(());
        };
        let cost = self.credits.cost(provider, kind);
        if !self.credits.enabled || cost == 0 {
            return Ok(());
        }
        let balance = self.directory.credits(user).await?.balance;
        if balance < cost {
            return Err(AppError::InsufficientCredits {
                needed: cost,
                balance,
            });
        }
        Ok(())
    }

    /// Gives back what [`App::reserve_credits`] took for a generation that was never created.
    pub async fn release_credits(&self, generation: GenerationId) -> Result<bool, AppError> {
        Ok(self
            .directory
            .settle(generation, Settlement::Refunded)
            .await?)
    }

    /// Settles credit holds a crash left behind (older than `older_than`, their generation
    /// missing or ended): a sweeper's call, for a node's worker loop. How many.
    pub async fn settle_stray_credits(&self, older_than: Duration) -> Result<u64, AppError> {
        Ok(self
            .directory
            .settle_stray_holds(older_than, MAX_PAGE)
            .await?)
    }

    /// Starts a request a user sent with an idempotency key (Stripe's semantics, remembered
    /// for 24 hours): `New` to run it, then [`App::complete_request`] with its answer (or
    /// [`App::abandon_request`] if it failed before doing anything); `Done` to replay the
    /// first answer; `InFlight` (try again later) or `Mismatch` (the key was used for another
    /// request: see [`request_fingerprint`]).
    pub async fn begin_request(
        &self,
        user: UserId,
        key: &str,
        fingerprint: String,
    ) -> Result<(IdempotentRequest, Begun), AppError> {
        let request = IdempotentRequest::new(user, key, fingerprint)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let begun = self
            .directory
            .begin_request(&request, IDEMPOTENCY_TTL)
            .await?;
        Ok((request, begun))
    }

    /// Keeps a request's answer, to replay to the same key and request.
    pub async fn complete_request(
        &self,
        request: &IdempotentRequest,
        status: u16,
        body: Vec<u8>,
    ) -> Result<(), AppError> {
        let response = StoredResponse { status, body };
        Ok(self.directory.complete_request(request, &response).await?)
    }

    /// Forgets a key whose request failed before doing anything, so a retry runs it anew.
    pub async fn abandon_request(&self, request: &IdempotentRequest) -> Result<(), AppError> {
        Ok(self.directory.abandon_request(request).await?)
    }

    /// Forgets expired idempotency keys: a sweeper's call. How many.
    pub async fn purge_requests(&self) -> Result<u64, AppError> {
        Ok(self.directory.purge_requests().await?)
    }

    /// A page of the audit log, newest first (the operator or an administrator only).
    pub async fn audit_log(
        &self,
        actor: Actor,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, AppError> {
        admin_only(actor, "read the audit log")?;
        Ok(self.directory.audit_log(before, page(limit)).await?)
    }
}

impl App {
    /// Records what a server's caller did to their work (generations made, images changed).
    /// The operator's own commands are not recorded: the operator owns the machine and its
    /// log. A record that cannot be written is logged, and the deed stands.
    pub(crate) async fn audit_work(
        &self,
        actor: Actor,
        action: AuditAction,
        target: String,
        details: serde_json::Value,
    ) {
        if actor.owner().is_none() {
            return;
        }
        let entry = AuditEntry::new(actor, action, target, details);
        if let Err(e) = self.directory.audit(&entry).await {
            tracing::warn!(error = %e, action = action.as_str(), "an audit record could not be written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = new_secret(KEY_PREFIX).unwrap().expose().to_owned();
        let b = new_secret(KEY_PREFIX).unwrap().expose().to_owned();
        assert!(a.starts_with("atl_") && a.len() == 4 + 64);
        assert_ne!(a, b);
        assert_eq!(secret_hash(&a).len(), 64);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let f = request_fingerprint("POST", "/v1/generations", b"{}");
        assert_eq!(f, request_fingerprint("POST", "/v1/generations", b"{}"));
        assert_ne!(f, request_fingerprint("POST", "/v1/generations", b"{ }"));
        // The separators keep a path's end from passing for the body's start.
        assert_ne!(
            request_fingerprint("POST", "/a", b"b"),
            request_fingerprint("POST", "/ab", b"")
        );
    }

    #[tokio::test]
    async fn passwords_verify_and_the_decoy_matches_nothing() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            password_matches("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!password_matches("wrong".into(), Some(hash)).await.unwrap());
        assert!(
            !password_matches("no password is this one".into(), None)
                .await
                .unwrap()
        );
    }
}
