//! Discord client for a *user* account: a gateway connection and a small REST client.
//!
//! # What it does
//!
//! - [`gateway`]: one WebSocket session (zlib-stream, heartbeats, identify, resume,
//!   reconnect with backoff, close-code policy) run by a spawned task that hands raw
//!   dispatches to the caller through a channel, and tells it at once why an attempt
//!   failed ([`GatewayEvent::Retrying`]).
//! - [`rest`]: interactions (slash commands, buttons, modals), the attachment upload flow,
//!   message reads and the application command index, with per-route rate limits and
//!   pacing between interactions.
//!
//! # What it deliberately does not do
//!
//! It knows nothing about jobs, catalogues, Midjourney or any other bot. Dispatch payloads
//! are handed over as raw [`serde_json::Value`]s; interpreting them is the caller's job.
//! It has no bot-account support (no intents, no `Bot ` token prefix) and no voice.
//!
//! # Layout
//!
//! - `token`: the secret token, whose `Debug` never shows it.
//! - `properties`: the browser identity sent in IDENTIFY and in REST headers.
//! - `snowflake`: nonce generation.
//! - `session`: the resumable [`Session`] the caller may persist.
//! - `events`: public [`GatewayEvent`]s and the minimal wire structs.
//! - `gateway`, `rest`: the two clients.

// Command-line `-W clippy::pedantic` overrides the manifest's lint table, so the
// deliberate opt-outs live here. Casts are between byte counts and durations and are
// bounded by hand; error docs would repeat the typed errors; `#[must_use]` on every getter
// is noise.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::missing_errors_doc,
    clippy::must_use_candidate
)]

pub mod events;
pub mod gateway;
mod properties;
pub mod rest;
mod session;
mod snowflake;
mod token;

pub use events::{FatalReason, GatewayEvent};
pub use gateway::{Gateway, GatewayConfig, GatewayHandle, State};
pub use properties::ClientProperties;
pub use rest::{RestClient, RestConfig, RestError};
pub use session::Session;
pub use snowflake::new_nonce;
pub use token::Token;

/// Installs rustls' `ring` provider as the process-wide default.
///
/// The whole project uses ring only (no aws-lc), and reqwest is built with
/// `rustls-no-provider`, so something must install a provider before the first TLS
/// handshake. Calling this more than once, or after another provider was installed, is
/// harmless: the first installation wins.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An `Err` means another provider is already the default; that one is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
