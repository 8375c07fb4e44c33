//! Providers: what turns a prompt into pictures, behind one small trait.
//!
//! A provider declares what it can do ([`Capabilities`]: a grid with upscales or separate
//! outputs, clips, actions, a negative prompt), receives a job, and reports progress, its
//! outputs as they come, and failures; it knows nothing of storage, the catalogue or the
//! queue. The engine (`jobs/`) does the rest.

mod capabilities;
pub mod comfyui;
pub mod midjourney;
pub mod openai;
mod output;
pub mod replicate;
pub mod sandbox;
pub mod service_account;

pub use capabilities::{Capabilities, Shape};
pub use output::{Output, OutputKind, VideoFormat};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Action, ErrorCode, Failure, GenerationId, GenerationKind, Parameters, Role};

/// A provider failure. Whether the job is retried is `retryable`: its code's
/// ([`ErrorCode::is_retryable`]) unless the failure was this process's own; `retry_after`
/// overrides the backoff when the provider said.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub retryable: bool,
}

impl ProviderError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            retryable: code.is_retryable(),
        }
    }

    /// The job's references could not be saved (the catalogue failed): an `internal` error
    /// that is tried again, as any catalogue failure of a job is.
    pub fn unsaved(cause: impl std::fmt::Display) -> Self {
        Self {
            retryable: true,
            ..Self::new(
                ErrorCode::Internal,
                format!("the job's provider references could not be saved: {cause}"),
            )
        }
    }

    pub fn failure(&self) -> Failure {
        Failure::new(self.code, self.message.clone())
    }
}

/// What the provider is asked to do, with what it saved earlier (after a crash, a provider
/// resumes from its `refs` instead of starting again).
#[derive(Clone, Debug)]
pub struct ProviderJob {
    pub generation_id: GenerationId,
    /// Imagine, an action's kind, describe or blend.
    pub kind: GenerationKind,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub parameters: Parameters,
    pub account: Option<String>,
    pub refs: serde_json::Value,
    /// An action on the parent generation (a button on its grid or upscale), if this is one.
    pub action: Option<Action>,
    /// The parent generation's references, for actions.
    pub parent_refs: serde_json::Value,
    /// Pictures the job works from (/describe's image, /blend's images, an /imagine's image
    /// prompts); none for an action.
    pub inputs: Vec<Input>,
    /// The upscales the engine will ask this provider for once the grid is stored (none when
    /// it cuts the grid itself, or has them already), so a provider can prepare for them.
    pub upscales: Vec<u8>,
    /// The separate outputs of this render the engine already stored (a resumed job): the
    /// engine skips them if delivered again, and a provider that cannot resume a call (one
    /// with no job id to ask about) asks the service only for the others.
    pub stored: Vec<u8>,
}

