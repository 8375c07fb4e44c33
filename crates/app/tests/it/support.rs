//! Shared test helpers: a temporary data directory with a fast sandbox, the real binary, an
//! in-process `App`, and a scriptable provider.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use atelier::app::{App, JobSettings};
use atelier::catalogue::{self, Database};
use atelier::domain::{ErrorCode, GenerationId};
use atelier::providers::sandbox::{Sandbox, draw};
use atelier::providers::{
    Capabilities, Output as Delivered, Provider, ProviderError, ProviderJob, Providers, Registered,
    Reporter, UpscaleMode,
};
use atelier::store::{Layout, Store};

/// Which database a test's catalogue lives in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of tests that do not choose one: `ATELIER_TEST_CATALOGUE=postgres` for
    /// `PostgreSQL` (scripts/test.sh runs the engine, crash and Midjourney tests so), else
    /// `SQLite`.
    pub fn from_env() -> Self {
        match std::env::var("ATELIER_TEST_CATALOGUE").as_deref() {
            Ok("postgres") => Self::Postgres,
            Ok("sqlite" | "") | Err(_) => Self::Sqlite,
            Ok(other) => panic!("ATELIER_TEST_CATALOGUE={other:?}: expected sqlite or postgres"),
        }
    }

    /// The URL of a new, empty database for one test: a file in `dir`, or a fresh
    /// `PostgreSQL` database (see `crate::postgres::fresh_url`).
    pub async fn url(self, dir: &Path) -> String {
        match self {
            Self::Sqlite => format!("sqlite://{}", dir.join("test.db").display()),
            Self::Postgres => crate::postgres::fresh_url().await,
        }
    }

    pub async fn open(self, dir: &Path) -> Database {
        let url = self.url(dir).await;
        catalogue::open(&url, true)
            .await
            .unwrap_or_else(|e| panic!("the {self:?} test catalogue opens: {e}"))
    }
}

/// A new catalogue for one test, on [`Backend::from_env`].
pub async fn test_db(dir: &Path) -> Database {
    Backend::from_env().open(dir).await
}

/// A data directory for the real binary, with a small, instant sandbox. On
/// [`Backend::Postgres`] its catalogue is a fresh `PostgreSQL` database (`DATABASE_URL`).
pub struct DataDir {
    pub dir: tempfile::TempDir,
    database: Option<String>,
}

impl DataDir {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// `extra` (whole TOML tables) is appended to the test configuration.
    pub fn with_config(extra: &str) -> Self {
        Self::raw(&format!(
            "[providers.sandbox]\nsize = 128\ndelay_ms = 0\n[jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n{extra}"
        ))
    }

    /// Exactly this configuration.
    pub fn raw(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("atelier.toml"), config).expect("config written");
        let database =
            (Backend::from_env() == Backend::Postgres).then(crate::postgres::migrated_url_blocking);
        Self { dir, database }
    }

    /// An existing data directory (its own configuration inside), on its `SQLite` catalogue.
    pub fn at(dir: tempfile::TempDir) -> Self {
        Self {
            dir,
            database: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of this data directory's catalogue.
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.path().join("atelier.db").display()))
    }

    pub fn images(&self) -> PathBuf {
        self.path().join("images")
    }

    /// The binary with this data directory and a clean environment.
    pub fn cmd(&self) -> Command {
        let mut cmd = bare_cmd();
        cmd.arg("--data-dir").arg(self.path());
        if let Some(url) = &self.database {
            cmd.env("DATABASE_URL", url);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("binary runs")
    }

    /// Runs with `--json` and parses stdout; panics with stderr when it is not JSON.
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = self
            .cmd()
            .arg("--json")
            .args(args)
            .output()
            .expect("binary runs");
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), value)
    }

    /// Every file under the storage root, relative to it, sorted.
    pub fn stored_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        let mut stack = vec![self.images()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries {
                let p = e.expect("dir entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(
                        p.strip_prefix(self.images())
                            .expect("under root")
                            .display()
                            .to_string(),
                    );
                }
            }
        }
        files.sort();
        files
    }
}

/// The binary with no inherited Atelier settings.
pub fn bare_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atelier"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ATELIER_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A provider whose behaviour a test scripts: what each call in turn returns (`Some` error
/// or `None` for success; success once the script runs out), a delay, and a record of how many
/// calls, and how many generations (jobs), ran at once.
pub struct Scripted {
    pub failures: Mutex<VecDeque<Option<ProviderError>>>,
    pub delay: Duration,
    /// Added to `delay` for upscale 1–4.
    pub upscale_delays: [Duration; 4],
    pub calls: AtomicUsize,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    /// Calls in flight by generation; the most generations with a call in flight at once.
    pub jobs: Mutex<HashMap<GenerationId, usize>>,
    pub max_jobs: AtomicUsize,
    /// Deliveries still to cut short (a truncated download).
    pub corrupt: AtomicUsize,
}

impl Scripted {
    pub fn new(delay: Duration, failures: Vec<Option<ProviderError>>) -> Arc<Self> {
        Self::staggered(delay, failures, [Duration::ZERO; 4])
    }

