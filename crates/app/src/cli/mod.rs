//! The command line (product.md §4.1): argument parsing and dispatch. Every command calls `App`
//! use cases and prints through `output.rs`; none touches SQL, storage or providers directly.

mod accounts;
pub mod args;
mod events;
mod generate;
mod images;
mod jobs;
mod mcp;
mod migrate;
mod output;
mod remote;
mod serve;
pub mod simulate;
mod simulate_comfyui;
mod users;
pub use output::Out;

use std::process::ExitCode;

pub use args::Cli;
use args::{
    Command, ConfigCommand, GenerationCommand, ImageCommand, JobsCommand, MidjourneyCommand,
};

use crate::config::{self, Config};
use crate::error::AppError;

/// Exit codes (product.md §4.1).
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let out = Out::new(cli.json);
    match dispatch(cli, &out).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            out.error(&e);
            ExitCode::from(if e.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            })
        }
    }
}

/// A command line clap refused: its message on stderr as clap writes it and exit 2; with
/// `--json` anywhere on the line (before a `--`), also the error as one JSON document on
/// stdout, in the shape of every other error. `--help` and `--version` print and exit 0.
pub fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.exit_code() == 0 {
        return ExitCode::SUCCESS;
    }
    if json_requested(std::env::args_os().skip(1)) {
        let message = match e.kind() {
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                "a subcommand is required: see --help".to_owned()
            }
            _ => usage_message(&e.render().to_string()),
        };
        Out::new(true).print_json(
            &serde_json::json!({"error": {"code": "invalid_input", "message": message}}),
        );
    }
    ExitCode::from(EXIT_USAGE)
}

/// Whether `--json` is among the arguments. Read from the raw line because the line did not
/// parse; what follows `--` is a value, never an option.
fn json_requested(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "--json")
}

/// The error part of clap's text (up to its usage and tips), on one line, without the
/// `error: ` that the JSON's key already says.
fn usage_message(rendered: &str) -> String {
    let head: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let text = head.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}

/// Parses an id given on the command line.
fn load_parsed<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, AppError> {
    s.parse().map_err(AppError::Invalid)
}

fn load_config(cli: &Cli) -> Result<Config, AppError> {
    config::load(cli.config.as_deref(), cli.data_dir.as_deref())
        .map_err(|e| AppError::Invalid(e.to_string()))
}

