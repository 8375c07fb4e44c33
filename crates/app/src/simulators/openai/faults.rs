//! The faults the OpenAI simulator injects, in the order given: each image request takes the
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

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault and how many more requests it takes (`None`: every one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub fault: Fault,
    pub left: Option<u32>,
}

/// Reads `server-error,rate-limit:2,slow:always`; an unknown name or count is refused with
/// the names allowed.
pub fn parse(list: &str) -> Result<Vec<Planned>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, count) = match item.split_once(':') {
            Some((n, c)) => (n.trim(), Some(c.trim())),
            None => (item, None),
        };
        let fault = Fault::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown fault {name:?}; the faults are {}",
                    Fault::ALL.map(Fault::name).join(", ")
                )
            })?;
        let left = match count {
            None => Some(1),
            Some("always") => None,
            Some(c) => match c.parse::<u32>() {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    return Err(format!(
                        "fault {name}: {c:?} is not a count (a number from 1, or always)"
                    ));
                }
            },
        };
        out.push(Planned { fault, left });
    }
    Ok(out)
}

/// Takes the next fault for a request, if any is left.
pub fn take(plan: &mut [Planned]) -> Option<Fault> {
    let next = plan.iter_mut().find(|p| p.left != Some(0))?;
    if let Some(n) = &mut next.left {
        *n -= 1;
    }
    Some(next.fault)
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
