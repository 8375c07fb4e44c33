//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds them, and
//! on stable Rust a macro cannot tell Cargo which files it read.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
