//! The table: every parameter Midjourney knows, its names, what it accepts and in which
//! versions. Newer versions first in each parameter's rules, so a message about a value names
//! what the current models want.

use crate::version::Version::{
    self, Niji4, Niji5, Niji6, Niji7, V1, V2, V3, V4, V5, V5_1, V5_2, V6, V6_1, V7, V8, V8_1,
};

/// What a parameter accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Accepts {
    /// No value (`--tile`).
    Flag,
    /// One number from `min` to `max`; `whole`: written in digits only (`--seed`).
    Range { min: f64, max: f64, whole: bool },
    /// One of these numbers (`--q .5` is 0.5).
    Numbers(&'static [f64]),
    /// One of these words, in any case.
    Words(&'static [&'static str]),
    /// `W:H` in whole numbers, no more elongated than `max` (W:H) either way.
    Ratio { max: (u32, u32) },
    /// One or more words (`--no red, blue`, a style code).
    Text,
    /// One `http://` or `https://` URL with a host, bare or in Discord's `<…>` (`--oref`,
    /// `--end`: a picture Midjourney fetches).
    Url,
    /// Any words, or none (`--p`, `--p abc123`).
    OptionalText,
    /// A model version (`--v 7`, `--v 8.1`).
    Version,
    /// Nothing (the latest niji) or a niji version.
    Niji,
}

/// The values a parameter accepts in some versions.
#[derive(Debug, PartialEq)]
pub struct Rule {
    pub versions: &'static [Version],
    pub accepts: Accepts,
}

/// One parameter.
#[derive(Debug, PartialEq)]
pub struct Param {
    /// Every spelling (`ar`, `aspect`), lower case, without `--`.
    pub names: &'static [&'static str],
    /// Its name in the app's catalogue (`aspect_ratio`).
    pub key: &'static str,
    /// By version; a version in none of them refuses the parameter.
    pub rules: &'static [Rule],
}

impl Param {
    /// The rule for `version`, if that version accepts the parameter.
    pub fn rule(&self, version: Version) -> Option<&'static Rule> {
        self.rules.iter().find(|r| r.versions.contains(&version))
    }
}

/// The parameter one of whose names is `name` (lower case, without `--`).
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.names.contains(&name))
}

const ALL: &[Version] = Version::ALL;
/// Versions before V7's generation (niji 7 is V7's).
const BEFORE_V7: &[Version] = &[
    V1, V2, V3, V4, V5, V5_1, V5_2, V6, V6_1, Niji4, Niji5, Niji6,
];
const V7_AND_LATER: &[Version] = &[V7, V8, V8_1, Niji7];
const V8_FAMILY: &[Version] = &[V8, V8_1];
/// Midjourney renders nothing more elongated than about 14:1 from V5 on: a 1:20 request comes
/// back 9:128. A ratio beyond that would be stored for a picture that does not have it, so it is
/// refused (99999:1 with it).
const CURRENT_RATIO: (u32, u32) = (128, 9);

