//! The `Provider` over an OpenAI-compatible Images API: one request per render (`n` separate
//! outputs), sent as JSON to `/images/generations`, or as a multipart edit of the input
//! pictures to `/images/edits` for /blend; answers in base64 or as URLs (downloaded at once:
//! OpenAI's expire after an hour), or streamed as server-sent events whose partial images are
//! the job's progress. Token usage is saved in the job's references before the outputs are
//! delivered, summed over the requests a generation made.
//!
//! OpenAI has no job id to resume a request by: a request cut by a crash is paid and lost.
//! A resumed job asks only for the outputs the engine has not stored (`ProviderJob::stored`).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};

use super::account::Account;
use super::client::{Body, CallError, read_capped};
use super::params::{self, Family, ImageRequest};
use super::wire::{ImagesResponse, SseReader, StreamEvent, Usage};
use crate::domain::{ErrorCode, GenerationKind, Parameters};
use crate::providers::{
    Capabilities, Output, Provider, ProviderError, ProviderJob, Reporter, Shape,
};

/// The prompt of a /blend, which has none of its own.
const BLEND_PROMPT: &str = "Blend these pictures into one coherent image.";

pub struct OpenAi {
    pub account: Arc<Account>,
    /// The model a request names none of.
    pub model: String,
    /// Stream GPT image models' requests, with this many partial images, unless the request
    /// says.
    pub stream: Option<u8>,
    /// The largest picture accepted, decoded or downloaded.
    pub max_bytes: u64,
    /// Tries per URL download.
    pub download_attempts: u32,
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError {
        retryable: false,
        ..ProviderError::new(ErrorCode::InvalidParameter, message)
    }
}

impl OpenAi {
    fn request(&self, prompt: &str, parameters: &Parameters) -> Result<ImageRequest, String> {
        params::request(prompt, parameters, &self.model, self.stream)
    }

