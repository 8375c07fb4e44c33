//! Values that must never be printed: Discord account tokens, S3 keys, the password of a
//! database URL.
//!
//! [`Secret`] prints `[redacted]` wherever it goes (`Debug`, `Display`, serialisation), so a
//! derived `Debug` of a configuration, an error message or `atelier config show` cannot leak
//! it; the one way to the value is [`Secret::expose`], called where it is handed to the client
//! that sends it. [`DatabaseUrl`] is the same for a catalogue URL, except that it prints the
//! URL with only its password replaced, since the rest tells which database is meant.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: only for the client that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// A catalogue URL (`sqlite://…`, `postgres://user:password@host/db`) that prints without its
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(Secret);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url))
    }

    /// The URL itself, password included: only for the database driver.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with its password (`user:password@`, or a `password=` query parameter)
    /// replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// `scheme://user:password@host/…?password=…` with both passwords replaced. A URL it cannot
/// read as such is returned whole only when it has no `@` and no `password=`; otherwise the
/// part that could hold a password goes.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            // The authority ends at the first '/'; its user information at its last '@'.
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
                    let hidden = if user_info.contains(':') {
                        format!("{user}:{REDACTED}")
                    } else {
                        user.to_owned()
                    };
                    format!("{scheme}://{hidden}@{host}{path}")
                }
                None => head.to_owned(),
            }
        }
        None if head.contains('@') => REDACTED.to_owned(),
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={REDACTED}"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s:#?}"), REDACTED);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn a_secret_reads_from_a_string() {
        let s: Secret = serde_json::from_str("\"env:DISCORD_TOKEN\"").unwrap();
        assert_eq!(s.expose(), "env:DISCORD_TOKEN");
    }

    #[test]
    fn database_urls_print_without_their_password() {
        for (url, shown) in [
            (
                "postgres://app:s3cr%40t@db.example.com:5432/postgres",
                "postgres://app:[redacted]@db.example.com:5432/postgres",
            ),
            (
                "postgresql://postgres.abc:pa:ss@aws-0.pooler.supabase.com:6543/postgres?sslmode=require",
                "postgresql://postgres.abc:[redacted]@aws-0.pooler.supabase.com:6543/postgres?sslmode=require",
            ),
            (
                "postgres://app@127.0.0.1/db?password=hunter2&sslmode=disable",
                "postgres://app@127.0.0.1/db?password=[redacted]&sslmode=disable",
            ),
            (
                "sqlite://atelier-data/atelier.db",
                "sqlite://atelier-data/atelier.db",
            ),
            ("user:hunter2@host", "[redacted]"),
        ] {
            let u = DatabaseUrl::new(url);
            assert_eq!(u.redacted(), shown);
            assert_eq!(u.to_string(), shown);
            assert_eq!(format!("{u:?}"), format!("{shown:?}"));
            assert_eq!(serde_json::to_string(&u).unwrap(), format!("{shown:?}"));
            assert_eq!(u.expose(), url);
            assert!(!shown.contains("hunter2") && !shown.contains("s3cr"));
        }
    }
}
