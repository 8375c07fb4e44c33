//! Users of a server and what proves who they are: email addresses, roles, API keys and
//! sessions. Secrets are made, hashed and checked in the app layer (`app/users.rs`); here are
//! only their rules and the records kept of them.

use std::fmt;

use time::OffsetDateTime;

use super::{Actor, ApiKeyId, UserId};

/// What every API key starts with, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "atl_";
/// What every session token starts with.
pub const SESSION_PREFIX: &str = "ats_";
/// How much of a key is kept in clear to tell keys apart in a listing: `atl_` and 8 more
/// characters, 32 bits of the secret's 256.
pub const KEY_SHOWN_CHARS: usize = KEY_PREFIX.len() + 8;
/// The longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest name of a key.
pub const MAX_KEY_NAME_CHARS: usize = 64;
/// Passwords: long enough to resist guessing, short enough that hashing one costs nothing
/// unusual (argon2 reads all of it).
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Why an account's detail was refused. Each message is one line meant for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountInvalid {
    #[error("{0:?} is not an email address (expected one like name@example.com)")]
    Email(String),
    #[error("the email address is {0} characters long; the limit is {MAX_EMAIL_CHARS}")]
    EmailTooLong(usize),
    #[error("{0:?} is not a role: use user or admin")]
    Role(String),
    #[error("the key name is empty")]
    EmptyKeyName,
    #[error("the key name is {0} characters long; the limit is {MAX_KEY_NAME_CHARS}")]
    KeyNameTooLong(usize),
    #[error("the key name contains a control character")]
    KeyNameControl,
    #[error(
        "the password is {0} characters long; it must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS}"
    )]
    PasswordLength(usize),
}

/// An email address as stored: trimmed and lower-cased, so one address is one user however
/// it is typed. Only the shape is checked (one `@`, a dotted domain, no spaces): whether mail
/// reaches it is not this program's business.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AccountInvalid> {
        let s = raw.trim().to_lowercase();
        let n = s.chars().count();
        if n > MAX_EMAIL_CHARS {
            return Err(AccountInvalid::EmailTooLong(n));
        }
        let bad = || AccountInvalid::Email(raw.trim().chars().take(80).collect());
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let printable = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '@')
        };
        let labels_ok = domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
        if !printable(local) || !printable(domain) || !domain.contains('.') || !labels_ok {
            return Err(bad());
        }
        if local.chars().count() > 64 {
            return Err(bad());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An address read back from storage, where only valid ones are written.
    pub fn stored(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user may do beyond their own things.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    User,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AccountInvalid> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            other => Err(AccountInvalid::Role(other.chars().take(40).collect())),
        }
    }
}

/// A user of a server.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub role: UserRole,
    pub created_at: OffsetDateTime,
    /// A disabled user's keys and sessions no longer sign anyone in.
    pub disabled: bool,
}

impl User {
    /// A new, enabled user, created now.
    pub fn new(email: Email, role: UserRole) -> Self {
        Self {
            id: UserId::new(),
            email,
            role,
            created_at: now_ms(),
            disabled: false,
        }
    }

    /// The actor this user's requests run as.
    pub fn actor(&self) -> Actor {
        match self.role {
            UserRole::User => Actor::User(self.id),
            UserRole::Admin => Actor::Admin(self.id),
        }
    }
}

/// An API key as kept and listed: never its secret, only enough of its start to tell it apart.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    /// The key's first [`KEY_SHOWN_CHARS`] characters (`atl_1a2b3c4d`).
    pub prefix: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl ApiKey {
    /// The record of a key made now from `secret` for `user`, under a checked `name`.
    pub fn new(user_id: UserId, secret: &str, name: &str) -> Result<Self, AccountInvalid> {
        Ok(Self {
            id: ApiKeyId::new(),
            user_id,
            prefix: secret.chars().take(KEY_SHOWN_CHARS).collect(),
            name: key_name(name)?,
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        })
    }
}

/// A key's name, trimmed: 1–64 characters, none of them control characters.
pub fn key_name(raw: &str) -> Result<String, AccountInvalid> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 {
        return Err(AccountInvalid::EmptyKeyName);
    }
    if n > MAX_KEY_NAME_CHARS {
        return Err(AccountInvalid::KeyNameTooLong(n));
    }
    if name.chars().any(char::is_control) {
        return Err(AccountInvalid::KeyNameControl);
    }
    Ok(name.to_owned())
}

/// Whether a password's length is acceptable (its content is the user's choice).
pub fn check_password(password: &str) -> Result<(), AccountInvalid> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(AccountInvalid::PasswordLength(n))
    }
}

/// A session opened by signing in with a password, kept by its token's hash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Session {
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Now, to the millisecond: what both databases keep of a time, so a record reads back equal.
pub fn now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_lower_cased_and_shaped() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@@example.com",
            "ada@example..com",
            "ada@-example.com",
            "ada@example.com\u{7}",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} refused");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            Email::parse(&long),
            Err(AccountInvalid::EmailTooLong(long.len()))
        );
    }

    #[test]
    fn a_key_keeps_only_its_start_and_a_checked_name() {
        let user = UserId::new();
        let key = ApiKey::new(user, "atl_0123456789abcdef", " ci ").unwrap();
        assert_eq!(key.prefix, "atl_01234567");
        assert_eq!(key.name, "ci");
        assert_eq!(
            ApiKey::new(user, "atl_x", "  "),
            Err(AccountInvalid::EmptyKeyName)
        );
        assert_eq!(
            key_name(&"n".repeat(65)),
            Err(AccountInvalid::KeyNameTooLong(65))
        );
        assert_eq!(key_name("a\nb"), Err(AccountInvalid::KeyNameControl));
    }

    #[test]
    fn roles_make_their_actors() {
        let mut user = User::new(Email::parse("a@b.co").unwrap(), UserRole::User);
        assert_eq!(user.actor(), Actor::User(user.id));
        user.role = UserRole::Admin;
        assert_eq!(user.actor(), Actor::Admin(user.id));
        assert_eq!(UserRole::parse("admin"), Ok(UserRole::Admin));
        assert!(UserRole::parse("root").is_err());
    }

    #[test]
    fn passwords_have_a_length_range() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }
}
