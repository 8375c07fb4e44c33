//! Atelier: a self-hosted AI image-generation backend.
//!
//! The flow is prompt → job → provider → pipeline → store → catalogue (see ARCHITECTURE.md):
//!
//! - [`domain`]: generations, images, the life cycle and events; knows nothing of SQL,
//!   storage, HTTP or Discord.
//! - [`catalogue`]: the `Catalogue` and `Queue` traits, on `SQLite` and `PostgreSQL`.
//! - [`store`]: blobs over `OpenDAL`, key layouts, SHA-256 checks.
//! - [`pipeline`]: verify, decode, split, thumbnails, palettes.
//! - [`providers`]: the `Provider` trait, the sandbox provider, and Midjourney over Discord
//!   (`providers::midjourney`).
//! - [`jobs`]: the durable queue's workers, the generate job and the event bus.
//! - [`app`]: the use cases every front-end shares, and the only door into the engine.
//! - [`http`]: the HTTP API (`atelier serve`), a front-end over [`app`].
//! - [`webhooks`]: generations' events delivered to their webhooks, signed, retried, guarded.
//! - [`mcp`]: the MCP server (`atelier mcp` over stdio, `/mcp` in `atelier serve`), a
//!   front-end over [`app`].
//! - [`secret`]: values that never print (tokens, S3 keys, database passwords).
//! - [`migrate`]: moving a deployment to another catalogue and storage.
//! - [`cli`], [`api`], [`config`], [`wiring`]: the edges.

pub mod api;
pub mod app;
pub mod bench;
pub mod catalogue;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod jwt;
pub mod mcp;
pub mod migrate;
pub mod pipeline;
pub mod providers;
pub mod secret;
pub mod simulators;
pub mod store;
pub mod webhooks;
pub mod wiring;
