//! The Amethyst parameters: the inputs Replicate's common image models share (and the few
//! video models add), by their Replicate input names, with their ranges, written once. The
//! provider builds a prediction's `input` with them before anything is written or sent, and
//! the simulator refuses with the same rules what a model's schema would refuse (422).
//!
//! - `negative_prompt` (text; also the request's negative prompt or `--no`);
//! - `aspect_ratio` (`1:1`, `16:9`, `21:9`, `3:2`, `2:3`, `4:5`, `5:4`, `3:4`, `4:3`, `9:16`,
//!   `9:21`; also `--ar`);
//! - `prompt_strength` 0.1–1.0, `num_inference_steps` (or `steps`) 1–100, `guidance` or
//!   `guidance_scale` 1–20, `num_outputs` 1–4, `seed` 0–4294967295 (also `--seed`);
//! - `output_format` `webp`, `png` or `jpg`; `output_quality` 1–100;
//!   `disable_safety_checker` true or false;
//! - `LoRA` weights: `lora_weights` (an `owner/name` model, a Hugging Face path or an http(s) URL)
//!   with `lora_scale` −1–3, and a second one as `extra_lora` with `extra_lora_scale`;
//! - video models only: `num_frames` 1–240 and `frames_per_second` 1–60, and one output.

use serde_json::{Map, Value};

/// What a model alias makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Image,
    Video,
}

/// The most outputs one prediction makes.
pub const MAX_OUTPUTS: u8 = 4;

/// The aspect ratios the models take.
pub const ASPECT_RATIOS: [&str; 11] = [
    "1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21",
];

/// A refusal: the input it is about (as `input.NAME`, Replicate's `field`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn refuse<T>(field: &str, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        field: field.to_owned(),
        message: message.into(),
    })
}

/// How one input is read and bounded.
#[derive(Clone, Copy)]
enum Rule {
    Text,
    OneOf(&'static [&'static str]),
    Whole(i64, i64),
    Real(f64, f64),
    Flag,
    Lora,
}

/// Every input, by name, and which kinds take it.
const TABLE: [(&str, Rule, bool, bool); 16] = [
    // (name, rule, image models, video models)
    ("prompt", Rule::Text, true, true),
    ("negative_prompt", Rule::Text, true, true),
    ("aspect_ratio", Rule::OneOf(&ASPECT_RATIOS), true, true),
    ("prompt_strength", Rule::Real(0.1, 1.0), true, false),
    ("num_inference_steps", Rule::Whole(1, 100), true, true),
    ("guidance", Rule::Real(1.0, 20.0), true, true),
    ("guidance_scale", Rule::Real(1.0, 20.0), true, true),
    (
        "num_outputs",
        Rule::Whole(1, MAX_OUTPUTS as i64),
        true,
        false,
    ),
    ("seed", Rule::Whole(0, u32::MAX as i64), true, true),
    (
        "output_format",
        Rule::OneOf(&["webp", "png", "jpg"]),
        true,
        false,
    ),
    ("output_quality", Rule::Whole(1, 100), true, false),
    ("disable_safety_checker", Rule::Flag, true, true),
    ("lora_weights", Rule::Lora, true, false),
    ("lora_scale", Rule::Real(-1.0, 3.0), true, false),
    ("extra_lora", Rule::Lora, true, false),
    ("extra_lora_scale", Rule::Real(-1.0, 3.0), true, false),
];

/// The video models' own inputs.
const VIDEO: [(&str, Rule); 2] = [
    ("num_frames", Rule::Whole(1, 240)),
    ("frames_per_second", Rule::Whole(1, 60)),
];

/// Short names a user may give for an input.
const ALIASES: [(&str, &str); 1] = [("steps", "num_inference_steps")];

fn rule(name: &str, kind: Kind) -> Option<Rule> {
    if let Some((_, rule, image, video)) = TABLE.iter().find(|(n, ..)| *n == name) {
        return match kind {
            Kind::Image if *image => Some(*rule),
            Kind::Video if *video => Some(*rule),
            _ => None,
        };
    }
    if kind == Kind::Video {
        return VIDEO.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
    }
    None
}

