//! The simulators' fault plans, read once for all of them: `server-error,rate-limit:2,
//! stuck:always` is a list of faults dealt in the order given, each request (or create, or
//! prompt) taking the first fault with uses left (`NAME` once, `NAME:N` N times,
//! `NAME:always` every time), so a test knows which request meets which fault.

/// A simulator's kind of fault, by the name `--faults` gives it.
pub trait Named: Copy + PartialEq + 'static {
    /// Every fault, in the order the help names them.
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
}

/// A fault and how many more it takes (`None`: every one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned<F> {
    pub fault: F,
    pub left: Option<u32>,
}

/// Reads a list of faults; an unknown name or count is refused with the names allowed.
pub fn parse<F: Named>(list: &str) -> Result<Vec<Planned<F>>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, count) = match item.split_once(':') {
            Some((n, c)) => (n.trim(), Some(c.trim())),
            None => (item, None),
        };
        let fault = F::all()
            .iter()
            .copied()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = F::all().iter().map(|f| f.name()).collect();
                format!(
                    "unknown fault {name:?}; the faults are {}",
                    names.join(", ")
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

/// Takes the next fault that `fits`, if any is left.
pub fn take<F: Copy>(plan: &mut [Planned<F>], fits: impl Fn(F) -> bool) -> Option<F> {
    let next = plan
        .iter_mut()
        .find(|p| p.left != Some(0) && fits(p.fault))?;
    if let Some(n) = &mut next.left {
        *n -= 1;
    }
    Some(next.fault)
}
