//! The directory: who may use a server and what they have, kept in the catalogue's database.
//!
//! Users, their API keys and password sessions (by the SHA-256 of their secrets, never the
//! secrets), their credits (a ledger, a balance and holds tied to generations), the audit log,
//! and the answers remembered for idempotent requests. The rules are the domain's
//! (`domain/user.rs`, `credits.rs`, `audit.rs`, `idempotency.rs`); an implementation persists
//! them atomically. Expiry (sessions, idempotency keys) is judged by the database's clock.
//!
//! A generation's hold is settled by the catalogue itself, in the transaction that writes the
//! generation's terminal step (`Catalogue::advance_all`), so no end goes unsettled whatever
//! crashes; [`Directory::settle`] does the same for a generation that was never created, and
//! [`Directory::settle_stray_holds`] for what a crash between reserving and creating left.

use std::time::Duration;

use async_trait::async_trait;

use super::Result;
use crate::domain::{
    ApiKey, ApiKeyId, AuditEntry, Begun, Credits, Email, GenerationId, Grant, IdempotencyRecord,
    IdempotentRequest, LedgerEntry, Reservation, Session, Settlement, StoredResponse, User, UserId,
    UserRole,
};

#[async_trait]
pub trait Directory: Send + Sync {
    // Users.

    /// Writes a new user with their password's hash (if any), a credit account holding
    /// `initial` credits (a `bonus` entry when above 0) and `audit`, in one transaction.
    /// `Conflict` when the address is taken.
    async fn add_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
        initial: i64,
        audit: &AuditEntry,
    ) -> Result<()>;
    async fn user(&self, id: UserId) -> Result<User>;
    async fn user_by_email(&self, email: &Email) -> Result<User>;
    /// Up to `limit` users in creation order, after `after` (from the first when `None`).
    async fn users(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>>;
    async fn set_role(&self, id: UserId, role: UserRole) -> Result<User>;
    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<User>;
    /// Replaces the password's hash (`None`: no password sign-in); ends the user's sessions.
    async fn set_password_hash(&self, id: UserId, hash: Option<&str>) -> Result<()>;
    async fn password_hash(&self, id: UserId) -> Result<Option<String>>;

    // API keys.

    /// Writes a key (by the hash of its secret) and `audit`, in one transaction.
    async fn add_key(&self, key: &ApiKey, hash: &str, audit: &AuditEntry) -> Result<()>;
    /// The key with this hash and its user, unless it is revoked or unknown.
    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, User)>>;
    /// A user's keys, revoked ones too, oldest first.
    async fn keys(&self, user: UserId) -> Result<Vec<ApiKey>>;
    async fn key(&self, id: ApiKeyId) -> Result<ApiKey>;
    /// Revokes a key (again: nothing changes) and returns it.
    async fn revoke_key(&self, id: ApiKeyId) -> Result<ApiKey>;
    /// Records that a key was just used.
    async fn touch_key(&self, id: ApiKeyId) -> Result<()>;

    // Password sessions.

    async fn add_session(&self, session: &Session, hash: &str) -> Result<()>;
    /// The user of the session with this hash while it lasts (by the database's clock) and
    /// the user is enabled.
    async fn session_user(&self, hash: &str) -> Result<Option<User>>;
    async fn end_session(&self, hash: &str) -> Result<()>;

    // Credits.

    async fn credits(&self, user: UserId) -> Result<Credits>;
    /// Up to `limit` ledger entries of a user, newest first, before entry `before`.
    async fn ledger(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>>;
    /// Adds a grant to the ledger and the balance, with `audit`, in one transaction.
    /// `Conflict` when the balance would pass `domain::credits::MAX_BALANCE`.
    async fn grant(&self, grant: &Grant, audit: &AuditEntry) -> Result<LedgerEntry>;
    /// Takes `amount` for `generation` (a `usage` entry and a hold) if the balance has it,
    /// atomically: concurrent reservations never take the balance below zero. `Conflict`
    /// when the generation already has a hold.
    async fn reserve(
        &self,
        user: UserId,
        generation: GenerationId,
        amount: i64,
    ) -> Result<Reservation>;
    /// Settles a generation's hold; false when it has none or it is settled already, so a
    /// second call changes nothing.
    async fn settle(&self, generation: GenerationId, settlement: Settlement) -> Result<bool>;
    /// Settles the open holds older than `older_than` that nothing else will: those whose
    /// generation was never created (a submit that stopped between reserving and creating
    /// it), refunded, and those whose generation has ended, as its end says. At most `limit`;
    /// how many. A sweeper's job, for what a crash left behind.
    async fn settle_stray_holds(&self, older_than: Duration, limit: u32) -> Result<u64>;

    // The audit log.

    async fn audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Up to `limit` entries, newest first, before entry `before`.
    async fn audit_log(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>>;

    // Idempotent requests.

    /// Claims a request's key for `ttl` if it is new or has expired (`New`), else tells what
    /// the first request with it became.
    async fn begin_request(&self, request: &IdempotentRequest, ttl: Duration) -> Result<Begun>;
    /// Keeps the answer to replay.
    async fn complete_request(
        &self,
        request: &IdempotentRequest,
        response: &StoredResponse,
    ) -> Result<()>;
    /// Forgets a key whose request failed before doing anything, so a retry runs it anew.
    async fn abandon_request(&self, request: &IdempotentRequest) -> Result<()>;
    /// Forgets expired keys; how many.
    async fn purge_requests(&self) -> Result<u64>;
}

/// A stored key's record, from its columns: its answer is there once a status is.
pub(super) fn stored_record(
    fingerprint: String,
    status: Option<i64>,
    body: Option<Vec<u8>>,
) -> Result<IdempotencyRecord> {
    let response = status
        .map(|s| {
            u16::try_from(s)
                .map(|status| StoredResponse {
                    status,
                    body: body.unwrap_or_default(),
                })
                .map_err(|_| super::stored::corrupt("response status", &s.to_string()))
        })
        .transpose()?;
    Ok(IdempotencyRecord {
        fingerprint,
        response,
    })
}

/// How a stray hold is settled: refunded when its generation was never created, else as its
/// generation's end (a stored status) says; `None` while the generation runs.
pub(super) fn stray_settlement(status: Option<&str>) -> Result<Option<Settlement>> {
    match status {
        None => Ok(Some(Settlement::Refunded)),
        Some(s) => crate::domain::GenerationStatus::parse(s)
            .map(Settlement::on)
            .ok_or_else(|| super::stored::corrupt("status", s)),
    }
}
