//! Midjourney's prompt parameters, written once for the app and the simulator.
//!
//! `a fox --ar 16:9 --v 7 --stylize 250`: the words before the first `--name` are the prompt's
//! text, each `--name` takes the words up to the next one. [`table`] says which parameters exist,
//! what each accepts and in which model versions; [`check`] is the bot's own judgement of a
//! prompt (the simulator answers with its refusal, the app's Midjourney provider refuses the
//! same prompt before sending it); [`read`] is the judgement every provider shares: values no
//! version accepts are refused, names the table does not know are left to the provider.
//!
//! No dependencies: both sides build it, and it must cost next to nothing to compile.

pub mod table;
mod version;

use std::fmt;

pub use table::{Accepts, PARAMS, Param, Rule, Value, find};
pub use version::Version;

/// Why a prompt's parameters are refused. Each message is one line, as the bot would write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Names no version knows, as written (`foo` for `--foo`).
    Unrecognized(Vec<String>),
    /// A value the parameter does not accept (in this version, for [`check`]).
    Value {
        name: String,
        value: String,
        expected: String,
    },
    /// A parameter this version does not have.
    Incompatible { name: String, version: Version },
    /// The same parameter twice, under any of its names.
    Twice { name: String },
    /// No text before the parameters, once whitespace and invisible characters are removed.
    Empty,
    /// A parameter that goes only with something the prompt lacks (`--end` without `--video`,
    /// `--video` without an image prompt).
    Needs { name: String, needs: &'static str },
    /// Two parameters that say the same thing two ways (`--loop` and `--end`).
    Conflict { name: String, with: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unrecognized(names) => {
                let list: Vec<String> = names.iter().map(|n| format!("`--{n}`")).collect();
                write!(f, "Unrecognized parameter(s): {}", list.join(", "))
            }
            Self::Value {
                name,
                value,
                expected,
            } if value.is_empty() => write!(f, "--{name}: expected {expected}"),
            Self::Value {
                name,
                value,
                expected,
            } => write!(f, "--{name} {value}: expected {expected}"),
            Self::Incompatible { name, version } => {
                write!(f, "--{name} is not compatible with {version}")
            }
            Self::Twice { name } => write!(f, "--{name} is given twice"),
            Self::Empty => f.write_str("the prompt has no words to imagine"),
            Self::Needs { name, needs } => write!(f, "--{name} needs {needs}"),
            Self::Conflict { name, with } => {
                write!(f, "--{name} cannot be used with --{with}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// One `--name value…` as written: the name lower-cased, the words after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<'a> {
    pub name: String,
    pub values: Vec<&'a str>,
}

/// A prompt split into its text and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt<'a> {
    /// The words before the first parameter.
    pub text: Vec<&'a str>,
    pub params: Vec<Written<'a>>,
}

/// Splits a prompt. `--` starts a parameter only at the start of a word and before a letter
/// (`a well-lit room -- with dashes` has none); an em dash does too, because phones turn `--`
/// into one and Midjourney accepts it.
pub fn parse(prompt: &str) -> Prompt<'_> {
    let mut out = Prompt {
        text: Vec::new(),
        params: Vec::new(),
    };
    for word in prompt.split_whitespace() {
        if let Some(name) = param_name(word) {
            out.params.push(Written {
                name: name.to_ascii_lowercase(),
                values: Vec::new(),
            });
        } else if let Some(last) = out.params.last_mut() {
            last.values.push(word);
        } else {
            out.text.push(word);
        }
    }
    out
}

fn param_name(word: &str) -> Option<&str> {
    let name = word
        .strip_prefix("--")
        .or_else(|| word.strip_prefix('\u{2014}'))?;
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        .then_some(name)
}

/// A parameter [`read`] accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Read {
    /// As written, lower-cased (`ar`).
    pub name: String,
    /// The table's name for it (`aspect_ratio`), or `name` for one it does not know.
    pub key: String,
    /// `None` for one the table does not know: its words are kept, unchecked.
    pub param: Option<&'static Param>,
    pub value: Value,
}

/// What every provider checks: each parameter the table knows has a value that some version
/// accepts, and none is given twice. Names it does not know are kept as written (another
/// provider may use them); which version takes which parameter is [`check`]'s business.
pub fn read(prompt: &str) -> Result<(Vec<&str>, Vec<Read>), Refusal> {
    let Prompt { text, params } = parse(prompt);
    let mut out: Vec<Read> = Vec::with_capacity(params.len());
    for Written { name, values } in params {
        let param = find(&name);
        let key = param.map_or(name.as_str(), |p| p.key).to_owned();
        if out.iter().any(|r| r.key == key) {
            return Err(Refusal::Twice { name });
        }
        let value = match param {
            Some(param) => any_version(param, &name, &values)?,
            None if values.is_empty() => Value::Flag,
            None => Value::Text(values.join(" ")),
        };
        out.push(Read {
            name,
            key,
            param,
            value,
        });
    }
    Ok((text, out))
}

/// The value if some version accepts it; else the newest rule's refusal.
fn any_version(param: &Param, name: &str, values: &[&str]) -> Result<Value, Refusal> {
    let mut first = None;
    for rule in param.rules {
        match rule.accepts.value(values) {
            Ok(value) => return Ok(value),
            Err(expected) => {
                first.get_or_insert(expected);
            }
        }
    }
    Err(Refusal::Value {
        name: name.to_owned(),
        value: values.join(" "),
        expected: first.unwrap_or_default(),
    })
}