/// Every parameter. Facts on older versions are those of Midjourney's legacy documentation;
/// where it says nothing the parameter is accepted everywhere, as Midjourney tends to.
#[rustfmt::skip]
pub const PARAMS: &[Param] = &[
    Param { names: &["ar", "aspect"], key: "aspect_ratio", rules: &[
        Rule { versions: &[V5, V5_1, V5_2, V6, V6_1, V7, V8, V8_1, Niji5, Niji6, Niji7], accepts: Accepts::Ratio { max: CURRENT_RATIO } },
        Rule { versions: &[V4, Niji4], accepts: Accepts::Ratio { max: (2, 1) } },
        Rule { versions: &[V1, V2, V3], accepts: Accepts::Ratio { max: (5, 2) } },
    ] },
    Param { names: &["v", "version"], key: "version", rules: &[Rule { versions: ALL, accepts: Accepts::Version }] },
    Param { names: &["niji"], key: "niji", rules: &[Rule { versions: ALL, accepts: Accepts::Niji }] },
    Param { names: &["s", "stylize"], key: "stylize", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 0.0, max: 1000.0, whole: false } }] },
    Param { names: &["c", "chaos"], key: "chaos", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 0.0, max: 100.0, whole: false } }] },
    Param { names: &["seed", "sameseed"], key: "seed", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 0.0, max: 4_294_967_295.0, whole: true } }] },
    Param { names: &["style"], key: "style", rules: &[
        Rule { versions: &[V5_1, V5_2, V6, V6_1, V7, V8, V8_1, Niji6, Niji7], accepts: Accepts::Words(&["raw"]) },
        Rule { versions: &[Niji5], accepts: Accepts::Words(&["cute", "expressive", "original", "scenic"]) },
        Rule { versions: &[V4], accepts: Accepts::Words(&["4a", "4b", "4c"]) },
    ] },
    // V7 renders 1, 2 or 4 times longer; the V8 family has no --q (--hd instead).
    Param { names: &["q", "quality"], key: "quality", rules: &[
        Rule { versions: &[V7, Niji7], accepts: Accepts::Numbers(&[1.0, 2.0, 4.0]) },
        Rule { versions: BEFORE_V7, accepts: Accepts::Numbers(&[0.25, 0.5, 1.0, 2.0]) },
    ] },
    Param { names: &["w", "weird"], key: "weird", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 0.0, max: 3000.0, whole: false } }] },
    Param { names: &["iw"], key: "image_weight", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 0.0, max: 3.0, whole: false } }] },
    Param { names: &["r", "repeat"], key: "repeat", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 1.0, max: 40.0, whole: true } }] },
    // "--stop is not compatible with --version 7".
    Param { names: &["stop"], key: "stop", rules: &[Rule { versions: BEFORE_V7, accepts: Accepts::Range { min: 10.0, max: 100.0, whole: false } }] },
    // Written by the Custom Zoom button's modal.
    Param { names: &["zoom"], key: "zoom", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 1.0, max: 2.0, whole: false } }] },
    Param { names: &["sref"], key: "sref", rules: &[Rule { versions: ALL, accepts: Accepts::Text }] },
    Param { names: &["sw"], key: "sw", rules: &[Rule { versions: ALL, accepts: Accepts::Range { min: 0.0, max: 1000.0, whole: false } }] },
    Param { names: &["sv"], key: "sv", rules: &[
        Rule { versions: V8_FAMILY, accepts: Accepts::Numbers(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) },
        Rule { versions: &[V6, V6_1, V7, Niji6, Niji7], accepts: Accepts::Numbers(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) },
    ] },
    // Character references, V6's; omni references replace them in V7 and only there.
    Param { names: &["cref"], key: "cref", rules: &[Rule { versions: &[V6, V6_1, Niji6], accepts: Accepts::Text }] },
    Param { names: &["cw"], key: "cw", rules: &[Rule { versions: &[V6, V6_1, Niji6], accepts: Accepts::Range { min: 0.0, max: 100.0, whole: false } }] },
    Param { names: &["oref"], key: "oref", rules: &[Rule { versions: &[V7], accepts: Accepts::Url }] },
    Param { names: &["ow"], key: "ow", rules: &[Rule { versions: &[V7], accepts: Accepts::Range { min: 1.0, max: 1000.0, whole: false } }] },
    Param { names: &["exp"], key: "exp", rules: &[Rule { versions: V7_AND_LATER, accepts: Accepts::Range { min: 0.0, max: 100.0, whole: false } }] },
    Param { names: &["draft"], key: "draft", rules: &[Rule { versions: &[V7], accepts: Accepts::Flag }] },
    // Native 2048 px in the V8 family; the oldest models had an --hd of their own.
    Param { names: &["hd"], key: "hd", rules: &[Rule { versions: &[V1, V2, V3, V8, V8_1], accepts: Accepts::Flag }] },
    Param { names: &["sd"], key: "sd", rules: &[Rule { versions: V8_FAMILY, accepts: Accepts::Flag }] },
    // V8.1 has no turbo mode.
    Param { names: &["turbo"], key: "turbo", rules: &[Rule { versions: &[V1, V2, V3, V4, V5, V5_1, V5_2, V6, V6_1, V7, V8, Niji4, Niji5, Niji6, Niji7], accepts: Accepts::Flag }] },
    Param { names: &["no"], key: "no", rules: &[Rule { versions: ALL, accepts: Accepts::Text }] },
    Param { names: &["p", "personalize"], key: "p", rules: &[Rule { versions: ALL, accepts: Accepts::OptionalText }] },
    Param { names: &["profile"], key: "profile", rules: &[Rule { versions: ALL, accepts: Accepts::Text }] },
    // Video: `--video 1` comes back in results; --motion, --loop, --end and --bs go with it.
    Param { names: &["video"], key: "video", rules: &[Rule { versions: ALL, accepts: Accepts::OptionalText }] },
    Param { names: &["motion"], key: "motion", rules: &[Rule { versions: ALL, accepts: Accepts::Words(&["low", "high"]) }] },
    Param { names: &["loop"], key: "loop", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["end"], key: "end", rules: &[Rule { versions: ALL, accepts: Accepts::Url }] },
    Param { names: &["bs"], key: "bs", rules: &[Rule { versions: ALL, accepts: Accepts::Numbers(&[1.0, 2.0, 4.0]) }] },
    Param { names: &["raw"], key: "raw", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["tile"], key: "tile", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["relax"], key: "relax", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["fast"], key: "fast", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["public"], key: "public", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["stealth"], key: "stealth", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    // Legacy switches the simulator has always known.
    Param { names: &["test"], key: "test", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["testp"], key: "testp", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["creative"], key: "creative", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["uplight"], key: "uplight", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["upbeta"], key: "upbeta", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
    Param { names: &["upanime"], key: "upanime", rules: &[Rule { versions: ALL, accepts: Accepts::Flag }] },
];

/// A value a parameter accepted, typed.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A flag, or optional words left out.
    Flag,
    Number(f64),
    /// Words, ratios and versions, as written.
    Text(String),
}