/// The input names a kind of model takes, for messages.
pub fn names(kind: Kind) -> Vec<&'static str> {
    let mut names: Vec<&str> = TABLE
        .iter()
        .filter(|(_, _, image, video)| match kind {
            Kind::Image => *image,
            Kind::Video => *video,
        })
        .map(|(n, ..)| *n)
        .filter(|n| *n != "prompt")
        .collect();
    if kind == Kind::Video {
        names.extend(VIDEO.iter().map(|(n, _)| *n));
    }
    names
}

fn whole(field: &str, value: &Value) -> Result<i64, Refusal> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(v) => Ok(v),
            None => refuse(field, format!("must be a whole number, not {n}")),
        },
        Value::String(s) => match s.trim().parse() {
            Ok(v) => Ok(v),
            Err(_) => refuse(field, format!("must be a whole number, not {s:?}")),
        },
        other => refuse(field, format!("must be a whole number, not {other}")),
    }
}

fn real(field: &str, value: &Value) -> Result<f64, Refusal> {
    let v = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match v {
        Some(v) if v.is_finite() => Ok(v),
        _ => refuse(field, format!("must be a number, not {value}")),
    }
}

/// Whether `text` names `LoRA` weights the models load: an `owner/name` model (with an
/// optional `:version`), a Hugging Face path, or an http(s) URL.
fn lora(text: &str) -> bool {
    let text = text.trim();
    if text.starts_with("https://") || text.starts_with("http://") {
        return text.len() > 8 && !text.contains(char::is_whitespace);
    }
    let path = text.strip_prefix("huggingface.co/").unwrap_or(text);
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    };
    let parts: Vec<&str> = path.split('/').collect();
    (2..=4).contains(&parts.len()) && parts.iter().all(|p| word(p))
}

/// Checks one input and returns it as the API takes it.
fn checked(name: &str, value: &Value, rule: Rule) -> Result<Value, Refusal> {
    let field = format!("input.{name}");
    match rule {
        Rule::Text => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            other => refuse(&field, format!("must be text, not {other}")),
        },
        Rule::OneOf(allowed) => match value {
            Value::String(s) if allowed.contains(&s.as_str()) => Ok(value.clone()),
            other => refuse(
                &field,
                format!(
                    "{other} is not one of the allowed values: {}",
                    allowed.join(", ")
                ),
            ),
        },
        Rule::Whole(low, high) => {
            let v = whole(&field, value)?;
            if v < low {
                return refuse(&field, format!("must be greater than or equal to {low}"));
            }
            if v > high {
                return refuse(&field, format!("must be less than or equal to {high}"));
            }
            Ok(Value::from(v))
        }
        Rule::Real(low, high) => {
            let v = real(&field, value)?;
            if v < low {
                return refuse(&field, format!("must be greater than or equal to {low}"));
            }
            if v > high {
                return refuse(&field, format!("must be less than or equal to {high}"));
            }
            Ok(Value::from(v))
        }
        Rule::Flag => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            other => refuse(&field, format!("must be true or false, not {other}")),
        },
        Rule::Lora => match value {
            Value::String(s) if lora(s) => Ok(Value::String(s.trim().to_owned())),
            other => refuse(
                &field,
                format!(
                    "{other} names no LoRA weights: give an owner/name model, a huggingface.co/ path or an http(s) URL"
                ),
            ),
        },
    }
}

