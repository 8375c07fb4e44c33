//! `atelier mcp`: the MCP server on stdin and stdout, as the operator (like every CLI
//! command), with this node's workers so the generations it queues run. Nothing but the
//! protocol goes to stdout: notices and logs go to stderr. When the assistant closes stdin,
//! the workers stop claiming and the jobs in hand get the grace period; the rest stay leased
//! and another node (or the next `atelier mcp`) takes them over.

use std::time::Duration;

use tokio::sync::watch;

use super::args::McpArgs;
use crate::app::Stop;
use crate::config::Config;
use crate::error::AppError;
use crate::mcp;
use crate::wiring;

pub async fn mcp(config: &Config, args: &McpArgs) -> Result<u8, AppError> {
    let grace = Duration::from_secs_f64(args.grace.unwrap_or(config.node.shutdown_grace_secs));
    let app = wiring::open(config, wiring::providers(config)?, true).await?;
    let workers = args.workers.unwrap_or_else(|| app.total_concurrency());
    let settings = mcp::Settings {
        max_wait: Duration::from_secs(config.server.max_wait_secs),
        paths: true,
    };
    tracing::info!(node = app.node(), workers, "serving MCP on stdio");
    let (drain_tx, drain) = watch::channel(false);
    let mut pool = (workers > 0).then(|| {
        let app = app.clone();
        tokio::spawn(async move { app.run_node(workers, Stop::Never, drain).await })
    });
    let served = tokio::select! {
        served = mcp::serve_stdio(app.clone(), settings) => served,
        Some(worked) = async {
            match pool.as_mut() {
                Some(p) => Some(p.await),
                None => std::future::pending().await,
            }
        } => {
            // The workers stopped by themselves (the catalogue refuses writes): so does this.
            pool = None;
            match worked {
                Ok(result) => result,
                Err(e) => Err(AppError::Internal(format!("the workers stopped: {e}"))),
            }
        }
    };
    let _ = drain_tx.send(true);
    if let Some(mut pool) = pool {
        match tokio::time::timeout(grace, &mut pool).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the workers stopped with an error"),
            Ok(_) => {}
            Err(_) => {
                pool.abort();
                let _ = pool.await;
                tracing::warn!(
                    "jobs still running at the end of the grace period stay leased; another node takes them over when their lease runs out"
                );
            }
        }
    }
    app.release_accounts().await;
    served?;
    Ok(0)
}
