//! Prompt parameters (`--ar 3:2 --v 7 --stylize 250 …`) as the bot judges them, by the table
//! the app shares (`atelier-midjourney-params`), and the words that get a prompt refused.

use atelier_midjourney_params::{self as table, Refusal, Version};

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
    /// "Invalid link": an image prompt the bot could not fetch.
    DeadLink,
}

/// The `--seed` value, if the prompt sets one.
pub(crate) fn seed(prompt: &str) -> Option<u32> {
    table::parse(prompt)
        .params
        .into_iter()
        .find(|w| matches!(w.name.as_str(), "seed" | "sameseed"))
        .and_then(|w| w.values.first()?.parse::<u32>().ok())
}

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

/// Checks a prompt as the bot does: `banned` words (whole words, any case), then Midjourney's
/// parameter table for the model the prompt selects, the bot's default being niji's on
/// niji・journey. The "Invalid parameter" description is the table's refusal, word for word,
/// so the app refuses the same prompt with the same words before sending it.
pub(crate) fn check(prompt: &str, banned: &[String], niji: bool) -> Result<(), PromptError> {
    let words = prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    for word in words {
        if banned.iter().any(|b| b.eq_ignore_ascii_case(word)) {
            return Err(PromptError::Banned);
        }
    }
    let default = if niji {
        Version::NIJI_DEFAULT
    } else {
        Version::DEFAULT
    };
    match table::check(prompt, default) {
        Ok(_) => Ok(()),
        Err(Refusal::Empty) => Err(PromptError::Empty),
        Err(refusal) => Err(PromptError::Invalid(refusal.to_string())),
    }
}

/// The model in re-upscale button ids (`v7`, `v6r1`, `v6`, `v5`) for the model the prompt
/// runs on, the bot's default being niji's on niji・journey; `None` for the models whose
/// results have no Upscale (Subtle/Creative): the V8 family (native 2K comes from `--hd`) and
/// the models before V5.
pub(crate) fn upscaler_version(prompt: &str, niji: bool) -> Option<&'static str> {
    let default = if niji {
        Version::NIJI_DEFAULT
    } else {
        Version::DEFAULT
    };
    match table::check(prompt, default).unwrap_or(default) {
        Version::V7 | Version::Niji7 => Some("v7"),
        Version::V6_1 | Version::Niji6 => Some("v6r1"),
        Version::V6 => Some("v6"),
        Version::V5 | Version::V5_1 | Version::V5_2 | Version::Niji5 => Some("v5"),
        Version::V1
        | Version::V2
        | Version::V3
        | Version::V4
        | Version::Niji4
        | Version::V8
        | Version::V8_1 => None,
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
            "fox --s 250 --c 10 --seed 4294967295 --style raw --q .5 --no red, blue --tile --v 6.1",
            "fox —ar 16:9 --niji 6 --weird 100",
            "fox --niji",
        ] {
            assert_eq!(check(prompt, &banned(), false), Ok(()), "{prompt}");
        }
        assert_eq!(seed("a --seed 42"), Some(42));
        assert_eq!(seed("a"), None);
    }

    #[test]
    fn bad_prompts_are_refused() {
        assert_eq!(
            check("a red fox --foo 3", &banned(), false),
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
                matches!(
                    check(prompt, &banned(), false),
                    Err(PromptError::Invalid(_))
                ),
                "{prompt}"
            );
        }
        assert_eq!(
            check("bloody GORE, fox", &banned(), false),
            Err(PromptError::Banned)
        );
        assert_eq!(check("gorey fox", &banned(), false), Ok(()));
        assert_eq!(check("--ar 1:1", &banned(), false), Err(PromptError::Empty));
        assert_eq!(
            check("\u{200B}\u{2060}\u{FEFF} --v 7", &banned(), false),
            Err(PromptError::Empty)
        );
    }

    #[test]
    fn the_refusals_are_the_tables() {
        for (prompt, text) in [
            (
                "fox --ar 99999:1",
                "--ar 99999:1: expected W:H in whole numbers, from 9:128 to 128:9",
            ),
            (
                "fox --v 99",
                "--v 99: expected 1, 2, 3, 4, 5, 5.1, 5.2, 6, 6.1, 7, 8 or 8.1",
            ),
            ("fox --q 3 --v 7", "--q 3: expected 1, 2 or 4"),
            (
                "fox --stop 50 --v 7",
                "--stop is not compatible with --version 7",
            ),
        ] {
            assert_eq!(
                check(prompt, &banned(), false),
                Err(PromptError::Invalid(text.into())),
                "{prompt}"
            );
        }
        // niji・journey's default model (niji 7) takes --q 2; Midjourney's (V8.1) does not.
        assert_eq!(check("fox --q 2", &banned(), true), Ok(()));
        assert!(check("fox --q 2", &banned(), false).is_err());
    }

    #[test]
    fn versions_and_zoom() {
        // V8.1, the default, has no re-upscales; V7, an omni-reference prompt (run on V7)
        // and niji 7 (niji・journey's default) have V7's.
        assert_eq!(upscaler_version("fox", false), None);
        assert_eq!(upscaler_version("fox --v 8", false), None);
        assert_eq!(upscaler_version("fox --v 7", false), Some("v7"));
        assert_eq!(
            upscaler_version("fox --oref https://s.mj.run/x --ow 200", false),
            Some("v7")
        );
        assert_eq!(upscaler_version("fox --v 6.1", false), Some("v6r1"));
        assert_eq!(upscaler_version("fox --niji 6", false), Some("v6r1"));
        assert_eq!(upscaler_version("fox", true), Some("v7"));
        assert_eq!(upscaler_version("fox --v 5.2", false), Some("v5"));
        assert_eq!(upscaler_version("fox --v 4", false), None);
        assert_eq!(with_zoom("fox --ar 1:1", "2"), "fox --ar 1:1 --zoom 2");
        assert_eq!(
            with_zoom("fox --zoom 1.2 --ar 1:1", "1.5"),
            "fox --ar 1:1 --zoom 1.5"
        );
    }
}
