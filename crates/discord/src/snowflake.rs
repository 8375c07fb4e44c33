//! Discord-style snowflake nonces for interactions.
//!
//! The nonce is the caller's correlation key: Discord echoes it on the gateway events that
//! answer an interaction, sometimes before the HTTP call has returned. So the caller must
//! create it *before* posting, which is why this is a free function rather than something
//! the REST client does internally.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds from the Unix epoch to 2015-01-01, Discord's epoch.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Returns a fresh snowflake string: timestamp in the high bits, then a random worker id
/// (fixed per process) and a per-process counter, so two nonces never collide within a
/// process and rarely across processes.
pub fn new_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static WORKER: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let worker = *WORKER.get_or_init(|| fastrand::u64(0..1024));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let timestamp = now_ms.saturating_sub(DISCORD_EPOCH_MS);
    let increment = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFFF;
    ((timestamp << 22) | (worker << 12) | increment).to_string()
}

#[cfg(test)]
mod tests {
    use super::new_nonce;
    use std::collections::HashSet;

    #[test]
    fn nonces_are_unique_numeric_and_recent() {
        let nonces: HashSet<String> = (0..1000).map(|_| new_nonce()).collect();
        assert_eq!(nonces.len(), 1000);
        for nonce in &nonces {
            let value: u64 = nonce.parse().expect("numeric");
            // Anything after 2024 has a timestamp part above this bound.
            assert!(value >> 22 > 283_996_800_000);
        }
    }
}
