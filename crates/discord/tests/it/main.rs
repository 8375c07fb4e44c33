//! Integration tests: the gateway against a fake gateway and the REST client against a
//! fake HTTP server, both on 127.0.0.1 only. One binary, as the style guide asks.

mod fake_gateway;
mod fake_http;
mod gateway;
mod rest;
