//! The HTTP API (`atelier serve`): one more front-end over `App`, like the CLI. Routes under
//! `/v1` speak JSON, errors are `application/problem+json` (`problem.rs`), live events are
//! server-sent events replayable with `Last-Event-ID` (`events.rs`).
//!
//! - `serve` runs the API and this node's workers until `shutdown`, then stops in bounded
//!   time: no new connections, event streams end, requests in flight finish, the jobs in hand
//!   get the grace period and the rest stay leased for another node;
//! - `auth.rs`: who calls (`Caller`); `generations.rs`, `images.rs`, `events.rs`,
//!   `accounts.rs` (me, sessions, administration), `webhooks.rs` (delivery logs, signing
//!   secrets), `health.rs`: the routes;
//!   `idempotency.rs`: `Idempotency-Key` on the routes that create; `input.rs`: request bodies, paths and queries read into domain values, with
//!   problems for bad input;
//! - `openai_images.rs`: the drop-in OpenAI Images route (`POST /v1/images/generations`), in
//!   OpenAI's shapes and errors;
//! - `mjproxy.rs`: the drop-in midjourney-proxy routes (`/mj/submit/*`, `/mj/task/*`), in the
//!   proxy's task objects and `{code, description, result, properties}` envelope;
//! - `openapi.rs`: `/openapi.json`, generated from the handlers' `#[utoipa::path]`; `docs.rs`:
//!   the reference page `/docs`, served offline.

mod accounts;
mod auth;
mod docs;
mod events;
mod generations;
mod health;
mod idempotency;
mod images;
mod input;
mod listen;
mod mcp;
mod metrics;
mod mjproxy;
mod openai_images;
mod openapi;
mod problem;
mod rate;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::config::{MetricsAccess, ServerAuth, ServerConfig};
use crate::error::AppError;

pub use problem::Problem;

/// What the routes share.
#[derive(Clone)]
pub(crate) struct Shared {
    app: Arc<App>,
    settings: Arc<Settings>,
    /// Turns true when the server is stopping: event streams and waits end.
    stopping: watch::Receiver<bool>,
    /// Requests per key, sign-in attempts per address.
    rate: Arc<rate::RateLimits>,
}

/// The server's settings, read once from `[server]`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub auth: ServerAuth,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Longest time a client may take to send a request's head (slow clients hold a connection
    /// this long at most).
    pub header_timeout: Duration,
    pub max_wait: Duration,
    pub heartbeat: Duration,
    pub cors_origins: Vec<String>,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// Requests a key may make a minute, and at once above that (0: no limit).
    pub rate_per_minute: u32,
    pub rate_burst: u32,
    /// Sign-in attempts a client address may make a minute (0: no limit).
    pub sign_in_per_minute: u32,
    /// Workers run beside the API.
    pub workers: u32,
    /// How long the jobs in hand may finish after the stop.
    pub grace: Duration,
    /// `Host` headers `/mcp` accepts: loopback, the bind address, `[server] public_hosts`.
    pub mcp_hosts: Vec<String>,
    /// `[server.openai_images]`: the drop-in OpenAI route's models and wait.
    pub openai_images: openai_images::Routes,
    /// `[server.mj_proxy]`: which provider each bot type of the midjourney-proxy routes uses.
    pub mj_proxy: mjproxy::Routes,
}

impl Settings {
    /// `[server]` as the server runs it; `auth = "none"` is refused on an address that is
    /// not loopback, before anything listens.
    pub fn from_config(
        config: &ServerConfig,
        bind: SocketAddr,
        default_workers: u32,
        grace: Duration,
    ) -> Result<Self, AppError> {
        if config.auth == ServerAuth::None && !bind.ip().is_loopback() {
            return Err(AppError::Invalid(format!(
                "[server] auth = \"none\" lets every caller act as the operator, so it is only \
                 allowed on a loopback address, not {bind}; use auth = \"keys\""
            )));
        }
        let secs = |v: f64, key: &str| {
            if v.is_finite() && v > 0.0 && v < 86_400.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(AppError::Invalid(format!(
                    "[server] {key} must be between 0 and 86400 seconds, not {v}"
                )))
            }
        };
        Ok(Self {
            auth: config.auth,
            max_body_bytes: usize::try_from(config.max_body_kib.saturating_mul(1024))
                .unwrap_or(usize::MAX),
            request_timeout: secs(config.request_timeout_secs, "request_timeout_secs")?,
            header_timeout: secs(config.header_timeout_secs, "header_timeout_secs")?,
            max_wait: Duration::from_secs(config.max_wait_secs),
            heartbeat: secs(config.heartbeat_secs, "heartbeat_secs")?,
            cors_origins: config.cors_origins.clone(),
            metrics: config.metrics,
            rate_per_minute: config.rate_limit_per_minute,
            rate_burst: config.rate_limit_burst,
            sign_in_per_minute: config.sign_in_per_minute,
            workers: config.workers.unwrap_or(default_workers),
            grace,
            mcp_hosts: mcp::allowed_hosts(bind, &config.public_hosts),
            openai_images: openai_images::Routes::from_config(config)?,
            mj_proxy: mjproxy::Routes::from_config(config),
        })
    }
}

