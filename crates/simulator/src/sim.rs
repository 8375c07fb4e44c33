//! The shared root every handler and job holds: configuration, world, sessions, blobs,
//! faults and counters, plus the helpers that post, edit and delete messages (store first,
//! then dispatch, so the history is never behind the gateway).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::bot::Bot;
use crate::cdn::{Blobs, Signer};
use crate::control::Counters;
use crate::faults::FaultBox;
use crate::gateway::Sessions;
use crate::ids::{Ids, Part, premade};
use crate::rest::RateWindows;
use crate::state::{User, World};
use crate::{Account, Config};

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent
/// before anything that could panic, so a poisoned lock's data is still good.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The simulator is shutting down.
#[derive(Debug)]
pub(crate) struct Stopped;

/// Where a new bot message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Channel history and the gateway.
    Normal,
    /// Only the gateway (flags 64: not in the history, kept aside for button presses).
    Ephemeral,
    /// Channel history only: the dispatch is "lost" (fault `lose-final`).
    Silent,
}

pub(crate) struct Sim {
    pub(crate) config: Config,
    pub(crate) addr: SocketAddr,
    pub(crate) http_base: String,
    pub(crate) ws_base: String,
    pub(crate) ids: Ids,
    pub(crate) signer: Signer,
    pub(crate) sessions: Sessions,
    pub(crate) stats: Counters,
    pub(crate) bot: Bot,
    pub(crate) rate: RateWindows,
    world: Mutex<World>,
    blobs: Mutex<Blobs>,
    faults: Mutex<FaultBox>,
    shutdown: watch::Sender<bool>,
}

