//! One render on a ComfyUI server, from submission (or resumption) to the last output: the
//! WebSocket opened first, the prompt submitted or found again, its messages followed, each
//! saved file fetched and delivered as it is announced, the history read at the end.
//!
//! What a restart needs is in the job's references before the call it names: the workflow,
//! the seed and the client id before anything is sent, the prompt id (drawn here; newer
//! servers keep it) before `POST /prompt`, the file names before each is delivered. When the
//! WebSocket drops, it is opened again with a backoff, and the server is asked where the
//! prompt is: ended (its history), queued or running (followed again), or gone. A server
//! that restarted has lost its queue, so a prompt it took and lost is submitted again, once;
//! lost a second time, the job fails.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::client::{Client, Socket, backoff};
use super::provider::ComfyUi;
use super::wire::{self, FileRef, HistoryEntry, Place, PromptRequest};
use crate::domain::ErrorCode;
use crate::providers::{Output, ProviderError, ProviderJob, Reporter};

/// Submissions after the server lost a prompt it had taken.
const RESUBMITS: u64 = 1;

/// Where a prompt is, asked of the server.
enum Found {
    Ended(Box<HistoryEntry>),
    Waiting,
    Gone,
}

/// How following a prompt on one connection ended.
enum Followed {
    Ended,
    Dropped,
    Stalled,
    Gone,
}

/// One render's state.
pub struct Session<'a> {
    pub provider: &'a ComfyUi,
    pub client: &'a Client,
    pub job: &'a ProviderJob,
    pub report: &'a dyn Reporter,
    pub graph: serde_json::Map<String, Value>,
    pub client_id: String,
    /// Outputs this render delivers.
    pub count: u8,
    pub prompt_id: Option<String>,
    pub confirmed: bool,
    pub resubmits: u64,
    /// The current prompt's saved files, by key, in the order they were numbered.
    pub files: Vec<String>,
    /// The outputs the engine has, stored before or delivered now.
    pub delivered: BTreeSet<u8>,
    percent: f64,
}

