//! The `Provider` over Replicate predictions, one per configured model alias: a render is one
//! prediction (`num_outputs` separate outputs, or one clip for a video model), created, then
//! polled with a growing interval until it ends; the step counter a model prints in its logs
//! is the render's progress; every output is downloaded at once when it succeeds.
//!
//! Paying once: the prediction's id is saved in the job's references as soon as the create
//! answers, before anything else; a resumed job (after a crash, a lost lease or a retry)
//! polls the saved prediction instead of making another. A prediction is given up (its id
//! moved to `spent`, so the next attempt makes a new one) only when it cannot deliver any
//! more: it failed, its outputs expired, it overran the deadline (it is canceled first).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::account::Account;
use super::client::{CallError, Client};
use super::download::{self, Failed};
use super::params::{self, Kind};
use super::wire::{self, Create, Prediction, Status};
use crate::domain::{ErrorCode, Parameters};
use crate::providers::{Capabilities, Provider, ProviderError, ProviderJob, Reporter, Shape};

/// The model an alias runs: an official model by `owner/name`, or a version by its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// `owner/name`, when known.
    pub name: Option<String>,
    /// A 64-hex version id.
    pub version: Option<String>,
}

impl ModelRef {
    /// `owner/name`, `owner/name:VERSION` or `VERSION`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if wire::is_version_id(text) {
            return Ok(Self {
                name: None,
                version: Some(text.to_ascii_lowercase()),
            });
        }
        let (name, version) = match text.split_once(':') {
            Some((name, version)) if wire::is_version_id(version) => {
                (name, Some(version.to_ascii_lowercase()))
            }
            Some(_) => {
                return Err(format!(
                    "{text:?}: a version after ':' is 64 hexadecimal digits"
                ));
            }
            None => (text, None),
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match name.split_once('/') {
            Some((owner, model)) if word(owner) && word(model) => Ok(Self {
                name: Some(name.to_owned()),
                version,
            }),
            _ => Err(format!(
                "{text:?} is not a model: expected owner/name, owner/name:VERSION or a 64-hex version id"
            )),
        }
    }

    fn label(&self) -> String {
        match (&self.name, &self.version) {
            (Some(n), Some(v)) => format!("{n}:{v}"),
            (Some(n), None) => n.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) => String::new(),
        }
    }
}

/// How a prediction is waited for.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    /// First interval between polls; it grows by half each poll up to `most`.
    pub first: Duration,
    pub most: Duration,
    /// A prediction not ended this long after it was created is canceled and made again.
    pub deadline: Duration,
    /// `Prefer: wait=N` on the create (0: answer at once).
    pub wait: u32,
}

