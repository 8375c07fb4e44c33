//! The OpenAI Images API's answers as JSON: the images response, its token usage, the error
//! body, and the server-sent events of a streamed request (with the small reader that cuts a
//! byte stream into events). Shared by the provider and the simulator.

use serde::{Deserialize, Serialize};

/// `{"created": …, "data": [...], "usage": {...}}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImagesResponse {
    pub created: i64,
    #[serde(default)]
    pub data: Vec<ImageData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One image: base64 or a URL (valid for an hour on OpenAI).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revised_prompt: Option<String>,
}

/// Token usage of the GPT image models; kept with the generation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: TokenDetails,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<TokenDetails>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenDetails {
    #[serde(default)]
    pub image_tokens: u64,
    #[serde(default)]
    pub text_tokens: u64,
}

impl Usage {
    /// This usage and `other`'s, summed (several requests of one generation).
    #[must_use]
    pub fn plus(&self, other: &Self) -> Self {
        let details = |a: &TokenDetails, b: &TokenDetails| TokenDetails {
            image_tokens: a.image_tokens + b.image_tokens,
            text_tokens: a.text_tokens + b.text_tokens,
        };
        Self {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            total_tokens: self.total_tokens + other.total_tokens,
            input_tokens_details: details(&self.input_tokens_details, &other.input_tokens_details),
            output_tokens_details: match (&self.output_tokens_details, &other.output_tokens_details)
            {
                (Some(a), Some(b)) => Some(details(a, b)),
                (a, b) => a.clone().or_else(|| b.clone()),
            },
        }
    }
}

/// `{"error": {"message", "type", "param", "code"}}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// One event of a streamed request (`image_generation.*` or `image_edit.*`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub b64_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_image_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// An `error` event's detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

impl StreamEvent {
    pub fn is_partial(&self) -> bool {
        self.kind.ends_with(".partial_image")
    }

    pub fn is_completed(&self) -> bool {
        self.kind.ends_with(".completed")
    }
}

/// Cuts a server-sent event stream into the `data` of each event, as bytes arrive in chunks of
/// any size. Comments and other fields are skipped; events end at a blank line.
#[derive(Default)]
pub struct SseReader {
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no line end (a base64 picture is one long line
    /// arriving in many chunks: each is searched once).
    scanned: usize,
    data: Vec<String>,
}

impl SseReader {
    /// Feeds bytes; returns the events they complete. Refuses a line longer than `max_line`
    /// bytes (a stream that never ends its line must not grow without bound).
    pub fn feed(&mut self, bytes: &[u8], max_line: usize) -> Result<Vec<String>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer[self.scanned..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|at| at + self.scanned)
        {
            self.scanned = 0;
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).map_err(|_| "the event stream is not UTF-8")?;
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(self.data.join("\n"));
                    self.data.clear();
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            }
        }
        self.scanned = self.buffer.len();
        if self.buffer.len() > max_line {
            return Err(format!(
                "an event stream line is longer than {max_line} bytes"
            ));
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_whatever_the_chunks() {
        let text = b"event: image_generation.partial_image\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\r\ndata: 2}\r\n\r\n";
        for size in [1, 3, 7, text.len()] {
            let mut reader = SseReader::default();
            let mut events = Vec::new();
            for chunk in text.chunks(size) {
                events.extend(reader.feed(chunk, 1024).unwrap());
            }
            assert_eq!(
                events,
                vec!["{\"a\":1}".to_owned(), "{\"b\":\n2}".to_owned()]
            );
        }
        assert!(SseReader::default().feed(&[b'x'; 64], 16).is_err());
    }

    #[test]
    fn usage_adds_up() {
        let one = Usage {
            input_tokens: 10,
            output_tokens: 100,
            total_tokens: 110,
            ..Usage::default()
        };
        assert_eq!(one.plus(&one).total_tokens, 220);
    }
}
