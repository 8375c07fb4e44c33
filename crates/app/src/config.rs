//! Configuration: one serde struct, loaded in layers — defaults, then `atelier.toml` (the one
//! given with `--config`, else the data directory's), then `ATELIER_*` environment variables
//! (`ATELIER_JOBS__LEASE_SECS=30` sets `[jobs] lease_secs`), then `DATABASE_URL`. No global.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod comfyui;
mod replicate;
mod server;
mod webhooks;

pub use comfyui::{ComfyUiConfig, WorkflowConfig};
pub use credits::{CostTable, CreditsConfig, ProviderCosts};
pub use replicate::{ReplicateConfig, ReplicateModel};
pub use server::{JwtConfig, MetricsAccess, MjProxyConfig, ServerAuth, ServerConfig};
pub use webhooks::WebhooksConfig;

use crate::pipeline::PngCompression;
use crate::providers::UpscaleMode;
pub use crate::secret::{DatabaseUrl, Secret};
use crate::store::Layout;

/// The commented example, printed by `atelier config default`.
pub const EXAMPLE: &str = include_str!("../../../config.example.toml");

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the catalogue, images and temporary files live.
    pub data_dir: PathBuf,
    /// `sqlite:…` (default: a file in the data directory) or `postgres://…`; prints without
    /// its password.
    pub database_url: Option<DatabaseUrl>,
    /// The provider used when a command names none.
    pub default_provider: String,
    pub storage: StorageConfig,
    pub jobs: JobsConfig,
    pub pipeline: PipelineConfig,
    pub providers: ProvidersConfig,
    pub limits: LimitsConfig,
    pub node: NodeConfig,
    pub server: ServerConfig,
    /// What generations cost users of a server (`[credits]`).
    pub credits: CreditsConfig,
    /// How generations' events reach their webhooks (`[webhooks]`).
    pub webhooks: WebhooksConfig,
}

/// This process among the nodes that share one database (`atelier worker`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Names the node's workers and account holds; default: host name, process id, random.
    pub id: Option<String>,
    /// How long `atelier worker` lets the jobs in hand finish after SIGINT or SIGTERM.
    pub shutdown_grace_secs: f64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: None,
            shutdown_grace_secs: 30.0,
        }
    }
}

/// What an image may cost wherever it enters (import, describe and blend files, provider
/// downloads): files over them are refused as bad input before they are read or decoded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest image file read or downloaded, in MiB.
    pub max_file_mib: u64,
    /// Largest decoded image (width × height), in millions of pixels.
    pub max_megapixels: u64,
    /// Memory a decoder may take besides the pixels (colour profiles, text), in MiB.
    pub max_metadata_mib: u64,
    /// Words or phrases no prompt may contain (whole words, any case), for every provider.
    pub banned_words: Vec<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_file_mib: crate::pipeline::DEFAULT_MAX_FILE_MIB,
            max_megapixels: crate::pipeline::DEFAULT_MAX_MEGAPIXELS,
            max_metadata_mib: crate::pipeline::DEFAULT_MAX_METADATA_MIB,
            banned_words: Vec::new(),
        }
    }
}

impl LimitsConfig {
    /// Largest image file, in bytes.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_mib.saturating_mul(1 << 20)
    }

    /// The decoding limits the pipeline holds every image to.
    pub fn pipeline(&self) -> crate::pipeline::Limits {
        crate::pipeline::Limits {
            max_pixels: self.max_megapixels.saturating_mul(1_000_000),
            max_metadata_bytes: self.max_metadata_mib.saturating_mul(1 << 20),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Quadrants cut from grids and the sandbox's renders: `fast`, `balanced` or `small`.
    pub png_compression: PngCompression,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            png_compression: PngCompression::Balanced,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where blobs go: `folder` (under `path`) or `s3` (a bucket of an S3-compatible service).
    pub backend: StorageBackend,
    /// `default` (`{generation_id}/grid.png`) or `library` (`raw/{category}/…`).
    pub layout: Layout,
    /// The folder store's root; default `{data_dir}/images`.
    pub path: Option<PathBuf>,
    /// Base of public image URLs, when the storage is served publicly: an object's URL is
    /// this, `/`, and its key.
    pub public_base_url: Option<String>,
    /// S3: the service's URL (`https://<project>.supabase.co/storage/v1/s3`,
    /// `https://s3.us-east-1.amazonaws.com`, `http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// S3: the bucket, addressed path-style (`{endpoint}/{bucket}/{key}`).
    pub bucket: Option<String>,
    /// S3: the region the requests are signed for.
    pub region: String,
    /// S3: a prefix under which every key goes (none by default).
    pub root: Option<String>,
    /// S3 keys; when unset, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// S3: the longest one request may take before it fails.
    pub timeout_secs: f64,
}

/// Which service keeps the blobs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// A folder on this machine (`[storage] path`).
    #[default]
    Folder,
    /// A bucket of an S3-compatible service (AWS S3, Supabase Storage, `MinIO`, R2).
    S3,
}