    fn client(&self) -> Result<&super::client::Client, ProviderError> {
        if let Some(why) = self.account.disabled() {
            return Err(ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "the OpenAI account {:?} is disabled: {why}",
                        self.account.name
                    ),
                )
            });
        }
        self.account.client.as_ref().ok_or_else(|| {
            ProviderError::new(ErrorCode::ProviderUnavailable, "the OpenAI key is unset")
        })
    }

    fn call_failed(&self, e: CallError) -> ProviderError {
        // Only a refused key takes the account out; other failures are the job's.
        if e.blame == super::client::Blame::Key {
            self.account.refused(&e.error.message);
        }
        e.error
    }

    /// The body of the request: JSON, or a multipart edit of `job`'s input pictures.
    fn body(
        request: &ImageRequest,
        job: &ProviderJob,
    ) -> Result<(&'static str, Body), ProviderError> {
        let json = serde_json::to_value(request)
            .map_err(|e| ProviderError::new(ErrorCode::Internal, e.to_string()))?;
        if job.inputs.is_empty() {
            return Ok(("/images/generations", Body::Json(json)));
        }
        if Family::of(&request.model) == Family::DallE3 {
            return Err(invalid("dall-e-3 edits no pictures; use a GPT image model"));
        }
        let boundary = format!("atelier-{:032x}", fastrand::u128(..));
        let mut bytes = Vec::new();
        if let Value::Object(fields) = json {
            for (name, value) in fields {
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                bytes.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{text}\r\n"
                    )
                    .as_bytes(),
                );
            }
        }
        for input in &job.inputs {
            let kind = image_type(&input.bytes);
            let filename: String = input
                .filename
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            bytes.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"image[]\"; filename=\"{filename}\"\r\nContent-Type: image/{kind}\r\n\r\n"
                )
                .as_bytes(),
            );
            bytes.extend_from_slice(&input.bytes);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Ok(("/images/edits", Body::Multipart { boundary, bytes }))
    }

    /// One picture from base64.
    fn decode(&self, b64: &str) -> Result<Vec<u8>, ProviderError> {
        if b64.len() as u64 > self.max_bytes.saturating_mul(4) / 3 + 4 {
            return Err(ProviderError::new(
                ErrorCode::IntegrityFailed,
                format!(
                    "an image from OpenAI is larger than the {} bytes allowed",
                    self.max_bytes
                ),
            ));
        }
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| {
                ProviderError::new(
                    ErrorCode::IntegrityFailed,
                    format!("an image from OpenAI is not valid base64: {e}"),
                )
            })
    }

    /// One picture from a URL, at once (OpenAI's expire after an hour); tried again on a
    /// lost connection or a server error, never past `max_bytes`. An expired or missing URL
    /// (403, 404, 410) is a `download_failed` the job retries with a new request.
    async fn download(&self, url: &str) -> Result<Vec<u8>, ProviderError> {
        let client = self.client()?;
        let mut last = None;
        for attempt in 0..self.download_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(client.timing.backoff * (1 << attempt.min(5))).await;
            }
            let response = match client
                .http
                .get(url)
                .timeout(client.timing.timeout)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    last = Some(format!("the image download failed: {}", e.without_url()));
                    continue;
                }
            };
            let status = response.status();
            if !status.is_success() {
                let why = format!("the image URL answered {status}");
                if status.is_server_error() {
                    last = Some(why);
                    continue;
                }
                return Err(ProviderError::new(
                    ErrorCode::DownloadFailed,
                    format!("{why} (expired or gone): the image must be asked for again"),
                ));
            }
            if response
                .content_length()
                .is_some_and(|n| n > self.max_bytes)
            {
                return Err(ProviderError::new(
                    ErrorCode::IntegrityFailed,
                    format!(
                        "an image from OpenAI is larger than the {} bytes allowed",
                        self.max_bytes
                    ),
                ));
            }
            let cap = usize::try_from(self.max_bytes).unwrap_or(usize::MAX);
            let bytes = read_capped(response, cap.saturating_add(1)).await;
            if bytes.len() > cap {
                return Err(ProviderError::new(
                    ErrorCode::IntegrityFailed,
                    format!(
                        "an image from OpenAI is larger than the {} bytes allowed",
                        self.max_bytes
                    ),
                ));
            }
            return Ok(bytes);
        }
        Err(ProviderError::new(
            ErrorCode::DownloadFailed,
            last.unwrap_or_else(|| "the image download failed".into()),
        ))
    }

    /// Adds `usage` to the generation's, durably, before the outputs it paid for are delivered.
    async fn keep_usage(report: &dyn Reporter, usage: Option<&Usage>) -> Result<(), ProviderError> {
        let Some(usage) = usage.cloned() else {
            return Ok(());
        };
        report
            .update_refs(Box::new(move |refs| {
                let before: Usage =
                    serde_json::from_value(refs["usage"].clone()).unwrap_or_default();
                if let Value::Object(map) = refs {
                    map.insert(
                        "usage".into(),
                        serde_json::to_value(before.plus(&usage)).unwrap_or_default(),
                    );
                }
            }))
            .await
    }

    /// A plain answer: every image, decoded or downloaded, delivered in order.
    async fn answered(
        &self,
        response: reqwest::Response,
        numbers: &[u8],
        report: &dyn Reporter,
    ) -> Result<(), ProviderError> {
        // Base64 is 4/3 of the bytes; a little room for the JSON around it.
        let cap = usize::try_from(self.max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_mul(numbers.len())
            .saturating_mul(4)
            / 3
            + 64 * 1024;
        let bytes = read_body(response, cap).await?;
        let answer: ImagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("OpenAI's answer is not an images response: {e}"),
            )
        })?;
        Self::keep_usage(report, answer.usage.as_ref()).await?;
        for (image, index) in answer.data.iter().zip(numbers) {
            let bytes = match (&image.b64_json, &image.url) {
                (Some(b64), _) => self.decode(b64)?,
                (None, Some(url)) => self.download(url).await?,
                (None, None) => {
                    return Err(ProviderError::new(
                        ErrorCode::ProviderUnavailable,
                        "OpenAI answered an image with neither b64_json nor url",
                    ));
                }
            };
            report.output(Output::image(*index, bytes)).await?;
        }
        short(answer.data.len(), numbers.len())
    }

    /// A streamed answer: partial images are progress, each completed image an output.
    async fn streamed(
        &self,
        mut response: reqwest::Response,
        numbers: &[u8],
        partials: u8,
        report: &dyn Reporter,
    ) -> Result<(), ProviderError> {
        let line_cap = usize::try_from(self.max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_mul(4)
            / 3
            + 64 * 1024;
        let mut reader = SseReader::default();
        let mut done = 0usize;
        let per_image = f64::from(partials) + 1.0;
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                let code = if e.is_timeout() {
                    ErrorCode::Timeout
                } else {
                    ErrorCode::ProviderUnavailable
                };
                ProviderError::new(
                    code,
                    format!("OpenAI's event stream broke: {}", e.without_url()),
                )
            })?;
            let Some(chunk) = chunk else { break };
            let events = reader.feed(&chunk, line_cap).map_err(|e| {
                ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("OpenAI's event stream: {e}"),
                )
            })?;
            for data in events {
                if data == "[DONE]" {
                    continue;
                }
                let event: StreamEvent = serde_json::from_str(&data).map_err(|e| {
                    ProviderError::new(
                        ErrorCode::ProviderUnavailable,
                        format!("OpenAI sent an event that is not one: {e}"),
                    )
                })?;
                if let Some(error) = &event.error {
                    let code = if error.code.as_deref() == Some("moderation_blocked") {
                        ErrorCode::BannedPrompt
                    } else {
                        ErrorCode::ProviderUnavailable
                    };
                    return Err(ProviderError::new(
                        code,
                        format!("OpenAI: {}", error.message),
                    ));
                }
                if event.is_partial() {
                    let k = f64::from(event.partial_image_index.unwrap_or(0).min(3)) + 1.0;
                    let share = (done as f64 + k / per_image) / numbers.len() as f64;
                    report.progress((share * 100.0).min(99.0)).await;
                } else if event.is_completed() {
                    let Some(index) = numbers.get(done) else {
                        tracing::warn!("OpenAI streamed more images than asked for");
                        continue;
                    };
                    let bytes = self.decode(event.b64_json.as_deref().unwrap_or_default())?;
                    Self::keep_usage(report, event.usage.as_ref()).await?;
                    report.output(Output::image(*index, bytes)).await?;
                    done += 1;
                }
            }
        }
        short(done, numbers.len())
    }
}

