//! A request for a generation, checked before anything is written.

use serde::{Deserialize, Serialize};

use super::{Category, ImageId};

/// Longest prompt accepted, in characters (Midjourney's own limit is of this order).
pub const MAX_PROMPT_CHARS: usize = 6000;
/// Most image prompts one request carries: as many pictures as /blend takes, which keeps the
/// uploads of one /imagine bounded (Midjourney states no lower limit of its own).
pub const MAX_IMAGE_PROMPTS: usize = 5;
/// Keys of the stored parameters that the engine sets itself: the pictures a job works from
/// (and whether the last is a video's end frame) and the action it plays. A caller's provider
/// settings may not name them.
const RESERVED_PARAMETERS: [&str; 3] = ["inputs", "end_frame", "action"];
const MAX_SUBJECT_CHARS: usize = 200;
/// Longest caller's reference kept with a generation, in characters (the midjourney-proxy's
/// own bound on `state`).
pub const MAX_CLIENT_REFERENCE_CHARS: usize = 255;

/// Why a request was refused. Each message is one line meant for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt is {0} characters long; the limit is {MAX_PROMPT_CHARS}")]
    PromptTooLong(usize),
    #[error("the prompt contains a control character (code {0:#04x})")]
    ControlCharacter(u32),
    #[error("the subject is empty")]
    EmptySubject,
    #[error("the subject is {0} characters long; the limit is {MAX_SUBJECT_CHARS}")]
    SubjectTooLong(usize),
    #[error("the subject contains a control character (code {0:#04x})")]
    SubjectControlCharacter(u32),
    #[error(
        "the client reference is {0} characters long; the limit is {MAX_CLIENT_REFERENCE_CHARS}"
    )]
    ClientReferenceTooLong(usize),
    #[error("the client reference contains a control character (code {0:#04x})")]
    ClientReferenceControlCharacter(u32),
    #[error("invalid --upscale {0:?}: expected all, none, or upscale numbers 1-4 such as 1,3")]
    Upscale(String),
    /// A prompt parameter Midjourney's table refuses (`--ar 99999:1`, `--q 3`).
    #[error("invalid parameter: {0}")]
    Parameter(atelier_midjourney_params::Refusal),
    #[error("{0}")]
    Other(String),
}

impl Invalid {
    /// Whether the refusal is about the prompt's text (empty, too long, a control character,
    /// or a parameter written in it), so a front-end that names the field at fault can name
    /// the prompt.
    pub fn is_about_prompt(&self) -> bool {
        matches!(
            self,
            Self::EmptyPrompt
                | Self::PromptTooLong(_)
                | Self::ControlCharacter(_)
                | Self::Parameter(_)
        )
    }
}

/// Which upscales to store automatically after the grid.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpscaleSelection(Vec<u8>);

impl UpscaleSelection {
    pub fn all() -> Self {
        Self(vec![1, 2, 3, 4])
    }

    pub fn none() -> Self {
        Self(Vec::new())
    }

    pub fn from_indices(indices: &[u8]) -> Result<Self, Invalid> {
        let mut v = indices.to_vec();
        if v.iter().any(|i| !(1..=4).contains(i)) {
            return Err(Invalid::Upscale(format!("{indices:?}")));
        }
        v.sort_unstable();
        v.dedup();
        Ok(Self(v))
    }

    /// `all`, `none`, or a comma-separated list of 1–4.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s.trim() {
            "all" => Ok(Self::all()),
            "none" => Ok(Self::none()),
            list => {
                let bad = || Invalid::Upscale(s.to_owned());
                let parsed: Vec<u8> = list
                    .split(',')
                    .map(|p| p.trim().parse::<u8>().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                if parsed.is_empty() {
                    return Err(bad());
                }
                Self::from_indices(&parsed).map_err(|_| bad())
            }
        }
    }

    pub fn indices(&self) -> &[u8] {
        &self.0
    }

    pub fn count(&self) -> u8 {
        self.0.len() as u8
    }
}

/// Provider parameters, kept as JSON in the catalogue.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct Parameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<String>,
    /// Upscales stored automatically after the grid.
    #[serde(default)]
    pub upscale: Vec<u8>,
    /// Provider-specific parameters (stylize, chaos, style, version, steps…).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A generation as the user asked for it.
#[derive(Clone, PartialEq, Debug)]
pub struct GenerationRequest {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    /// `None`: the configured default provider.
    pub provider: Option<String>,
    pub category: Option<Category>,
    pub subject: Option<String>,
    pub upscale: UpscaleSelection,
    pub seed: Option<u32>,
    pub aspect_ratio: Option<String>,
    /// Provider settings that are not prompt parameters (e.g. `bot = "niji"`).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The caller's own reference, kept with the generation and shown back.
    pub client_reference: Option<String>,
    /// Stored pictures the generation starts from (image prompts), in order; kept with the
    /// parameters as `inputs`, like /blend's pictures.
    pub image_prompts: Vec<ImageId>,
    /// A stored picture a video ends on (Midjourney's `--end URL`): kept last in `inputs`,
    /// with `end_frame` set.
    pub end_frame: Option<ImageId>,
}

