//! `atelier serve`: the HTTP API and this node's workers in one process, until SIGINT or
//! SIGTERM; then it stops in bounded time (see `http::serve`).

use std::net::SocketAddr;
use std::time::Duration;

use super::args::ServeArgs;
use super::jobs::Signals;
use super::output::Out;
use crate::config::Config;
use crate::error::AppError;
use crate::http::{Settings, serve as run};
use crate::wiring;

pub async fn serve(config: &Config, args: &ServeArgs, out: &Out) -> Result<u8, AppError> {
    let bind = args.bind.as_deref().unwrap_or(&config.server.bind);
    let addr: SocketAddr = bind.parse().map_err(|_| {
        AppError::Invalid(format!(
            "--bind {bind:?} is not an address and port such as 127.0.0.1:8787"
        ))
    })?;
    let mut server = config.server.clone();
    if args.workers.is_some() {
        server.workers = args.workers;
    }
    let grace = Duration::from_secs_f64(args.grace.unwrap_or(config.node.shutdown_grace_secs));
    let providers = wiring::providers(config)?;
    let app = wiring::open(config, providers, true).await?;
    let settings = Settings::from_config(&server, addr, app.total_concurrency(), grace)?;
    // Every route's configuration is checked before the socket opens: a refused setting
    // exits 2 with nothing ever listening.
    settings.openai_images.check(&app)?;
    settings.mj_proxy.check(&app)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AppError::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| AppError::Internal(format!("cannot read the bound address: {e}")))?;
    tracing::info!(%local, node = app.node(), workers = settings.workers, "serving");
    if settings.workers == 0 {
        tracing::warn!("no workers: generations wait until another node runs them");
        out.notice("no workers here: generations wait until another node (atelier worker or serve) runs them");
    }
    // On stdout, one line, so a script (or a test) that asked for port 0 learns the port.
    if out.json {
        let line = serde_json::json!({"listening": local.to_string(), "node": app.node()});
        out.text(&line.to_string());
    } else {
        out.text(&format!(
            "listening on http://{local} (node {}, {} workers); SIGINT or SIGTERM stops it",
            app.node(),
            settings.workers
        ));
    }
    let mut signals = Signals::new()?;
    run(app, listener, settings, async move { signals.next().await }).await?;
    out.notice("stopped");
    Ok(0)
}