impl<'a> Session<'a> {
    pub fn new(
        provider: &'a ComfyUi,
        client: &'a Client,
        job: &'a ProviderJob,
        report: &'a dyn Reporter,
        graph: serde_json::Map<String, Value>,
        client_id: String,
        count: u8,
    ) -> Self {
        let refs = report.refs();
        Self {
            provider,
            client,
            job,
            report,
            graph,
            client_id,
            count,
            prompt_id: refs["prompt_id"].as_str().map(str::to_owned),
            confirmed: refs["confirmed"].as_bool().unwrap_or(false),
            resubmits: refs["resubmits"].as_u64().unwrap_or(0),
            files: refs["files"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            delivered: job.stored.iter().copied().collect(),
            percent: 0.0,
        }
    }

    fn failed(&self, e: super::client::CallError) -> ProviderError {
        match e.blame {
            super::client::Blame::Token => self.provider.account.refused(&e.error.message),
            super::client::Blame::Other => self.provider.account.unreachable(&e.error.message),
        }
        e.error
    }

    /// Runs the render to its last output.
    pub async fn run(&mut self) -> Result<(), ProviderError> {
        let mut attempt = 0;
        let mut contact = Instant::now();
        loop {
            // The socket first: nothing said after the look below is missed.
            let socket = match self.client.connect(&self.client_id).await {
                Ok(s) => s,
                Err(e) => {
                    let e = self.failed(e);
                    if !e.retryable || contact.elapsed() >= self.provider.stall {
                        return Err(e);
                    }
                    let wait =
                        backoff(self.client.timing.backoff, attempt).min(Duration::from_secs(10));
                    tracing::debug!(?wait, error = %e, "ComfyUI's WebSocket: opened again after a wait");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            attempt = 0;
            contact = Instant::now();
            self.provider.account.worked();
            let prompt_id = match self.prompt_id.clone() {
                None => self.submit(false).await?,
                Some(id) => match self.find(&id).await? {
                    Found::Ended(entry) => match entry.failure() {
                        // Interrupted while no one followed it (a job stopped mid-way): made
                        // again, as a lost prompt is.
                        Some((kind, _)) if kind == "execution_interrupted" => {
                            self.lost(&id).await?
                        }
                        _ => return self.finish(&entry).await,
                    },
                    Found::Waiting => id,
                    Found::Gone if !self.confirmed => self.submit(false).await?,
                    Found::Gone => self.lost(&id).await?,
                },
            };
            self.provider.flying(self.job.generation_id, &prompt_id);
            match self.follow(socket, &prompt_id).await? {
                Followed::Ended => {
                    if let Found::Ended(entry) = self.find(&prompt_id).await? {
                        return self.finish(&entry).await;
                    }
                }
                Followed::Dropped => {
                    tracing::info!(prompt = %prompt_id, "ComfyUI's WebSocket dropped; opening it again");
                    tokio::time::sleep(backoff(self.client.timing.backoff, 0)).await;
                }
                Followed::Gone => {}
                Followed::Stalled => {
                    // Stopped there, and forgotten here: the job's next attempt submits anew.
                    if let Err(e) = self.client.cancel(&prompt_id).await {
                        tracing::warn!(prompt = %prompt_id, error = %e.error, "a stuck ComfyUI prompt could not be stopped");
                    }
                    self.forget().await?;
                    return Err(ProviderError::new(
                        ErrorCode::Timeout,
                        format!(
                            "ComfyUI's prompt {prompt_id} ran {} s without news; it was interrupted",
                            self.provider.stall.as_secs()
                        ),
                    ));
                }
            }
        }
    }

    /// Where the prompt is: its history, else the queue.
    async fn find(&self, prompt_id: &str) -> Result<Found, ProviderError> {
        if let Some(entry) = self
            .client
            .history(prompt_id)
            .await
            .map_err(|e| self.failed(e))?
        {
            return Ok(Found::Ended(Box::new(entry)));
        }
        Ok(
            match self
                .client
                .queue()
                .await
                .map_err(|e| self.failed(e))?
                .place(prompt_id)
            {
                Place::Running | Place::Pending => Found::Waiting,
                // It may have ended between the two looks.
                Place::Absent => match self
                    .client
                    .history(prompt_id)
                    .await
                    .map_err(|e| self.failed(e))?
                {
                    Some(entry) => Found::Ended(Box::new(entry)),
                    None => Found::Gone,
                },
            },
        )
    }

    /// The server lost a prompt it had taken (it restarted): submitted again, once.
    async fn lost(&mut self, prompt_id: &str) -> Result<String, ProviderError> {
        if self.resubmits >= RESUBMITS {
            return Err(ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "ComfyUI lost the prompt {prompt_id} after it had been submitted again \
                         once (the server restarted twice during the job?)"
                    ),
                )
            });
        }
        tracing::warn!(prompt = %prompt_id, "ComfyUI lost the prompt (restarted?); submitting it again");
        self.submit(true).await
    }

    /// Submits the graph under a new prompt id, saved before the call.
    async fn submit(&mut self, again: bool) -> Result<String, ProviderError> {
        let id = super::new_id();
        let resubmits = self.resubmits + u64::from(again);
        let saved = id.clone();
        self.report
            .update_refs(Box::new(move |refs| {
                refs["prompt_id"] = json!(saved);
                refs["confirmed"] = json!(false);
                refs["resubmits"] = json!(resubmits);
                refs["files"] = json!([]);
            }))
            .await?;
        self.prompt_id = Some(id.clone());
        self.confirmed = false;
        self.resubmits = resubmits;
        self.files.clear();
        self.percent = 0.0;
        self.provider.flying(self.job.generation_id, &id);
        let request = PromptRequest {
            prompt: self.graph.clone(),
            client_id: self.client_id.clone(),
            prompt_id: Some(id.clone()),
            extra_data: None,
        };
        let accepted = self
            .client
            .submit(&request)
            .await
            .map_err(|e| self.failed(e))?;
        if !accepted
            .node_errors
            .as_object()
            .is_none_or(serde_json::Map::is_empty)
        {
            tracing::warn!(errors = %accepted.node_errors, "ComfyUI queued the prompt, but some of its outputs failed validation");
        }
        let answered = accepted.prompt_id.clone();
        self.report
            .update_refs(Box::new(move |refs| {
                refs["prompt_id"] = json!(answered);
                refs["confirmed"] = json!(true);
            }))
            .await?;
        self.prompt_id = Some(accepted.prompt_id.clone());
        self.confirmed = true;
        self.provider
            .flying(self.job.generation_id, &accepted.prompt_id);
        tracing::debug!(prompt = %accepted.prompt_id, number = accepted.number, "ComfyUI prompt queued");
        Ok(accepted.prompt_id)
    }

