//! The single integration-test binary: it only declares modules.

// In tests a panic is the failure report, and synchronous tests that drive child processes
// may sleep.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod bench;
mod catalogue;
mod cli;
mod cli_errors;
mod comfyui;
mod crash;
mod directory;
mod engine;
mod follow;
mod http;
mod http_auth;
mod limits;
mod mcp;
mod midjourney;
mod migrate;
mod mjproxy;
mod nodes;
mod openai;
mod openapi;
mod outputs;
mod postgres;
mod processes;
mod remote;
mod replicate;
mod steps;
mod storage;
mod support;
mod tidy;
mod upscales;
mod users;
mod video;
mod webhooks;
