//! The `Provider` over a ComfyUI server: a render runs one configured workflow (the request's
//! `workflow`, else the default) with the prompt, negative prompt, seed, size, batch and the
//! workflow's own parameters filled in, and delivers every file its save nodes write, pictures
//! and clips (an MP4, an animated WebP), as separate outputs. A job stopped while its prompt
//! is on the server (canceled) stops the prompt there: deleted from the queue, or interrupted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::account::Account;
use super::client::Client;
use super::params::Workflows;
use super::session::Session;
use crate::domain::{ErrorCode, GenerationId, Parameters};
use crate::providers::{Capabilities, Provider, ProviderError, ProviderJob, Reporter, Shape};

pub struct ComfyUi {
    pub account: Arc<Account>,
    pub workflows: Workflows,
    /// The largest output accepted.
    pub max_bytes: u64,
    /// A running prompt without news for this long is stuck.
    pub stall: Duration,
    /// A quiet WebSocket for this long makes the server be asked.
    pub poll: Duration,
    /// The prompt of each render under way in this process, by generation. A render that
    /// ends (well or not) takes its entry out; one dropped mid-way (its job canceled) leaves
    /// it, and `release` stops that prompt on the server.
    pub in_flight: Mutex<HashMap<GenerationId, String>>,
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError {
        retryable: false,
        ..ProviderError::new(ErrorCode::InvalidParameter, message)
    }
}

/// Takes the render's entry out when the render returns; left in place when it is dropped.
struct Flight<'a> {
    provider: &'a ComfyUi,
    generation: GenerationId,
}

impl Flight<'_> {
    fn landed(self) {
        if let Ok(mut f) = self.provider.in_flight.lock() {
            f.remove(&self.generation);
        }
    }
}

impl ComfyUi {
    fn client(&self) -> Result<&Client, ProviderError> {
        if let Some(why) = self.account.disabled() {
            return Err(ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "the ComfyUI server {:?} is disabled: {why}",
                        self.account.name
                    ),
                )
            });
        }
        self.account.client.as_ref().ok_or_else(|| {
            ProviderError::new(ErrorCode::ProviderUnavailable, "the ComfyUI token is unset")
        })
    }

    /// Records the prompt a render follows.
    pub(super) fn flying(&self, generation: GenerationId, prompt_id: &str) {
        if let Ok(mut f) = self.in_flight.lock() {
            f.insert(generation, prompt_id.to_owned());
        }
    }
}

#[async_trait]
impl Provider for ComfyUi {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shape: Shape::Separate {
                count: self.workflows.max_outputs(),
            },
            // A workflow's save node may write clips.
            video: true,
            negative_prompt: self
                .workflows
                .by_name
                .values()
                .any(|w| w.negative_prompt.is_some()),
            actions: &[],
            describe: false,
            shorten: false,
            blend: false,
            image_prompts: false,
        }
    }

    fn outputs(&self, parameters: &Parameters) -> u8 {
        // A request that fails the check never runs; 1 keeps the scale sane if it did.
        self.workflows
            .plan(None, parameters)
            .map_or(1, |p| p.outputs())
    }

    fn check(
        &self,
        _prompt: &str,
        negative_prompt: Option<&str>,
        parameters: &Parameters,
    ) -> Result<(), String> {
        self.workflows.plan(negative_prompt, parameters).map(|_| ())
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let plan = self
            .workflows
            .plan(job.negative_prompt.as_deref(), &job.parameters)
            .map_err(invalid)?;
        let count = plan.outputs();
        if (1..=count).all(|i| job.stored.contains(&i)) {
            return Ok(());
        }
        let client = self.client()?;
        let _busy = self.account.hold();
        report.account(&self.account.name).await;
        // The seed and the client id are saved before anything is sent: a resumed job makes
        // the same graph and hears the same socket.
        let refs = report.refs();
        let seed = plan
            .seed
            .or_else(|| refs["seed"].as_u64().and_then(|s| u32::try_from(s).ok()))
            .unwrap_or_else(|| fastrand::u32(..));
        let client_id = refs["client_id"]
            .as_str()
            .map_or_else(super::new_id, str::to_owned);
        let (workflow, id) = (plan.workflow.name.clone(), client_id.clone());
        report
            .update_refs(Box::new(move |refs| {
                if !refs.is_object() {
                    *refs = json!({});
                }
                refs["workflow"] = json!(workflow);
                refs["seed"] = json!(seed);
                refs["client_id"] = json!(id);
            }))
            .await?;
        // The text without its inline parameters (`--ar 16:9`, `--no …`), which are the
        // request's, not words for the text encoder.
        let text = crate::domain::prompt_params::parse(&job.prompt)
            .map_or_else(|_| job.prompt.clone(), |(text, _)| text);
        let graph = plan.graph(text.trim(), seed);
        let flight = Flight {
            provider: self,
            generation: job.generation_id,
        };
        let mut session = Session::new(self, client, job, report, graph, client_id, count);
        let rendered = session.run().await;
        flight.landed();
        rendered
    }

    async fn release(&self, job: &ProviderJob) {
        let prompt = self
            .in_flight
            .lock()
            .ok()
            .and_then(|mut f| f.remove(&job.generation_id));
        let (Some(prompt_id), Some(client)) = (prompt, &self.account.client) else {
            return;
        };
        tracing::info!(prompt = %prompt_id, "stopping the ComfyUI prompt of a job that stopped");
        match tokio::time::timeout(client.timing.timeout * 2, client.cancel(&prompt_id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(prompt = %prompt_id, error = %e.error, "the ComfyUI prompt could not be stopped");
            }
            Err(_) => {
                tracing::warn!(prompt = %prompt_id, "the ComfyUI prompt could not be stopped in time");
            }
        }
    }
}