impl Accepts {
    /// The value of `values` (the words after the parameter), or what was expected.
    pub fn value(self, values: &[&str]) -> Result<Value, String> {
        let joined = values.join(" ");
        let one = || match values {
            [value] => Some(*value),
            _ => None,
        };
        let accepted = match self {
            Self::Flag => values.is_empty().then_some(Value::Flag),
            Self::Text => (!values.is_empty()).then(|| Value::Text(joined.clone())),
            Self::Url => one()
                .filter(|v| is_url(v))
                .map(|v| Value::Text(v.to_owned())),
            Self::OptionalText if values.is_empty() => Some(Value::Flag),
            Self::OptionalText => Some(Value::Text(joined.clone())),
            Self::Range { min, max, whole } => one()
                .and_then(|v| number(v, whole))
                .and_then(|n| (min..=max).contains(&n).then_some(Value::Number(n))),
            Self::Numbers(allowed) => one()
                .and_then(|v| number(v, false))
                .filter(|n| allowed.contains(n))
                .map(Value::Number),
            Self::Words(allowed) => one()
                .filter(|v| allowed.iter().any(|a| a.eq_ignore_ascii_case(v)))
                .map(|v| Value::Text(v.to_owned())),
            Self::Ratio { max } => one()
                .filter(|v| ratio_within(v, max))
                .map(|v| Value::Text(v.to_owned())),
            Self::Version => one()
                .filter(|v| Version::from_v(v).is_some())
                .map(|v| Value::Text(v.to_owned())),
            Self::Niji => match values {
                [] => Some(Value::Flag),
                [v] => Version::from_niji(v).map(|_| Value::Text((*v).to_owned())),
                _ => None,
            },
        };
        accepted.ok_or_else(|| self.expected())
    }

    /// What this accepts, in words: `1, 2 or 4`, `W:H in whole numbers, from 9:128 to 128:9`.
    pub fn expected(self) -> String {
        match self {
            Self::Flag => "no value".to_owned(),
            Self::Text => "a value".to_owned(),
            Self::Url => "a picture's URL, http:// or https://".to_owned(),
            Self::OptionalText => "words or nothing".to_owned(),
            Self::Range { min, max, whole } => {
                let kind = if whole { "a whole number" } else { "a number" };
                format!("{kind} from {min} to {max}")
            }
            Self::Numbers(allowed) => {
                let numbers: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
                or_list(&numbers)
            }
            Self::Words(allowed) => or_list(allowed),
            Self::Ratio { max: (w, h) } => {
                format!("W:H in whole numbers, from {h}:{w} to {w}:{h}")
            }
            Self::Version => Version::v_choices(),
            Self::Niji => "nothing, 4, 5, 6 or 7".to_owned(),
        }
    }
}

/// An `http://` or `https://` URL with a host (a name, an address, a port), bare or in
/// Discord's `<…>`; the rest of it is the server's business.
pub fn is_url(word: &str) -> bool {
    let url = match word.strip_prefix('<') {
        Some(inner) => match inner.strip_suffix('>') {
            Some(inner) => inner,
            None => return false,
        },
        None => word,
    };
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty()
        && !host.starts_with(['.', ':', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// A number as written: digits only when `whole`; never infinite or NaN.
fn number(value: &str, whole: bool) -> Option<f64> {
    if whole {
        return value.parse::<u64>().ok().map(|n| n as f64);
    }
    value.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `W:H`, both whole and positive, no more elongated than `max` either way.
fn ratio_within(value: &str, (max_w, max_h): (u32, u32)) -> bool {
    let Some((w, h)) = value.split_once(':') else {
        return false;
    };
    let (Ok(w), Ok(h)) = (w.parse::<u32>(), h.parse::<u32>()) else {
        return false;
    };
    if w == 0 || h == 0 {
        return false;
    }
    let (w, h, max_w, max_h) = (
        u64::from(w),
        u64::from(h),
        u64::from(max_w),
        u64::from(max_h),
    );
    // w/h ≤ max_w/max_h and h/w ≤ max_w/max_h, in integers.
    w * max_h <= h * max_w && h * max_h <= w * max_w
}

/// `a`, `a or b`, `a, b or c`.
pub(crate) fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