/// How the sandbox makes upscales.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SandboxUpscaleMode {
    /// The sandbox draws each upscale.
    #[default]
    Provider,
    /// The stored grid is cut into its quadrants.
    LocalSplit,
}

/// How Midjourney upscales are made.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MidjourneyUpscaleMode {
    /// Press U1–U4 on Discord.
    #[default]
    Discord,
    /// Cut the grid: no extra Discord calls.
    LocalSplit,
}

impl From<SandboxUpscaleMode> for UpscaleMode {
    fn from(m: SandboxUpscaleMode) -> Self {
        match m {
            SandboxUpscaleMode::Provider => Self::Provider,
            SandboxUpscaleMode::LocalSplit => Self::LocalSplit,
        }
    }
}

impl From<MidjourneyUpscaleMode> for UpscaleMode {
    fn from(m: MidjourneyUpscaleMode) -> Self {
        match m {
            MidjourneyUpscaleMode::Discord => Self::Provider,
            MidjourneyUpscaleMode::LocalSplit => Self::LocalSplit,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    pub lease_secs: f64,
    pub max_attempts: u32,
    pub max_takeovers: u32,
    pub retry_base_secs: f64,
    pub retry_max_secs: f64,
    pub poll_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    pub sandbox: SandboxConfig,
    pub midjourney: MidjourneyConfig,
    pub openai: OpenAiConfig,
    pub replicate: ReplicateConfig,
    pub comfyui: ComfyUiConfig,
}

/// An OpenAI-compatible Images API (OpenAI, or a service that copies it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    pub enabled: bool,
    /// The API's root, up to and with `/v1`.
    pub api_base: String,
    /// `env:NAME` reads the key from that environment variable (the default,
    /// `env:OPENAI_API_KEY`); anything else is the key itself. Never printed.
    pub api_key: Secret,
    /// `OpenAI-Organization` and `OpenAI-Project` headers, when the key needs them.
    pub organization: Option<String>,
    pub project: Option<String>,
    /// The account's name in `atelier accounts` and on each generation.
    pub account: String,
    /// The model a request names none of (`--param model=…` chooses another).
    pub model: String,
    /// Stream the GPT image models' requests, their partial images reported as progress.
    pub stream: bool,
    /// Partial images a streamed request asks for (0 to 3).
    pub partial_images: u8,
    /// Requests at once, and jobs that may wait for one.
    pub concurrency: u32,
    pub queue_size: u32,
    /// A request's whole answer must come within this.
    pub timeout_secs: f64,
    /// Tries after the first for 429, 5xx and lost connections, within one job.
    pub max_retries: u32,
    /// First wait between those tries when the service names none; doubled each time.
    pub retry_backoff_ms: u64,
    /// A longer wait asked for (`Retry-After`) sends the job back to the queue instead.
    pub max_retry_wait_secs: f64,
    /// Tries per image URL download.
    pub download_attempts: u32,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_base: "https://api.openai.com/v1".into(),
            api_key: Secret::new("env:OPENAI_API_KEY"),
            organization: None,
            project: None,
            account: "default".into(),
            model: "gpt-image-1".into(),
            stream: false,
            partial_images: 2,
            concurrency: 2,
            queue_size: 50,
            timeout_secs: 300.0,
            max_retries: 2,
            retry_backoff_ms: 500,
            max_retry_wait_secs: 60.0,
            download_attempts: 3,
        }
    }
}