impl Sim {
    pub(crate) fn new(config: Config, addr: SocketAddr) -> Arc<Self> {
        let seed = config.faults.seed;
        let sim = Arc::new(Self {
            http_base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            addr,
            ids: Ids::new(seed),
            signer: Signer::new(seed),
            sessions: Sessions::default(),
            stats: Counters::default(),
            bot: Bot::default(),
            rate: RateWindows::default(),
            world: Mutex::new(World::new()),
            blobs: Mutex::new(Blobs::default()),
            faults: Mutex::new(FaultBox::new(config.faults.clone())),
            shutdown: watch::channel(false).0,
            config,
        });
        for n in 1..=sim.config.accounts {
            // Premade accounts are the same for the same seed: a restarted simulator keeps
            // them, and a configuration written for it keeps working.
            let user = User {
                id: premade(seed, n, Part::User),
                guild_id: premade(seed, n, Part::Guild),
                channel_id: premade(seed, n, Part::Channel),
                ..sim.new_user(format!("simulated-token-{n}"), n)
            };
            let mut world = sim.world();
            world.premade.push(user.id);
            world.add_user(user);
        }
        sim
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultBox> {
        lock(&self.faults)
    }

    fn new_user(&self, token: String, n: usize) -> User {
        User {
            id: self.ids.snowflake(),
            username: format!("atelier_tester_{n}"),
            global_name: format!("Atelier Tester {n}"),
            token,
            guild_id: self.ids.snowflake(),
            channel_id: self.ids.snowflake(),
            relaxed: false,
            remix: false,
        }
    }

    /// The user a token belongs to; unknown tokens get a new user when the configuration
    /// accepts any token. `None` for empty, revoked or (otherwise) unknown tokens.
    pub(crate) fn user_for_token(&self, token: &str) -> Option<User> {
        if token.is_empty() || self.config.revoked_tokens.iter().any(|t| t == token) {
            return None;
        }
        let mut world = self.world();
        if let Some(user) = world.user_by_token(token) {
            return Some(user.clone());
        }
        if !self.config.accept_any_token {
            return None;
        }
        let user = self.new_user(token.to_owned(), world.users.len() + 1);
        world.add_user(user.clone());
        tracing::info!(
            user_id = user.id,
            "simulator: new user for an unknown token"
        );
        Some(user)
    }

    pub(crate) fn user(&self, id: u64) -> Option<User> {
        self.world().users.get(&id).cloned()
    }

    pub(crate) fn premade_accounts(&self) -> Vec<Account> {
        let world = self.world();
        world
            .premade
            .iter()
            .filter_map(|id| world.users.get(id))
            .map(|u| Account {
                token: u.token.clone(),
                user_id: u.id.to_string(),
                username: u.username.clone(),
                guild_id: u.guild_id.to_string(),
                channel_id: u.channel_id.to_string(),
            })
            .collect()
    }

    // ---- blobs and URLs

    pub(crate) fn put_blob(&self, path: String, bytes: Bytes, content_type: &'static str) {
        lock(&self.blobs).put(path, bytes, content_type);
    }

    pub(crate) fn blob(&self, path: &str) -> Option<(Bytes, &'static str)> {
        lock(&self.blobs).get(path)
    }

    pub(crate) fn has_blob(&self, path: &str) -> bool {
        lock(&self.blobs).contains(path)
    }

    /// A freshly signed absolute URL for a blob path.
    pub(crate) fn signed_url(&self, path: &str) -> String {
        let query = self.signer.query(path, self.config.cdn_ttl.as_secs());
        format!("{}{path}{query}", self.http_base)
    }

    /// Whether `url` is a live link of this simulator's CDN (signed, not expired, its file
    /// kept); `None` for a URL elsewhere.
    pub(crate) fn serves_url(&self, url: &str) -> Option<bool> {
        let rest = url.strip_prefix(&self.http_base)?;
        if !rest.starts_with('/') {
            return None;
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let field = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("")
        };
        Some(
            self.signer
                .valid(path, field("ex"), field("is"), field("hm"))
                && self.has_blob(path),
        )
    }

    // ---- messages

    /// Stores and dispatches a new message (`MESSAGE_CREATE`) to the channel's owner.
    pub(crate) fn post(&self, message: &Value, delivery: Delivery) {
        let (Some(channel_id), Some(id)) = (id_of(message, "channel_id"), id_of(message, "id"))
        else {
            return;
        };
        let owner = {
            let mut world = self.world();
            match delivery {
                Delivery::Ephemeral => world.store_ephemeral(id, message.clone()),
                Delivery::Normal | Delivery::Silent => {
                    world.store(channel_id, id, message.clone());
                }
            }
            world.channels.get(&channel_id).map(|c| c.owner)
        };
        self.stats.count_message();
        if let (Some(owner), true) = (owner, delivery != Delivery::Silent) {
            self.dispatch(owner, "MESSAGE_CREATE", message);
        }
    }

    /// Replaces a stored message and dispatches `MESSAGE_UPDATE`; false if it is gone.
    pub(crate) fn edit(&self, message: &Value) -> bool {
        let (Some(channel_id), Some(id)) = (id_of(message, "channel_id"), id_of(message, "id"))
        else {
            return false;
        };
        let owner = {
            let mut world = self.world();
            if world.ephemeral.contains_key(&id) {
                world.store_ephemeral(id, message.clone());
            } else if world.message(channel_id, id).is_some() {
                world.store(channel_id, id, message.clone());
            } else {
                return false;
            }
            world.channels.get(&channel_id).map(|c| c.owner)
        };
        if let Some(owner) = owner {
            self.dispatch(owner, "MESSAGE_UPDATE", message);
        }
        true
    }

    /// Removes a message and dispatches `MESSAGE_DELETE` `{id, channel_id, guild_id}`.
    pub(crate) fn delete(&self, channel_id: u64, id: u64) {
        let target = {
            let mut world = self.world();
            if !world.remove_message(channel_id, id) {
                return;
            }
            world
                .channels
                .get(&channel_id)
                .map(|c| (c.owner, c.guild_id))
        };
        if let Some((owner, guild_id)) = target {
            let data = json!({
                "id": id.to_string(),
                "channel_id": channel_id.to_string(),
                "guild_id": guild_id.to_string(),
            });
            self.dispatch(owner, "MESSAGE_DELETE", &data);
        }
    }

    /// Sends a dispatch to every gateway session of `user_id` (buffered for resumes).
    pub(crate) fn dispatch(&self, user_id: u64, name: &str, data: &Value) {
        self.stats.count_dispatch();
        self.sessions.dispatch(user_id, name, data);
    }

    // ---- shutdown

    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    }

    /// Sleeps unless the simulator stops first.
    pub(crate) async fn sleep(&self, delay: Duration) -> Result<(), Stopped> {
        let mut stopping = self.stopping();
        if *stopping.borrow() {
            return Err(Stopped);
        }
        if delay.is_zero() {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            _ = stopping.wait_for(|stop| *stop) => Err(Stopped),
        }
    }
}

/// A snowflake field of a message (`"id"`, `"channel_id"`) as a number.
pub(crate) fn id_of(message: &Value, field: &str) -> Option<u64> {
    message.get(field)?.as_str()?.parse().ok()
}
