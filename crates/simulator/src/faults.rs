//! Fault injection: which faults are on, at what rate, and a seeded generator deciding when
//! one fires.
//!
//! Every place that can misbehave asks [`FaultBox::roll`] at each *opportunity* (a REST
//! request for `rate-limit`, a CDN download for `cdn-*`, a job for the job faults, a timer
//! tick of a gateway connection for the gateway faults). A fault injected through
//! [`crate::Control::inject`] fires at the next opportunity whatever the rate (gateway faults
//! fire at once on every live connection instead).
//!
//! Each fault draws from its own generator, seeded from the common seed, so when one fault
//! fires depends only on its own opportunities: the jobs' faults are dealt the same way
//! however the REST, CDN and gateway traffic of a run interleaves with them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One kind of misbehaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Close a gateway TCP connection without a close frame.
    DropSocket,
    /// Stop acknowledging heartbeats on a connection (until it is replaced).
    NoAck,
    /// Send op 7 RECONNECT.
    Reconnect,
    /// Send op 9 `INVALID_SESSION` (`d` true or false; false also forgets the session).
    InvalidSession,
    /// Send op 1, asking the client for a heartbeat now.
    HeartbeatRequest,
    /// Answer a REST request with 429.
    RateLimit,
    /// Answer a CDN download with a 5xx.
    CdnError,
    /// Serve a CDN download cut short, with a matching `Content-Length`.
    CdnTruncate,
    /// Delete a job's progress message mid-job; the job still ends normally.
    DeleteProgress,
    /// Store a job's final message without dispatching its `MESSAGE_CREATE`.
    LoseFinal,
    /// Leave a job at some percentage forever.
    Stuck,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Self; 11] = [
        Self::DropSocket,
        Self::NoAck,
        Self::Reconnect,
        Self::InvalidSession,
        Self::HeartbeatRequest,
        Self::RateLimit,
        Self::CdnError,
        Self::CdnTruncate,
        Self::DeleteProgress,
        Self::LoseFinal,
        Self::Stuck,
    ];

    /// The gateway faults, rolled on connection timer ticks.
    pub(crate) const GATEWAY: [Self; 5] = [
        Self::DropSocket,
        Self::NoAck,
        Self::Reconnect,
        Self::InvalidSession,
        Self::HeartbeatRequest,
    ];

    /// The kebab-case name used in lists, JSON and statistics.
    pub fn name(self) -> &'static str {
        match self {
            Self::DropSocket => "drop-socket",
            Self::NoAck => "no-ack",
            Self::Reconnect => "reconnect",
            Self::InvalidSession => "invalid-session",
            Self::HeartbeatRequest => "heartbeat-request",
            Self::RateLimit => "rate-limit",
            Self::CdnError => "cdn-error",
            Self::CdnTruncate => "cdn-truncate",
            Self::DeleteProgress => "delete-progress",
            Self::LoseFinal => "lose-final",
            Self::Stuck => "stuck",
        }
    }

    /// True for the faults that act on gateway connections.
    pub fn is_gateway(self) -> bool {
        Self::GATEWAY.contains(&self)
    }

    /// Parses a comma-separated list such as `"drop-socket,cdn-error"` (blanks ignored).
    pub fn parse_list(list: &str) -> Result<Vec<Self>, FaultParseError> {
        let mut faults = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let fault = name.parse()?;
            if !faults.contains(&fault) {
                faults.push(fault);
            }
        }
        Ok(faults)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| FaultParseError {
                name: name.to_owned(),
            })
    }
}

/// An unknown fault name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {name:?}; valid faults are: {}", valid_names())]
pub struct FaultParseError {
    pub name: String,
}

fn valid_names() -> String {
    Fault::ALL.map(Fault::name).join(", ")
}

/// Which faults are on and how often they fire.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    pub set: Vec<Fault>,
    /// Probability that an enabled fault fires at each opportunity, 0 to 1 (default 0.2).
    pub rate: f64,
    /// Seed of the generators; the same seed and the same sequence of opportunities for a
    /// fault give the same firings of that fault.
    pub seed: u64,
    /// How often a gateway connection rolls for its faults (default 5 s), so a client can
    /// make progress between two of them.
    pub every: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            set: Vec::new(),
            rate: 0.2,
            seed: 0,
            every: Duration::from_secs(5),
        }
    }
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// `set` at `rate`, other fields default.
    pub fn with(set: &[Fault], rate: f64) -> Self {
        Self {
            set: set.to_vec(),
            rate,
            ..Self::default()
        }
    }
}