/// Midjourney through Discord user accounts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MidjourneyConfig {
    pub enabled: bool,
    /// `discord` (press U1–U4) or `local_split` (cut the grid; no extra Discord calls).
    pub upscale_mode: MidjourneyUpscaleMode,
    /// U presses one generation sends at once in `discord` mode (1 to 4).
    pub upscales_at_once: u32,
    /// Discord REST root, gateway and CDN: change them for a reverse proxy or the simulator.
    pub api_base: String,
    pub gateway_url: String,
    pub cdn_base: String,
    /// A job fails with `timeout` after this long without any news (progress resets it).
    pub timeout_secs: f64,
    /// The same, once Midjourney said "Job queued".
    pub queued_timeout_secs: f64,
    /// After this long without news, the channel history is read for a missed message.
    pub history_poll_secs: f64,
    /// Limit for one gateway connection attempt (TCP, TLS, WebSocket, HELLO); a refused
    /// connection is known at once.
    pub connect_timeout_secs: f64,
    /// A job whose account's gateway is not ready after this long (its attempts retried with
    /// backoff meanwhile) fails with `provider_unavailable`, the last reason in its message.
    pub unavailable_after_secs: f64,
    /// A node holds an account for this long and renews the hold every third of it; a dead
    /// node's accounts go to another node once their holds run out.
    pub hold_secs: f64,
    /// Minimum time between two interactions of one account, plus random jitter.
    pub interaction_gap_ms: u64,
    pub interaction_jitter_ms: u64,
    /// Tries per image download (CDN errors, truncated or corrupt files).
    pub download_attempts: u32,
    /// First wait between download tries; doubled each time.
    pub download_backoff_ms: u64,
    pub accounts: Vec<AccountConfig>,
}

/// One Discord account that talks to the Midjourney bot in one channel.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// A short name, shown by `atelier accounts` and stored with each generation.
    pub name: String,
    /// `env:NAME` reads the token from that environment variable (recommended); anything
    /// else is the token itself. Never printed.
    pub token: Secret,
    /// The server (guild) of the channel; unset for a direct-message channel with the bot.
    #[serde(default)]
    pub guild_id: Option<String>,
    pub channel_id: String,
    /// Jobs this account runs at once.
    #[serde(default = "one")]
    pub concurrency: u32,
    /// Jobs that may wait for this account.
    #[serde(default = "ten")]
    pub queue_size: u32,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn one() -> u32 {
    1
}
fn ten() -> u32 {
    10
}
fn yes() -> bool {
    true
}

impl Default for MidjourneyConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            upscale_mode: MidjourneyUpscaleMode::Discord,
            upscales_at_once: 4,
            api_base: "https://discord.com/api/v9".into(),
            gateway_url: "wss://gateway.discord.gg".into(),
            cdn_base: "https://cdn.discordapp.com".into(),
            timeout_secs: 300.0,
            queued_timeout_secs: 1200.0,
            history_poll_secs: 30.0,
            connect_timeout_secs: 15.0,
            unavailable_after_secs: 60.0,
            hold_secs: 30.0,
            interaction_gap_ms: 1200,
            interaction_jitter_ms: 800,
            download_attempts: 5,
            download_backoff_ms: 1000,
            accounts: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    pub enabled: bool,
    /// Side of the grid in pixels (each upscale is half).
    pub size: u32,
    /// How long a grid takes to "render"; an upscale takes a quarter of it.
    pub delay_ms: u64,
    /// Jobs of the sandbox that may run at once.
    pub concurrency: u32,
    /// `provider` (draw each upscale) or `local_split` (cut the stored grid).
    pub upscale_mode: SandboxUpscaleMode,
    /// `[providers.sandbox.video]`: the sandbox as a video model, `sandbox-video`.
    pub video: SandboxVideoConfig,
}

/// The sandbox's clips: one real clip a render, drawn like its pictures.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxVideoConfig {
    /// Registers the provider `sandbox-video`.
    pub enabled: bool,
    /// `mp4` (H.264) or `webp` (animated WebP).
    pub format: ClipFormatName,
    /// Side of the square frames in pixels: even, 16 to 1024.
    pub size: u32,
    /// Frames a clip (1 to 240) and frames a second (1 to 60).
    pub frames: u32,
    pub fps: u32,
    /// How long a clip takes to "render".
    pub delay_ms: u64,
}

/// A clip's container, as the configuration names it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClipFormatName {
    #[default]
    Mp4,
    Webp,
}

impl From<ClipFormatName> for crate::providers::VideoFormat {
    fn from(f: ClipFormatName) -> Self {
        match f {
            ClipFormatName::Mp4 => Self::Mp4,
            ClipFormatName::Webp => Self::WebP,
        }
    }
}

impl SandboxVideoConfig {
    /// What `clip.rs` draws.
    pub fn spec(&self) -> crate::providers::sandbox::ClipSpec {
        crate::providers::sandbox::ClipSpec {
            format: self.format.into(),
            side: self.size,
            frames: self.frames,
            fps: self.fps,
        }
    }
}