async fn dispatch(cli: Cli, out: &Out) -> Result<u8, AppError> {
    if let Command::Config {
        command: ConfigCommand::Default,
    } = &cli.command
    {
        if out.json {
            out.print_json(&Config::default());
        } else {
            out.text(config::EXAMPLE.trim_end());
        }
        return Ok(0);
    }
    if let Command::Midjourney {
        command: MidjourneyCommand::Parse { bot_ids },
    } = &cli.command
    {
        return parse_message(bot_ids, out);
    }
    if let Command::Simulate {
        command: args::SimulateCommand::Discord(args),
    } = &cli.command
    {
        return simulate::discord(args, out).await;
    }
    if let Command::Simulate {
        command: args::SimulateCommand::Openai(args),
    } = &cli.command
    {
        return simulate::openai(args, out).await;
    }
    if let Command::Simulate {
        command: args::SimulateCommand::Replicate(args),
    } = &cli.command
    {
        return simulate::replicate(args, out).await;
    }
    if let Command::Simulate {
        command: args::SimulateCommand::Comfyui(args),
    } = &cli.command
    {
        return simulate_comfyui::run(args, out).await;
    }
    if let Some(server) = cli.server.as_deref().filter(|s| !s.trim().is_empty()) {
        if cli.data_dir.is_some() || cli.config.is_some() {
            return Err(AppError::Invalid(
                "--server acts on the server's data: --data-dir and --config do not apply".into(),
            ));
        }
        return remote::dispatch(server, cli.command, out).await;
    }
    let config = load_config(&cli)?;
    match cli.command {
        Command::Generate(args) => generate::generate(&config, args, out).await,
        Command::Image { command } => match command {
            ImageCommand::List(args) => images::list(&config, args, out).await,
            ImageCommand::Show { id } => images::show(&config, &id, out).await,
            ImageCommand::Status { id, status } => images::status(&config, &id, &status, out).await,
            ImageCommand::Tag { id, tags } => images::tag(&config, &id, &tags, out).await,
            ImageCommand::Version { id, no_wait } => {
                generate::version(&config, &id, no_wait, out).await
            }
            ImageCommand::Import(args) => images::import(&config, args, out).await,
            ImageCommand::Action {
                id,
                action,
                prompt,
                upscale,
                no_wait,
            } => {
                let asked = generate::Act {
                    action: action.as_deref(),
                    prompt: prompt.as_deref(),
                    upscale: &upscale,
                };
                generate::action(&config, &id, &asked, no_wait, out).await
            }
        },
        Command::Generation { command } => match command {
            GenerationCommand::Show { id, events } => {
                generate::show(&config, &id, events, out).await
            }
        },
        Command::Worker(args) => jobs::worker(&config, &args, out).await,
        Command::Serve(args) => serve::serve(&config, &args, out).await,
        Command::Mcp(args) => mcp::mcp(&config, &args).await,
        Command::Events(args) => events::print(&config, &args, out).await,
        Command::Jobs { command } => match command {
            JobsCommand::Run { until_idle } => jobs::run(&config, until_idle, out).await,
            JobsCommand::Cancel { id } => jobs::cancel(&config, &id, out).await,
        },
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            out.print_json(&shown(&config));
            Ok(0)
        }
        Command::Config {
            command: ConfigCommand::Default,
        }
        | Command::Midjourney { .. }
        | Command::Simulate { .. } => Ok(0),
        Command::Bench(args) => crate::bench::run(&config, args, out).await,
        Command::Migrate(args) => migrate::migrate(&config, &args, out).await,
        Command::Accounts(args) => accounts::list(&config, &args, out).await,
        Command::User { command } => users::user(&config, command, out).await,
        Command::Key { command } => users::key(&config, command, out).await,
        Command::Credits { command } => users::credits(&config, command, out).await,
        Command::Audit { limit, before } => users::audit(&config, before, limit, out).await,
        Command::Describe {
            source,
            provider,
            no_wait,
        } => generate::describe(&config, &source, provider.as_deref(), no_wait, out).await,
        Command::Shorten {
            prompt,
            provider,
            no_wait,
        } => generate::shorten(&config, &prompt, provider.as_deref(), no_wait, out).await,
        Command::Blend {
            sources,
            dimensions,
            upscale,
            provider,
            no_wait,
        } => {
            let blend = generate::Blend {
                sources: &sources,
                dimensions: dimensions.as_deref(),
                upscale: &upscale,
                provider: provider.as_deref(),
            };
            generate::blend(&config, &blend, no_wait, out).await
        }
    }
}

/// The configuration as `atelier config show` prints it: every secret reads `[redacted]`, and
/// the catalogue URL in force (the default one when unset) has its password replaced.
fn shown(config: &Config) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    value["database_url"] = config.database_url_redacted().into();
    value
}

/// Larger stdin is refused: a Discord message is at most a few tens of KiB.
const MAX_MESSAGE_BYTES: u64 = 8 << 20;

fn parse_message(bot_ids: &[String], out: &Out) -> Result<u8, AppError> {
    use std::io::Read;
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut input)
        .map_err(|e| AppError::Invalid(format!("cannot read stdin: {e}")))?;
    if input.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(AppError::Invalid(format!(
            "the message is larger than {} MiB",
            MAX_MESSAGE_BYTES >> 20
        )));
    }
    let ids: Vec<&str> = bot_ids.iter().map(String::as_str).collect();
    let reading = crate::providers::midjourney::reading::read_json(&input, &ids)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    out.print_json(&reading);
    Ok(0)
}
