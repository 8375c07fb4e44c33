//! The faults the OpenAI simulator injects, in the order given (`simulators/plan.rs`): each image request takes the
//! first fault of the list that has uses left (`name:N` for N requests, `name:always` for all),
//! so a test knows which request meets which fault.

use std::fmt;

/// One kind of fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// 500 with OpenAI's `server_error` body.
    ServerError,
    /// 503 "overloaded", as the service says when it sheds load.
    Overloaded,
    /// 429 with `Retry-After`, `retry-after-ms` and the rate-limit headers at zero.
    RateLimit,
    /// The answer comes after the simulator's `slow` delay.
    Slow,
    /// Image URLs that expire a moment after the answer (one second).
    ExpiringUrls,
    /// Image URLs that have already expired when the answer arrives.
    ExpiredUrls,
    /// 400 `moderation_blocked`: the safety system refuses the prompt.
    Refusal,
    /// The request is never answered.
    Stuck,
    /// A streamed answer's connection breaks after half its images (at least one).
    BrokenStream,
}

impl Fault {
    pub const ALL: [Self; 9] = [
        Self::ServerError,
        Self::Overloaded,
        Self::RateLimit,
        Self::Slow,
        Self::ExpiringUrls,
        Self::ExpiredUrls,
        Self::Refusal,
        Self::Stuck,
        Self::BrokenStream,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ServerError => "server-error",
            Self::Overloaded => "overloaded",
            Self::RateLimit => "rate-limit",
            Self::Slow => "slow",
            Self::ExpiringUrls => "expiring-urls",
            Self::ExpiredUrls => "expired-urls",
            Self::Refusal => "refusal",
            Self::Stuck => "stuck",
            Self::BrokenStream => "broken-stream",
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

/// Reads `server-error,rate-limit:2,slow:always`; an unknown name or count is refused with
/// the names allowed.
pub fn parse(list: &str) -> Result<Vec<Planned>, String> {
    crate::simulators::plan::parse(list)
}

/// Takes the next fault for a request, if any is left.
pub fn take(plan: &mut [Planned]) -> Option<Fault> {
    crate::simulators::plan::take(plan, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_dealt_in_order() {
        let mut plan = parse("server-error:2, rate-limit ,slow").unwrap();
        let dealt: Vec<Option<Fault>> = (0..5).map(|_| take(&mut plan)).collect();
        assert_eq!(
            dealt,
            vec![
                Some(Fault::ServerError),
                Some(Fault::ServerError),
                Some(Fault::RateLimit),
                Some(Fault::Slow),
                None
            ]
        );
        let mut always = parse("stuck:always").unwrap();
        assert_eq!(take(&mut always), Some(Fault::Stuck));
        assert_eq!(take(&mut always), Some(Fault::Stuck));
        assert!(parse("fire").unwrap_err().contains("server-error"));
        assert!(parse("slow:0").is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
