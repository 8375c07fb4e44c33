//! The audit log: who did what sensitive thing to what, and when (read by administrators).

use time::OffsetDateTime;

use super::{Actor, UserId};

/// What was done.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Generate,
    Update,
    Delete,
    Share,
    CreditChange,
    UserAdd,
    UserChange,
    KeyCreate,
    KeyRevoke,
    PasswordSet,
    Login,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Share => "share",
            Self::CreditChange => "credit_change",
            Self::UserAdd => "user_add",
            Self::UserChange => "user_change",
            Self::KeyCreate => "key_create",
            Self::KeyRevoke => "key_revoke",
            Self::PasswordSet => "password_set",
            Self::Login => "login",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Generate,
            Self::Update,
            Self::Delete,
            Self::Share,
            Self::CreditChange,
            Self::UserAdd,
            Self::UserChange,
            Self::KeyCreate,
            Self::KeyRevoke,
            Self::PasswordSet,
            Self::Login,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One line of the audit log.
#[derive(Clone, PartialEq, Debug)]
pub struct AuditEntry {
    /// Increases with every entry written (a cursor for paging); 0 until stored.
    pub id: i64,
    pub at: OffsetDateTime,
    /// Who did it: a user, or `None` for the operator (the CLI on the data's machine).
    pub actor: Option<UserId>,
    pub action: AuditAction,
    /// What it was done to (`user:<id>`, `key:<id>`, `generation:<id>`).
    pub target: String,
    /// Whatever else tells the story (amounts, names); never a secret.
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// An entry for what `actor` does now.
    pub fn new(
        actor: Actor,
        action: AuditAction,
        target: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self {
            id: 0,
            at: super::user::now_ms(),
            actor: actor.owner(),
            action,
            target: target.into(),
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_back_and_the_operator_is_no_user() {
        for a in [
            AuditAction::Login,
            AuditAction::CreditChange,
            AuditAction::KeyCreate,
        ] {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(AuditAction::parse("nap"), None);
        let e = AuditEntry::new(
            Actor::Operator,
            AuditAction::UserAdd,
            "user:x",
            serde_json::json!({}),
        );
        assert_eq!(e.actor, None);
        let id = UserId::new();
        assert_eq!(
            AuditEntry::new(
                Actor::Admin(id),
                AuditAction::Login,
                "u",
                serde_json::Value::Null
            )
            .actor,
            Some(id)
        );
    }
}