    /// Drops the prompt from the references: the next attempt submits anew.
    async fn forget(&mut self) -> Result<(), ProviderError> {
        self.prompt_id = None;
        self.confirmed = false;
        self.files.clear();
        self.report
            .update_refs(Box::new(|refs| {
                refs["prompt_id"] = Value::Null;
                refs["confirmed"] = json!(false);
                refs["files"] = json!([]);
            }))
            .await
    }

    /// Follows the prompt's messages on `socket` until it ends, the socket drops, or it
    /// stalls; quiet spells are filled by asking the server.
    async fn follow(
        &mut self,
        mut socket: Socket,
        prompt_id: &str,
    ) -> Result<Followed, ProviderError> {
        let (poll, stall) = (self.provider.poll, self.provider.stall);
        let mut news = Instant::now();
        let mut running = false;
        let mut previews = 0u64;
        loop {
            let quiet = if running {
                poll.min(stall.saturating_sub(news.elapsed()))
            } else {
                poll
            };
            let frame =
                match tokio::time::timeout(quiet.max(Duration::from_millis(10)), socket.next())
                    .await
                {
                    Err(_) => {
                        match self.find(prompt_id).await? {
                            Found::Ended(_) => return Ok(Followed::Ended),
                            Found::Gone => return Ok(Followed::Gone),
                            Found::Waiting if running && news.elapsed() >= stall => {
                                return Ok(Followed::Stalled);
                            }
                            Found::Waiting => {}
                        }
                        continue;
                    }
                    Ok(None | Some(Err(_))) => return Ok(Followed::Dropped),
                    Ok(Some(Ok(frame))) => frame,
                };
            let text = match frame {
                Frame::Text(t) => t,
                Frame::Binary(b) => {
                    if b.len() >= 4
                        && u32::from_be_bytes([b[0], b[1], b[2], b[3]]) == wire::PREVIEW_IMAGE
                    {
                        previews += 1;
                        tracing::trace!(previews, "ComfyUI preview frame");
                    }
                    continue;
                }
                Frame::Close(_) => return Ok(Followed::Dropped),
                _ => continue,
            };
            let Ok(message) = serde_json::from_str::<wire::Message>(text.as_str()) else {
                tracing::debug!("ComfyUI sent a message that is not one; ignored");
                continue;
            };
            if message.prompt_id().is_some_and(|p| p != prompt_id) {
                continue;
            }
            let data = &message.data;
            match message.kind.as_str() {
                "execution_start" => {
                    running = true;
                    news = Instant::now();
                    self.report.progress(0.0).await;
                }
                "executing"
                    if data.get("node").is_some_and(Value::is_null)
                        && (message.prompt_id().is_some() || running) =>
                {
                    return Ok(Followed::Ended);
                }
                "executing" if data.get("node").is_some_and(Value::is_null) => {}
                "executing" | "execution_cached" | "progress_state" => {
                    running = true;
                    news = Instant::now();
                }
                "progress" => {
                    running = true;
                    news = Instant::now();
                    let (value, max) = (
                        data["value"].as_f64().unwrap_or(0.0),
                        data["max"].as_f64().unwrap_or(0.0),
                    );
                    if max > 0.0 {
                        let percent = (value / max * 100.0).clamp(0.0, 99.0);
                        if percent > self.percent {
                            self.percent = percent;
                            self.report.progress(percent).await;
                        }
                    }
                }
                "executed" => {
                    news = Instant::now();
                    for (file, animated) in wire::saved_files(&data["output"]) {
                        self.deliver(&file, animated).await?;
                    }
                }
                "execution_error" | "execution_interrupted" => {
                    return Err(execution_failed(&message.kind, data));
                }
                _ => {}
            }
        }
    }