/// A picture given to the provider.
#[derive(Clone, Debug)]
pub struct Input {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// A change to a job's saved references (see [`Reporter::update_refs`]).
pub type RefsChange<'a> = Box<dyn FnOnce(&mut serde_json::Value) + Send + 'a>;

/// Where a provider reports while it works.
#[async_trait]
pub trait Reporter: Send + Sync {
    /// The provider's own percentage for the current step (0–100).
    async fn progress(&self, percent: f64);
    /// Delivers one output of a render as soon as it is whole (downloaded, decoded from
    /// base64…), before the next is awaited: the engine stores each as it comes. An error
    /// means the job takes no more outputs (it is ending): the provider stops and returns it.
    /// Upscales return their picture instead.
    async fn output(&self, output: Output) -> Result<(), ProviderError>;
    /// The references saved so far: the job's own at the start of the run, then every
    /// change made through [`Reporter::update_refs`], by any call of the same job.
    fn refs(&self) -> serde_json::Value;
    /// Changes the references and persists them (message id, job hash…) before returning, so
    /// a restart can resume. The calls of one job that run at once (the upscales) share the
    /// references: each change applies to what the others saved, and the changes reach the
    /// catalogue in the order they were made, so none overwrites a later one.
    /// An error means the change may not be durable: a provider then stops before sending
    /// anything that a resumed job would have to find by it (a nonce), and returns the error.
    async fn update_refs(&self, change: RefsChange<'_>) -> Result<(), ProviderError>;
    /// Replaces the references with `refs`.
    async fn save_refs(&self, refs: serde_json::Value) -> Result<(), ProviderError> {
        self.update_refs(Box::new(move |value| *value = refs)).await
    }
    /// The provider account that took the job (pools choose one at run time): recorded with
    /// the next references saved, which a job on an account always saves before it sends
    /// anything.
    async fn account(&self, _name: &str) {}
    /// Something the job's followers must hear although the job goes on (an account taken
    /// out of the pool): a progress event carrying `notice` as its error.
    async fn notice(&self, _notice: Failure) {}
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// What it can do: the engine drives its jobs by it, and [`Providers::check`] refuses
    /// what it cannot serve before anything is written.
    fn capabilities(&self) -> Capabilities;
    /// Renders the job: the grid, or the separate outputs ([`Shape`]); one picture for an
    /// action whose result is one (U1–U4); nothing for /describe, which saves its prompts in
    /// the references. Each output goes through [`Reporter::output`] as soon as it is whole.
    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError>;
    /// Produces upscale `index` (1–4) of the rendered grid ([`Shape::GridWithUpscales`]
    /// only). The engine asks for a job's upscales at once (up to
    /// [`Provider::upscales_at_once`]), each call with its own reporter.
    async fn upscale(
        &self,
        _job: &ProviderJob,
        index: u8,
        _report: &dyn Reporter,
    ) -> Result<Output, ProviderError> {
        Err(ProviderError::new(
            ErrorCode::Internal,
            format!("this provider delivers no grid, so it has no upscale {index}"),
        ))
    }
    /// The job ended (done, failed, canceled or handed back for a retry): release what it
    /// held, such as a pooled account.
    async fn release(&self, _job: &ProviderJob) {}
    /// The generation was canceled by request: stop what the service still runs for it (a
    /// prediction), found by the references its job saved. Best effort; the engine bounds it
    /// in time.
    async fn cancel(&self, _refs: &serde_json::Value) {}
    /// The actions result `role` of a generation offers, as the service answered it (the
    /// buttons on Midjourney's message), found by the references its job saved; `index` is the
    /// upscale the image is (a U1–U4 result's, a clip's). `None` when the provider cannot tell
    /// before it tries: every action it declares is then taken.
    fn offers(
        &self,
        _refs: &serde_json::Value,
        _role: Role,
        _index: Option<u8>,
    ) -> Option<Vec<Action>> {
        None
    }
    /// How many upscales of one job the engine asks for at once.
    fn upscales_at_once(&self) -> usize {
        4
    }
    /// How many separate outputs a render with `parameters` delivers ([`Shape::Separate`]):
    /// the declared count unless the request chooses it (OpenAI's `n`).
    fn outputs(&self, _parameters: &Parameters) -> u8 {
        match self.capabilities().shape {
            Shape::Separate { count } => count.max(1),
            Shape::GridWithUpscales => 1,
        }
    }
    /// Whether the service takes `parameter` (by its API name) as a parameter of its own:
    /// a front-end speaking another service's dialect (the drop-in OpenAI route) hands such
    /// fields through, and maps or drops the others.
    fn takes(&self, _parameter: &str) -> bool {
        false
    }
    /// Refuses a request the service would refuse, before anything is written or sent (the
    /// request already passed the checks every provider shares): why, in one line.
    fn check(
        &self,
        _prompt: &str,
        _negative_prompt: Option<&str>,
        _parameters: &Parameters,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// How a provider's upscales are made.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UpscaleMode {
    /// Ask the provider for each (Midjourney's U1–U4 buttons).
    Provider,
    /// Cut the stored grid into its quadrants: no extra provider call.
    LocalSplit,
}

/// One account of a pooled provider, as `atelier accounts` shows it. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccountStatus {
    pub name: String,
    /// `idle` (not connected yet), `connecting`, `ready` or `disabled`.
    pub health: String,
    /// Why the account is disabled, in words an operator can act on.
    pub reason: Option<String>,
    /// Jobs holding the account now.
    pub busy: u32,
    pub concurrency: u32,
    pub queue_size: u32,
    pub channel_id: String,
}

/// The accounts behind a pooled provider.
#[async_trait]
pub trait AccountPool: Send + Sync {
    fn statuses(&self) -> Vec<AccountStatus>;
    /// Woken whenever an account's health changes.
    fn changes(&self) -> Arc<tokio::sync::Notify>;
    /// Connects every usable account (waiting at most `wait`) and reports how each is.
    async fn check(&self, wait: Duration) -> Vec<AccountStatus>;
    /// Whether this process may take the pool's jobs now: it holds at least one usable
    /// account (a job claimed without one would wait on a node that cannot run it).
    fn takes_jobs(&self) -> bool {
        true
    }
    /// Starts holding the accounts for `holder` through `holds`: an account's gateway is
    /// connected only while its hold is. Once per process; later calls do nothing.
    fn hold_with(&self, holds: Arc<dyn AccountHolds>, holder: &str) {
        let _ = (holds, holder);
    }
    /// Closes the accounts' gateways, then lets go of their holds.
    async fn let_go(&self) {}
}

/// Exclusive holds on provider accounts, one holder at a time, each for a lease the holder
/// renews (the queue's, by the database's clock). What a pool needs of the queue, and no more.
#[async_trait]
pub trait AccountHolds: Send + Sync {
    /// Takes or renews the hold for `lease`; false while another holder's hold is live.
    async fn hold(&self, account: &str, holder: &str, lease: Duration) -> Result<bool, String>;
    /// Lets go of the hold, if `holder` has it.
    async fn release(&self, account: &str, holder: &str);
}

/// A configured provider: the implementation and how the engine drives it.
#[derive(Clone)]
pub struct Registered {
    pub provider: Arc<dyn Provider>,
    /// The concurrency slot's account name.
    pub account: String,
    pub concurrency: u32,
    pub upscale_mode: UpscaleMode,
    /// Its images are drawn, not generated: flagged in the catalogue.
    pub synthetic: bool,
    /// The accounts, for providers that pool several.
    pub accounts: Option<Arc<dyn AccountPool>>,
    /// Jobs that may be queued or running at once; more are refused with `queue_full`.
    pub queue_limit: Option<u32>,
}

/// The providers this process can use, by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Registered>,
    default: Option<String>,
}

impl Providers {
    pub fn insert(&mut self, name: &str, entry: Registered) {
        self.by_name.insert(name.to_owned(), entry);
    }

