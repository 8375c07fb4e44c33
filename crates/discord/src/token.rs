//! The account's user token, wrapped so it can never end up in a log line.

use std::fmt;
use std::sync::Arc;

/// A Discord user token.
///
/// `Debug` prints a placeholder, and there is no `Display`: the only way to read the
/// secret is the crate-private [`Token::expose`], used when building a header or the
/// IDENTIFY/RESUME payloads.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a raw user token (surrounding whitespace is dropped; no `Bot ` prefix).
    pub fn new(raw: impl Into<String>) -> Self {
        Self(Arc::from(raw.into().trim()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn debug_hides_the_secret() {
        let token = Token::new(" secret-token ");
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert_eq!(token.expose(), "secret-token");
    }
}
