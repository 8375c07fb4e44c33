//! The single integration-test binary: it only declares modules.

// In tests a panic is the failure report, and synchronous tests that drive child processes
// may sleep.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod bench;
mod catalogue;
mod cli;
mod cli_errors;
mod crash;
mod engine;
mod limits;
mod midjourney;
mod postgres;
mod processes;
mod steps;
mod support;
mod tidy;
mod upscales;
