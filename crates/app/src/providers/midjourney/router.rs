//! Correlation: which waiting job a Midjourney message belongs to.
//!
//! Keys, strongest first (protocol fact sheet §3.3): the interaction's nonce, then the
//! interaction id Discord assigned to it, then the message ids the job already owns (its
//! progress message), then the Midjourney job id its running messages showed (the cancel
//! button's `MJ::CancelJob::ByJobid::<uuid>`, a preview's file name), or, for a button result,
//! the message the button was on together with the image number, and only last the prompt
//! text, compared normalised, oldest job first. Prompt
//! matching is the weakest key because two jobs may share a prompt and Midjourney rewrites
//! links; it is only used for results of the kind the job expects.
//!
//! The weak keys (reference, prompt) never take a message that carries a nonce or an
//! interaction id of some other interaction, a message older than the job's interaction, or a
//! message that already belonged to a finished job.
//!
//! The router is plain data behind the account's mutex: no I/O, no clock.

use std::collections::{HashMap, HashSet, VecDeque};

use tokio::sync::mpsc;

use super::reading::{Kind, Reading};

/// What a job waits for.
#[derive(Clone, Debug)]
pub struct Expect {
    /// Result kinds that end the job (e.g. `Imagine` for /imagine, `Upscale` for U2).
    pub kinds: Vec<Kind>,
    /// Image number the result must carry (U results), when known.
    pub index: Option<u8>,
    /// The message whose button was pressed: results reference it.
    pub source_message: Option<String>,
    /// Normalised prompt, for the last-resort match.
    pub prompt: Option<String>,
}

/// News for a waiting job.
#[derive(Debug)]
pub enum Notice {
    Message(Box<Reading>),
    /// Discord refused the interaction after accepting it (`INTERACTION_FAILURE`), or the bot
    /// answered with a form we do not fill (a remix modal).
    Refused(crate::providers::ProviderError),
    /// The bot answered the interaction with a form the job fills (Extend's under Remix
    /// mode): its `id` and `custom_id`, for the modal submit.
    Modal {
        id: String,
        custom_id: String,
    },
    /// The gateway started a new session: dispatches may have been lost, read the history.
    Resync,
    /// The account stopped for good.
    AccountDown(String),
}

struct Waiter {
    nonce: String,
    /// When the job's first interaction was made (a snowflake's timestamp): older messages
    /// are not its.
    since_ms: u64,
    interaction_id: Option<String>,
    messages: Vec<String>,
    /// Midjourney's id for the job, once a waiting or progress message of it showed one.
    job_hash: Option<String>,
    expect: Expect,
    /// Registration order, for "oldest job first" among prompt matches.
    order: u64,
    tx: mpsc::UnboundedSender<Notice>,
}

/// The waiting jobs of one account.
#[derive(Default)]
pub struct Router {
    waiters: HashMap<u64, Waiter>,
    next: u64,
    /// Message ids of finished jobs, most recent last (bounded): never given to another.
    retired: VecDeque<String>,
    retired_set: HashSet<String>,
}

/// How many finished jobs' message ids are remembered.
const RETIRED: usize = 4096;

/// Discord's epoch, for snowflake timestamps.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// Clock skew allowed between our nonces and Discord's message ids.
const SKEW_MS: u64 = 10_000;

/// The Unix time in ms a snowflake (nonce, message id) was made at.
pub fn snowflake_ms(id: &str) -> Option<u64> {
    id.parse::<u64>().ok().map(|v| (v >> 22) + DISCORD_EPOCH_MS)
}

/// The smallest snowflake made at `ms`.
pub fn snowflake_at(ms: u64) -> String {
    (ms.saturating_sub(DISCORD_EPOCH_MS) << 22).to_string()
}

/// A registered job's handle in the router.
pub type WaiterId = u64;

impl Router {
    pub fn register(
        &mut self,
        nonce: &str,
        expect: Expect,
        tx: mpsc::UnboundedSender<Notice>,
    ) -> WaiterId {
        self.next += 1;
        let id = self.next;
        self.waiters.insert(
            id,
            Waiter {
                nonce: nonce.to_owned(),
                since_ms: snowflake_ms(nonce).unwrap_or(0),
                interaction_id: None,
                messages: Vec::new(),
                job_hash: None,
                expect,
                order: id,
                tx,
            },
        );
        id
    }

    pub fn remove(&mut self, id: WaiterId) {
        let Some(w) = self.waiters.remove(&id) else {
            return;
        };
        for m in w.messages {
            if self.retired_set.insert(m.clone()) {
                self.retired.push_back(m);
            }
        }
        while self.retired.len() > RETIRED {
            if let Some(old) = self.retired.pop_front() {
                self.retired_set.remove(&old);
            }
        }
    }

    /// When the job's first interaction was made (Unix ms), for reading history after it.
    pub fn since_ms(&self, id: WaiterId) -> Option<u64> {
        self.waiters.get(&id).map(|w| w.since_ms)
    }

    /// A new nonce for the same job (the interaction was sent again).
    pub fn renonce(&mut self, id: WaiterId, nonce: &str) {
        if let Some(w) = self.waiters.get_mut(&id) {
            nonce.clone_into(&mut w.nonce);
            w.interaction_id = None;
        }
    }

    /// Adds a message id the job owns (found while reading the history); true when the job
    /// had not seen it, so its dispatch was lost.
    pub fn own_message(&mut self, id: WaiterId, message_id: &str) -> bool {
        if let Some(w) = self.waiters.get_mut(&id)
            && !w.messages.iter().any(|m| m == message_id)
        {
            w.messages.push(message_id.to_owned());
            return true;
        }
        false
    }

