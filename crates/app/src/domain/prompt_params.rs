//! Parameters written inside a prompt, Midjourney style: `a fox --ar 16:9 --stylize 250 --no cars`.
//!
//! They are the de-facto syntax of image prompts, so the catalogue keeps them as structured
//! parameters (aspect ratio, seed, stylize, chaos, version…) while the prompt text stays as the
//! user wrote it. Values no Midjourney model accepts are refused here, before anything is
//! written; names the table does not know are kept as they are and left to the provider.

use atelier_midjourney_params::{self as table, Value as Accepted};
use serde_json::{Map, Value};

use super::request::Invalid;

/// Inline parameters, in the order written, under their long names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromptParams {
    pub seed: Option<u32>,
    pub aspect_ratio: Option<String>,
    /// The `--no` text, Midjourney's negative prompt.
    pub no: Option<String>,
    /// Everything else: `version`, `niji`, `stylize`, `chaos`, `style`, `quality`, `tile`…
    /// (`true` for flags without a value).
    pub extra: Map<String, Value>,
}

/// Splits `prompt` into its text and parameters, with the rules of Midjourney's table
/// (`atelier-midjourney-params`) that hold whatever the provider: a parameter the table knows
/// must have a value some model version accepts (`--q 3`, `--v 99`, `--ar 99999:1` are refused
/// for every provider: the catalogue would keep a parameter nothing can honour), and none is
/// given twice. Names the table does not know are kept as written, and which version takes
/// which parameter (`--stop` with `--v 7`) is left to the provider: the Midjourney provider
/// checks the whole table before anything is written, the sandbox draws whatever it is given.
pub fn parse(prompt: &str) -> Result<(String, PromptParams), Invalid> {
    let (text, read) = table::read(prompt).map_err(Invalid::Parameter)?;
    let mut params = PromptParams::default();
    for param in read {
        match (param.key.as_str(), param.value) {
            ("seed", Accepted::Number(seed)) => params.seed = Some(seed as u32),
            ("aspect_ratio", Accepted::Text(ratio)) => params.aspect_ratio = Some(ratio),
            ("no", Accepted::Text(no)) => params.no = Some(no),
            (_, value) => {
                let json = match value {
                    Accepted::Flag => Value::Bool(true),
                    Accepted::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => {
                        Value::from(n as i64)
                    }
                    Accepted::Number(n) => {
                        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
                    }
                    Accepted::Text(text) => Value::String(text),
                };
                params.extra.insert(param.key, json);
            }
        }
    }
    Ok((text.join(" "), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_parameters() {
        let (text, p) =
            parse("a red fox --ar 16:9 --s 250 --v 7 --no cars, trees --tile --seed 42").unwrap();
        assert_eq!(text, "a red fox");
        assert_eq!(p.aspect_ratio.as_deref(), Some("16:9"));
        assert_eq!(p.seed, Some(42));
        assert_eq!(p.no.as_deref(), Some("cars, trees"));
        assert_eq!(p.extra["stylize"], 250);
        assert_eq!(p.extra["version"], "7");
        assert_eq!(p.extra["tile"], true);
    }

    #[test]
    fn version_rules_are_left_to_the_provider() {
        let (text, p) = parse("x --stop 50 --v 7 --q .5 --steps 30").unwrap();
        assert_eq!(text, "x");
        assert_eq!(p.extra["stop"], 50);
        assert_eq!(p.extra["quality"], 0.5);
        assert_eq!(p.extra["steps"], "30");
        assert_eq!(
            parse("x --q 3").unwrap_err().to_string(),
            "invalid parameter: --q 3: expected 1, 2 or 4"
        );
    }

    #[test]
    fn plain_prompts_have_no_parameters() {
        let (text, p) = parse("a well-lit room -- with dashes --").unwrap();
        assert_eq!(text, "a well-lit room -- with dashes --");
        assert_eq!(p, PromptParams::default());
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "x --ar 16",
            "x --ar 0:9",
            "x --seed -1",
            "x --seed 4294967296",
            "x --stylize 5000",
            "x --chaos lots",
            "x --ar 1:1 --aspect 2:3",
            "x --no",
            "x --ar 99999:1",
            "x --ar 1.5:1",
            "x --v 99",
            "x --q 3",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