    pub fn set_default(&mut self, name: &str) {
        self.default = Some(name.to_owned());
    }

    pub fn default_name(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// The provider a request names, else the default; an error names the configured ones.
    pub fn resolve(&self, asked: Option<&str>) -> Result<String, String> {
        let Some(name) = asked.or(self.default.as_deref()) else {
            return Err("no provider is configured".into());
        };
        if self.by_name.contains_key(name) {
            Ok(name.to_owned())
        } else {
            let known: Vec<&str> = self.names().collect();
            Err(format!(
                "unknown provider {name:?}; configured: {}",
                known.join(", ")
            ))
        }
    }

    /// The provider a request names (else the default), once it has checked the request.
    pub fn check(
        &self,
        request: &crate::domain::GenerationRequest,
        parameters: &Parameters,
    ) -> Result<String, String> {
        let name = self.resolve(request.provider.as_deref())?;
        if let Some(registered) = self.by_name.get(&name) {
            registered
                .provider
                .capabilities()
                .takes_negative_prompt(&name, request.negative_prompt.as_deref())?;
            registered
                .provider
                .capabilities()
                .takes_image_prompts(&name, request.pictures().len())?;
            registered.provider.check(
                &request.prompt,
                request.negative_prompt.as_deref(),
                parameters,
            )?;
        }
        Ok(name)
    }

    /// The provider asked for (else the default), once its capabilities serve a job of
    /// `kind` (an action, /describe, /blend): an error names the provider and what it does not
    /// do.
    pub fn serving(
        &self,
        asked: Option<&str>,
        kind: GenerationKind,
        action: Option<Action>,
    ) -> Result<String, String> {
        let name = self.resolve(asked)?;
        if let Some(registered) = self.by_name.get(&name) {
            registered
                .provider
                .capabilities()
                .serves(&name, kind, action)?;
        }
        Ok(name)
    }

    /// The actions image `role` of a generation of `provider` offers: what its result
    /// offered where the provider can tell ([`Provider::offers`]), else every action the
    /// provider declares that acts on such an image (`index`: the upscale it is).
    pub fn offers(
        &self,
        provider: &str,
        refs: &serde_json::Value,
        role: Role,
        index: Option<u8>,
    ) -> Vec<Action> {
        let Some(registered) = self.by_name.get(provider) else {
            return Vec::new();
        };
        if let Some(offered) = registered.provider.offers(refs, role, index) {
            return offered;
        }
        let on_grid = role == Role::Grid;
        registered
            .provider
            .capabilities()
            .actions
            .iter()
            .flat_map(|name| name.words())
            .filter_map(|word| Action::parse(word, index).ok())
            .filter(|action| action.on_grid() == on_grid)
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Workers worth running: one per concurrency slot.
    pub fn total_concurrency(&self) -> u32 {
        self.by_name.values().map(|r| r.concurrency.max(1)).sum()
    }
}
