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

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault and how many more creates it takes (`None`: every one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub fault: Fault,
    pub left: Option<u32>,
}

/// Reads `server-error,rate-limit:2,stuck:always`; an unknown name or count is refused with
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

/// Takes the next fault for a create, if any is left.
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
