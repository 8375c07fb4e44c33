//! Prompt parameters (`--ar 3:2 --v 7 --stylize 250 …`): which exist, which values they
//! accept, and the words that get a prompt refused.

/// Why a prompt is refused before any job starts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PromptError {
    /// "Invalid parameter" with this description.
    Invalid(String),
    /// "Banned prompt detected".
    Banned,
    /// "Pending mod message": the account must acknowledge a moderation notice.
    Moderated,
    /// "Empty prompt".
    Empty,
}

/// What a parameter accepts.
#[derive(Clone, Copy)]
enum Accepts {
    /// No value (`--tile`).
    Flag,
    /// One number within bounds.
    Number(f64, f64),
    /// `W:H`, both positive integers.
    Ratio,
    /// One of these words or numbers.
    OneOf(&'static [&'static str]),
    /// Anything, including several words (`--no red, blue`).
    Any,
}

#[rustfmt::skip]
const PARAMS: &[(&[&str], Accepts)] = &[
    (&["ar", "aspect"], Accepts::Ratio),
    (&["v", "version"], Accepts::OneOf(&["1", "2", "3", "4", "5", "5.0", "5.1", "5.2", "6", "6.0", "6.1", "7", "7.0"])),
    (&["niji"], Accepts::OneOf(&["", "4", "5", "6", "7"])),
    (&["s", "stylize"], Accepts::Number(0.0, 1000.0)),
    (&["c", "chaos"], Accepts::Number(0.0, 100.0)),
    (&["seed", "sameseed"], Accepts::Number(0.0, 4_294_967_295.0)),
    (&["style"], Accepts::OneOf(&["raw", "cute", "expressive", "original", "scenic", "4a", "4b", "4c"])),
    (&["q", "quality"], Accepts::OneOf(&[".25", "0.25", ".5", "0.5", "1", "2", "4"])),
    (&["w", "weird"], Accepts::Number(0.0, 3000.0)),
    (&["iw"], Accepts::Number(0.0, 3.0)),
    (&["r", "repeat"], Accepts::Number(1.0, 40.0)),
    (&["stop"], Accepts::Number(10.0, 100.0)),
    (&["zoom"], Accepts::Number(1.0, 2.0)),
    (&["sw", "cw", "ow", "exp"], Accepts::Number(0.0, 1000.0)),
    (&["tile", "relax", "fast", "turbo", "draft", "raw", "video", "hd", "public", "stealth", "test", "testp", "creative", "uplight", "upbeta", "upanime"], Accepts::Flag),
    (&["no", "sref", "cref", "oref", "p", "personalize", "profile", "motion"], Accepts::Any),
];

/// The `--seed` value, if the prompt sets one.
pub(crate) fn seed(prompt: &str) -> Option<u32> {
    params(prompt)
        .into_iter()
        .find(|(name, _)| matches!(name.as_str(), "seed" | "sameseed"))
        .and_then(|(_, values)| values.first()?.parse::<u32>().ok())
}

/// Checks a prompt; `banned` words match whole words, any case.
/// `Moderated` when the prompt holds one of `words` (whole words, any case).
pub(crate) fn moderated(prompt: &str, words: &[String]) -> Result<(), PromptError> {
    let hit = prompt
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| words.iter().any(|m| m.eq_ignore_ascii_case(w)));
    if hit {
        Err(PromptError::Moderated)
    } else {
        Ok(())
    }
}

pub(crate) fn check(prompt: &str, banned: &[String]) -> Result<(), PromptError> {
    let text: Vec<&str> = prompt
        .split_whitespace()
        .take_while(|w| !w.starts_with("--"))
        .collect();
    let words = prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    for word in words {
        if banned.iter().any(|b| b.eq_ignore_ascii_case(word)) {
            return Err(PromptError::Banned);
        }
    }
    let mut unknown = Vec::new();
    for (name, values) in params(prompt) {
        let Some(&(_, accepts)) = PARAMS
            .iter()
            .find(|(names, _)| names.contains(&name.as_str()))
        else {
            unknown.push(format!("--{name}"));
            continue;
        };
        if let Err(why) = accepts_values(accepts, &values) {
            return Err(PromptError::Invalid(format!(
                "Invalid value provided for argument **{name}**: {why}"
            )));
        }
    }
    if !unknown.is_empty() {
        let list = unknown
            .iter()
            .map(|u| format!("`{u}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(PromptError::Invalid(format!(
            "Unrecognized parameter(s): {list}"
        )));
    }
    if text.is_empty() {
        return Err(PromptError::Empty);
    }
    Ok(())
}