    /// `INTERACTION_CREATE` / `INTERACTION_SUCCESS`: Discord's id for our nonce.
    pub fn interaction(&mut self, nonce: &str, interaction_id: &str) {
        if let Some(w) = self.waiters.values_mut().find(|w| w.nonce == nonce) {
            w.interaction_id = Some(interaction_id.to_owned());
        }
    }

    /// Tells the job that sent `nonce` that its interaction was refused.
    pub fn refuse(&self, nonce: &str, error: &crate::providers::ProviderError) {
        if let Some(w) = self.waiters.values().find(|w| w.nonce == nonce) {
            let _ = w.tx.send(Notice::Refused(error.clone()));
        }
    }

    /// Tells the job that sent `nonce` that the bot opened a form it fills.
    pub fn modal(&self, nonce: &str, id: &str, custom_id: &str) {
        if let Some(w) = self.waiters.values().find(|w| w.nonce == nonce) {
            let _ = w.tx.send(Notice::Modal {
                id: id.to_owned(),
                custom_id: custom_id.to_owned(),
            });
        }
    }

    /// Every waiter hears it (a new session, the account going down).
    pub fn broadcast(&self, notice: impl Fn() -> Notice) {
        for w in self.waiters.values() {
            let _ = w.tx.send(notice());
        }
    }

    /// Delivers a message to the job it belongs to; returns whether one took it.
    pub fn deliver(&mut self, reading: Reading) -> bool {
        let Some(id) = self.owner(&reading) else {
            return false;
        };
        let Some(w) = self.waiters.get_mut(&id) else {
            return false;
        };
        if !w.messages.contains(&reading.message_id) {
            w.messages.push(reading.message_id.clone());
        }
        // A missed INTERACTION_SUCCESS: later messages may carry only this id.
        if w.interaction_id.is_none() {
            w.interaction_id.clone_from(&reading.interaction_id);
        }
        // Only a running message names this job's own id: a result may carry buttons of
        // another job (the one it was made from).
        if w.job_hash.is_none() && matches!(reading.kind, Kind::Waiting | Kind::Progress) {
            w.job_hash.clone_from(&reading.job_hash);
        }
        w.tx.send(Notice::Message(Box::new(reading))).is_ok()
    }

    /// The waiter a message belongs to, by the strongest key that matches.
    pub fn owner(&self, r: &Reading) -> Option<WaiterId> {
        if let Some(nonce) = r.nonce.as_deref()
            && let Some((id, _)) = self.waiters.iter().find(|(_, w)| w.nonce == nonce)
        {
            return Some(*id);
        }
        if let Some(iid) = r.interaction_id.as_deref()
            && let Some((id, _)) = self
                .waiters
                .iter()
                .find(|(_, w)| w.interaction_id.as_deref() == Some(iid))
        {
            return Some(*id);
        }
        if let Some((id, _)) = self
            .waiters
            .iter()
            .find(|(_, w)| w.messages.contains(&r.message_id))
        {
            return Some(*id);
        }
        if let Some(hash) = r.job_hash.as_deref()
            && let Some((id, _)) = self
                .waiters
                .iter()
                .find(|(_, w)| w.job_hash.as_deref() == Some(hash))
        {
            return Some(*id);
        }
        // The weak keys. A nonce or interaction id that names no waiting job means the
        // message is another interaction's (an earlier job, another client), and a message a
        // finished job owned stays its.
        if r.nonce.is_some() || self.retired_set.contains(&r.message_id) {
            return None;
        }
        let message_ms = snowflake_ms(&r.message_id).unwrap_or(u64::MAX);
        let could_be = |w: &Waiter| {
            message_ms.saturating_add(SKEW_MS) >= w.since_ms
                && (r.interaction_id.is_none()
                    || w.interaction_id.is_none()
                    || r.interaction_id == w.interaction_id)
                && (r.referenced_message_id.is_none()
                    || w.expect.source_message.is_none()
                    || r.referenced_message_id == w.expect.source_message)
        };
        if let Some(reference) = r.referenced_message_id.as_deref()
            && let Some((id, _)) = self.waiters.iter().find(|(_, w)| {
                could_be(w)
                    && w.expect.source_message.as_deref() == Some(reference)
                    && w.expect.kinds.contains(&r.kind)
                    && (w.expect.index.is_none() || w.expect.index == r.index)
            })
        {
            return Some(*id);
        }
        let prompt = normalise(r.prompt.as_deref()?);
        self.waiters
            .iter()
            .filter(|(_, w)| {
                could_be(w)
                    && w.expect.prompt.as_deref() == Some(prompt.as_str())
                    && (w.expect.kinds.contains(&r.kind)
                        || matches!(r.kind, Kind::Waiting | Kind::Progress))
                    && (w.expect.index.is_none() || r.index.is_none() || w.expect.index == r.index)
            })
            .min_by_key(|(_, w)| w.order)
            .map(|(id, _)| *id)
    }
}

/// The prompt as compared across messages: Midjourney's link wrappers and shortened links
/// removed, parameters dropped (Midjourney appends the user's defaults), whitespace and case
/// folded.
pub fn normalise(prompt: &str) -> String {
    let text = prompt.split(" --").next().unwrap_or(prompt);
    text.split_whitespace()
        .filter(|w| !w.starts_with("<http") && !w.starts_with("http"))
        .map(|w| {
            w.trim_matches(|c: char| c == '<' || c == '>')
                .to_lowercase()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
