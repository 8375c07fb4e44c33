//! The faults the ComfyUI simulator injects, in the order given. Request faults are taken by
//! the API's HTTP requests (every route but the WebSocket and `/_sim`), prompt faults by the
//! prompts as they start to run: each takes the first fault of its kind with uses left
//! (`name:N` for N, `name:always` for all), so a test knows which request or prompt meets
//! which fault.

use std::fmt;

/// One kind of fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// A request answered 500, as aiohttp answers a handler's exception.
    ServerError,
    /// A request answered 429 with `Retry-After: 1`, as a proxy in front of ComfyUI does.
    RateLimit,
    /// A request answered after the simulator's `slow` delay.
    Slow,
    /// A prompt's saved files vanish from `/view` (404) `vanish_after` once written, as an
    /// output folder cleaned behind the server's back.
    Vanish,
    /// A prompt's decode node raises: `execution_error`, as a safety checker's refusal.
    Refusal,
    /// A prompt stops making progress halfway through its sampler and never ends.
    Stuck,
    /// The server restarts halfway through a prompt's sampler: every WebSocket drops, the
    /// queue and the history are forgotten (saved files stay on disk), and for the
    /// `downtime` every request is answered 502, as a proxy does while ComfyUI starts.
    Restart,
}

impl Fault {
    pub const ALL: [Self; 7] = [
        Self::ServerError,
        Self::RateLimit,
        Self::Slow,
        Self::Vanish,
        Self::Refusal,
        Self::Stuck,
        Self::Restart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ServerError => "server-error",
            Self::RateLimit => "rate-limit",
            Self::Slow => "slow",
            Self::Vanish => "vanish",
            Self::Refusal => "refusal",
            Self::Stuck => "stuck",
            Self::Restart => "restart",
        }
    }

    /// Taken by HTTP requests (else by prompts).
    pub fn on_requests(self) -> bool {
        matches!(self, Self::ServerError | Self::RateLimit | Self::Slow)
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

/// Reads `server-error,restart:2,slow:always`; an unknown name or count is refused with the
/// names allowed.
pub fn parse(list: &str) -> Result<Vec<Planned>, String> {
    crate::simulators::plan::parse(list)
}

/// Takes the next fault of one kind (requests' or prompts'), if any is left.
pub fn take(plan: &mut [Planned], requests: bool) -> Option<Fault> {
    crate::simulators::plan::take(plan, |f| f.on_requests() == requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_takes_its_own_faults_in_order() {
        let mut plan = parse("restart, server-error:2 ,refusal").unwrap();
        assert_eq!(take(&mut plan, true), Some(Fault::ServerError));
        assert_eq!(take(&mut plan, false), Some(Fault::Restart));
        assert_eq!(take(&mut plan, true), Some(Fault::ServerError));
        assert_eq!(take(&mut plan, true), None);
        assert_eq!(take(&mut plan, false), Some(Fault::Refusal));
        assert_eq!(take(&mut plan, false), None);
        let mut always = parse("stuck:always").unwrap();
        assert_eq!(take(&mut always, false), Some(Fault::Stuck));
        assert_eq!(take(&mut always, false), Some(Fault::Stuck));
        assert!(parse("fire").unwrap_err().contains("restart"));
        assert!(parse("slow:0").is_err());
    }
}
