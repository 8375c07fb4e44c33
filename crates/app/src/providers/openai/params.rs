//! The image parameters of the OpenAI Images API, per model family, written once: the
//! provider checks a request with them before anything is written or sent, and the simulator
//! refuses with the same rules what the service would refuse.
//!
//! - GPT image models with free sizes (`gpt-image-2…`): `WxH` with both edges multiples of
//!   16, at most 3840, a ratio within 3:1, and 655 360 to 8 294 400 pixels; no transparent
//!   background.
//! - the other GPT image models (`gpt-image-1`, `-1-mini`, `-1.5`, `chatgpt-image-latest`):
//!   1024×1024, 1536×1024, 1024×1536 or `auto`.
//! - `dall-e-3`: 1024×1024, 1792×1024, 1024×1792; one image; quality `standard` or `hd`;
//!   `style`; URL or base64 answers.
//! - `dall-e-2`: 256², 512², 1024²; quality `standard`; URL or base64 answers.
//! - any other name (a compatible service's own model): the shared enumerations only, and
//!   any `WxH` whose edges are multiples of 16 within 16–4096.
//!
//! GPT image models always answer in base64, and only they stream (`stream`,
//! `partial_images` 0–3), take `background`, `output_format`, `output_compression` and
//! `moderation`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::Parameters;

/// Images one request may ask for.
pub const MAX_N: u8 = 10;

/// Which rules a model follows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    /// GPT image models that take free `WxH` sizes.
    GptImageFree,
    /// GPT image models with three fixed sizes.
    GptImage,
    DallE3,
    DallE2,
    /// A model of an OpenAI-compatible service.
    Compatible,
}

impl Family {
    pub fn of(model: &str) -> Self {
        if model.starts_with("gpt-image-2") {
            Self::GptImageFree
        } else if model.starts_with("gpt-image-") || model == "chatgpt-image-latest" {
            Self::GptImage
        } else if model == "dall-e-3" {
            Self::DallE3
        } else if model == "dall-e-2" {
            Self::DallE2
        } else {
            Self::Compatible
        }
    }

    fn gpt(self) -> bool {
        matches!(self, Self::GptImageFree | Self::GptImage)
    }

    /// The longest prompt the model takes, in characters.
    fn max_prompt_chars(self) -> usize {
        match self {
            Self::DallE2 => 1000,
            Self::DallE3 => 4000,
            _ => 32_000,
        }
    }
}

/// A request's body for `/v1/images/generations` (and the text fields of an edit), checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageRequest {
    pub model: String,
    pub prompt: String,
    pub n: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_compression: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moderation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_images: Option<u8>,
}

/// A refusal: the parameter it is about (OpenAI's `param`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub param: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn refuse<T>(param: &str, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        param: param.to_owned(),
        message: message.into(),
    })
}

/// The parameters Atelier passes through, by their API names. `inputs` and `dimensions` are
/// /blend's (the images it edits and the shape it asks for).
const KNOWN: [&str; 14] = [
    "model",
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "style",
    "response_format",
    "stream",
    "partial_images",
    "inputs",
    "dimensions",
];

/// Whether `name` is a parameter of the Images API a request may give (not /blend's own).
pub fn takes(name: &str) -> bool {
    KNOWN[..12].contains(&name)
}

/// Reads one field of a JSON body (or of a generation's parameters) as text.
fn text(body: &Map<String, Value>, name: &str) -> Result<Option<String>, Refusal> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => refuse(name, format!("{name} must be a string, not {other}")),
    }
}

/// Reads a whole number, given as a number or as digits (`--param n=4` from a shell).
fn number(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, Refusal> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) => Ok(Some(v)),
            None => refuse(name, format!("{name} must be a whole number, not {n}")),
        },
        Some(Value::String(s)) => match s.trim().parse() {
            Ok(v) => Ok(Some(v)),
            Err(_) => refuse(name, format!("{name} must be a whole number, not {s:?}")),
        },
        Some(other) => refuse(name, format!("{name} must be a whole number, not {other}")),
    }
}

