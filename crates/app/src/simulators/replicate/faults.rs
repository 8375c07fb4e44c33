//! The faults the Replicate simulator injects, in the order given: each prediction create takes
//! the first fault of the list that has uses left (`name:N` for N creates, `name:always` for
//! all), so a test knows which prediction meets which fault.

use std::fmt;

/// One kind of fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// The create is answered 500 (nothing is created).
    ServerError,
    /// The create is answered 503 (nothing is created).
    Overloaded,
    /// The create is answered 429 with `Retry-After: 1` (nothing is created).
    RateLimit,
    /// The create is answered after the simulator's `slow` delay.
    Slow,
    /// The prediction's output URLs expire a second after it ends.
    ExpiringUrls,
    /// The prediction's output URLs have expired by the time anyone reads it.
    ExpiredUrls,
    /// The prediction fails as the models' safety checker fails it (NSFW).
    Nsfw,
    /// The prediction stays `processing` until it is canceled.
    Stuck,
}

impl Fault {
    pub const ALL: [Self; 8] = [
        Self::ServerError,
        Self::Overloaded,
        Self::RateLimit,
        Self::Slow,
        Self::ExpiringUrls,
        Self::ExpiredUrls,
        Self::Nsfw,
        Self::Stuck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ServerError => "server-error",
            Self::Overloaded => "overloaded",
            Self::RateLimit => "rate-limit",
            Self::Slow => "slow",
            Self::ExpiringUrls => "expiring-urls",
            Self::ExpiredUrls => "expired-urls",
            Self::Nsfw => "nsfw",
            Self::Stuck => "stuck",
        }
    }
}

impl crate::simulators::plan::Named for Fault {
    fn all() -> &'static [Self] {
        &Self::ALL
    }

    fn name(self) -> &'static str {
        Fault::name(self)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault and how many more it takes (`None`: every one).
pub type Planned = crate::simulators::plan::Planned<Fault>;

/// Reads `server-error,rate-limit:2,stuck:always`; an unknown name or count is refused with
/// the names allowed.
pub fn parse(list: &str) -> Result<Vec<Planned>, String> {
    crate::simulators::plan::parse(list)
}

/// Takes the next fault for a create, if any is left.
pub fn take(plan: &mut [Planned]) -> Option<Fault> {
    crate::simulators::plan::take(plan, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_dealt_in_order() {
        let mut plan = parse("server-error:2, nsfw ,stuck").unwrap();
        let dealt: Vec<Option<Fault>> = (0..5).map(|_| take(&mut plan)).collect();
        assert_eq!(
            dealt,
            vec![
                Some(Fault::ServerError),
                Some(Fault::ServerError),
                Some(Fault::Nsfw),
                Some(Fault::Stuck),
                None
            ]
        );
        assert!(parse("fire").unwrap_err().contains("expired-urls"));
        assert!(parse("slow:0").is_err());
        assert_eq!(
            take(&mut parse("rate-limit:always").unwrap()),
            Some(Fault::RateLimit)
        );
    }
}
