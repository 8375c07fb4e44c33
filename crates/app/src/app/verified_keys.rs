//! API keys verified in the last second, so that a client making many requests with one key
//! reads it from the directory about once a second rather than on every request (on a status
//! read the key's lookup was a third of the work).
//!
//! Only keys found valid are kept, for [`TTL`]; an unknown key is looked up every time. A
//! change made through this process (a key revoked, a user disabled, a role changed) forgets
//! every kept key at once; one made by another process on the same database (another node,
//! `atelier key revoke`) takes effect here within [`TTL`] of the lookup that read the key. A
//! lookup that was under way while keys were forgotten does not put its now stale answer back
//! (the epoch below).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::Actor;

/// How long a verified key is trusted without reading it again.
pub const TTL: Duration = Duration::from_secs(1);

/// Keys kept at most: valid keys only, so a client guessing keys adds nothing; past this the
/// expired ones are dropped, and if none has expired, all.
const MOST: usize = 10_000;

#[derive(Default)]
pub(super) struct VerifiedKeys {
    inner: Mutex<Inner>,
}

/// When a lookup started, and the epoch it started in.
#[derive(Clone, Copy)]
pub(super) struct Lookup {
    epoch: u64,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    /// By the key's hash (never the key itself).
    keys: HashMap<String, (Actor, Instant)>,
    /// Bumped whenever every key is forgotten.
    epoch: u64,
}

impl VerifiedKeys {
    /// The actor a key hash was verified for less than [`TTL`] ago.
    pub(super) fn get(&self, hash: &str) -> Option<Actor> {
        self.lock()
            .keys
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(actor, _)| *actor)
    }

    /// A lookup starting now, to hand back to [`VerifiedKeys::keep`] with what it finds.
    pub(super) fn lookup(&self) -> Lookup {
        Lookup {
            epoch: self.lock().epoch,
            at: Instant::now(),
        }
    }

    /// Keeps a key found valid by `lookup`, trusted from when the lookup started (a change
    /// made while it ran may be in its answer's past), unless keys were forgotten since.
    pub(super) fn keep(&self, hash: String, actor: Actor, lookup: Lookup) {
        let mut inner = self.lock();
        if inner.epoch != lookup.epoch {
            return;
        }
        if inner.keys.len() >= MOST {
            inner.keys.retain(|_, (_, at)| at.elapsed() < TTL);
            if inner.keys.len() >= MOST {
                inner.keys.clear();
            }
        }
        inner.keys.insert(hash, (actor, lookup.at));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it leaves a consistent map.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every key: a key, a user or a role changed.
    pub(super) fn forget_all(&self) {
        let mut inner = self.lock();
        inner.keys.clear();
        inner.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    #[test]
    fn a_kept_key_is_found_until_forgotten() {
        let keys = VerifiedKeys::default();
        let actor = Actor::User(UserId::new());
        assert_eq!(keys.get("h"), None);
        keys.keep("h".into(), actor, keys.lookup());
        assert_eq!(keys.get("h"), Some(actor));
        assert_eq!(keys.get("other"), None);
        keys.forget_all();
        assert_eq!(keys.get("h"), None);
    }

    #[test]
    fn a_lookup_overtaken_by_a_change_is_not_kept() {
        let keys = VerifiedKeys::default();
        let started = keys.lookup();
        keys.forget_all();
        keys.keep("h".into(), Actor::User(UserId::new()), started);
        assert_eq!(keys.get("h"), None);
    }

    #[test]
    fn a_key_is_trusted_for_the_ttl_only() {
        let keys = VerifiedKeys::default();
        let actor = Actor::User(UserId::new());
        keys.keep("h".into(), actor, keys.lookup());
        keys.inner.lock().unwrap().keys.get_mut("h").unwrap().1 =
            Instant::now().checked_sub(TTL).expect("up for a second");
        assert_eq!(keys.get("h"), None);
    }

    #[test]
    fn the_store_stays_bounded() {
        let keys = VerifiedKeys::default();
        for i in 0..MOST + 5 {
            keys.keep(format!("h{i}"), Actor::User(UserId::new()), keys.lookup());
        }
        assert!(keys.inner.lock().unwrap().keys.len() <= MOST);
        assert!(keys.get(&format!("h{}", MOST + 4)).is_some());
    }
}
