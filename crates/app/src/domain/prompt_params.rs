//! Parameters written inside a prompt, Midjourney style: `a fox --ar 16:9 --stylize 250 --no cars`.
//!
//! They are the de-facto syntax of image prompts, so the catalogue keeps them as structured
//! parameters (aspect ratio, seed, stylize, chaos, version…) while the prompt text stays as the
//! user wrote it. Values a provider would refuse anyway are refused here, before anything is
//! written; names we do not know are kept as they are and left to the provider.

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

/// Long name of a parameter; Midjourney accepts several spellings.
fn long_name(name: &str) -> &str {
    match name {
        "aspect" | "ar" => "aspect_ratio",
        "v" | "version" => "version",
        "s" | "stylize" => "stylize",
        "c" | "chaos" => "chaos",
        "q" | "quality" => "quality",
        "w" | "weird" => "weird",
        "r" | "repeat" => "repeat",
        "iw" | "image_weight" => "image_weight",
        "sameseed" => "seed",
        other => other,
    }
}

/// Splits `prompt` into its text and parameters. `--` starts a parameter only at the
/// start of a word; the value is every following word up to the next parameter.
pub fn parse(prompt: &str) -> Result<(String, PromptParams), Invalid> {
    let mut text = Vec::new();
    let mut params = PromptParams::default();
    let mut current: Option<(String, Vec<&str>)> = None;
    for word in prompt.split_whitespace() {
        if let Some(name) = word.strip_prefix("--")
            && !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        {
            if let Some((n, v)) = current.take() {
                apply(&mut params, &n, &v)?;
            }
            current = Some((name.to_ascii_lowercase(), Vec::new()));
        } else if let Some((_, values)) = current.as_mut() {
            values.push(word);
        } else {
            text.push(word);
        }
    }
    if let Some((n, v)) = current.take() {
        apply(&mut params, &n, &v)?;
    }
    Ok((text.join(" "), params))
}

fn apply(params: &mut PromptParams, name: &str, values: &[&str]) -> Result<(), Invalid> {
    let value = values.join(" ");
    let bad = |why: &str| Invalid::Other(format!("invalid --{name} {value:?}: {why}"));
    let number = |lo: f64, hi: f64| -> Result<Value, Invalid> {
        let v: f64 = value.parse().map_err(|_| bad("expected a number"))?;
        if !(lo..=hi).contains(&v) {
            return Err(bad(&format!("expected {lo} to {hi}")));
        }
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, |n| {
            if v.fract() == 0.0 {
                Value::from(v as i64)
            } else {
                Value::Number(n)
            }
        }))
    };
    let long = long_name(name);
    let duplicate = || Invalid::Other(format!("--{name} is given twice"));
    match long {
        "seed" => {
            let seed = value
                .parse::<u32>()
                .map_err(|_| bad("expected a whole number from 0 to 4294967295"))?;
            if params.seed.replace(seed).is_some() {
                return Err(duplicate());
            }
        }
        "aspect_ratio" => {
            let ok = value.split_once(':').is_some_and(|(w, h)| {
                matches!((w.parse::<u32>(), h.parse::<u32>()), (Ok(w), Ok(h)) if w > 0 && h > 0)
            });
            if !ok {
                return Err(bad("expected W:H such as 16:9"));
            }
            if params.aspect_ratio.replace(value.clone()).is_some() {
                return Err(duplicate());
            }
        }
        "no" => {
            if value.is_empty() {
                return Err(bad("expected what to leave out"));
            }
            if params.no.replace(value.clone()).is_some() {
                return Err(duplicate());
            }
        }
        _ => {
            let v = match long {
                "stylize" => number(0.0, 1000.0)?,
                "chaos" => number(0.0, 100.0)?,
                "weird" => number(0.0, 3000.0)?,
                "quality" => number(0.0, 4.0)?,
                "stop" => number(10.0, 100.0)?,
                "repeat" => number(1.0, 40.0)?,
                _ if value.is_empty() => Value::Bool(true),
                _ => Value::String(value.clone()),
            };
            if params.extra.insert(long.to_owned(), v).is_some() {
                return Err(duplicate());
            }
        }
    }
    Ok(())
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
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