    /// A finished prompt: its failure, or every saved file not delivered yet.
    async fn finish(&mut self, entry: &HistoryEntry) -> Result<(), ProviderError> {
        if let Some((kind, data)) = entry.failure() {
            return Err(execution_failed(&kind, &data));
        }
        for (file, animated) in entry.files() {
            self.deliver(&file, animated).await?;
        }
        let saved = self.files.len();
        if saved < usize::from(self.count) {
            return Err(ProviderError {
                retryable: false,
                ..ProviderError::new(
                    ErrorCode::Internal,
                    format!(
                        "the workflow saved {saved} output(s); its configuration expects {} \
                         (outputs × batch_size): correct `outputs`",
                        self.count
                    ),
                )
            });
        }
        Ok(())
    }

    /// Numbers a saved file (durably, before it is delivered), fetches and delivers it unless
    /// the engine has it. A file the server no longer has makes the prompt forgotten: the
    /// job's next attempt makes it again (same seed, same pictures).
    async fn deliver(&mut self, file: &FileRef, animated: bool) -> Result<(), ProviderError> {
        let key = file.key();
        let index = if let Some(at) = self.files.iter().position(|k| *k == key) {
            at + 1
        } else {
            self.files.push(key);
            let files = self.files.clone();
            self.report
                .update_refs(Box::new(move |refs| refs["files"] = json!(files)))
                .await?;
            self.files.len()
        };
        let Some(index) = u8::try_from(index).ok().filter(|i| *i <= self.count) else {
            tracing::warn!(file = %file.filename, count = self.count, "ComfyUI saved more outputs than configured; this one is left");
            return Ok(());
        };
        if self.delivered.contains(&index) {
            return Ok(());
        }
        let bytes = match self.client.view(file, self.provider.max_bytes).await {
            Ok(b) => b,
            Err(e) if e.error.code == ErrorCode::DownloadFailed => {
                self.forget().await?;
                return Err(e.error);
            }
            Err(e) => return Err(self.failed(e)),
        };
        let output = match file.is_clip(animated) {
            Some(format) => Output::video(index, format, bytes),
            None => Output::image(index, bytes),
        };
        self.report.output(output).await?;
        self.delivered.insert(index);
        Ok(())
    }
}

/// A failed execution as a typed error: out of memory is tried again; a safety checker's
/// refusal is a banned prompt; any other node's exception fails for good (the same graph
/// fails the same way).
fn execution_failed(kind: &str, data: &Value) -> ProviderError {
    let node = data["node_id"].as_str().unwrap_or("?");
    let class = data["node_type"].as_str().unwrap_or("?");
    if kind == "execution_interrupted" {
        return ProviderError {
            retryable: false,
            ..ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!(
                    "the prompt was interrupted on the ComfyUI server (at node {node}, {class})"
                ),
            )
        };
    }
    let exception = data["exception_type"].as_str().unwrap_or("error");
    let said: String = data["exception_message"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(500)
        .collect();
    let message = format!("ComfyUI's node {node} ({class}) failed: {exception}: {said}");
    let lower = format!("{exception} {said}").to_ascii_lowercase();
    if lower.contains("out of memory") || lower.contains("outofmemory") {
        return ProviderError::new(ErrorCode::ProviderUnavailable, message);
    }
    let code = if ["nsfw", "safety", "content policy", "moderation"]
        .iter()
        .any(|w| lower.contains(w))
    {
        ErrorCode::BannedPrompt
    } else {
        ErrorCode::ProviderUnavailable
    };
    ProviderError {
        retryable: false,
        ..ProviderError::new(code, message)
    }
}
