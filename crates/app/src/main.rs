//! The `atelier` binary: parses the command line, sets up logging, dispatches. Nothing else.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match atelier::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return atelier::cli::usage_error(&e),
    };
    // Logs go to stderr so stdout stays clean for results; ATELIER_LOG sets the level. Colour
    // only for a person at a terminal who has not asked for none (https://no-color.org).
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATELIER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e =
                atelier::error::AppError::Internal(format!("cannot start the async runtime: {e}"));
            atelier::cli::Out::new(cli.json).error(&e);
            return ExitCode::from(atelier::cli::EXIT_FAILURE);
        }
    };
    runtime.block_on(atelier::cli::run(cli))
}