pub struct Replicate {
    pub alias: String,
    pub model: ModelRef,
    pub kind: Kind,
    /// Inputs the alias sends unless a request says otherwise.
    pub defaults: Map<String, Value>,
    pub account: Arc<Account>,
    pub polling: Polling,
    pub max_bytes: u64,
    pub download_attempts: u32,
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError {
        retryable: false,
        ..ProviderError::new(ErrorCode::InvalidParameter, message)
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The prediction a job is following, as its references hold it.
struct Live {
    id: String,
    /// The generation's output numbers its outputs are, in order.
    numbers: Vec<u8>,
    /// When it was created (Unix ms), for the deadline.
    created_ms: i64,
    /// Its state as the create answered, if this run created it.
    first: Option<Prediction>,
}

impl Live {
    fn saved(refs: &Value) -> Option<Self> {
        let id = refs["prediction"].as_str()?.to_owned();
        let numbers = refs["numbers"]
            .as_array()?
            .iter()
            .filter_map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect();
        Some(Self {
            id,
            numbers,
            created_ms: refs["created_at_ms"].as_i64().unwrap_or_else(now_ms),
            first: None,
        })
    }
}

/// Gives up prediction `id`: the next attempt makes a new one.
async fn forget(report: &dyn Reporter, id: &str) -> Result<(), ProviderError> {
    let id = id.to_owned();
    report
        .update_refs(Box::new(move |refs| {
            if let Value::Object(map) = refs {
                if map.get("prediction").and_then(Value::as_str) == Some(id.as_str()) {
                    map.remove("prediction");
                    map.remove("numbers");
                    map.remove("created_at_ms");
                }
                let spent = map.entry("spent").or_insert_with(|| json!([]));
                if let Value::Array(list) = spent
                    && !list.iter().any(|v| v.as_str() == Some(id.as_str()))
                {
                    list.push(Value::String(id));
                }
            }
        }))
        .await
}

impl Replicate {
    fn input(
        &self,
        prompt: &str,
        negative_prompt: Option<&str>,
        parameters: &Parameters,
    ) -> Result<Map<String, Value>, String> {
        // Parameters written in the prompt (`--ar 16:9`) are in `parameters`; the text goes.
        let text = crate::domain::prompt_params::parse(prompt)
            .map_or_else(|_| prompt.to_owned(), |(text, _)| text);
        params::input(
            text.trim(),
            negative_prompt,
            parameters,
            &self.defaults,
            self.kind,
        )
    }

    fn client(&self) -> Result<&Client, ProviderError> {
        if let Some(why) = self.account.disabled() {
            return Err(ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "the Replicate account {:?} is disabled: {why}",
                        self.account.name
                    ),
                )
            });
        }
        self.account.client.as_ref().ok_or_else(|| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                "the Replicate token is unset",
            )
        })
    }

    fn call_failed(&self, e: CallError) -> ProviderError {
        // Only a refused token takes the account out; other failures are the job's.
        if e.blame == super::client::Blame::Token {
            self.account.refused(&e.error.message);
        }
        e.error
    }

    /// Creates the prediction for outputs `numbers` and saves its id before anything else.
    async fn create(
        &self,
        client: &Client,
        mut input: Map<String, Value>,
        numbers: &[u8],
        report: &dyn Reporter,
    ) -> Result<Live, ProviderError> {
        if self.kind == Kind::Image {
            input.insert("num_outputs".into(), Value::from(numbers.len()));
        }
        let label = self.model.label();
        report
            .update_refs(Box::new(move |refs| {
                if !refs.is_object() {
                    *refs = json!({});
                }
                refs["model"] = json!(label);
                refs["predictions"] = json!(refs["predictions"].as_u64().unwrap_or(0) + 1);
            }))
            .await?;
        report.progress(0.0).await;
        let body = Create {
            version: self.model.version.clone(),
            input,
        };
        let model = self.model.name.clone().unwrap_or_default();
        let prediction = client
            .create(&model, &body, self.polling.wait)
            .await
            .map_err(|e| self.call_failed(e))?;
        self.account.worked();
        let created_ms = now_ms();
        let (id, list) = (prediction.id.clone(), numbers.to_vec());
        let saved = report
            .update_refs(Box::new(move |refs| {
                refs["prediction"] = json!(id);
                refs["numbers"] = json!(list);
                refs["created_at_ms"] = json!(created_ms);
            }))
            .await;
        if let Err(e) = saved {
            // A restart could not find it again: stop it rather than pay for it twice.
            if let Err(c) = client.cancel(&prediction.id).await {
                tracing::warn!(prediction = %prediction.id, error = %c.error, "unsaved prediction not canceled");
            }
            return Err(e);
        }
        tracing::debug!(prediction = %prediction.id, alias = %self.alias, "prediction created");
        Ok(Live {
            id: prediction.id.clone(),
            numbers: numbers.to_vec(),
            created_ms,
            first: Some(prediction),
        })
    }

    /// One poll; a prediction the service does not know is given up.
    async fn get(
        &self,
        client: &Client,
        id: &str,
        report: &dyn Reporter,
    ) -> Result<Prediction, ProviderError> {
        match client.get(id).await {
            Ok(p) => {
                self.account.worked();
                Ok(p)
            }
            Err(e) if e.error.code == ErrorCode::InvalidParameter => {
                forget(report, id).await?;
                Err(ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("{}; a new prediction will be made", e.error.message),
                ))
            }
            Err(e) => Err(self.call_failed(e)),
        }
    }

    /// Polls until the prediction ends, its logs' step counter reported as progress.
    async fn follow(
        &self,
        client: &Client,
        live: &mut Live,
        report: &dyn Reporter,
    ) -> Result<Prediction, ProviderError> {
        let mut current = match live.first.take() {
            Some(p) => p,
            None => self.get(client, &live.id, report).await?,
        };
        let mut interval = self.polling.first;
        let mut shown = None;
        loop {
            if let Some((step, steps)) = current.logs.as_deref().and_then(wire::progress) {
                let percent = f64::from(step) * 100.0 / f64::from(steps);
                if shown != Some(step) {
                    shown = Some(step);
                    report.progress(percent.min(99.0)).await;
                }
            }
            if current.status.is_terminal() {
                return Ok(current);
            }
            let age = Duration::from_millis(u64::try_from(now_ms() - live.created_ms).unwrap_or(0));
            if age > self.polling.deadline {
                if let Err(e) = client.cancel(&live.id).await {
                    tracing::warn!(prediction = %live.id, error = %e.error, "overdue prediction not canceled");
                }
                forget(report, &live.id).await?;
                return Err(ProviderError::new(
                    ErrorCode::Timeout,
                    format!(
                        "prediction {} was still {} after {} s; it was canceled and will be made again",
                        live.id,
                        if current.status == Status::Starting {
                            "starting"
                        } else {
                            "processing"
                        },
                        self.polling.deadline.as_secs_f64()
                    ),
                ));
            }
            tokio::time::sleep(interval).await;
            interval = interval.mul_f64(1.5).min(self.polling.most);
            current = self.get(client, &live.id, report).await?;
        }
    }

    /// Delivers a succeeded prediction's outputs, or types its failure.
    async fn finish(
        &self,
        client: &Client,
        prediction: Prediction,
        live: &Live,
        stored: &[u8],
        report: &dyn Reporter,
    ) -> Result<(), ProviderError> {
        let id = &prediction.id;
        match prediction.status {
            Status::Succeeded => {}
            Status::Failed => {
                forget(report, id).await?;
                let error = prediction.error.unwrap_or_else(|| "no error given".into());
                if wire::is_safety_refusal(&error) {
                    return Err(ProviderError {
                        retryable: false,
                        ..ProviderError::new(
                            ErrorCode::BannedPrompt,
                            format!(
                                "the model's safety check refused it (prediction {id}): {error}"
                            ),
                        )
                    });
                }
                return Err(ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("prediction {id} failed: {error}"),
                ));
            }
            Status::Canceled => {
                forget(report, id).await?;
                return Err(ProviderError {
                    retryable: false,
                    ..ProviderError::new(
                        ErrorCode::Canceled,
                        format!("prediction {id} was canceled at Replicate"),
                    )
                });
            }
            Status::Starting | Status::Processing => {
                return Err(ProviderError::new(
                    ErrorCode::Internal,
                    "a running prediction was taken for an ended one",
                ));
            }
        }
        let urls = wire::output_urls(&prediction.output);
        if prediction.data_removed || urls.is_empty() {
            forget(report, id).await?;
            return Err(ProviderError::new(
                ErrorCode::DownloadFailed,
                format!(
                    "prediction {id} succeeded but its outputs are {}: it will be made again",
                    if prediction.data_removed {
                        "deleted"
                    } else {
                        "missing"
                    }
                ),
            ));
        }
        let wanted: Vec<(u8, &String)> = live
            .numbers
            .iter()
            .copied()
            .zip(&urls)
            .filter(|(n, _)| !stored.contains(n))
            .collect();
        let fetched =
            futures_util::future::join_all(wanted.iter().map(|(_, url)| {
                download::fetch(client, url, self.max_bytes, self.download_attempts)
            }))
            .await;
        // What came is delivered before any failure is returned: nothing fetched is lost.
        let mut failure: Option<Failed> = None;
        for ((number, _), result) in wanted.iter().zip(fetched) {
            match result {
                Ok(bytes) => {
                    report
                        .output(download::output(self.kind, *number, bytes)?)
                        .await?;
                }
                Err(f) => {
                    if failure.is_none() {
                        failure = Some(f);
                    }
                }
            }
        }
        if let Some(f) = failure {
            if f.gone {
                forget(report, id).await?;
            }
            return Err(f.error);
        }
        if urls.len() < live.numbers.len() {
            forget(report, id).await?;
            return Err(ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!(
                    "prediction {id} made {} of the {} outputs asked for; the rest will be asked for again",
                    urls.len(),
                    live.numbers.len()
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Replicate {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shape: Shape::Separate {
                count: match self.kind {
                    Kind::Image => params::MAX_OUTPUTS,
                    Kind::Video => 1,
                },
            },
            video: self.kind == Kind::Video,
            negative_prompt: true,
            actions: &[],
            describe: false,
            shorten: false,
            blend: false,
            image_prompts: false,
        }
    }

    fn outputs(&self, parameters: &Parameters) -> u8 {
        // A request that fails the check never runs; 1 keeps the scale sane if it did.
        self.input("x", None, parameters)
            .map_or(1, |input| params::outputs(&input))
    }

    fn check(
        &self,
        prompt: &str,
        negative_prompt: Option<&str>,
        parameters: &Parameters,
    ) -> Result<(), String> {
        self.input(prompt, negative_prompt, parameters).map(|_| ())
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let input = self
            .input(&job.prompt, job.negative_prompt.as_deref(), &job.parameters)
            .map_err(invalid)?;
        let count = params::outputs(&input);
        let missing: Vec<u8> = (1..=count).filter(|i| !job.stored.contains(i)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let client = self.client()?;
        let _busy = self.account.hold();
        report.account(&self.account.name).await;
        // A saved prediction is followed, never made again.
        let mut live = match Live::saved(&report.refs()) {
            Some(live) => {
                tracing::debug!(prediction = %live.id, "resuming the saved prediction");
                live
            }
            None => self.create(client, input, &missing, report).await?,
        };
        let prediction = self.follow(client, &mut live, report).await?;
        self.finish(client, prediction, &live, &job.stored, report)
            .await
    }

    async fn cancel(&self, refs: &Value) {
        let (Some(id), Some(client)) = (refs["prediction"].as_str(), self.account.client.as_ref())
        else {
            return;
        };
        match client.cancel(id).await {
            Ok(p) => tracing::debug!(prediction = id, status = ?p.status, "prediction canceled"),
            Err(e) => tracing::warn!(prediction = id, error = %e.error, "prediction not canceled"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_named_or_versioned() {
        let v = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637";
        assert_eq!(
            ModelRef::parse("black-forest-labs/flux-schnell").unwrap(),
            ModelRef {
                name: Some("black-forest-labs/flux-schnell".into()),
                version: None
            }
        );
        let pinned = ModelRef::parse(&format!("stability-ai/sdxl:{v}")).unwrap();
        assert_eq!(pinned.version.as_deref(), Some(v));
        assert_eq!(pinned.label(), format!("stability-ai/sdxl:{v}"));
        assert_eq!(ModelRef::parse(v).unwrap().name, None);
        for bad in ["flux", "a/b/c", "a/b:latest", "/x", "a b/c", ""] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn saved_references_name_the_live_prediction() {
        let refs = json!({"prediction": "abc", "numbers": [2, 4], "created_at_ms": 5});
        let live = Live::saved(&refs).unwrap();
        assert_eq!(
            (live.id.as_str(), live.numbers.as_slice(), live.created_ms),
            ("abc", &[2u8, 4][..], 5)
        );
        assert!(Live::saved(&json!({"spent": ["abc"]})).is_none());
    }
}
