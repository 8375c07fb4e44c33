//! `[providers.comfyui]`: a ComfyUI server and the workflows it runs, each an API-format
//! graph file with the inputs Atelier fills in named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A ComfyUI server (or a proxy in front of one).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ComfyUiConfig {
    pub enabled: bool,
    /// The server's root, as the browser opens it: `http://127.0.0.1:8188`.
    pub api_base: String,
    /// A token for a proxy in front of ComfyUI (ComfyUI itself has none): `env:NAME` reads
    /// it from that variable. Sent as `Authorization: Bearer …`, or raw in `auth_header`.
    pub token: Option<Secret>,
    /// The header the token goes in; `Authorization` (the default) gets `Bearer ` before it.
    pub auth_header: String,
    /// The server's name in `atelier accounts` and on each generation.
    pub account: String,
    /// Prompts Atelier keeps on the server at once (it runs one at a time; more queue there).
    pub concurrency: u32,
    /// Jobs that may wait for one of those places.
    pub queue_size: u32,
    /// One HTTP request's answer must come within this.
    pub timeout_secs: f64,
    /// Tries after the first for 429, 5xx and lost connections, within one job.
    pub max_retries: u32,
    /// First wait between those tries when the server names none; doubled each time.
    pub retry_backoff_ms: u64,
    /// A longer wait asked for (`Retry-After`) sends the job back to the queue instead.
    pub max_retry_wait_secs: f64,
    /// A running prompt with no news (progress, a node starting) for this long is stuck: it
    /// is interrupted and the job tried again.
    pub stall_secs: f64,
    /// With no message on the WebSocket for this long, the server is asked how the prompt
    /// is (`/history`, `/queue`): messages missed are not waited for.
    pub poll_secs: f64,
    /// The workflow a request names none of (`--param workflow=…` chooses another); may be
    /// left out when there is one workflow.
    pub default_workflow: Option<String>,
    /// The workflows, by the name a request gives them.
    pub workflows: BTreeMap<String, WorkflowConfig>,
}

impl Default for ComfyUiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_base: "http://127.0.0.1:8188".into(),
            token: None,
            auth_header: "Authorization".into(),
            account: "local".into(),
            concurrency: 1,
            queue_size: 50,
            timeout_secs: 60.0,
            max_retries: 3,
            retry_backoff_ms: 500,
            max_retry_wait_secs: 60.0,
            stall_secs: 600.0,
            poll_secs: 10.0,
            default_workflow: None,
            workflows: BTreeMap::new(),
        }
    }
}

/// One workflow: its file (exported from ComfyUI with "Export (API)") and the inputs Atelier
/// sets, each `NODE.INPUT` where NODE is a node's id (`6.text`) or its title (`Positive.text`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowConfig {
    /// The API-format JSON; a relative path is read from the configuration file's folder.
    pub file: PathBuf,
    /// Where the prompt goes (a text input). Required.
    pub prompt: String,
    /// Where the negative prompt goes; without it the workflow takes none.
    pub negative_prompt: Option<String>,
    /// The sampler's seed; a request without `--seed` gets a random one (the template's
    /// would make every generation the same picture).
    pub seed: Option<String>,
    /// The latent's size (`--param width=… height=…`, or `--ar` over the template's area).
    pub width: Option<String>,
    pub height: Option<String>,
    /// The latent's batch size (`--param batch_size=N`): N times the outputs.
    pub batch_size: Option<String>,
    /// Outputs one run saves per batch item (two save nodes: 2).
    pub outputs: u8,
    /// More inputs a request may set, by the parameter's name: `steps = "3.steps"`. A value
    /// must have the template's type (integer, number, text, true/false).
    pub params: BTreeMap<String, String>,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            file: PathBuf::new(),
            prompt: String::new(),
            negative_prompt: None,
            seed: None,
            width: None,
            height: None,
            batch_size: None,
            outputs: 1,
            params: BTreeMap::new(),
        }
    }
}

impl ComfyUiConfig {
    /// Resolves relative workflow files against `dir` (the configuration file's folder).
    pub fn resolve_files(&mut self, dir: &Path) {
        for workflow in self.workflows.values_mut() {
            if workflow.file.is_relative() && !workflow.file.as_os_str().is_empty() {
                workflow.file = dir.join(&workflow.file);
            }
        }
    }

    /// Everything checkable before a request: the URL, numbers in range, and every workflow
    /// loaded with its named inputs found.
    pub fn check(&self) -> Result<(), String> {
        let at = "providers.comfyui";
        if !(self.api_base.starts_with("http://") || self.api_base.starts_with("https://")) {
            return Err(format!(
                "{at}.api_base must be an http(s) URL, not {:?}",
                self.api_base
            ));
        }
        if let Some(token) = &self.token {
            let t = token.expose().trim();
            if t.is_empty() || t == "env:" {
                return Err(format!("{at}.token is empty; leave it out for no token"));
            }
        }
        if self.auth_header.trim().is_empty()
            || reqwest::header::HeaderName::from_bytes(self.auth_header.trim().as_bytes()).is_err()
        {
            return Err(format!(
                "{at}.auth_header must be a header name, not {:?}",
                self.auth_header
            ));
        }
        if self.account.trim().is_empty() || self.account.contains(char::is_whitespace) {
            return Err(format!("{at}.account must be a non-empty word"));
        }
        if self.concurrency == 0 {
            return Err(format!("{at}.concurrency must be at least 1"));
        }
        for (name, v) in [
            ("timeout_secs", self.timeout_secs),
            ("max_retry_wait_secs", self.max_retry_wait_secs),
            ("stall_secs", self.stall_secs),
            ("poll_secs", self.poll_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(format!(
                    "{at}.{name} must be more than 0 and at most a day, not {v}"
                ));
            }
        }
        if self.workflows.is_empty() {
            return Err(format!(
                "{at} has no workflow: add [providers.comfyui.workflows.NAME] with file and prompt"
            ));
        }
        match &self.default_workflow {
            Some(name) if !self.workflows.contains_key(name) => {
                return Err(format!(
                    "{at}.default_workflow {name:?} is not a workflow; the workflows are {}",
                    self.names()
                ));
            }
            None if self.workflows.len() > 1 => {
                return Err(format!(
                    "{at}.default_workflow must name one of the workflows ({})",
                    self.names()
                ));
            }
            _ => {}
        }
        for (name, workflow) in &self.workflows {
            crate::providers::comfyui::Workflow::load(name, workflow)
                .map_err(|e| format!("{at}.workflows.{name}: {e}"))?;
        }
        Ok(())
    }

    fn names(&self) -> String {
        self.workflows
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The workflow a request without `workflow` runs.
    pub fn default_name(&self) -> Option<&str> {
        self.default_workflow
            .as_deref()
            .or_else(|| self.workflows.keys().next().map(String::as_str))
    }
}
