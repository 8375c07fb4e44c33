//! Credits: what a generation costs its owner, in a ledger whose sum is the balance.
//!
//! A generation's cost is taken at submit (a `usage` entry and a hold tied to the generation,
//! refused when the balance is short, so it never goes below zero); when the generation ends
//! the hold is settled: success keeps the usage, failure or cancellation gives it back (a
//! `refund` entry). The ledger is thus always the balance's whole story, and a user sees at
//! once what a running generation has taken.

use time::OffsetDateTime;

use super::{Actor, GenerationId, GenerationStatus, UserId};

/// The most one grant or one cost may be: far beyond any real use, far below overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000;
/// The most a balance may hold.
pub const MAX_BALANCE: i64 = 1_000_000_000_000;
/// The longest note on a ledger entry.
pub const MAX_NOTE_CHARS: usize = 500;

/// Why a credit change was refused. Each message is one line meant for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CreditsInvalid {
    #[error("{0} is not an amount of credits: use a whole number from 1 to {MAX_AMOUNT}")]
    Amount(i64),
    #[error("the note is {0} characters long; the limit is {MAX_NOTE_CHARS}")]
    NoteTooLong(usize),
    #[error("the note contains a control character")]
    NoteControl,
    #[error("{0:?} is not a kind of grant: use purchase or bonus")]
    GrantKind(String),
    #[error("only an administrator may grant credits")]
    NotAdmin,
}

/// Why a ledger entry was written.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// Credits bought (granted by an administrator for a payment made elsewhere).
    Purchase,
    /// A generation's cost, taken at submit.
    Usage,
    /// A failed or canceled generation's cost, given back.
    Refund,
    /// Credits given: a new user's initial credits, an administrator's gift.
    Bonus,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Usage => "usage",
            Self::Refund => "refund",
            Self::Bonus => "bonus",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "purchase" => Self::Purchase,
            "usage" => Self::Usage,
            "refund" => Self::Refund,
            "bonus" => Self::Bonus,
            _ => return None,
        })
    }
}

/// What an administrator's grant is: credits paid for, or given.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantKind {
    Purchase,
    Bonus,
}

impl GrantKind {
    pub fn parse(s: &str) -> Result<Self, CreditsInvalid> {
        match s {
            "purchase" => Ok(Self::Purchase),
            "bonus" => Ok(Self::Bonus),
            other => Err(CreditsInvalid::GrantKind(other.chars().take(40).collect())),
        }
    }

    pub fn ledger_kind(self) -> LedgerKind {
        match self {
            Self::Purchase => LedgerKind::Purchase,
            Self::Bonus => LedgerKind::Bonus,
        }
    }
}

/// A user's credits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub struct Credits {
    /// What is left to spend: the sum of the ledger.
    pub balance: i64,
    /// Of what was spent, how much belongs to generations still running (given back if they
    /// fail).
    pub held: i64,
}

/// One line of a user's ledger.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LedgerEntry {
    /// Increases with every entry written (a cursor for paging).
    pub id: i64,
    pub user_id: UserId,
    pub at: OffsetDateTime,
    pub kind: LedgerKind,
    /// Positive for what comes in, negative for what goes out.
    pub amount: i64,
    pub balance_after: i64,
    pub generation_id: Option<GenerationId>,
    pub note: Option<String>,
}

/// An administrator's grant, checked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Grant {
    pub user_id: UserId,
    pub amount: i64,
    pub kind: GrantKind,
    pub note: Option<String>,
}

impl Grant {
    /// A grant `by` an actor: only the operator and administrators may.
    pub fn new(
        by: Actor,
        user_id: UserId,
        amount: i64,
        kind: GrantKind,
        note: Option<&str>,
    ) -> Result<Self, CreditsInvalid> {
        if matches!(by, Actor::User(_)) {
            return Err(CreditsInvalid::NotAdmin);
        }
        Ok(Self {
            user_id,
            amount: amount_of(amount)?,
            kind,
            note: note_of(note)?,
        })
    }
}

/// An amount of credits a grant or a cost may be: 1 to [`MAX_AMOUNT`].
pub fn amount_of(amount: i64) -> Result<i64, CreditsInvalid> {
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(amount)
    } else {
        Err(CreditsInvalid::Amount(amount))
    }
}

/// A note, trimmed (an empty one is none): at most [`MAX_NOTE_CHARS`], no control characters.
pub fn note_of(note: Option<&str>) -> Result<Option<String>, CreditsInvalid> {
    let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let n = note.chars().count();
    if n > MAX_NOTE_CHARS {
        return Err(CreditsInvalid::NoteTooLong(n));
    }
    if note.chars().any(char::is_control) {
        return Err(CreditsInvalid::NoteControl);
    }
    Ok(Some(note.to_owned()))
}

/// Outcome of reserving a generation's cost.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reservation {
    /// Taken; the balance left.
    Reserved { balance: i64 },
    /// Nothing taken: the balance is short.
    Insufficient { balance: i64 },
}

/// How a generation's hold ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Settlement {
    /// It succeeded: its cost stays spent.
    Used,
    /// It failed or was canceled: its cost comes back (a `refund` entry).
    Refunded,
}

impl Settlement {
    /// How a hold ends when its generation reaches `status`; `None` while it has not ended.
    pub fn on(status: GenerationStatus) -> Option<Self> {
        match status {
            GenerationStatus::Succeeded => Some(Self::Used),
            GenerationStatus::Failed | GenerationStatus::Canceled => Some(Self::Refunded),
            GenerationStatus::Queued | GenerationStatus::Submitted | GenerationStatus::Running => {
                None
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Used => "used",
            Self::Refunded => "refunded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_operator_and_admins_grant_sane_amounts() {
        let user = UserId::new();
        assert_eq!(
            Grant::new(Actor::User(user), user, 5, GrantKind::Bonus, None),
            Err(CreditsInvalid::NotAdmin)
        );
        let grant = Grant::new(
            Actor::Operator,
            user,
            5,
            GrantKind::Purchase,
            Some(" paid "),
        )
        .unwrap();
        assert_eq!(grant.note.as_deref(), Some("paid"));
        for bad in [0, -3, MAX_AMOUNT + 1] {
            assert_eq!(
                Grant::new(Actor::Admin(user), user, bad, GrantKind::Bonus, None),
                Err(CreditsInvalid::Amount(bad))
            );
        }
        let long = "n".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            note_of(Some(&long)),
            Err(CreditsInvalid::NoteTooLong(MAX_NOTE_CHARS + 1))
        );
        assert_eq!(note_of(Some("a\u{0}b")), Err(CreditsInvalid::NoteControl));
        assert_eq!(note_of(Some("   ")), Ok(None));
    }

    #[test]
    fn a_hold_is_settled_by_how_its_generation_ends() {
        assert_eq!(
            Settlement::on(GenerationStatus::Succeeded),
            Some(Settlement::Used)
        );
        assert_eq!(
            Settlement::on(GenerationStatus::Failed),
            Some(Settlement::Refunded)
        );
        assert_eq!(
            Settlement::on(GenerationStatus::Canceled),
            Some(Settlement::Refunded)
        );
        assert_eq!(Settlement::on(GenerationStatus::Running), None);
    }

    #[test]
    fn ledger_kinds_read_back() {
        for kind in [
            LedgerKind::Purchase,
            LedgerKind::Usage,
            LedgerKind::Refund,
            LedgerKind::Bonus,
        ] {
            assert_eq!(LedgerKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            GrantKind::parse("gift"),
            Err(CreditsInvalid::GrantKind("gift".into()))
        );
    }
}