impl GenerationRequest {
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: None,
            provider: None,
            category: None,
            subject: None,
            upscale: UpscaleSelection::all(),
            seed: None,
            aspect_ratio: None,
            extra: serde_json::Map::new(),
            client_reference: None,
            image_prompts: Vec::new(),
            end_frame: None,
        }
    }

    /// The parameters to keep in the catalogue: those written in the prompt merged with the
    /// request's own fields (which must not contradict them).
    pub fn parameters(&self) -> Result<Parameters, Invalid> {
        let (_, inline) = super::prompt_params::parse(&self.prompt)?;
        let merge = |flag: Option<String>, inline: Option<String>, name: &str| match (flag, inline)
        {
            (Some(a), Some(b)) if a != b => Err(Invalid::Other(format!(
                "--{name} {a} contradicts --{name} {b} in the prompt"
            ))),
            (a, b) => Ok(a.or(b)),
        };
        let seed = merge(
            self.seed.map(|s| s.to_string()),
            inline.seed.map(|s| s.to_string()),
            "seed",
        )?
        .and_then(|s| s.parse().ok());
        let aspect_ratio = merge(self.aspect_ratio.clone(), inline.aspect_ratio, "ar")?;
        let mut extra = inline.extra;
        if let Some(no) = inline.no {
            extra.insert("no".into(), serde_json::Value::String(no));
        }
        for (k, v) in &self.extra {
            extra.insert(k.clone(), v.clone());
        }
        let pictures = self.pictures();
        if !pictures.is_empty() {
            let ids: Vec<String> = pictures.iter().map(ToString::to_string).collect();
            extra.insert("inputs".into(), serde_json::json!(ids));
        }
        if self.end_frame.is_some() {
            extra.insert("end_frame".into(), serde_json::Value::Bool(true));
        }
        Ok(Parameters {
            seed,
            aspect_ratio,
            upscale: self.upscale.indices().to_vec(),
            extra,
        })
    }

    /// The stored pictures the request names: its image prompts, then its end frame.
    pub fn pictures(&self) -> Vec<ImageId> {
        let mut all = self.image_prompts.clone();
        all.extend(self.end_frame);
        all
    }

    /// Checks and normalises the request (trims the prompt and subject).
    pub fn validated(mut self) -> Result<Self, Invalid> {
        self.prompt = check_prompt(&self.prompt)?;
        let (text, _) = super::prompt_params::parse(&self.prompt)?;
        // Zero-width and other invisible characters alone are no prompt either; with image
        // prompts, parameters alone are one (`--video --motion low` animates the picture).
        if atelier_midjourney_params::is_blank(&text) && self.image_prompts.is_empty() {
            return Err(Invalid::EmptyPrompt);
        }
        if let Some(ar) = self.aspect_ratio.take() {
            // The same rule as `--ar` written in the prompt, whichever way it comes.
            let ar = ar.trim();
            if ar.is_empty() || ar.contains(char::is_whitespace) {
                return Err(Invalid::Other(format!(
                    "aspect ratio {ar:?}: expected W:H such as 16:9"
                )));
            }
            let (_, params) = super::prompt_params::parse(&format!("x --ar {ar}"))?;
            self.aspect_ratio = params.aspect_ratio;
        }
        if let Some(neg) = self.negative_prompt.take() {
            let neg = neg.trim();
            if !neg.is_empty() {
                self.negative_prompt = Some(check_prompt(neg)?);
            }
        }
        if let Some(subject) = self.subject.take() {
            self.subject = Some(check_subject(&subject)?);
        }
        if let Some(reference) = self.client_reference.take() {
            self.client_reference = check_client_reference(&reference)?;
        }
        if let Some(key) = RESERVED_PARAMETERS
            .iter()
            .find(|k| self.extra.contains_key(**k))
        {
            return Err(Invalid::Other(format!(
                "parameter {key:?} is set by the server, not by a request{}",
                if *key == "inputs" {
                    ": give pictures to start from as image prompts"
                } else {
                    ""
                }
            )));
        }
        if self.image_prompts.len() > MAX_IMAGE_PROMPTS {
            return Err(Invalid::Other(format!(
                "{} image prompts: the limit is {MAX_IMAGE_PROMPTS}",
                self.image_prompts.len()
            )));
        }
        Ok(self)
    }
}

/// A subject as stored: trimmed, not empty, short, without control characters.
pub fn check_subject(raw: &str) -> Result<String, Invalid> {
    let subject = raw.trim();
    if subject.is_empty() {
        return Err(Invalid::EmptySubject);
    }
    let n = subject.chars().count();
    if n > MAX_SUBJECT_CHARS {
        return Err(Invalid::SubjectTooLong(n));
    }
    if let Some(c) = subject.chars().find(|c| c.is_control()) {
        return Err(Invalid::SubjectControlCharacter(c as u32));
    }
    Ok(subject.to_owned())
}