fn flag(body: &Map<String, Value>, name: &str) -> Result<bool, Refusal> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => refuse(name, format!("{name} must be true or false, not {other}")),
    }
}

fn one_of(name: &str, value: Option<String>, allowed: &[&str]) -> Result<Option<String>, Refusal> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => refuse(
            name,
            format!(
                "Invalid value for '{name}': {v:?}. Supported values are: {}.",
                allowed
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        other => Ok(other),
    }
}

/// `WxH` as two numbers.
pub fn parse_size(size: &str) -> Option<(u32, u32)> {
    let (w, h) = size.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(w) || !digits(h) {
        return None;
    }
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// Checks a size against the model's rules.
pub fn check_size(family: Family, size: &str) -> Result<(), Refusal> {
    let fixed = |allowed: &[&str]| one_of("size", Some(size.to_owned()), allowed).map(|_| ());
    match family {
        Family::DallE2 => fixed(&["256x256", "512x512", "1024x1024"]),
        Family::DallE3 => fixed(&["1024x1024", "1792x1024", "1024x1792"]),
        Family::GptImage => fixed(&["1024x1024", "1536x1024", "1024x1536", "auto"]),
        Family::GptImageFree | Family::Compatible if size == "auto" => Ok(()),
        Family::GptImageFree => {
            let Some((w, h)) = parse_size(size) else {
                return refuse(
                    "size",
                    format!(
                        "Invalid size {size:?}: expected WIDTHxHEIGHT such as 1536x864, or auto."
                    ),
                );
            };
            if w % 16 != 0 || h % 16 != 0 {
                return refuse(
                    "size",
                    format!(
                        "Invalid size {size:?}: width and height must both be multiples of 16."
                    ),
                );
            }
            if w.max(h) > 3840 {
                return refuse(
                    "size",
                    format!("Invalid size {size:?}: the longest edge may be at most 3840 pixels."),
                );
            }
            if w.max(h) > 3 * w.min(h) {
                return refuse(
                    "size",
                    format!("Invalid size {size:?}: the aspect ratio must be between 1:3 and 3:1."),
                );
            }
            let pixels = u64::from(w) * u64::from(h);
            if !(655_360..=8_294_400).contains(&pixels) {
                return refuse(
                    "size",
                    format!(
                        "Invalid size {size:?}: {pixels} pixels; the image must have between 655360 and 8294400 pixels."
                    ),
                );
            }
            Ok(())
        }
        Family::Compatible => match parse_size(size) {
            Some((w, h))
                if w % 16 == 0
                    && h % 16 == 0
                    && (16..=4096).contains(&w)
                    && (16..=4096).contains(&h) =>
            {
                Ok(())
            }
            _ => refuse(
                "size",
                format!(
                    "Invalid size {size:?}: expected WIDTHxHEIGHT, multiples of 16 from 16 to 4096, or auto."
                ),
            ),
        },
    }
}

/// The size /blend's `dimensions` ask for, for the model.
fn blend_size(family: Family, dimensions: &str) -> Option<&'static str> {
    let (square, landscape, portrait) = match family {
        Family::DallE2 => ("1024x1024", "1024x1024", "1024x1024"),
        Family::DallE3 => ("1024x1024", "1792x1024", "1024x1792"),
        _ => ("1024x1024", "1536x1024", "1024x1536"),
    };
    match dimensions {
        "square" => Some(square),
        "landscape" => Some(landscape),
        "portrait" => Some(portrait),
        _ => None,
    }
}

