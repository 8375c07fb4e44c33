//! The MCP server: Atelier as tools, resources and prompts for AI assistants, one more
//! front-end over `App` like `cli/` and `http/`, on the official SDK (`rmcp`).
//!
//! - `server.rs`: the handler (`Atelier`), who calls (the operator over stdio, the bearer
//!   key's owner over HTTP), and the two ways to serve it: `serve_stdio` (`atelier mcp`) and
//!   `streamable_http` (mounted at `/mcp` by `http/mcp.rs`);
//! - `args.rs`: every tool's arguments, whose JSON schemas the clients see;
//! - `generations.rs`, `images.rs`, `providers.rs`: the tools, by group;
//! - `progress.rs`: waiting for a generation's end with progress notifications;
//! - `pictures.rs`: what a result shows: JSON, WebP thumbnails and resource links;
//! - `resources.rs`: each image as `atelier://images/{id}`; `prompts.rs`: ready-made requests.
//!
//! Every failure a caller can cause (bad arguments, an unknown id, a failed generation, short
//! credits) is a tool error the assistant reads, never a protocol error or a crash.

mod args;
mod generations;
mod images;
mod pictures;
mod progress;
mod prompts;
mod providers;
mod resources;
mod server;

pub use server::{Atelier, Settings, serve_stdio, streamable_http};