fn accepts_values(accepts: Accepts, values: &[String]) -> Result<(), String> {
    let one = || match values {
        [value] => Ok(value.as_str()),
        [] => Err("a value is required".to_owned()),
        _ => Err(format!("`{}` (expected one value)", values.join(" "))),
    };
    match accepts {
        Accepts::Any => Ok(()),
        Accepts::Flag => match values {
            [] => Ok(()),
            _ => Err(format!("`{}` (takes no value)", values.join(" "))),
        },
        Accepts::Number(min, max) => {
            let value = one()?;
            match value.parse::<f64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(()),
                _ => Err(format!("`{value}` (must be between {min} and {max})")),
            }
        }
        Accepts::Ratio => {
            let value = one()?;
            let valid = value.split_once(':').is_some_and(|(w, h)| {
                [w, h]
                    .iter()
                    .all(|n| n.parse::<u32>().is_ok_and(|n| (1..=10_000).contains(&n)))
            });
            if valid {
                Ok(())
            } else {
                Err(format!("`{value}` (expected W:H)"))
            }
        }
        Accepts::OneOf(allowed) => {
            let value = match values {
                [] => "",
                _ => one()?,
            };
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "`{value}` (expected one of {})",
                    allowed.join(", ")
                ))
            }
        }
    }
}

/// `(name, values)` for every `--name value…` in the prompt, names lower-cased.
fn params(prompt: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for word in prompt.split_whitespace() {
        // iOS turns "--" into an em dash; Midjourney accepts both.
        let word = word.replace('—', "--");
        if let Some(name) = word.strip_prefix("--") {
            out.push((name.to_ascii_lowercase(), Vec::new()));
        } else if let Some((_, values)) = out.last_mut() {
            values.push(word);
        }
    }
    out
}

/// The `--v` value for upscale button ids (`v7`, `v6r1`, `v6`, `v5`), `v6r1` for niji.
pub(crate) fn upscaler_version(prompt: &str, niji: bool) -> &'static str {
    let version = params(prompt)
        .into_iter()
        .find(|(name, _)| matches!(name.as_str(), "v" | "version" | "niji"))
        .map(|(name, values)| (name, values.first().cloned().unwrap_or_default()));
    match version {
        Some((name, _)) if name == "niji" => "v6r1",
        Some((_, v)) if v == "6.1" => "v6r1",
        Some((_, v)) if v == "6" || v == "6.0" => "v6",
        Some((_, v)) if v.starts_with('5') => "v5",
        _ if niji => "v6r1",
        _ => "v7",
    }
}

/// The prompt with `--zoom …` replaced by `--zoom {zoom}`.
pub(crate) fn with_zoom(prompt: &str, zoom: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    let mut skipping = false;
    for word in prompt.split_whitespace() {
        if word.starts_with("--") {
            skipping = word.eq_ignore_ascii_case("--zoom");
        }
        if !skipping {
            words.push(word);
        }
    }
    format!("{} --zoom {zoom}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::{PromptError, check, moderated, seed, upscaler_version, with_zoom};

    fn banned() -> Vec<String> {
        vec!["gore".to_owned()]
    }

    #[test]
    fn moderated_words_are_whole_words_in_any_case() {
        let words = vec!["moderated".to_owned()];
        assert_eq!(
            moderated("a Moderated harbour", &words),
            Err(PromptError::Moderated)
        );
        assert_eq!(moderated("an unmoderated harbour", &words), Ok(()));
    }

    #[test]
    fn valid_prompts_pass() {
        for prompt in [
            "a red fox",
            "a red fox --ar 3:2 --v 6.1",
            "fox --s 250 --c 10 --seed 4294967295 --style raw --q .5 --no red, blue --tile",
            "fox —ar 16:9 --niji 6 --weird 100",
            "fox --niji",
        ] {
            assert_eq!(check(prompt, &banned()), Ok(()), "{prompt}");
        }
        assert_eq!(seed("a --seed 42"), Some(42));
        assert_eq!(seed("a"), None);
    }

    #[test]
    fn bad_prompts_are_refused() {
        assert_eq!(
            check("a red fox --foo 3", &banned()),
            Err(PromptError::Invalid(
                "Unrecognized parameter(s): `--foo`".into()
            ))
        );
        for prompt in [
            "fox --s 5000",
            "fox --c -1",
            "fox --ar 3",
            "fox --v 9",
            "fox --seed 4294967296",
            "fox --tile 3",
        ] {
            assert!(
                matches!(check(prompt, &banned()), Err(PromptError::Invalid(_))),
                "{prompt}"
            );
        }
        assert_eq!(
            check("bloody GORE, fox", &banned()),
            Err(PromptError::Banned)
        );
        assert_eq!(check("gorey fox", &banned()), Ok(()));
        assert_eq!(check("--ar 1:1", &banned()), Err(PromptError::Empty));
    }

    #[test]
    fn versions_and_zoom() {
        assert_eq!(upscaler_version("fox", false), "v7");
        assert_eq!(upscaler_version("fox --v 6.1", false), "v6r1");
        assert_eq!(upscaler_version("fox", true), "v6r1");
        assert_eq!(with_zoom("fox --ar 1:1", "2"), "fox --ar 1:1 --zoom 2");
        assert_eq!(
            with_zoom("fox --zoom 1.2 --ar 1:1", "1.5"),
            "fox --ar 1:1 --zoom 1.5"
        );
    }
}
