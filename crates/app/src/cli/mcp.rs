//! `atelier mcp`: the MCP server on stdin and stdout, as the operator (like every CLI
//! command), with this node's workers so the generations it queues run. Nothing but the
//! protocol goes to stdout: notices and logs go to stderr. When the assistant closes stdin,
//! the workers stop claiming and the jobs in hand get the grace period; the rest stay leased
//! and another node (or the next `atelier mcp`) takes them over.

use std::time::Duration;

use super::args::McpArgs;
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
    let mut node = app.start_node(workers);
    let served = tokio::select! {
        served = mcp::serve_stdio(app.clone(), settings) => served,
        // The workers stopped by themselves (the catalogue refuses writes): so does this.
        ended = node.ended() => ended,
    };
    node.stop(grace).await;
    served?;
    Ok(0)
}
