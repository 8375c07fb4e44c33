//! Placeholder until the REST tests land.