impl Default for SandboxVideoConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            format: ClipFormatName::Mp4,
            size: 256,
            frames: 24,
            fps: 12,
            delay_ms: 500,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./atelier-data"),
            database_url: None,
            default_provider: "sandbox".into(),
            storage: StorageConfig::default(),
            jobs: JobsConfig::default(),
            pipeline: PipelineConfig::default(),
            providers: ProvidersConfig::default(),
            limits: LimitsConfig::default(),
            node: NodeConfig::default(),
            server: ServerConfig::default(),
            credits: CreditsConfig::default(),
            webhooks: WebhooksConfig::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Folder,
            layout: Layout::Default,
            path: None,
            public_base_url: None,
            endpoint: None,
            bucket: None,
            region: "us-east-1".into(),
            root: None,
            access_key_id: None,
            secret_access_key: None,
            timeout_secs: 30.0,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            lease_secs: 15.0,
            max_attempts: 5,
            max_takeovers: 10,
            retry_base_secs: 2.0,
            retry_max_secs: 60.0,
            poll_secs: 1.0,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            size: 2048,
            delay_ms: 1500,
            concurrency: 1,
            upscale_mode: SandboxUpscaleMode::Provider,
            video: SandboxVideoConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("configuration file {0} is a folder, not a file")]
    Folder(PathBuf),
    #[error("configuration file {0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads the configuration. `data_dir` (from `--data-dir`) wins over every other source.
pub fn load(config_file: Option<&Path>, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
    // ATELIER_LOG is the log filter, read by `main`, not a configuration key; so is the
    // pause debug builds of `atelier migrate` take for the tests (`cli/migrate.rs`), and so are
    // the test command's own variables (ATELIER_TEST_*: the test databases and S3 server), and
    // the CLI's `--server` mode's (ATELIER_SERVER, ATELIER_API_KEY: a shell that sets them
    // for a remote server still runs local commands).
    load_from(
        config_file,
        data_dir,
        Env::prefixed("ATELIER_")
            .ignore(&["log", "migrate_pause_ms", "server", "api_key"])
            .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
            .split("__"),
    )
}

fn load_from(
    config_file: Option<&Path>,
    data_dir: Option<&Path>,
    env: Env,
) -> Result<Config, ConfigError> {
    let base = Figment::from(Serialized::defaults(Config::default()));
    // Find the data directory first: the default file lives in it.
    let early: Config = base
        .clone()
        .merge(env.clone().only(&["data_dir"]))
        .extract()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let dir = data_dir.map_or(early.data_dir, Path::to_path_buf);
    let file = match config_file {
        Some(f) if f.is_dir() => return Err(ConfigError::Folder(f.to_path_buf())),
        Some(f) if f.exists() && !f.is_file() => {
            return Err(ConfigError::NotAFile(f.to_path_buf()));
        }
        Some(f) if !f.is_file() => return Err(ConfigError::Missing(f.to_path_buf())),
        Some(f) => Some(f.to_path_buf()),
        None => Some(dir.join("atelier.toml")).filter(|f| f.is_file()),
    };
    let mut figment = base;
    if let Some(file) = &file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(env);
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
    {
        figment = figment.merge(Serialized::default("database_url", url));
    }
    if let Some(d) = data_dir {
        figment = figment.merge(Serialized::default("data_dir", d));
    }
    let mut config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    // ComfyUI's workflow files are named relative to the file that names them.
    let folder = file
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    config.providers.comfyui.resolve_files(&folder);
    config.check()?;
    Ok(config)
}

