//! Integration tests: the gateway against a fake gateway and the REST client against a
//! fake HTTP server, both on 127.0.0.1 only. One binary, as the style guide asks.

// The fake gateway's handshake callback must return tungstenite's large error type.
#![allow(clippy::result_large_err)]

mod fake_gateway;
mod fake_http;
mod gateway;
mod rest;
mod tls;