/// A caller's reference as kept: exactly as given (it is the caller's, and comes back as it
/// went), at most [`MAX_CLIENT_REFERENCE_CHARS`] characters, without control characters; an
/// empty one is none.
pub fn check_client_reference(raw: &str) -> Result<Option<String>, Invalid> {
    if raw.is_empty() {
        return Ok(None);
    }
    let n = raw.chars().count();
    if n > MAX_CLIENT_REFERENCE_CHARS {
        return Err(Invalid::ClientReferenceTooLong(n));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(Invalid::ClientReferenceControlCharacter(c as u32));
    }
    Ok(Some(raw.to_owned()))
}

fn check_prompt(raw: &str) -> Result<String, Invalid> {
    let prompt = raw.trim();
    if prompt.is_empty() {
        return Err(Invalid::EmptyPrompt);
    }
    let n = prompt.chars().count();
    if n > MAX_PROMPT_CHARS {
        return Err(Invalid::PromptTooLong(n));
    }
    if let Some(c) = prompt
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(Invalid::ControlCharacter(c as u32));
    }
    Ok(prompt.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_references_are_kept_as_given_and_bounded() {
        assert_eq!(
            check_client_reference(" order 42 / é ").unwrap().as_deref(),
            Some(" order 42 / é ")
        );
        assert_eq!(check_client_reference("").unwrap(), None);
        let longest = "é".repeat(MAX_CLIENT_REFERENCE_CHARS);
        assert_eq!(check_client_reference(&longest).unwrap(), Some(longest));
        assert_eq!(
            check_client_reference(&"x".repeat(256)),
            Err(Invalid::ClientReferenceTooLong(256))
        );
        for (bad, code) in [
            ("a\nb", 0x0a),
            ("\u{0}", 0),
            ("tab\there", 9),
            ("\u{85}", 0x85),
        ] {
            assert_eq!(
                check_client_reference(bad),
                Err(Invalid::ClientReferenceControlCharacter(code)),
                "{bad:?}"
            );
        }
        let mut request = GenerationRequest::new("a fox");
        request.client_reference = Some("x".repeat(300));
        assert!(matches!(
            request.validated(),
            Err(Invalid::ClientReferenceTooLong(300))
        ));
    }

    #[test]
    fn prompts_are_trimmed_and_bounded() {
        let ok = GenerationRequest::new("  a red fox \n")
            .validated()
            .unwrap();
        assert_eq!(ok.prompt, "a red fox");
        assert_eq!(
            GenerationRequest::new(" \t\n ").validated(),
            Err(Invalid::EmptyPrompt)
        );
        let long = "é".repeat(MAX_PROMPT_CHARS + 1);
        assert_eq!(
            GenerationRequest::new(long).validated(),
            Err(Invalid::PromptTooLong(MAX_PROMPT_CHARS + 1))
        );
        assert!(
            GenerationRequest::new("é".repeat(MAX_PROMPT_CHARS))
                .validated()
                .is_ok()
        );
        assert_eq!(
            GenerationRequest::new("a\u{0}b").validated(),
            Err(Invalid::ControlCharacter(0))
        );
    }

    #[test]
    fn upscale_selection_parses() {
        assert_eq!(
            UpscaleSelection::parse("all").unwrap().indices(),
            &[1, 2, 3, 4]
        );
        assert_eq!(UpscaleSelection::parse("none").unwrap().count(), 0);
        assert_eq!(UpscaleSelection::parse("3,1,3").unwrap().indices(), &[1, 3]);
        for bad in ["", "0", "5", "1,,2", "x", "1;2", "-1"] {
            assert!(UpscaleSelection::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn subjects_are_checked() {
        let mut r = GenerationRequest::new("p");
        r.subject = Some("  ".into());
        assert_eq!(r.validated(), Err(Invalid::EmptySubject));
        let mut r = GenerationRequest::new("p");
        r.subject = Some(" Fox King ".into());
        assert_eq!(r.validated().unwrap().subject.as_deref(), Some("Fox King"));
        let mut r = GenerationRequest::new("p");
        r.subject = Some("Fox\u{7}King".into());
        assert_eq!(r.validated(), Err(Invalid::SubjectControlCharacter(7)));
    }

    #[test]
    fn parameters_keep_extras_as_json() {
        let mut p = Parameters {
            seed: Some(7),
            upscale: vec![1, 2],
            ..Parameters::default()
        };
        p.extra.insert("stylize".into(), serde_json::json!(250));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["stylize"], 250);
        let back: Parameters = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn invisible_characters_alone_are_an_empty_prompt() {
        for prompt in [
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060} \u{FEFF} --ar 1:1",
            "\u{200B}\u{00A0}\u{3000}",
        ] {
            assert_eq!(
                GenerationRequest::new(prompt).validated(),
                Err(Invalid::EmptyPrompt),
                "{prompt:?}"
            );
        }
        assert!(GenerationRequest::new("\u{200B}fox").validated().is_ok());
    }
}