/// Checks a whole `input` as a model's schema does (every field known to the kind, each in
/// its range, the pairs that go together) and returns it with aliases resolved.
pub fn check_input(input: &Map<String, Value>, kind: Kind) -> Result<Map<String, Value>, Refusal> {
    let mut out = Map::new();
    for (given, value) in input {
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == given.as_str())
            .map_or(given.as_str(), |(_, name)| *name);
        if value.is_null() {
            continue;
        }
        let Some(rule) = rule(name, kind) else {
            let known = names(kind).join(", ");
            return refuse(
                &format!("input.{given}"),
                match kind {
                    Kind::Image => format!("is not an input of image models; they take {known}"),
                    Kind::Video => format!("is not an input of video models; they take {known}"),
                },
            );
        };
        if out.contains_key(name) {
            return refuse(
                &format!("input.{name}"),
                format!("is given twice (as {given} and {name})"),
            );
        }
        out.insert(name.to_owned(), checked(name, value, rule)?);
    }
    match out.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => {}
        _ => return refuse("input.prompt", "is required"),
    }
    if out.contains_key("guidance") && out.contains_key("guidance_scale") {
        return refuse(
            "input.guidance_scale",
            "give guidance or guidance_scale, not both",
        );
    }
    for (scale, weights) in [
        ("lora_scale", "lora_weights"),
        ("extra_lora_scale", "extra_lora"),
    ] {
        if out.contains_key(scale) && !out.contains_key(weights) {
            return refuse(
                &format!("input.{scale}"),
                format!("scales no LoRA: give {weights} too"),
            );
        }
    }
    if out.contains_key("extra_lora") && !out.contains_key("lora_weights") {
        return refuse(
            "input.extra_lora",
            "is a second LoRA: give lora_weights first",
        );
    }
    Ok(out)
}

/// The prediction input a generation asks for: the alias's `defaults`, then what the request
/// says (its seed, aspect ratio and negative prompt, then each `--param`), checked whole.
/// Refused in one line naming the input.
pub fn input(
    prompt: &str,
    negative_prompt: Option<&str>,
    parameters: &crate::domain::Parameters,
    defaults: &Map<String, Value>,
    kind: Kind,
) -> Result<Map<String, Value>, String> {
    let mut input = defaults.clone();
    input.insert("prompt".into(), Value::String(prompt.to_owned()));
    if let Some(seed) = parameters.seed {
        input.insert("seed".into(), Value::from(seed));
    }
    if let Some(ar) = &parameters.aspect_ratio {
        input.insert("aspect_ratio".into(), Value::String(ar.clone()));
    }
    if let Some(neg) = negative_prompt {
        input.insert("negative_prompt".into(), Value::String(neg.to_owned()));
    }
    for (name, value) in &parameters.extra {
        // `--no` written in the prompt is the negative prompt.
        let name = if name == "no" {
            "negative_prompt"
        } else {
            name.as_str()
        };
        if name == "prompt" {
            return Err("the prompt is the generation's own; it is not a parameter".into());
        }
        // A default given under its short name yields to the full name the request gives.
        for (alias, full) in ALIASES {
            if name == full {
                input.remove(alias);
            } else if name == alias {
                input.remove(full);
            }
        }
        input.insert(name.to_owned(), value.clone());
    }
    check_input(&input, kind).map_err(|r| r.to_string())
}

/// How many outputs an input asks for.
pub fn outputs(input: &Map<String, Value>) -> u8 {
    input
        .get("num_outputs")
        .and_then(Value::as_u64)
        .and_then(|n| u8::try_from(n).ok())
        .unwrap_or(1)
        .clamp(1, MAX_OUTPUTS)
}

