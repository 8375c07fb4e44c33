//! `App`: the one door into the engine. Every front-end (the CLI, the HTTP server, MCP) calls
//! its use cases and nothing below it; a tidy test keeps `cli/`, `http/` and `mcp/` from
//! reaching the catalogue, the queue, the store, the bus or the providers.
//!
//! Every use case runs for an [`Actor`]: what it creates is the actor's, and what it reads or
//! changes must be visible to the actor, or it is "not found". `App` holds no front-end
//! concern: it never prints, parses arguments or speaks HTTP.

mod accounts;
mod actions;
mod follow;
mod generations;
mod image_prompts;
mod images;
mod import;
mod mjproxy;
mod node;
mod results;
mod sign_in;
mod users;
mod verified_keys;
mod webhooks;

pub use crate::catalogue::FeedEntry;
pub(crate) use accounts::spawn_account_recorder;
pub use accounts::{AccountView, LastKnown, ProviderSummary, account_views};
pub use actions::{ActOptions, shorten_request};
pub use follow::{Following, FollowingFeed};
pub use generations::{GenerationPage, QueuePosition};
pub use images::ImagePage;
pub use import::ImportRequest;
pub(crate) use mjproxy::links as mj_links;
pub use node::{RunningNode, SlotLoad, Stop};
pub use verified_keys::TTL as KEY_TRUST;
pub use webhooks::NotifyHook;

use std::sync::Arc;
use std::time::Duration;

use crate::api::{GenerationView, ImageView};
use crate::catalogue::{Catalogue, Database, Directory, Outbox, Queue};
use crate::domain::{Actor, Generation, GenerationId, Image, ImageId};
use crate::error::AppError;
use crate::jobs::Bus;
use crate::jwt::JwtVerifier;
use crate::pipeline::{Limits, PngCompression};
use crate::providers::Providers;
use crate::store::Store;
pub use users::{SESSION_TTL, request_fingerprint, secret_hash};

/// How the queue treats jobs.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub lease: Duration,
    pub max_attempts: u32,
    /// Takeovers of a job whose worker stopped without a word before it is given up.
    pub max_takeovers: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Longest sleep of an idle worker between looks at the queue.
    pub poll: Duration,
    /// This process's id among the nodes sharing the database (`jobs::node_id`): it names the
    /// workers' leases and the account holds.
    pub node: String,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            max_attempts: 5,
            max_takeovers: 10,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_mins(1),
            poll: Duration::from_secs(1),
            node: crate::jobs::node_id(None),
        }
    }
}

/// The engine's parts. The fields are the engine's own (`jobs/`, `migrate/`, `bench/` use
/// them); front-ends use the methods.
pub struct App {
    pub(crate) catalogue: Arc<dyn Catalogue>,
    pub(crate) queue: Arc<dyn Queue>,
    /// Users, keys, sessions, credits, the audit log, idempotent requests (`users.rs`).
    pub(crate) directory: Arc<dyn Directory>,
    /// What generations cost users (`[credits]`).
    pub(crate) credits: crate::config::CreditsConfig,
    pub(crate) store: Store,
    pub(crate) providers: Providers,
    pub(crate) bus: Bus,
    pub(crate) jobs: JobSettings,
    /// How quadrants cut from grids are compressed.
    pub(crate) png: PngCompression,
    /// What an image may cost to decode (`[limits]`), for every image stored.
    pub(crate) limits: Limits,
    /// Words no prompt may contain (`[limits] banned_words`).
    pub(crate) banned_words: Vec<String>,
    /// Checks the tokens of another sign-in service (`[server.jwt]`), when one is trusted.
    pub(crate) jwt: Option<Arc<JwtVerifier>>,
    /// The process's one reader of the event feed, shared by every follower.
    hub: follow::Hub,
    /// API keys verified in the last second (`verified_keys.rs`).
    verified_keys: verified_keys::VerifiedKeys,
    /// Webhooks' secrets, subscriptions and deliveries (`webhooks.rs`, `crate::webhooks`).
    pub(crate) webhooks: Arc<dyn Outbox>,
    pub(crate) webhook_settings: crate::webhooks::WebhookSettings,
    /// Signs and addresses the links to pictures in midjourney-proxy tasks (`mjproxy.rs`).
    pub(crate) mj_links: crate::api::mjproxy::Links,
    /// Where those links begin when nothing else tells: `atelier serve`'s address.
    mj_origin: std::sync::OnceLock<String>,
}

/// Builds an [`App`]: the database, the store and the providers are needed; the rest has
/// defaults.
pub struct AppBuilder {
    db: Database,
    store: Store,
    providers: Providers,
    jobs: JobSettings,
    png: PngCompression,
    limits: Limits,
    credits: crate::config::CreditsConfig,
    banned_words: Vec<String>,
    jwt: Option<Arc<JwtVerifier>>,
    webhooks: crate::webhooks::WebhookSettings,
    mj_links: Option<crate::api::mjproxy::Links>,
}

impl AppBuilder {
    /// How webhooks are delivered (`[webhooks]`).
    #[must_use]
    pub fn webhooks(mut self, settings: crate::webhooks::WebhookSettings) -> Self {
        self.webhooks = settings;
        self
    }