/// An answer with fewer images than asked for: those delivered are kept, and the job is tried
/// again for the rest.
fn short(got: usize, asked: usize) -> Result<(), ProviderError> {
    if got >= asked {
        return Ok(());
    }
    Err(ProviderError::new(
        ErrorCode::ProviderUnavailable,
        format!("OpenAI answered {got} of the {asked} images asked for"),
    ))
}

/// The MIME subtype of a picture, by its signature (the service wants it named).
fn image_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "jpeg"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "webp"
    } else {
        "png"
    }
}

/// The whole body of an answer, refused past `cap` bytes.
async fn read_body(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, ProviderError> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > cap {
                    return Err(ProviderError::new(
                        ErrorCode::IntegrityFailed,
                        format!("OpenAI's answer is larger than the {cap} bytes allowed"),
                    ));
                }
            }
            Ok(None) => return Ok(bytes),
            Err(e) => {
                let code = if e.is_timeout() {
                    ErrorCode::Timeout
                } else {
                    ErrorCode::ProviderUnavailable
                };
                return Err(ProviderError::new(
                    code,
                    format!("OpenAI's answer broke off: {}", e.without_url()),
                ));
            }
        }
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shape: Shape::Separate {
                count: params::MAX_N,
            },
            video: false,
            negative_prompt: false,
            actions: &[],
            describe: false,
            shorten: false,
            // /blend is an edit of its pictures.
            blend: true,
            image_prompts: false,
        }
    }

    fn outputs(&self, parameters: &Parameters) -> u8 {
        // A request that fails the check never runs; 1 keeps the scale sane if it did.
        self.request("x", parameters).map_or(1, |r| r.n)
    }

    fn takes(&self, parameter: &str) -> bool {
        params::takes(parameter)
    }

    fn check(
        &self,
        prompt: &str,
        _negative_prompt: Option<&str>,
        parameters: &Parameters,
    ) -> Result<(), String> {
        self.request(prompt, parameters).map(|_| ())
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let prompt = if job.kind == GenerationKind::Blend {
            BLEND_PROMPT
        } else {
            job.prompt.as_str()
        };
        let mut request = self.request(prompt, &job.parameters).map_err(invalid)?;
        let numbers: Vec<u8> = (1..=request.n)
            .filter(|i| !job.stored.contains(i))
            .collect();
        if numbers.is_empty() {
            return Ok(());
        }
        request.n = u8::try_from(numbers.len()).unwrap_or(1);
        let client = self.client()?;
        let _busy = self.account.hold();
        report.account(&self.account.name).await;
        // Saved before the request goes: a resumed job knows a request may have been paid.
        let model = request.model.clone();
        report
            .update_refs(Box::new(move |refs| {
                if !refs.is_object() {
                    *refs = json!({});
                }
                refs["model"] = json!(model);
                refs["requests"] = json!(refs["requests"].as_u64().unwrap_or(0) + 1);
            }))
            .await?;
        report.progress(0.0).await;
        let (path, body) = Self::body(&request, job)?;
        let response = client
            .send(path, &body)
            .await
            .map_err(|e| self.call_failed(e))?;
        self.account.worked();
        if request.stream {
            let partials = request.partial_images.unwrap_or(0);
            self.streamed(response, &numbers, partials, report).await
        } else {
            self.answered(response, &numbers, report).await
        }
    }
}
