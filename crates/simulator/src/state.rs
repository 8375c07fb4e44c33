//! The simulated world: users and their tokens, channels with their message history,
//! ephemeral messages, pending uploads, open modals and the record of every job.
//!
//! Plain data behind one mutex in [`crate::sim::Sim`]; no I/O, no waiting while locked.

use std::collections::{BTreeMap, HashMap, VecDeque};

use axum::body::Bytes;
use serde_json::Value;

use crate::commands::{App, Commands};

/// Messages kept per channel; older ones are forgotten.
const HISTORY: usize = 10_000;
/// Ephemeral messages kept (for button presses on them).
const EPHEMERAL: usize = 2_000;
/// Uploads kept (announced or filled).
const UPLOADS: usize = 1_000;

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) username: String,
    pub(crate) global_name: String,
    pub(crate) token: String,
    pub(crate) guild_id: u64,
    pub(crate) channel_id: u64,
    /// `/relax` was used last (content says "relaxed").
    pub(crate) relaxed: bool,
    /// Remix mode (`MJ::Settings::RemixMode`, or [`crate::Control::set_remix`]): Extend opens
    /// its modal instead of starting.
    pub(crate) remix: bool,
}

/// A file announced with `POST channels/{id}/attachments`, filled by the `PUT`.
#[derive(Clone, Debug)]
pub(crate) struct Upload {
    pub(crate) owner: u64,
    pub(crate) filename: String,
    pub(crate) bytes: Option<Bytes>,
}

/// What a modal submit continues.
#[derive(Clone, Debug)]
pub(crate) enum ModalKind {
    /// Custom Zoom on the job with this hash.
    CustomZoom { hash: String },
    /// Imagine the submitted prompt (describe and shorten buttons).
    Imagine,
    /// Extend the clip of the job with this hash, `motion` `high` or `low` (remix mode).
    Extend { hash: String, motion: &'static str },
}

#[derive(Clone, Debug)]
pub(crate) struct Modal {
    pub(crate) user_id: u64,
    pub(crate) custom_id: String,
    pub(crate) kind: ModalKind,
    pub(crate) app: App,
}

/// How a job's image is (re)made.
#[derive(Clone, Debug)]
pub(crate) enum ImageSource {
    /// A painter grid.
    Grid { prompt: String, seed: u32 },
    /// Quadrant `index` (1-4) of another job's grid.
    Quadrant { grid: String, index: u8 },
    /// Another job's image scaled 2×.
    Doubled { of: String },
    /// A clip the painter draws (video jobs).
    Clip {
        prompt: String,
        seed: u32,
        kind: crate::ClipKind,
    },
}

/// A finished job, found by its hash when one of its buttons is pressed.
#[derive(Clone, Debug)]
pub(crate) struct JobRecord {
    pub(crate) owner: u64,
    pub(crate) app: App,
    /// The prompt as shown between `**`.
    pub(crate) prompt: String,
    pub(crate) seed: u32,
    pub(crate) source: ImageSource,
    /// The final message carrying the job's buttons.
    pub(crate) message_id: u64,
    /// Jobs derived from this one so far (varies derived seeds).
    pub(crate) children: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Channel {
    pub(crate) owner: u64,
    pub(crate) guild_id: u64,
    pub(crate) messages: BTreeMap<u64, Value>,
}

/// Everything except sessions and blobs.
pub(crate) struct World {
    pub(crate) users: HashMap<u64, User>,
    pub(crate) by_token: HashMap<String, u64>,
    /// Pre-made accounts in creation order.
    pub(crate) premade: Vec<u64>,
    pub(crate) channels: HashMap<u64, Channel>,
    pub(crate) ephemeral: HashMap<u64, Value>,
    ephemeral_order: VecDeque<u64>,
    pub(crate) uploads: HashMap<String, Upload>,
    upload_order: VecDeque<String>,
    pub(crate) modals: HashMap<u64, Modal>,
    pub(crate) jobs: HashMap<String, JobRecord>,
    pub(crate) commands: Commands,
}

impl World {
    pub(crate) fn new() -> Self {
        Self {
            users: HashMap::new(),
            by_token: HashMap::new(),
            premade: Vec::new(),
            channels: HashMap::new(),
            ephemeral: HashMap::new(),
            ephemeral_order: VecDeque::new(),
            uploads: HashMap::new(),
            upload_order: VecDeque::new(),
            modals: HashMap::new(),
            jobs: HashMap::new(),
            commands: Commands::new(),
        }
    }

    pub(crate) fn add_user(&mut self, user: User) {
        self.channels.insert(
            user.channel_id,
            Channel {
                owner: user.id,
                guild_id: user.guild_id,
                messages: BTreeMap::new(),
            },
        );
        self.by_token.insert(user.token.clone(), user.id);
        self.users.insert(user.id, user);
    }

    pub(crate) fn user_by_token(&self, token: &str) -> Option<&User> {
        self.by_token.get(token).and_then(|id| self.users.get(id))
    }

    /// Stores (or replaces) a message in its channel's history.
    pub(crate) fn store(&mut self, channel_id: u64, id: u64, message: Value) {
        if let Some(channel) = self.channels.get_mut(&channel_id) {
            channel.messages.insert(id, message);
            while channel.messages.len() > HISTORY {
                channel.messages.pop_first();
            }
        }
    }

    pub(crate) fn store_ephemeral(&mut self, id: u64, message: Value) {
        if self.ephemeral.insert(id, message).is_none() {
            self.ephemeral_order.push_back(id);
        }
        while self.ephemeral_order.len() > EPHEMERAL {
            if let Some(old) = self.ephemeral_order.pop_front() {
                self.ephemeral.remove(&old);
            }
        }
    }

    /// A message of the channel's history, or an ephemeral one shown in that channel.
    pub(crate) fn message(&self, channel_id: u64, id: u64) -> Option<&Value> {
        self.channels
            .get(&channel_id)
            .and_then(|c| c.messages.get(&id))
            .or_else(|| {
                self.ephemeral
                    .get(&id)
                    .filter(|m| crate::sim::id_of(m, "channel_id") == Some(channel_id))
            })
    }

    pub(crate) fn remove_message(&mut self, channel_id: u64, id: u64) -> bool {
        let in_history = self
            .channels
            .get_mut(&channel_id)
            .and_then(|c| c.messages.remove(&id))
            .is_some();
        in_history || self.ephemeral.remove(&id).is_some()
    }

    pub(crate) fn add_upload(&mut self, key: String, upload: Upload) {
        if self.uploads.insert(key.clone(), upload).is_none() {
            self.upload_order.push_back(key);
        }
        while self.upload_order.len() > UPLOADS {
            if let Some(old) = self.upload_order.pop_front() {
                self.uploads.remove(&old);
            }
        }
    }
}
