//! The command-line grammar (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "atelier",
    version,
    about = "Prompts in; stored, catalogued, searchable images out."
)]
pub struct Cli {
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help = "Data directory (catalogue, images) [env: ATELIER_DATA_DIR] [default: ./atelier-data]"
    )]
    pub data_dir: Option<PathBuf>,
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help = "Configuration file [default: DATA_DIR/atelier.toml when it exists]"
    )]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout and nothing else there
    #[arg(long, global = true)]
    pub json: bool,
    /// Act on a remote Atelier through its HTTP API instead of this machine's data; requests
    /// are signed with the key in `ATELIER_API_KEY`
    #[arg(long, global = true, value_name = "URL", env = "ATELIER_SERVER")]
    pub server: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate images from a prompt and wait for them (progress on a terminal)
    Generate(GenerateArgs),
    /// Browse and manage stored images
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Look at one generation
    Generation {
        #[command(subcommand)]
        command: GenerationCommand,
    },
    /// Run or cancel queued jobs
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Run this process as a node: workers take jobs from the shared catalogue until SIGINT
    /// or SIGTERM, then finish the jobs in hand for a grace period
    Worker(WorkerArgs),
    /// Serve the HTTP API, with this node's workers, until SIGINT or SIGTERM
    Serve(ServeArgs),
    /// Serve MCP (Model Context Protocol) on stdin and stdout for an AI assistant, as the
    /// operator, with this node's workers, until the assistant closes stdin
    Mcp(McpArgs),
    /// Print events as any process or node writes them (with --follow, until interrupted)
    Events(EventsArgs),
    /// Midjourney tools
    Midjourney {
        #[command(subcommand)]
        command: MidjourneyCommand,
    },
    /// Ask the provider for four prompts that describe an image (a file or an image id)
    Describe {
        /// An image id, or a PNG/JPEG/WebP file (imported first)
        source: String,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// Ask the provider for shorter versions of a prompt (Midjourney's /shorten)
    Shorten {
        /// The prompt, with its parameters (`--ar 16:9`…)
        prompt: String,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// Blend 2 to 5 images (files or image ids) into a new grid
    Blend {
        #[arg(required = true, num_args = 2..=5)]
        sources: Vec<String>,
        /// portrait, square or landscape
        #[arg(long, value_parser = ["portrait", "square", "landscape"])]
        dimensions: Option<String>,
        /// Upscales to store after the grid: all, none, or a list such as 1,3
        #[arg(long, default_value = "all")]
        upscale: String,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// List provider accounts (Midjourney's Discord accounts) with their health
    Accounts(AccountsArgs),
    /// Run a local simulator of an external service (`discord`: Discord + Midjourney)
    Simulate {
        #[command(subcommand)]
        command: SimulateCommand,
    },
    /// Configuration helpers
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Measure the pipeline, the engine, the queue and the Midjourney provider on this machine
    Bench(BenchArgs),
    /// Copy this deployment into another catalogue and/or storage (resumable; the source is
    /// only read)
    Migrate(MigrateArgs),
    /// Users of a server
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Users' API keys
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Users' credits
    Credits {
        #[command(subcommand)]
        command: CreditsCommand,
    },
    /// The audit log of sensitive actions, newest first
    Audit {
        /// Entries to show
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Only entries older than this one (the `id` of a printed entry)
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
        before: Option<i64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user (with the configured initial credits)
    Add {
        email: String,
        /// An administrator: sees and manages everything
        #[arg(long)]
        admin: bool,
        /// Read a password for email sign-in from stdin (one line)
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users, oldest first
    List {
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Make an API key for a user; the key is printed this once and never stored
    Create {
        /// The user's email address
        #[arg(long, value_name = "EMAIL")]
        user: String,
        /// What the key is for
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List a user's keys (their first characters only)
    List {
        #[arg(long, value_name = "EMAIL")]
        user: String,
    },
    /// Revoke a key: it no longer signs anyone in
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum CreditsCommand {
    /// Give a user credits
    Grant {
        #[arg(long, value_name = "EMAIL")]
        user: String,
        /// Whole credits, at least 1
        #[arg(allow_hyphen_values = true, value_parser = parse_amount)]
        amount: i64,
        /// Why (kept in the ledger and the audit log)
        #[arg(long)]
        note: Option<String>,
        /// purchase (paid for) or bonus (given)
        #[arg(long, default_value = "purchase", value_parser = ["purchase", "bonus"])]
        kind: String,
    },
    /// Show a user's balance and the latest entries of their ledger
    Show {
        #[arg(long, value_name = "EMAIL")]
        user: String,
        /// Ledger entries to show
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=500))]
        limit: u32,
    },
}

#[derive(Args, Debug)]
#[command(group(
    clap::ArgGroup::new("to")
        .required(true)
        .multiple(true)
        .args(["to_database", "to_storage"])
))]
pub struct MigrateArgs {
    /// The catalogue to copy into: `postgres://USER:PASSWORD@HOST/DB` or `sqlite://FILE`
    #[arg(long, value_name = "URL")]
    pub to_database: Option<String>,
    /// The storage to copy images into: a folder, or `s3://BUCKET[/PREFIX]` with --endpoint
    /// (keys from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`)
    #[arg(long, value_name = "DEST")]
    pub to_storage: Option<String>,
    /// S3: the service's URL (e.g. `https://PROJECT.supabase.co/storage/v1/s3`)
    #[arg(long, value_name = "URL", requires = "to_storage")]
    pub endpoint: Option<String>,
    /// S3: the region requests are signed for
    #[arg(long, default_value = "us-east-1", requires = "to_storage")]
    pub region: String,
    /// The target storage's public base URL: the images' public URLs are rewritten to it
    #[arg(long, value_name = "URL", requires = "to_storage")]
    pub public_base_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// What to draw
    pub prompt: String,
    /// Provider to use [default: the configured default provider]
    #[arg(long)]
    pub provider: Option<String>,
    /// character, scene or element
    #[arg(long, value_parser = ["character", "scene", "element"])]
    pub category: Option<String>,
    /// What the image is of (e.g. a character's name); versions count per category and subject
    #[arg(long)]
    pub subject: Option<String>,
    /// Upscales to store after the grid: all, none, or a list such as 1,3
    #[arg(long, default_value = "all")]
    pub upscale: String,
    /// Seed, 0 to 4294967295 (the same seed and prompt give the same picture)
    #[arg(long, allow_hyphen_values = true, value_parser = parse_seed)]
    pub seed: Option<u32>,
    /// An image prompt, a picture the generation starts from: an image id or a picture file
    /// (imported first); repeatable, up to 5, in order
    #[arg(long = "image", value_name = "FILE_OR_IMAGE_ID")]
    pub images: Vec<String>,
    /// Queue the generation and return at once
    #[arg(long)]
    pub no_wait: bool,
    /// Your own reference for the generation (an order number…), kept with it and shown back
    /// as `client_reference`: at most 255 characters, no control characters
    #[arg(long, value_name = "TEXT")]
    pub reference: Option<String>,
    /// Midjourney only: which Discord bot renders it
    #[arg(long, value_parser = ["midjourney", "niji"])]
    pub bot: Option<String>,
    /// A provider parameter, NAME=VALUE, repeatable (OpenAI: `model`, `n`, `size`, `quality`,
    /// `background`, `output_format`, `output_compression`, `moderation`, `style`,
    /// `response_format`, `stream`, `partial_images`; Replicate: `negative_prompt`,
    /// `aspect_ratio`, `num_outputs`, `num_inference_steps`, `guidance`, `seed`,
    /// `output_format`, `output_quality`, `lora_weights`, `lora_scale`, …; ComfyUI:
    /// `workflow`, `width`, `height`, `batch_size` and the workflow's own `params`)
    #[arg(long, value_name = "NAME=VALUE")]
    pub param: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SimulateCommand {
    /// A protocol-faithful Discord (gateway, REST, CDN) with the Midjourney bot, on loopback
    Discord(SimulateDiscordArgs),
    /// A protocol-faithful OpenAI Images API (generations, edits, streaming, errors), on
    /// loopback
    Openai(SimulateOpenaiArgs),
    /// A protocol-faithful Replicate predictions API (creates, polls, cancels, errors), on
    /// loopback
    Replicate(SimulateReplicateArgs),
    /// A protocol-faithful ComfyUI server (prompt queue, WebSocket, history, view, faults
    /// including a restart), on loopback
    Comfyui(SimulateComfyuiArgs),
}

#[derive(Args, Debug)]
pub struct SimulateReplicateArgs {
    /// Where to listen
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: std::net::SocketAddr,
    /// Write an atelier.toml whose [providers.replicate] points at the simulator, with the
    /// aliases `image` and `video` (providers replicate:image and replicate:video)
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Faults dealt to the prediction creates in order, each NAME (once), NAME:N or
    /// NAME:always: server-error, overloaded, rate-limit, slow, expiring-urls, expired-urls,
    /// nsfw, stuck
    #[arg(long, value_name = "LIST", default_value = "")]
    pub faults: String,
    /// The API token it accepts
    #[arg(long, default_value = "r8_sim_atelier")]
    pub token: String,
    /// Milliseconds from a prediction's create to its end
    #[arg(long, default_value_t = 2000)]
    pub latency_ms: u64,
    /// Milliseconds the `slow` fault adds to a create's answer
    #[arg(long, default_value_t = 5000)]
    pub slow_ms: u64,
    /// Seconds an output URL stays valid
    #[arg(long, default_value_t = 3600)]
    pub url_ttl_secs: u64,
    /// Draw pictures and clips at most this many pixels on the long edge (0: full size)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8192))]
    pub max_side: u32,
    /// The image model the written configuration's `image` alias runs
    #[arg(long, default_value = "black-forest-labs/flux-schnell")]
    pub model: String,
    /// The video model the written configuration's `video` alias runs (a name with `video`)
    #[arg(long, default_value = "wan-video/wan-2.2-t2v-fast")]
    pub video_model: String,
}

#[derive(Args, Debug)]
pub struct SimulateComfyuiArgs {
    /// Where to listen
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: std::net::SocketAddr,
    /// Write an atelier.toml whose [providers.comfyui] points at the simulator, and the
    /// workflow files it names beside it
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Faults in order, each NAME (once), NAME:N or NAME:always: to requests server-error,
    /// rate-limit, slow; to prompts vanish, refusal, stuck, restart
    #[arg(long, value_name = "LIST", default_value = "")]
    pub faults: String,
    /// Milliseconds one sampler step takes
    #[arg(long, default_value_t = 100)]
    pub step_ms: u64,
    /// Milliseconds the `slow` fault adds
    #[arg(long, default_value_t = 5000)]
    pub slow_ms: u64,
    /// Milliseconds a restart answers 502
    #[arg(long, default_value_t = 1000)]
    pub downtime_ms: u64,
    /// Draw pictures at most this many pixels on the long edge (0: the size asked)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8192))]
    pub max_side: u32,
    /// A bearer token every request must carry, as a proxy in front of ComfyUI demands
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct SimulateOpenaiArgs {
    /// Where to listen
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: std::net::SocketAddr,
    /// Write an atelier.toml whose [providers.openai] points at the simulator
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Faults dealt to the image requests in order, each NAME (once), NAME:N or NAME:always:
    /// server-error, overloaded, rate-limit, slow, expiring-urls, expired-urls, refusal, stuck,
    /// broken-stream
    #[arg(long, value_name = "LIST", default_value = "")]
    pub faults: String,
    /// The API key it accepts
    #[arg(long, default_value = "sk-sim-atelier")]
    pub key: String,
    /// Milliseconds to make one image (streamed partial images come within it)
    #[arg(long, default_value_t = 1000)]
    pub latency_ms: u64,
    /// Milliseconds the `slow` fault adds
    #[arg(long, default_value_t = 5000)]
    pub slow_ms: u64,
    /// Seconds an image URL stays valid
    #[arg(long, default_value_t = 3600)]
    pub url_ttl_secs: u64,
    /// Draw pictures at most this many pixels on the long edge (0: the size asked)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8192))]
    pub max_side: u32,
    /// The model the written configuration asks for
    #[arg(long, default_value = "gpt-image-1")]
    pub model: String,
    /// Whether the written configuration streams (partial images as progress)
    #[arg(long)]
    pub stream: bool,
}

#[derive(Args, Debug)]
pub struct SimulateDiscordArgs {
    /// Where to listen
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: std::net::SocketAddr,
    /// Write an atelier.toml whose Midjourney accounts point at the simulator
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Faults to inject now and then: drop-socket, no-ack, reconnect, invalid-session,
    /// heartbeat-request, rate-limit, cdn-error, cdn-truncate, delete-progress, lose-final, stuck
    #[arg(long, value_name = "LIST", default_value = "")]
    pub faults: String,
    /// Probability that an enabled fault fires at each opportunity (0 to 1)
    #[arg(long, value_name = "R", default_value_t = 0.2)]
    pub fault_rate: f64,
    /// Seed of the fault generators (each fault draws from its own stream, so the same seed
    /// deals the same faults to the same requests, downloads and jobs)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Accounts to create (each its own token, user and channel)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub accounts: u16,
    /// Side of a grid in pixels
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=8192))]
    pub side: u32,
    /// Milliseconds between two progress updates of a job (0: no progress updates)
    #[arg(long, default_value_t = 1000)]
    pub step_ms: u64,
    /// Jobs per user running at once before "Job queued"
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub mj_concurrency: u16,
}