/// Every route, and the `OpenAPI` document made from the same registrations: a route is added
/// with `.routes(routes!(handler))` and its `#[utoipa::path]`, never with axum's `.route`, so
/// it cannot be served without being documented (`openapi.rs`).
fn router(shared: Shared) -> Router {
    let settings = shared.settings.clone();
    // The routes that create honour Idempotency-Key.
    let creating = OpenApiRouter::new()
        .routes(routes!(generations::create))
        .routes(routes!(generations::act, images::actions))
        .routes(routes!(generations::version))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            idempotency::idempotent,
        ));
    let v1 = OpenApiRouter::new()
        .merge(creating)
        .routes(routes!(generations::list))
        .routes(routes!(generations::show))
        .routes(routes!(generations::cancel))
        .routes(routes!(events::generation))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::secret))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(events::feed))
        .routes(routes!(images::list))
        .routes(routes!(images::show, images::update, images::delete))
        .routes(routes!(images::file))
        .routes(routes!(images::thumbnail))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::my_credits))
        .routes(routes!(accounts::login, accounts::logout))
        .routes(routes!(accounts::users, accounts::add_user))
        .routes(routes!(accounts::user_keys, accounts::create_key))
        .routes(routes!(accounts::revoke_key))
        .routes(routes!(accounts::grant, accounts::user_credits))
        .routes(routes!(accounts::provider_accounts))
        .routes(routes!(accounts::audit))
        .routes(routes!(openai_images::generations));
    let (routes, document) = OpenApiRouter::new()
        .nest("/v1", v1)
        .routes(routes!(mjproxy::imagine))
        .routes(routes!(mjproxy::action))
        .routes(routes!(mjproxy::blend))
        .routes(routes!(mjproxy::describe))
        .routes(routes!(mjproxy::shorten::shorten))
        .routes(routes!(mjproxy::modal::modal))
        .routes(routes!(mjproxy::video::video))
        .routes(routes!(mjproxy::tasks::fetch))
        .routes(routes!(mjproxy::tasks::list_by_condition))
        .routes(routes!(mjproxy::tasks::list))
        .routes(routes!(mjproxy::tasks::cancel))
        .routes(routes!(mjproxy::tasks::image_seed))
        .routes(routes!(mjproxy::tasks::image))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::scrape))
        .routes(routes!(openapi::document))
        .routes(routes!(docs::page))
        .routes(routes!(docs::script))
        .routes(routes!(docs::style))
        .split_for_parts();
    let document = openapi::finish(document)
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"the document could not be written: {e}\"}}"));
    let app = routes
        .layer(axum::Extension(openapi::Document(Arc::new(document))))
        .merge(mcp::routes(&shared))
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(shared)
        .route_layer(axum::middleware::from_fn(metrics::track));
    input::layers(app, &settings)
}

/// Runs the API on `listener` and this node's workers until `shutdown` resolves, then stops:
/// the listener closes, event streams and `Prefer: wait` requests end, requests in flight get
/// `request_timeout` to finish, the workers stop claiming and their jobs get `grace`, after
/// which the jobs still running stay leased (another node takes them over, spending no
/// attempt) and the accounts are let go.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    // A provider named for the midjourney-proxy routes is checked now, not per request.
    settings.mj_proxy.check(&app)?;
    if let Ok(addr) = listener.local_addr() {
        app.set_mj_origin(format!("http://{addr}"));
    }
    let (stop_tx, stopping) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let settings = Arc::new(settings);
    let mut node = app.start_node(settings.workers);
    let rate = Arc::new(rate::RateLimits::new(
        settings.rate_per_minute,
        settings.rate_burst,
        settings.sign_in_per_minute,
    ));
    let forget = {
        let rate = rate.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_mins(1)).await;
                rate.forget_idle();
            }
        })
    };
    if settings.metrics != MetricsAccess::Off {
        metrics::handle();
    }
    let shared = Shared {
        app: app.clone(),
        settings: settings.clone(),
        stopping: stopping.clone(),
        rate,
    };
    let routes = router(shared);
    let signal = {
        let stop_tx = stop_tx.clone();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
            tracing::info!("stopping: no new connections; event streams end");
            let _ = stop_tx.send(true);
        })
    };
    let mut server = {
        let stopping = stopping.clone();
        let header_timeout = settings.header_timeout;
        tokio::spawn(async move {
            listen::serve(listener, routes, header_timeout, stopping).await;
            Ok::<(), std::io::Error>(())
        })
    };
    // Until the stop, or until the workers stop by themselves (the catalogue refuses writes),
    // which stops the server too.
    let mut stopped = stopping.clone();
    let mut outcome = Ok(());
    let mut early = None;
    tokio::select! {
        _ = stopped.wait_for(|s| *s) => {}
        joined = &mut server => early = Some(joined),
        ended = node.ended() => {
            outcome = ended;
            let _ = stop_tx.send(true);
        }
    }
    // Requests in flight get their time; the rest are cut.
    let joined = match early {
        Some(joined) => joined,
        None => {
            if let Ok(joined) = tokio::time::timeout(settings.request_timeout, &mut server).await {
                joined
            } else {
                tracing::warn!("requests still open after the timeout were cut");
                server.abort();
                Ok(Ok(()))
            }
        }
    };
    node.stop(settings.grace).await;
    forget.abort();
    signal.abort();
    match joined {
        Ok(Ok(())) => outcome,
        Ok(Err(e)) => Err(AppError::Internal(format!("the server failed: {e}"))),
        Err(e) => Err(AppError::Internal(format!("the server stopped: {e}"))),
    }
}