/// Checks an alias's `defaults` on their own (at configuration time).
pub fn check_defaults(defaults: &Map<String, Value>, kind: Kind) -> Result<(), String> {
    if defaults.contains_key("prompt") {
        return Err("the prompt cannot have a default".into());
    }
    let mut input = defaults.clone();
    input.insert("prompt".into(), Value::String("x".into()));
    check_input(&input, kind)
        .map(|_| ())
        .map_err(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Parameters;
    use serde_json::json;

    fn field(v: &Value, kind: Kind) -> String {
        check_input(v.as_object().unwrap(), kind).unwrap_err().field
    }

    #[test]
    fn every_range_names_its_input() {
        let image = Kind::Image;
        for (v, f) in [
            (
                json!({"prompt": "x", "num_outputs": 5}),
                "input.num_outputs",
            ),
            (
                json!({"prompt": "x", "num_outputs": 0}),
                "input.num_outputs",
            ),
            (
                json!({"prompt": "x", "num_inference_steps": 101}),
                "input.num_inference_steps",
            ),
            (
                json!({"prompt": "x", "steps": 0}),
                "input.num_inference_steps",
            ),
            (json!({"prompt": "x", "guidance": 0.5}), "input.guidance"),
            (
                json!({"prompt": "x", "guidance_scale": 21}),
                "input.guidance_scale",
            ),
            (
                json!({"prompt": "x", "prompt_strength": 0.05}),
                "input.prompt_strength",
            ),
            (
                json!({"prompt": "x", "output_format": "gif"}),
                "input.output_format",
            ),
            (
                json!({"prompt": "x", "output_quality": 0}),
                "input.output_quality",
            ),
            (
                json!({"prompt": "x", "aspect_ratio": "7:5"}),
                "input.aspect_ratio",
            ),
            (json!({"prompt": "x", "seed": -1}), "input.seed"),
            (
                json!({"prompt": "x", "disable_safety_checker": "yes"}),
                "input.disable_safety_checker",
            ),
            (
                json!({"prompt": "x", "lora_weights": "not a lora"}),
                "input.lora_weights",
            ),
            (
                json!({"prompt": "x", "lora_scale": 0.5}),
                "input.lora_scale",
            ),
            (
                json!({"prompt": "x", "lora_weights": "a/b", "lora_scale": 4}),
                "input.lora_scale",
            ),
            (
                json!({"prompt": "x", "extra_lora": "a/b"}),
                "input.extra_lora",
            ),
            (json!({"prompt": "x", "stylize": 100}), "input.stylize"),
            (json!({"prompt": "x", "num_frames": 10}), "input.num_frames"),
            (json!({"prompt": " "}), "input.prompt"),
        ] {
            assert_eq!(field(&v, image), f, "{v}");
        }
        assert_eq!(
            field(&json!({"prompt": "x", "num_outputs": 2}), Kind::Video),
            "input.num_outputs"
        );
        assert_eq!(
            field(&json!({"prompt": "x", "num_frames": 241}), Kind::Video),
            "input.num_frames"
        );
    }

    #[test]
    fn a_full_input_passes_with_aliases_resolved() {
        let input = check_input(
            json!({"prompt": "a fox", "steps": "28", "guidance": "3.5", "num_outputs": 4,
                   "output_format": "jpg", "output_quality": 80, "seed": 7,
                   "disable_safety_checker": "true", "lora_weights": "fofr/flux-80s",
                   "lora_scale": 0.8, "extra_lora": "https://example.test/w.safetensors",
                   "extra_lora_scale": -0.5, "aspect_ratio": "16:9", "prompt_strength": 0.7})
            .as_object()
            .unwrap(),
            Kind::Image,
        )
        .unwrap();
        assert_eq!(input["num_inference_steps"], 28);
        assert_eq!(input["guidance"], 3.5);
        assert_eq!(input["disable_safety_checker"], true);
        assert_eq!(outputs(&input), 4);
    }

    #[test]
    fn the_request_overrides_the_defaults() {
        let defaults = json!({"num_inference_steps": 4, "output_format": "png"});
        let mut p = Parameters {
            seed: Some(9),
            aspect_ratio: Some("3:2".into()),
            ..Parameters::default()
        };
        p.extra.insert("steps".into(), json!(8));
        p.extra.insert("no".into(), json!("blur"));
        let input = input(
            "a fox",
            None,
            &p,
            defaults.as_object().unwrap(),
            Kind::Image,
        )
        .unwrap();
        assert_eq!(input["num_inference_steps"], 8);
        assert_eq!(input["seed"], 9);
        assert_eq!(input["aspect_ratio"], "3:2");
        assert_eq!(input["negative_prompt"], "blur");
        assert_eq!(input["output_format"], "png");
        p.aspect_ratio = Some("5:3".into());
        let why = super::input("a fox", None, &p, &Map::new(), Kind::Image).unwrap_err();
        assert!(why.starts_with("input.aspect_ratio"), "{why}");
        assert!(
            check_defaults(json!({"num_outputs": 9}).as_object().unwrap(), Kind::Image).is_err()
        );
        assert!(
            check_defaults(json!({"num_frames": 48}).as_object().unwrap(), Kind::Video).is_ok()
        );
    }
}
