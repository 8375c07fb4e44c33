//! The simulator's integration tests, one binary, everything on 127.0.0.1: our own Discord
//! client (`atelier-discord`) against the simulator, plus raw WebSocket and HTTP where a
//! test needs to misbehave or look at the bytes.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod bot;
mod cdn;
mod control;
mod faults;
mod gateway;
mod reads;
mod rest;
mod robustness;
mod support;
