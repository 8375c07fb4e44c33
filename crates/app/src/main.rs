//! The `atelier` binary: parses the command line, sets up logging, dispatches. Nothing else.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = atelier::cli::Cli::parse();
    // Logs go to stderr so stdout stays clean for results; ATELIER_LOG sets the level.
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATELIER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(atelier::cli::EXIT_FAILURE);
        }
    };
    runtime.block_on(atelier::cli::run(cli))
}