/// The live fault settings, a generator per fault, pending injections and the count of
/// fired faults.
pub(crate) struct FaultBox {
    faults: Faults,
    rngs: [fastrand::Rng; Fault::ALL.len()],
    pending: BTreeMap<Fault, u32>,
    fired: BTreeMap<Fault, u64>,
}

impl FaultBox {
    pub(crate) fn new(faults: Faults) -> Self {
        Self {
            rngs: generators(faults.seed),
            faults,
            pending: BTreeMap::new(),
            fired: BTreeMap::new(),
        }
    }

    pub(crate) fn settings(&self) -> &Faults {
        &self.faults
    }

    /// Replaces the settings and reseeds the generators.
    pub(crate) fn set(&mut self, faults: Faults) {
        self.rngs = generators(faults.seed);
        self.faults = faults;
    }

    /// Makes `fault` fire at its next opportunity.
    pub(crate) fn arm(&mut self, fault: Fault) {
        *self.pending.entry(fault).or_default() += 1;
    }

    /// One opportunity for `fault`: true when it fires (and is then counted).
    pub(crate) fn roll(&mut self, fault: Fault) -> bool {
        let fires = if let Some(pending) = self.pending.get_mut(&fault) {
            *pending -= 1;
            if *pending == 0 {
                self.pending.remove(&fault);
            }
            true
        } else {
            self.faults.set.contains(&fault) && self.rng(fault).f64() < self.faults.rate
        };
        if fires {
            self.count(fault);
        }
        fires
    }

    /// One opportunity for the gateway faults: at most one fires.
    pub(crate) fn roll_gateway(&mut self) -> Option<Fault> {
        Fault::GATEWAY.into_iter().find(|f| self.roll(*f))
    }

    pub(crate) fn count(&mut self, fault: Fault) {
        *self.fired.entry(fault).or_default() += 1;
    }

    pub(crate) fn fired(&self) -> BTreeMap<String, u64> {
        self.fired
            .iter()
            .map(|(f, n)| (f.name().to_owned(), *n))
            .collect()
    }

    /// The generator of `fault`, also for its details (durations, status codes, booleans).
    pub(crate) fn rng(&mut self, fault: Fault) -> &mut fastrand::Rng {
        let i = Fault::ALL.iter().position(|f| *f == fault).unwrap_or(0);
        &mut self.rngs[i]
    }
}

/// One generator per fault (in [`Fault::ALL`] order), each its own stream of `seed`.
fn generators(seed: u64) -> [fastrand::Rng; Fault::ALL.len()] {
    std::array::from_fn(|i| {
        // Odd multiples of the golden ratio keep the streams apart for neighbouring seeds.
        let salt = (i as u64 * 2 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        fastrand::Rng::with_seed(seed ^ salt)
    })
}

#[cfg(test)]
mod tests {
    use super::{Fault, FaultBox, Faults};

    #[test]
    fn parses_lists_and_names_the_valid_ones() {
        assert_eq!(
            Fault::parse_list(" drop-socket, cdn-error,,drop-socket").expect("valid"),
            [Fault::DropSocket, Fault::CdnError]
        );
        let error = Fault::parse_list("drop-socket,explode").expect_err("unknown");
        assert_eq!(error.name, "explode");
        assert!(error.to_string().contains("no-ack, reconnect"), "{error}");
        for fault in Fault::ALL {
            assert_eq!(fault.name().parse::<Fault>().expect("round trip"), fault);
        }
    }

    #[test]
    fn rolls_are_reproducible_and_injections_fire_once() {
        let faults = Faults {
            seed: 42,
            ..Faults::with(&[Fault::RateLimit], 0.5)
        };
        let run = || {
            let mut faults = FaultBox::new(faults.clone());
            (0..64)
                .map(|_| faults.roll(Fault::RateLimit))
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.iter().any(|f| *f) && first.iter().any(|f| !*f));

        let mut off = FaultBox::new(Faults::none());
        assert!(!off.roll(Fault::CdnError));
        off.arm(Fault::CdnError);
        assert!(off.roll(Fault::CdnError));
        assert!(!off.roll(Fault::CdnError));
        assert_eq!(off.fired()["cdn-error"], 1);
    }
}
