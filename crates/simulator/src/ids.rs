//! Identifiers and clocks: Discord snowflakes (strictly increasing), job UUIDs, hex tokens,
//! ISO-8601 timestamps and a small deterministic hash for seeds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sim::lock;

/// Milliseconds from the Unix epoch to 2015-01-01, Discord's epoch.
pub(crate) const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Issues ids; the random parts come from a seeded generator so runs are reproducible.
pub(crate) struct Ids {
    last: AtomicU64,
    rng: Mutex<fastrand::Rng>,
}

impl Ids {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            last: AtomicU64::new(0),
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ 0x5151_5eed)),
        }
    }

    /// A snowflake for now, larger than every one issued before.
    pub(crate) fn snowflake(&self) -> u64 {
        let now = unix_ms().saturating_sub(DISCORD_EPOCH_MS) << 22;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// A random (version 4) UUID in the usual 8-4-4-4-12 form.
    pub(crate) fn uuid(&self) -> String {
        let (a, b) = {
            let mut rng = lock(&self.rng);
            (rng.u64(..), rng.u64(..))
        };
        let a = (a & !0xF000) | 0x4000;
        let b = (b & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }

    /// `len` random characters from `[A-Za-z0-9]`.
    pub(crate) fn alphanumeric(&self, len: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = lock(&self.rng);
        (0..len)
            .map(|_| char::from(CHARS[rng.usize(..CHARS.len())]))
            .collect()
    }

    /// `len` random lowercase hex digits.
    pub(crate) fn hex(&self, len: usize) -> String {
        let mut rng = lock(&self.rng);
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)]))
            .collect()
    }

    pub(crate) fn u32(&self) -> u32 {
        lock(&self.rng).u32(..)
    }
}

/// When the premade accounts' snowflakes are dated: 2024-01-01, before every snowflake
/// [`Ids::snowflake`] issues.
const PREMADE_MS: u64 = 1_704_067_200_000;

/// What a premade account's snowflake names.
#[derive(Clone, Copy)]
pub(crate) enum Part {
    User = 0,
    Guild = 1,
    Channel = 2,
}

/// The snowflake of premade account `n`'s user, server or channel: the same for the same seed
/// and number, so a simulator started again with the same configuration has the same accounts
/// and a configuration written for the last one (`atelier simulate discord --write-config`)
/// still reaches them. Dated one millisecond per account after [`PREMADE_MS`], with the seed
/// as the worker id, so no two premade ids of one seed meet and none meets a later snowflake.
pub(crate) fn premade(seed: u64, n: usize, part: Part) -> u64 {
    let ms = (PREMADE_MS - DISCORD_EPOCH_MS).saturating_add(n as u64);
    (ms << 22) | ((seed & 0x3FF) << 12) | part as u64
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// Discord's timestamp format for message times, e.g. `2024-08-02T09:14:21.118000+00:00`.
pub(crate) fn iso_timestamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}000+00:00",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// The time a snowflake was issued, in Unix milliseconds.
pub(crate) fn snowflake_ms(id: u64) -> u64 {
    (id >> 22) + DISCORD_EPOCH_MS
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// FNV-1a over the parts, folded to 32 bits: deterministic seeds for derived images.
pub(crate) fn mix(parts: &[&[u8]]) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (hash ^ (hash >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::{Ids, Part, civil_from_days, iso_timestamp, mix, premade};

    #[test]
    fn premade_accounts_keep_their_ids_for_a_seed() {
        let ids: Vec<u64> = (1..=3)
            .flat_map(|n| [Part::User, Part::Guild, Part::Channel].map(|p| premade(7, n, p)))
            .collect();
        let again: Vec<u64> = (1..=3)
            .flat_map(|n| [Part::User, Part::Guild, Part::Channel].map(|p| premade(7, n, p)))
            .collect();
        assert_eq!(ids, again);
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert_ne!(premade(7, 1, Part::Channel), premade(8, 1, Part::Channel));
        assert!(ids.iter().all(|id| *id < Ids::new(7).snowflake()));
    }

    #[test]
    fn snowflakes_increase_and_uuids_look_right() {
        let ids = Ids::new(1);
        let mut last = 0;
        for _ in 0..1000 {
            let id = ids.snowflake();
            assert!(id > last);
            last = id;
        }
        let uuid = ids.uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4');
        assert!(matches!(uuid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_eq!(ids.alphanumeric(11).len(), 11);
    }

    #[test]
    fn timestamps() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(
            iso_timestamp(1_722_590_061_118),
            "2024-08-02T09:14:21.118000+00:00"
        );
        assert_ne!(mix(&[b"a", b"b"]), mix(&[b"ab"]));
    }
}