    /// Upscale `i` takes `delay + upscale_delays[i - 1]`.
    pub fn staggered(
        delay: Duration,
        failures: Vec<Option<ProviderError>>,
        upscale_delays: [Duration; 4],
    ) -> Arc<Self> {
        Arc::new(Self {
            failures: Mutex::new(failures.into()),
            delay,
            upscale_delays,
            calls: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            jobs: Mutex::new(HashMap::new()),
            max_jobs: AtomicUsize::new(0),
            corrupt: AtomicUsize::new(0),
        })
    }

    fn enter(&self, job: GenerationId) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let mut jobs = self.jobs.lock().expect("lock");
        *jobs.entry(job).or_default() += 1;
        self.max_jobs.fetch_max(jobs.len(), Ordering::SeqCst);
    }

    fn leave(&self, job: GenerationId) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        let mut jobs = self.jobs.lock().expect("lock");
        if let Some(n) = jobs.get_mut(&job) {
            *n -= 1;
            if *n == 0 {
                jobs.remove(&job);
            }
        }
    }

    async fn deliver(
        &self,
        job: &ProviderJob,
        quadrant: Option<u8>,
        report: &dyn Reporter,
    ) -> Result<Vec<u8>, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.enter(job.generation_id);
        report.progress(40.0).await;
        let extra = quadrant
            .and_then(|i| self.upscale_delays.get(usize::from(i).checked_sub(1)?))
            .copied()
            .unwrap_or_default();
        tokio::time::sleep(self.delay + extra).await;
        self.leave(job.generation_id);
        let failure = self.failures.lock().expect("lock").pop_front().flatten();
        if let Some(f) = failure {
            return Err(f);
        }
        let pixels = match quadrant {
            None => draw::grid(&job.prompt, 1, 64),
            Some(i) => draw::quadrant(&job.prompt, 1, 32, i),
        };
        let mut bytes = pixels.encode_png().expect("png");
        if self
            .corrupt
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            bytes.truncate(bytes.len() / 2);
        }
        Ok(bytes)
    }
}

#[async_trait]
impl Provider for Scripted {
    fn capabilities(&self) -> Capabilities {
        Capabilities::MIDJOURNEY
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let bytes = self.deliver(job, None, report).await?;
        report.output(Delivered::image(1, bytes)).await
    }

    async fn upscale(
        &self,
        job: &ProviderJob,
        index: u8,
        report: &dyn Reporter,
    ) -> Result<Delivered, ProviderError> {
        let bytes = self.deliver(job, Some(index), report).await?;
        Ok(Delivered::image(index, bytes))
    }
}

pub fn err(code: ErrorCode, message: &str) -> ProviderError {
    ProviderError::new(code, message)
}

pub fn fast_jobs() -> JobSettings {
    JobSettings {
        lease: Duration::from_millis(600),
        max_attempts: 3,
        max_takeovers: 10,
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        poll: Duration::from_millis(20),
        ..JobSettings::default()
    }
}

/// An in-process app over a temp catalogue and an in-memory store.
pub struct TestApp {
    pub app: Arc<App>,
    pub _dir: tempfile::TempDir,
    /// Where its catalogue is.
    pub database_url: String,
}

pub async fn app_with(
    providers: Vec<(&str, Arc<dyn Provider>, u32, UpscaleMode)>,
    jobs: JobSettings,
) -> TestApp {
    app_on(Backend::from_env(), providers, jobs).await
}

/// [`app_with`] on the given database.
pub async fn app_on(
    backend: Backend,
    providers: Vec<(&str, Arc<dyn Provider>, u32, UpscaleMode)>,
    jobs: JobSettings,
) -> TestApp {
    app_wrapping(backend, providers, jobs, |q| q).await
}

/// [`app_on`], with the app's queue seen through `wrap` (a queue that fails on purpose).
pub async fn app_wrapping(
    backend: Backend,
    providers: Vec<(&str, Arc<dyn Provider>, u32, UpscaleMode)>,
    jobs: JobSettings,
    wrap: impl FnOnce(Arc<dyn atelier::catalogue::Queue>) -> Arc<dyn atelier::catalogue::Queue>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = backend.url(dir.path()).await;
    let mut db = catalogue::open(&database_url, true)
        .await
        .unwrap_or_else(|e| panic!("the {backend:?} test catalogue opens: {e}"));
    db.queue = wrap(db.queue);
    let mut registry = Providers::default();
    for (name, provider, concurrency, mode) in &providers {
        registry.insert(
            name,
            Registered {
                provider: provider.clone(),
                account: format!("{name}-account"),
                concurrency: *concurrency,
                upscale_mode: *mode,
                synthetic: *name == "sandbox",
                accounts: None,
                queue_limit: None,
            },
        );
    }
    if let Some((name, ..)) = providers.first() {
        registry.set_default(name);
    }
    let app = App::builder(db, Store::memory(Layout::Default), registry)
        .jobs(jobs)
        .build();
    TestApp {
        app,
        _dir: dir,
        database_url,
    }
}

pub async fn sandbox_app() -> TestApp {
    let sandbox: Arc<dyn Provider> = Arc::new(Sandbox {
        size: 64,
        delay: Duration::ZERO,
    });
    app_with(
        vec![("sandbox", sandbox, 2, UpscaleMode::Provider)],
        fast_jobs(),
    )
    .await
}

/// Sends the app's logs to the test output when `ATELIER_TEST_LOG` holds a filter (such as
/// `atelier=debug`), to see which await a stalled test waits on. Once per process.
pub fn logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("ATELIER_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}
