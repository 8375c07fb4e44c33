//! The single integration-test binary: it only declares modules.

mod catalogue;
mod cli;
mod crash;
mod engine;
mod support;