/// The bot's judgement of a prompt sent to a bot whose default model is `default`
/// ([`Version::DEFAULT`], or [`Version::NIJI_DEFAULT`] for niji・journey): unknown names, the
/// same parameter twice, then the model the prompt selects (`--v`, `--niji`, else an `--oref`
/// prompt runs on V7, else the default) and every parameter against that model's rules, then
/// the text. Returns the model.
pub fn check(prompt: &str, default: Version) -> Result<Version, Refusal> {
    let Prompt { text, params } = parse(prompt);
    let unknown: Vec<String> = params
        .iter()
        .filter(|w| find(&w.name).is_none())
        .map(|w| w.name.clone())
        .collect();
    if !unknown.is_empty() {
        return Err(Refusal::Unrecognized(unknown));
    }
    let mut seen: Vec<&str> = Vec::new();
    for w in &params {
        let key = find(&w.name).map_or("", |p| p.key);
        if seen.contains(&key) {
            return Err(Refusal::Twice {
                name: w.name.clone(),
            });
        }
        seen.push(key);
    }
    let version = version(&params, default)?;
    for w in &params {
        let Some(param) = find(&w.name) else { continue };
        let Some(rule) = param.rule(version) else {
            return Err(Refusal::Incompatible {
                name: w.name.clone(),
                version,
            });
        };
        rule.accepts
            .value(&w.values)
            .map_err(|expected| Refusal::Value {
                name: w.name.clone(),
                value: w.values.join(" "),
                expected,
            })?;
    }
    video(&text, &params)?;
    if is_blank(&text.join(" ")) {
        return Err(Refusal::Empty);
    }
    Ok(version)
}

/// Parameters that only a video takes.
const VIDEO_ONLY: [&str; 4] = ["motion", "loop", "end", "bs"];

/// Video's rules: `--motion`, `--loop`, `--end` and `--bs` go only with `--video`; `--video`
/// animates an image prompt, so the prompt must start with one; `--loop` is `--end loop`, so
/// not both.
fn video(text: &[&str], params: &[Written<'_>]) -> Result<(), Refusal> {
    let given = |key: &str| {
        params
            .iter()
            .find(|w| find(&w.name).is_some_and(|p| p.key == key))
    };
    let Some(video) = given("video") else {
        return match VIDEO_ONLY.iter().find_map(|key| given(key)) {
            Some(w) => Err(Refusal::Needs {
                name: w.name.clone(),
                needs: "--video",
            }),
            None => Ok(()),
        };
    };
    if !text.first().is_some_and(|w| is_image_prompt(w)) {
        return Err(Refusal::Needs {
            name: video.name.clone(),
            needs: "an image prompt (a picture's URL first)",
        });
    }
    if let (Some(looped), Some(end)) = (given("loop"), given("end")) {
        return Err(Refusal::Conflict {
            name: looped.name.clone(),
            with: end.name.clone(),
        });
    }
    Ok(())
}

/// An image prompt: a picture's URL, bare or in Discord's `<…>` (as Midjourney echoes it).
pub fn is_image_prompt(word: &str) -> bool {
    let url = word.strip_prefix('<').unwrap_or(word);
    url.starts_with("https://") || url.starts_with("http://")
}

/// The model a prompt selects.
fn version(params: &[Written<'_>], default: Version) -> Result<Version, Refusal> {
    let chosen = |key: &str, accepts: Accepts, from: fn(&str) -> Option<Version>| {
        let Some(w) = params
            .iter()
            .find(|w| find(&w.name).is_some_and(|p| p.key == key))
        else {
            return Ok(None);
        };
        let refusal = || Refusal::Value {
            name: w.name.clone(),
            value: w.values.join(" "),
            expected: accepts.expected(),
        };
        match w.values.as_slice() {
            [] => from("").map(|v| Some((w, v))).ok_or_else(refusal),
            [value] => from(value).map(|v| Some((w, v))).ok_or_else(refusal),
            _ => Err(refusal()),
        }
    };
    let v = chosen("version", Accepts::Version, Version::from_v)?;
    let niji = chosen("niji", Accepts::Niji, Version::from_niji)?;
    match (v, niji) {
        (Some((_, v)), Some((niji, _))) => Err(Refusal::Incompatible {
            name: niji.name.clone(),
            version: v,
        }),
        (Some((_, v)), None) | (None, Some((_, v))) => Ok(v),
        // Midjourney runs an omni-reference prompt on V7, the only model that has them.
        (None, None)
            if !default.is_niji()
                && params
                    .iter()
                    .any(|w| find(&w.name).is_some_and(|p| p.key == "oref")) =>
        {
            Ok(Version::V7)
        }
        (None, None) => Ok(default),
    }
}

/// True when `text` has nothing to imagine: only whitespace and characters that render as
/// nothing (zero-width spaces and joiners, word joiners, byte-order marks, variation selectors,
/// bidirectional marks, tags: Unicode's default-ignorable code points; and the braille blank,
/// which is drawn empty).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests;