#[derive(Args, Debug)]
pub struct AccountsArgs {
    /// Connect each usable account first, so its health is current; exit 1 unless every one is ready
    #[arg(long)]
    pub check: bool,
    /// How long --check waits for an account to connect, in seconds
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub wait: u64,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images, newest first
    List(ListArgs),
    /// Show one image
    Show { id: String },
    /// Set an image's status: draft, final or archived
    Status {
        id: String,
        #[arg(value_parser = ["draft", "final", "archived"])]
        status: String,
    },
    /// Add tags to an image
    Tag {
        id: String,
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Make a new version: same prompt and parameters, next version number
    Version {
        id: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Import existing PNG, JPEG or WebP files
    Import(ImportArgs),
    /// Press a button on an image: u1-u4, v1-v4, reroll (grid); vary-strong, vary-subtle,
    /// upscale-subtle, upscale-creative, zoom-out-2x, zoom-out-1.5x, pan-left|right|up|down,
    /// animate-high|low (upscale); video-u1-video-u4 (video grid); extend-high|low (clip), as
    /// the image offers them; without an action, list what it offers
    Action {
        id: String,
        action: Option<String>,
        /// The new prompt of an action that takes one (zoom-custom: with --zoom 1 to 2)
        #[arg(long)]
        prompt: Option<String>,
        /// Upscales to store after a grid result: all, none, or a list such as 1,3
        #[arg(long, default_value = "all")]
        upscale: String,
        /// Queue it and return at once
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, value_parser = ["draft", "final", "archived"])]
    pub status: Option<String>,
    /// Only still pictures (`image`) or only clips (`video`)
    #[arg(long, value_parser = ["image", "video"])]
    pub kind: Option<String>,
    #[arg(long, value_parser = ["character", "scene", "element"])]
    pub category: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    /// Only the images of this generation
    #[arg(long)]
    pub generation: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Each file is a 2×2 grid: store its four quadrants as upscales too
    #[arg(long)]
    pub grid: bool,
    /// The prompt to record [default: the file name]
    #[arg(long)]
    pub prompt: Option<String>,
    #[arg(long, value_parser = ["character", "scene", "element"])]
    pub category: Option<String>,
    #[arg(long)]
    pub subject: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum GenerationCommand {
    /// Show a generation with its images
    Show {
        id: String,
        /// Include its events
        #[arg(long)]
        events: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(
        long,
        value_name = "ADDR",
        help = "Address and port to listen on, such as 127.0.0.1:8787 (port 0: any free port, printed at start) [default: [server] bind]"
    )]
    pub bind: Option<String>,
    #[arg(
        long,
        value_parser = clap::value_parser!(u32).range(0..=1000),
        help = "Workers run beside the API; 0 for an API-only node [default: [server] workers, else what the providers run at once]"
    )]
    pub workers: Option<u32>,
    #[arg(
        long,
        value_name = "SECS",
        value_parser = parse_grace,
        help = "Seconds the jobs in hand may take to finish after SIGINT or SIGTERM; the rest stay leased and another node takes them over [default: [node] shutdown_grace_secs, 30]"
    )]
    pub grace: Option<f64>,
}

