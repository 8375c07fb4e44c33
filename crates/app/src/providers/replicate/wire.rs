//! The Replicate predictions API as JSON: a prediction (its status, logs, output, error,
//! URLs, metrics), the body that creates one, the problem-details error body, and what the
//! provider reads out of them (the step counter a model prints in its logs, the output URLs).
//! Shared by the provider and the simulator.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a prediction stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

/// A prediction as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub input: Map<String, Value>,
    #[serde(default)]
    pub logs: Option<String>,
    /// A URL, a list of URLs, or anything else a model returns; `null` until it succeeds.
    #[serde(default)]
    pub output: Value,
    /// The outputs were deleted (an hour after an API prediction ends).
    #[serde(default)]
    pub data_removed: bool,
    #[serde(default)]
    pub error: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub urls: Urls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Map<String, Value>>,
}

/// A prediction's own URLs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Urls {
    #[serde(default)]
    pub get: String,
    #[serde(default)]
    pub cancel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
}

/// The body of `POST /v1/predictions` (with `version`) or of
/// `POST /v1/models/{owner}/{name}/predictions` (without).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Create {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub input: Map<String, Value>,
}

/// A problem-details error body (`application/problem+json`): `{"title", "detail",
/// "status"}`, and the fields a 422 found wrong.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_fields: Vec<InvalidField>,
}

/// One input a 422 refused.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InvalidField {
    #[serde(rename = "type")]
    pub kind: String,
    pub field: String,
    pub description: String,
}

/// The account a token belongs to (`GET /v1/account`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub username: String,
    pub name: String,
    #[serde(default)]
    pub github_url: Option<String>,
}

/// The step counter of the last progress-bar line in a model's logs (tqdm's
/// ` 37%|███▋      | 11/30 [00:02<00:04,  4.36it/s]`): `(current, total)`.
pub fn progress(logs: &str) -> Option<(u32, u32)> {
    logs.lines().rev().find_map(|line| {
        // A carriage return redraws a bar on the same line: its last state counts.
        let line = line.rsplit('\r').next().unwrap_or(line).trim();
        let (percent, rest) = line.split_once('%')?;
        percent.trim().parse::<u32>().ok()?;
        let rest = rest.trim_start().strip_prefix('|')?;
        let (_, counter) = rest.split_once('|')?;
        let counter = counter.trim_start();
        let end = counter
            .find(|c: char| !(c.is_ascii_digit() || c == '/'))
            .unwrap_or(counter.len());
        let (current, total) = counter[..end].split_once('/')?;
        let (current, total) = (current.parse::<u32>().ok()?, total.parse::<u32>().ok()?);
        (total > 0 && current <= total).then_some((current, total))
    })
}

/// The output URLs of a prediction: one URL, or a list of them (anything else is skipped).
pub fn output_urls(output: &Value) -> Vec<String> {
    match output {
        Value::String(url) => vec![url.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a failed prediction's error is a safety refusal (the models' NSFW checks, and the
/// hosted models' "flagged as sensitive" moderation).
pub fn is_safety_refusal(error: &str) -> bool {
    let lower = error.to_ascii_lowercase();
    [
        "nsfw",
        "flagged as sensitive",
        "safety",
        "content policy",
        "(e005)",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

/// Whether `text` is a 64-hex version id.
pub fn is_version_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_progress_bar_is_read() {
        let logs = "Using seed: 42\n  0%|          | 0/30 [00:00<?, ?it/s]\n 37%|███▋      | 11/30 [00:02<00:04,  4.36it/s]\n";
        assert_eq!(progress(logs), Some((11, 30)));
        assert_eq!(
            progress("100%|██████████| 4/4 [00:01<00:00,  3.90it/s]\rdone"),
            None
        );
        assert_eq!(
            progress(" 50%|█████     | 2/4 [00:00<00:00]\r 75%|███████▌  | 3/4 [00:00<00:00]"),
            Some((3, 4))
        );
        assert_eq!(progress("Loading weights\nstep 5 of 9"), None);
        assert_eq!(progress(" 9%|x| 12/4 [00:00]"), None);
    }

    #[test]
    fn outputs_and_refusals_are_recognised() {
        assert_eq!(
            output_urls(&serde_json::json!("https://x/out.mp4")),
            ["https://x/out.mp4"]
        );
        assert_eq!(
            output_urls(&serde_json::json!([
                "https://x/0.webp",
                3,
                "https://x/1.webp"
            ])),
            ["https://x/0.webp", "https://x/1.webp"]
        );
        assert!(output_urls(&Value::Null).is_empty());
        assert!(is_safety_refusal(
            "NSFW content detected. Try running it again, or try a different prompt."
        ));
        assert!(!is_safety_refusal("CUDA out of memory"));
        assert!(is_version_id(&"ab".repeat(32)));
        assert!(!is_version_id("black-forest-labs/flux-schnell"));
    }

    #[test]
    fn a_prediction_reads_as_the_api_writes_it() {
        let p: Prediction = serde_json::from_str(
            r#"{"id":"0fqzzq8p2srgm0cjb2zaj681jr","model":"stability-ai/sdxl","version":"7762","input":{"prompt":"a corgi"},"logs":"","output":null,"data_removed":false,"error":null,"status":"starting","created_at":"2024-10-04T18:15:05.494Z","urls":{"cancel":"https://api/v1/predictions/0fq/cancel","get":"https://api/v1/predictions/0fq","stream":"https://stream/x"}}"#,
        )
        .unwrap();
        assert_eq!(p.status, Status::Starting);
        assert!(!p.status.is_terminal());
        assert_eq!(p.urls.stream.as_deref(), Some("https://stream/x"));
    }
}