/// Checks a request body as the service does (field by field, the first problem refused) and
/// returns it whole. `body` holds the API's fields; `prompt` is checked against the model's
/// length.
pub fn check_body(body: &Map<String, Value>, prompt: &str) -> Result<ImageRequest, Refusal> {
    let model = text(body, "model")?.unwrap_or_else(|| "dall-e-2".into());
    let family = Family::of(&model);
    if prompt.trim().is_empty() {
        return refuse("prompt", "Invalid prompt: the prompt must not be empty.");
    }
    let chars = prompt.chars().count();
    if chars > family.max_prompt_chars() {
        return refuse(
            "prompt",
            format!(
                "Invalid prompt: {chars} characters; {model} takes at most {}.",
                family.max_prompt_chars()
            ),
        );
    }
    let n = number(body, "n")?.unwrap_or(1);
    if !(1..=i64::from(MAX_N)).contains(&n) {
        return refuse(
            "n",
            format!("Invalid 'n': {n}. Expected a value between 1 and {MAX_N}."),
        );
    }
    if family == Family::DallE3 && n != 1 {
        return refuse(
            "n",
            "Invalid 'n': dall-e-3 makes one image per request (n=1).",
        );
    }
    let size = text(body, "size")?;
    if let Some(size) = &size {
        check_size(family, size)?;
    }
    let quality = one_of(
        "quality",
        text(body, "quality")?,
        match family {
            Family::GptImage | Family::GptImageFree => &["low", "medium", "high", "auto"],
            Family::DallE3 => &["standard", "hd", "auto"],
            Family::DallE2 => &["standard", "auto"],
            Family::Compatible => &["standard", "hd", "low", "medium", "high", "auto"],
        },
    )?;
    let only_gpt = |name: &str, value: &Option<String>| -> Result<(), Refusal> {
        if value.is_some() && matches!(family, Family::DallE2 | Family::DallE3) {
            return refuse(
                name,
                format!("'{name}' is not supported by {model}; it is for the GPT image models."),
            );
        }
        Ok(())
    };
    let background = one_of(
        "background",
        text(body, "background")?,
        &["transparent", "opaque", "auto"],
    )?;
    only_gpt("background", &background)?;
    if family == Family::GptImageFree && background.as_deref() == Some("transparent") {
        return refuse(
            "background",
            format!("{model} does not support transparent backgrounds; use opaque or auto."),
        );
    }
    let output_format = one_of(
        "output_format",
        text(body, "output_format")?,
        &["png", "jpeg", "webp"],
    )?;
    only_gpt("output_format", &output_format)?;
    if background.as_deref() == Some("transparent") && output_format.as_deref() == Some("jpeg") {
        return refuse(
            "output_format",
            "A transparent background needs an output format that keeps it: png or webp.",
        );
    }
    let output_compression = match number(body, "output_compression")? {
        None => None,
        Some(c) if (0..=100).contains(&c) => Some(c as u8),
        Some(c) => {
            return refuse(
                "output_compression",
                format!("Invalid 'output_compression': {c}. Expected a value between 0 and 100."),
            );
        }
    };
    if output_compression.is_some() {
        only_gpt("output_compression", &Some(String::new()))?;
        if !matches!(output_format.as_deref(), Some("jpeg" | "webp")) {
            return refuse(
                "output_compression",
                "'output_compression' applies only to the jpeg and webp output formats.",
            );
        }
    }
    let moderation = one_of("moderation", text(body, "moderation")?, &["low", "auto"])?;
    only_gpt("moderation", &moderation)?;
    let style = one_of("style", text(body, "style")?, &["vivid", "natural"])?;
    if style.is_some() && family != Family::DallE3 && family != Family::Compatible {
        return refuse(
            "style",
            format!("'style' is supported by dall-e-3 only, not {model}."),
        );
    }
    let response_format = one_of(
        "response_format",
        text(body, "response_format")?,
        &["url", "b64_json"],
    )?;
    if response_format.is_some() && family.gpt() {
        return refuse(
            "response_format",
            format!(
                "'response_format' is not supported by {model}, which always answers in base64."
            ),
        );
    }
    let stream = flag(body, "stream")?;
    if stream && matches!(family, Family::DallE2 | Family::DallE3) {
        return refuse("stream", format!("Streaming is not supported by {model}."));
    }
    let partial_images = match number(body, "partial_images")? {
        None => None,
        Some(p) if (0..=3).contains(&p) => Some(p as u8),
        Some(p) => {
            return refuse(
                "partial_images",
                format!("Invalid 'partial_images': {p}. Expected a value between 0 and 3."),
            );
        }
    };
    if partial_images.is_some() && !stream {
        return refuse("partial_images", "'partial_images' needs 'stream': true.");
    }
    Ok(ImageRequest {
        model,
        prompt: prompt.to_owned(),
        n: n as u8,
        size,
        quality,
        background,
        output_format,
        output_compression,
        moderation,
        style,
        response_format,
        stream,
        partial_images,
    })
}

