//! Simulators of the HTTP image services the app's providers talk to, on loopback, drawing
//! with the sandbox, for the tests, the benchmarks and `atelier simulate`.
//!
//! They live in the app crate (unlike the Discord simulator, `crates/simulator`) because each
//! judges requests with its provider's own rules (`providers::openai::params`,
//! `providers::replicate::params`) and answers
//! with the same wire types: one table for both sides, no copy to drift, and no fifth crate.

pub mod comfyui;
pub mod openai;
mod plan;
pub mod replicate;
