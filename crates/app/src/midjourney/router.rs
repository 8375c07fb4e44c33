//! Correlation: which waiting job a Midjourney message belongs to.
//!
//! Keys, strongest first (protocol fact sheet §3.3): the interaction's nonce, then the
//! interaction id Discord assigned to it, then the message ids the job already owns (its
//! progress message) or, for a button result, the message the button was on together with the
//! image number, and only last the prompt text, compared normalised, oldest job first. Prompt
//! matching is the weakest key because two jobs may share a prompt and Midjourney rewrites
//! links; it is only used for results of the kind the job expects.
//!
//! The router is plain data behind the account's mutex: no I/O, no clock.

use std::collections::HashMap;

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
    /// The gateway started a new session: dispatches may have been lost, read the history.
    Resync,
    /// The account stopped for good.
    AccountDown(String),
}

struct Waiter {
    nonce: String,
    interaction_id: Option<String>,
    messages: Vec<String>,
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
                interaction_id: None,
                messages: Vec::new(),
                expect,
                order: id,
                tx,
            },
        );
        id
    }

    pub fn remove(&mut self, id: WaiterId) {
        self.waiters.remove(&id);
    }

    /// A new nonce for the same job (the interaction was sent again).
    pub fn renonce(&mut self, id: WaiterId, nonce: &str) {
        if let Some(w) = self.waiters.get_mut(&id) {
            nonce.clone_into(&mut w.nonce);
            w.interaction_id = None;
        }
    }

    /// Adds a message id the job owns (found while reading the history after a restart).
    pub fn own_message(&mut self, id: WaiterId, message_id: &str) {
        if let Some(w) = self.waiters.get_mut(&id)
            && !w.messages.iter().any(|m| m == message_id)
        {
            w.messages.push(message_id.to_owned());
        }
    }

    /// `INTERACTION_CREATE` / `INTERACTION_SUCCESS`: Discord's id for our nonce.
    pub fn interaction(&mut self, nonce: &str, interaction_id: &str) {
        if let Some(w) = self.waiters.values_mut().find(|w| w.nonce == nonce) {
            w.interaction_id = Some(interaction_id.to_owned());
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
        if let Some(reference) = r.referenced_message_id.as_deref()
            && let Some((id, _)) = self.waiters.iter().find(|(_, w)| {
                w.expect.source_message.as_deref() == Some(reference)
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
                w.expect.prompt.as_deref() == Some(prompt.as_str())
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