    /// Words or phrases no prompt may contain.
    #[must_use]
    pub fn banned_words(mut self, words: Vec<String>) -> Self {
        self.banned_words = words;
        self
    }

    /// What generations cost users (`[credits]`; off by default).
    #[must_use]
    pub fn credits(mut self, credits: crate::config::CreditsConfig) -> Self {
        self.credits = credits;
        self
    }

    /// Trusts the tokens this verifier accepts (`[server.jwt]`).
    #[must_use]
    pub fn jwt(mut self, jwt: Option<JwtVerifier>) -> Self {
        self.jwt = jwt.map(Arc::new);
        self
    }

    /// How links to pictures in midjourney-proxy tasks are signed (`[server.mj_proxy]`); by
    /// default with a key of this process's own.
    #[must_use]
    pub fn mj_links(mut self, links: crate::api::mjproxy::Links) -> Self {
        self.mj_links = Some(links);
        self
    }

    #[must_use]
    pub fn jobs(mut self, jobs: JobSettings) -> Self {
        self.jobs = jobs;
        self
    }

    #[must_use]
    pub fn png(mut self, png: PngCompression) -> Self {
        self.png = png;
        self
    }

    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn build(self) -> Arc<App> {
        let mj_links = self.mj_links.unwrap_or_else(|| {
            let mut key = vec![0u8; 32];
            // A key nobody knows, even if the random source failed: a fresh UUID's bits.
            if getrandom::fill(&mut key).is_err() {
                key = uuid::Uuid::new_v4().as_bytes().to_vec();
            }
            crate::api::mjproxy::Links::new(key, Duration::from_hours(24), None)
        });
        Arc::new(App {
            mj_links,
            mj_origin: std::sync::OnceLock::new(),
            hub: follow::Hub::new(self.db.catalogue.clone()),
            verified_keys: verified_keys::VerifiedKeys::default(),
            catalogue: self.db.catalogue,
            queue: self.db.queue,
            directory: self.db.directory,
            webhooks: self.db.webhooks,
            webhook_settings: self.webhooks,
            credits: self.credits,
            store: self.store,
            providers: self.providers,
            bus: Bus::default(),
            jobs: self.jobs,
            png: self.png,
            limits: self.limits,
            banned_words: self.banned_words,
            jwt: self.jwt,
        })
    }
}

/// A generation with its images, as front-ends show it.
#[derive(Clone, Debug)]
pub struct GenerationWithImages {
    pub generation: Generation,
    pub images: Vec<Image>,
}

impl App {
    pub fn builder(db: Database, store: Store, providers: Providers) -> AppBuilder {
        AppBuilder {
            db,
            store,
            providers,
            jobs: JobSettings::default(),
            png: PngCompression::Balanced,
            limits: Limits::default(),
            credits: crate::config::CreditsConfig::default(),
            banned_words: Vec::new(),
            jwt: None,
            webhooks: crate::webhooks::WebhookSettings::default(),
            mj_links: None,
        }
    }

    /// The catalogue, for the engine's own tests and tools (front-ends use the use cases).
    pub fn catalogue(&self) -> &Arc<dyn Catalogue> {
        &self.catalogue
    }

    /// The queue, for the engine's own tests and tools (front-ends use the use cases).
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// The store, for the engine's own tests and tools (front-ends use the use cases).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The registered providers, for the engine's own tests and tools.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// This process's id among the nodes sharing the database.
    pub fn node(&self) -> &str {
        &self.jobs.node
    }

    /// How many jobs this process's providers take at once: the workers a node runs by default.
    pub fn total_concurrency(&self) -> u32 {
        self.providers.total_concurrency()
    }

    /// A generation with its images as the API shows it (URLs and paths from the store).
    pub fn generation_view(&self, g: &GenerationWithImages) -> GenerationView {
        GenerationView::of(g, &self.store)
    }

    /// An image as the API shows it.
    pub fn image_view(&self, image: &Image) -> ImageView {
        ImageView::new(image, &self.store)
    }

    /// A value kept with the data (`meta`): settings and one-time notices.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, AppError> {
        Ok(self.catalogue.meta(key).await?)
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), AppError> {
        Ok(self.catalogue.set_meta(key, value).await?)
    }

    /// The generation `id` if `actor` may see it; another user's is "not found", exactly as
    /// an id that names nothing, so ids cannot be probed.
    pub(crate) async fn visible_generation(
        &self,
        actor: Actor,
        id: GenerationId,
    ) -> Result<Generation, AppError> {
        visible_to(actor, self.catalogue.generation(id).await?)
    }

    /// The image `id` if `actor` may see it (see [`App::visible_generation`]).
    pub(crate) async fn visible_image(&self, actor: Actor, id: ImageId) -> Result<Image, AppError> {
        let image = self.catalogue.image(id).await?;
        if actor.may_see(image.owner) {
            Ok(image)
        } else {
            Err(AppError::NotFound(format!("image {id}")))
        }
    }
}

pub(crate) fn slot_of(provider: &str, account: &str) -> String {
    format!("{provider}:{account}")
}

/// `g` if `actor` may see it, else "not found" (the same answer as for no generation at all).
fn visible_to(actor: Actor, g: Generation) -> Result<Generation, AppError> {
    if actor.may_see(g.owner) {
        Ok(g)
    } else {
        Err(AppError::NotFound(format!("generation {}", g.id)))
    }
}