impl Config {
    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        self.check_storage()?;
        let j = &self.jobs;
        for (name, v) in [
            ("jobs.lease_secs", j.lease_secs),
            ("jobs.retry_base_secs", j.retry_base_secs),
            ("jobs.retry_max_secs", j.retry_max_secs),
            ("jobs.poll_secs", j.poll_secs),
            ("node.shutdown_grace_secs", self.node.shutdown_grace_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 86_400.0) {
                return bad(format!(
                    "{name} must be a positive number of seconds, not {v}"
                ));
            }
        }
        if j.max_attempts == 0 {
            return bad("jobs.max_attempts must be at least 1".into());
        }
        let s = &self.providers.sandbox;
        if !(16..=8192).contains(&s.size) || !s.size.is_multiple_of(2) {
            return bad(format!(
                "providers.sandbox.size must be an even number from 16 to 8192, not {}",
                s.size
            ));
        }
        if s.concurrency == 0 {
            return bad("providers.sandbox.concurrency must be at least 1".into());
        }
        if let Err(e) = s.video.spec().check() {
            return bad(format!("providers.sandbox.video: {e}"));
        }
        for (name, v, most) in [
            ("limits.max_file_mib", self.limits.max_file_mib, 1 << 20),
            ("limits.max_megapixels", self.limits.max_megapixels, 1 << 20),
            (
                "limits.max_metadata_mib",
                self.limits.max_metadata_mib,
                1 << 20,
            ),
        ] {
            if !(1..=most).contains(&v) {
                return bad(format!("{name} must be from 1 to {most}, not {v}"));
            }
        }
        self.check_midjourney()?;
        self.check_openai()?;
        self.providers.replicate.check()?;
        if self.providers.comfyui.enabled {
            self.providers
                .comfyui
                .check()
                .map_err(ConfigError::Invalid)?;
        }
        if let Some(url) = &self.database_url
            && crate::catalogue::in_memory(url.expose())
        {
            return bad(format!(
                "database_url (or DATABASE_URL) {url:?} is an in-memory database: the catalogue \
                 would vanish when the command ends and leave its images orphaned; use a file, \
                 such as sqlite://atelier-data/atelier.db"
            ));
        }
        Ok(())
    }

    /// The S3 settings a bucket needs, checked before anything is written.
    fn check_storage(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let s = &self.storage;
        if let Some(base) = &s.public_base_url
            && !(base.starts_with("http://") || base.starts_with("https://"))
        {
            return bad(format!(
                "storage.public_base_url must be an http(s) URL, not {base:?}"
            ));
        }
        if s.backend != StorageBackend::S3 {
            return Ok(());
        }
        let named = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        if !named(&s.endpoint) {
            return bad(
                "storage.backend is \"s3\" but storage.endpoint is not set (the service's URL, \
                 such as https://<project>.supabase.co/storage/v1/s3)"
                    .into(),
            );
        }
        if let Some(e) = &s.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return bad(format!(
                "storage.endpoint must be an http(s) URL, not {e:?}"
            ));
        }
        if !named(&s.bucket) {
            return bad("storage.backend is \"s3\" but storage.bucket is not set".into());
        }
        if s.region.trim().is_empty() {
            return bad("storage.region is empty (us-east-1 is the default)".into());
        }
        if !(s.timeout_secs.is_finite() && s.timeout_secs > 0.0 && s.timeout_secs < 86_400.0) {
            return bad(format!(
                "storage.timeout_secs must be a positive number of seconds, not {}",
                s.timeout_secs
            ));
        }
        self.s3_target().map(|_| ())
    }

    fn check_midjourney(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let m = &self.providers.midjourney;
        if !(1..=4).contains(&m.upscales_at_once) {
            return bad(format!(
                "providers.midjourney.upscales_at_once must be from 1 to 4, not {}",
                m.upscales_at_once
            ));
        }
        for (name, v) in [
            ("timeout_secs", m.timeout_secs),
            ("queued_timeout_secs", m.queued_timeout_secs),
            ("history_poll_secs", m.history_poll_secs),
            ("connect_timeout_secs", m.connect_timeout_secs),
            ("unavailable_after_secs", m.unavailable_after_secs),
            ("hold_secs", m.hold_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 86_400.0) {
                return bad(format!(
                    "providers.midjourney.{name} must be a positive number of seconds, not {v}"
                ));
            }
        }
        for (name, url) in [
            ("api_base", &m.api_base),
            ("gateway_url", &m.gateway_url),
            ("cdn_base", &m.cdn_base),
        ] {
            let ok = ["http://", "https://", "ws://", "wss://"]
                .iter()
                .any(|p| url.starts_with(p));
            if !ok {
                return bad(format!(
                    "providers.midjourney.{name} must be an http(s) or ws(s) URL, not {url:?}"
                ));
            }
        }
        if m.download_attempts == 0 {
            return bad("providers.midjourney.download_attempts must be at least 1".into());
        }
        if m.enabled && !m.accounts.iter().any(|a| a.enabled) {
            return bad(
                "providers.midjourney is enabled but has no enabled [[providers.midjourney.accounts]]"
                    .into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for a in &m.accounts {
            let at = format!("providers.midjourney.accounts {:?}", a.name);
            if a.name.trim().is_empty() || a.name.contains(char::is_whitespace) {
                return bad(format!("{at}: the name must be a non-empty word"));
            }
            if !names.insert(a.name.as_str()) {
                return bad(format!("{at}: the name is used twice"));
            }
            if a.token.expose().trim().is_empty() || a.token.expose().trim() == "env:" {
                return bad(format!("{at}: token is empty"));
            }
            let snowflake =
                |v: &str| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit());
            if !snowflake(&a.channel_id) {
                return bad(format!(
                    "{at}: channel_id must be a Discord id (digits), not {:?}",
                    a.channel_id
                ));
            }
            if let Some(g) = &a.guild_id
                && !snowflake(g)
            {
                return bad(format!(
                    "{at}: guild_id must be a Discord id (digits), not {g:?}"
                ));
            }
            if a.concurrency == 0 {
                return bad(format!("{at}: concurrency must be at least 1"));
            }
        }
        Ok(())
    }

    /// `[providers.openai]`: a URL, a key, numbers in range.
    fn check_openai(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let o = &self.providers.openai;
        if !(o.api_base.starts_with("http://") || o.api_base.starts_with("https://")) {
            return bad(format!(
                "providers.openai.api_base must be an http(s) URL, not {:?}",
                o.api_base
            ));
        }
        let key = o.api_key.expose().trim();
        if key.is_empty() || key == "env:" {
            return bad("providers.openai.api_key is empty".into());
        }
        if o.account.trim().is_empty() || o.account.contains(char::is_whitespace) {
            return bad("providers.openai.account must be a non-empty word".into());
        }
        if o.model.trim().is_empty() {
            return bad("providers.openai.model is empty".into());
        }
        if o.partial_images > 3 {
            return bad(format!(
                "providers.openai.partial_images must be from 0 to 3, not {}",
                o.partial_images
            ));
        }
        if o.concurrency == 0 || o.download_attempts == 0 {
            return bad(
                "providers.openai.concurrency and download_attempts must be at least 1".into(),
            );
        }
        for (name, v) in [
            ("timeout_secs", o.timeout_secs),
            ("max_retry_wait_secs", o.max_retry_wait_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return bad(format!(
                    "providers.openai.{name} must be more than 0 and at most a day, not {v}"
                ));
            }
        }
        Ok(())
    }

    /// The catalogue URL: the configured one, else a `SQLite` file in the data directory.
    /// Its password included: for the database driver only.
    pub fn database_url(&self) -> String {
        self.database_url.as_ref().map_or_else(
            || format!("sqlite://{}", self.data_dir.join("atelier.db").display()),
            |u| u.expose().to_owned(),
        )
    }

    /// The catalogue URL with its password replaced, for messages and `atelier config show`.
    pub fn database_url_redacted(&self) -> String {
        crate::secret::redact_url(&self.database_url())
    }

    pub fn storage_root(&self) -> PathBuf {
        self.storage
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("images"))
    }

    /// The bucket `[storage]` names, for the `s3` backend (`None` for a folder). Keys not in
    /// the file come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub fn s3_target(&self) -> Result<Option<crate::store::S3Target>, ConfigError> {
        let s = &self.storage;
        if s.backend != StorageBackend::S3 {
            return Ok(None);
        }
        let key = |set: &Option<Secret>, name: &str, env: &str| {
            set.clone()
                .filter(|v| !v.expose().trim().is_empty())
                .or_else(|| {
                    std::env::var(env)
                        .ok()
                        .filter(|v| !v.trim().is_empty())
                        .map(Secret::new)
                })
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "storage.backend is \"s3\" but storage.{name} is not set, nor {env}"
                    ))
                })
        };
        Ok(Some(crate::store::S3Target {
            endpoint: s.endpoint.clone().unwrap_or_default(),
            bucket: s.bucket.clone().unwrap_or_default(),
            region: s.region.clone(),
            root: s.root.clone().unwrap_or_default(),
            access_key_id: key(&s.access_key_id, "access_key_id", "AWS_ACCESS_KEY_ID")?,
            secret_access_key: key(
                &s.secret_access_key,
                "secret_access_key",
                "AWS_SECRET_ACCESS_KEY",
            )?,
            timeout: std::time::Duration::from_secs_f64(s.timeout_secs),
        }))
    }

    /// Temporary files for atomic writes: beside the storage root, never under it.
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

mod credits;
#[cfg(test)]
mod tests;