#[derive(Args, Debug)]
pub struct McpArgs {
    #[arg(
        long,
        value_parser = clap::value_parser!(u32).range(0..=1000),
        help = "Workers run beside the MCP server; 0 when another node runs the jobs [default: what the providers run at once]"
    )]
    pub workers: Option<u32>,
    #[arg(
        long,
        value_name = "SECS",
        value_parser = parse_grace,
        help = "Seconds the jobs in hand may take to finish once the assistant closes stdin; the rest stay leased and another node takes them over [default: [node] shutdown_grace_secs, 30]"
    )]
    pub grace: Option<f64>,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Jobs run at once [default: what the providers run at once]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: Option<u32>,
    // A help string, not a doc comment: the help shows the config key without backticks.
    #[arg(
        long,
        value_name = "SECS",
        value_parser = parse_grace,
        help = "Seconds the jobs in hand may take to finish after SIGINT or SIGTERM; the rest stay leased and another node takes them over when their lease runs out [default: [node] shutdown_grace_secs, 30]"
    )]
    pub grace: Option<f64>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Keep printing events as they are written, until interrupted (or until the generation
    /// given with --generation ends)
    #[arg(long)]
    pub follow: bool,
    /// Only this generation's events
    #[arg(long, value_name = "ID")]
    pub generation: Option<String>,
    /// Start at the first event ever written [default: with --follow, only new events]
    #[arg(long, conflicts_with = "after")]
    pub from_start: bool,
    /// Start after this feed position (the `position` of a printed event)
    #[arg(long, value_name = "POSITION", value_parser = clap::value_parser!(i64).range(0..))]
    pub after: Option<i64>,
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Run workers: until no job is pending with --until-idle, else until interrupted
    Run {
        #[arg(long)]
        until_idle: bool,
    },
    /// Cancel a generation's job
    Cancel { id: String },
}

