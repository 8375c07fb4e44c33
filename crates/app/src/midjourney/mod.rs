//! Midjourney over Discord. For now: reading the bot's messages (`reading`), used by
//! `atelier midjourney parse` and, next, by the Midjourney provider.

pub mod reading;
