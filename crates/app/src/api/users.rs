//! Wire types of accounts: users, API keys (never their secrets but once, at creation),
//! credits and their ledger, and the audit log.

use serde::{Deserialize, Serialize};

use super::{Word, rfc3339};
use crate::domain::{ApiKey, AuditEntry, Credits, LedgerEntry, User};

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    #[schema(value_type = String)]
    pub role: Word,
    pub disabled: bool,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            role: u.role.as_str().into(),
            disabled: u.disabled,
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub user_id: String,
    /// The key's first characters, to tell it apart.
    pub prefix: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            user_id: k.user_id.to_string(),
            prefix: k.prefix.clone(),
            name: k.name.clone(),
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

/// A key just made: its record and, this once, its secret (which `Debug` does not print).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewKeyView {
    /// The secret: shown now and never again.
    pub key: String,
    #[serde(flatten)]
    pub record: ApiKeyView,
}

impl std::fmt::Debug for NewKeyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKeyView")
            .field("key", &crate::secret::REDACTED)
            .field("record", &self.record)
            .finish()
    }
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct LedgerEntryView {
    pub id: i64,
    pub at: String,
    #[schema(value_type = String)]
    pub kind: Word,
    pub amount: i64,
    pub balance_after: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<&LedgerEntry> for LedgerEntryView {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            kind: e.kind.as_str().into(),
            amount: e.amount,
            balance_after: e.balance_after,
            generation_id: e.generation_id.map(|g| g.to_string()),
            note: e.note.clone(),
        }
    }
}

/// A user's credits with the latest entries of their ledger.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct CreditsView {
    pub user_id: String,
    pub balance: i64,
    /// Of what was spent, how much belongs to generations still running.
    pub held: i64,
    pub ledger: Vec<LedgerEntryView>,
}

impl CreditsView {
    pub fn of(user: &User, credits: Credits, ledger: &[LedgerEntry]) -> Self {
        Self {
            user_id: user.id.to_string(),
            balance: credits.balance,
            held: credits.held,
            ledger: ledger.iter().map(LedgerEntryView::from).collect(),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub at: String,
    /// The acting user's id; `None` for the operator.
    pub actor: Option<String>,
    #[schema(value_type = String)]
    pub action: Word,
    pub target: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&AuditEntry> for AuditEntryView {
    fn from(e: &AuditEntry) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            actor: e.actor.map(|a| a.to_string()),
            action: e.action.as_str().into(),
            target: e.target.clone(),
            details: e.details.clone(),
        }
    }
}