#[derive(Subcommand, Debug)]
pub enum MidjourneyCommand {
    #[command(
        about = "Read one Discord message object (the d of MESSAGE_CREATE or MESSAGE_UPDATE) on stdin and print its reading as JSON"
    )]
    Parse {
        /// Another bot id whose messages count as Midjourney's (repeatable)
        #[arg(long = "bot-id")]
        bot_ids: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the commented default configuration
    Default,
    /// Print the configuration in force (file, environment, flags), as JSON, secrets redacted
    Show,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure
    /// (`rate` and `sse` measure a running server, named by --url: never part of `all`)
    #[arg(value_parser = ["pipeline", "engine", "queue", "midjourney", "providers", "rate", "sse", "all"], default_value = "all")]
    pub what: String,
    /// Repetitions of the pipeline measurement [default: 15], of the queue measurement
    /// [default: 3] or rounds of the providers measurement [default: 3]
    #[arg(long)]
    pub runs: Option<u32>,
    /// Sandbox generations in the engine measurement
    #[arg(long, default_value_t = 400)]
    pub generations: u32,
    /// Jobs run at once in the engine measurement (in each process with --processes)
    #[arg(long, default_value_t = 4)]
    pub concurrency: u32,
    /// Side of the sandbox grids in the engine measurement
    #[arg(long, default_value_t = 128)]
    pub side: u32,
    #[arg(
        long,
        value_name = "URL",
        help = "A PostgreSQL server (postgres://…) for the engine and queue measurements: each run makes a scratch database there and drops it after [default: SQLite in a temporary directory]"
    )]
    pub database: Option<String>,
    /// Worker processes (children of this binary on the same database) in the engine and
    /// queue measurements; 0 runs the workers in this process
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub processes: u32,
    /// Claimers (claim + finish in a loop) in the queue measurement, in each process with
    /// --processes
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,
    /// Write the grid used by the pipeline measurement here (to compare other tools on it)
    #[arg(long)]
    pub save_grid: Option<PathBuf>,
    /// Empty jobs queued in the queue measurement [default: 5000], or jobs per measured
    /// series in the Midjourney and providers measurements [default: 200 and 100, at least 10]
    #[arg(long)]
    pub jobs: Option<u32>,
    /// Simulator accounts (one job each at a time) in the Midjourney overhead measurement
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub accounts: u16,
    /// Connected simulator accounts in the Midjourney memory measurement
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub rss_accounts: u16,
    /// Side of the grids in the Midjourney measurement and of the pictures in the providers
    /// measurement (tiny, so the image work is negligible)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(16..=2048))]
    pub mj_side: u32,
    /// Pictures per generation in the providers measurement
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub outputs: u8,
    /// Run the simulator of the Midjourney overhead measurement as a child process, so its
    /// work is not counted in this process (it still shares the cores)
    #[arg(long)]
    pub sim_process: bool,
    /// The server measured by `rate` and `sse` (http:// only: a loopback address)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The path `rate` asks for (a generation's status: /v1/generations/ID)
    #[arg(long)]
    pub path: Option<String>,
    /// The API key `rate` and `sse` send
    #[arg(long, env = "ATELIER_BENCH_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests per second `rate` sends, on schedule whatever the answers' speed
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
    /// How long `rate` runs, in seconds
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub seconds: u32,
    /// Connections `rate` spreads its requests over
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Subscribers `sse` keeps on the live feed at once
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub subscribers: u32,
    /// Sandbox generations `sse` asks for, one after another, for events to fan out
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sse_generations: u32,
    /// The server's process id, for its memory (`sse`) and CPU time (`rate`, `sse`)
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Internal: one worker process of the queue measurement (started by `bench queue`)
    #[arg(long, hide = true)]
    pub queue_child: bool,
}

fn parse_grace(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a grace period: use a number of seconds from 0 to 86400"
        )),
    }
}

fn parse_amount(s: &str) -> Result<i64, String> {
    let max = crate::domain::MAX_AMOUNT;
    match s.trim().parse::<i64>() {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not an amount of credits: use a whole number from 1 to {max}"
        )),
    }
}

fn parse_seed(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("{s:?} is not a seed: use a whole number from 0 to 4294967295"))
}