/// The request a generation's parameters make, with the configured model and streaming as
/// defaults; refused in one line naming the parameter. What OpenAI has no word for (a seed, an
/// aspect ratio, Midjourney's `--` parameters) is refused rather than dropped.
pub fn request(
    prompt: &str,
    parameters: &Parameters,
    default_model: &str,
    default_stream: Option<u8>,
) -> Result<ImageRequest, String> {
    if parameters.seed.is_some() {
        return Err("OpenAI image models take no seed; leave --seed out".into());
    }
    if let Some(ar) = &parameters.aspect_ratio {
        return Err(format!(
            "OpenAI image models take no aspect ratio ({ar}); give size=WIDTHxHEIGHT instead"
        ));
    }
    if let Some(name) = parameters
        .extra
        .keys()
        .find(|k| !KNOWN.contains(&k.as_str()))
    {
        return Err(format!(
            "{name:?} is not an OpenAI image parameter; the parameters are {}",
            KNOWN[..12].join(", ")
        ));
    }
    let mut body = parameters.extra.clone();
    body.remove("inputs");
    let dimensions = body.remove("dimensions");
    body.entry("model")
        .or_insert_with(|| Value::String(default_model.to_owned()));
    let model = text(&body, "model")
        .map_err(|r| r.message)?
        .unwrap_or_default();
    let family = Family::of(&model);
    if let (Some(Value::String(d)), false) = (&dimensions, body.contains_key("size"))
        && let Some(size) = blend_size(family, d)
    {
        body.insert("size".into(), Value::String(size.into()));
    }
    if let Some(partials) = default_stream
        && family.gpt()
        && !body.contains_key("stream")
    {
        body.insert("stream".into(), Value::Bool(true));
        body.entry("partial_images")
            .or_insert_with(|| Value::from(partials));
    }
    check_body(&body, prompt).map_err(|r| match r.param.as_str() {
        "prompt" => r.message,
        param => format!("{param}: {}", r.message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn free_sizes_follow_the_edge_ratio_and_pixel_rules() {
        let f = Family::GptImageFree;
        for ok in [
            "1536x864",
            "1024x1024",
            "3840x2160",
            "2160x3840",
            "1024x640",
            "auto",
        ] {
            assert!(check_size(f, ok).is_ok(), "{ok}");
        }
        let why = |s| check_size(f, s).unwrap_err().message;
        assert!(why("1000x1000").contains("multiples of 16"));
        assert!(why("3856x2160").contains("3840"));
        assert!(why("3072x1008").contains("1:3 and 3:1"));
        assert!(why("1008x640").contains("655360"));
        assert!(why("3840x2176").contains("8294400"));
        assert!(why("wide").contains("WIDTHxHEIGHT"));
        assert!(why("1024x-16").contains("WIDTHxHEIGHT"));
    }

    #[test]
    fn fixed_sizes_per_model() {
        assert!(check_size(Family::GptImage, "1536x1024").is_ok());
        assert!(check_size(Family::GptImage, "1536x864").is_err());
        assert!(check_size(Family::DallE3, "1792x1024").is_ok());
        assert!(check_size(Family::DallE3, "512x512").is_err());
        assert!(check_size(Family::DallE2, "256x256").is_ok());
        assert!(check_size(Family::DallE2, "auto").is_err());
    }

    #[test]
    fn each_rule_names_its_parameter() {
        let param = |v: Value| check_body(&body(&v), "a fox").unwrap_err().param;
        assert_eq!(param(json!({"model": "gpt-image-1", "n": 11})), "n");
        assert_eq!(param(json!({"model": "dall-e-3", "n": 2})), "n");
        assert_eq!(
            param(json!({"model": "gpt-image-1", "quality": "hd"})),
            "quality"
        );
        assert_eq!(
            param(json!({"model": "dall-e-2", "background": "opaque"})),
            "background"
        );
        assert_eq!(
            param(json!({"model": "gpt-image-2", "background": "transparent"})),
            "background"
        );
        assert_eq!(
            param(
                json!({"model": "gpt-image-1", "background": "transparent", "output_format": "jpeg"})
            ),
            "output_format"
        );
        assert_eq!(
            param(json!({"model": "gpt-image-1", "output_compression": 50})),
            "output_compression"
        );
        assert_eq!(
            param(
                json!({"model": "gpt-image-1", "output_format": "webp", "output_compression": 101})
            ),
            "output_compression"
        );
        assert_eq!(
            param(json!({"model": "gpt-image-1", "moderation": "none"})),
            "moderation"
        );
        assert_eq!(
            param(json!({"model": "gpt-image-1", "response_format": "url"})),
            "response_format"
        );
        assert_eq!(
            param(json!({"model": "dall-e-3", "stream": true})),
            "stream"
        );
        assert_eq!(
            param(json!({"model": "gpt-image-1", "stream": true, "partial_images": 4})),
            "partial_images"
        );
        assert_eq!(
            param(json!({"model": "gpt-image-1", "style": "vivid"})),
            "style"
        );
        let long = "x".repeat(1001);
        assert_eq!(
            check_body(&body(&json!({"model": "dall-e-2"})), &long)
                .unwrap_err()
                .param,
            "prompt"
        );
    }

    #[test]
    fn a_full_request_passes_as_given() {
        let r = check_body(
            &body(
                &json!({"model": "gpt-image-1", "n": "4", "size": "1024x1536", "quality": "low",
                "background": "transparent", "output_format": "webp", "output_compression": 80,
                "moderation": "low", "stream": true, "partial_images": 2}),
            ),
            "a fox",
        )
        .unwrap();
        assert_eq!(
            (r.n, r.partial_images, r.output_compression),
            (4, Some(2), Some(80))
        );
        let sent = serde_json::to_value(&r).unwrap();
        assert_eq!(sent["stream"], true);
        assert!(sent.get("style").is_none());
    }

    #[test]
    fn what_openai_has_no_word_for_is_refused() {
        let mut p = Parameters::default();
        assert!(request("a fox", &p, "gpt-image-1", None).is_ok());
        p.seed = Some(3);
        assert!(
            request("a fox", &p, "gpt-image-1", None)
                .unwrap_err()
                .contains("seed")
        );
        p.seed = None;
        p.extra.insert("stylize".into(), json!(250));
        assert!(
            request("a fox", &p, "gpt-image-1", None)
                .unwrap_err()
                .contains("stylize")
        );
        p.extra.clear();
        p.extra.insert("size".into(), json!("999x999"));
        let why = request("a fox", &p, "gpt-image-2", None).unwrap_err();
        assert!(why.starts_with("size: "), "{why}");
    }

    #[test]
    fn configured_streaming_applies_to_gpt_models_only() {
        let p = Parameters::default();
        let gpt = request("a fox", &p, "gpt-image-1", Some(2)).unwrap();
        assert!(gpt.stream);
        assert_eq!(gpt.partial_images, Some(2));
        let dalle = request("a fox", &p, "dall-e-3", Some(2)).unwrap();
        assert!(!dalle.stream);
    }
}
