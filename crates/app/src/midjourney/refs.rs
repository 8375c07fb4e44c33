//! What the Midjourney provider saves in a generation's `provider_refs`: the account, each
//! result message, and the interaction in flight, so a restarted job resumes instead of
//! sending again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::reading::Reading;
use crate::providers::{ProviderJob, Reporter};

/// What the provider keeps in a generation's `provider_refs`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Refs {
    /// The account that holds the job's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The grid's result message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Shot>,
    /// Each upscale's result message, by image number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upscales: BTreeMap<u8, Shot>,
    /// The result message of a single-picture action (U1–U4, Upscale Subtle/Creative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Shot>,
    /// For an action on an upscale the parent never pressed (it split its grid locally):
    /// the U message this job pressed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Shot>,
    /// The prompts /describe found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// An interaction sent whose outcome is not known yet: after a crash, its messages are
    /// looked for before sending it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// A result message of the bot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shot {
    pub message_id: String,
    #[serde(default)]
    pub flags: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

impl Shot {
    pub fn of(r: &Reading) -> Self {
        Self {
            message_id: r.message_id.clone(),
            flags: r.flags.raw,
            job_hash: r.job_hash.clone(),
            url: r.attachment.as_ref().and_then(|a| a.url.clone()),
            buttons: r.buttons.clone(),
            prompt: r.prompt.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// `grid` or `upscale_N`.
    pub step: String,
    pub nonce: String,
}

/// The refs of a running job, saved through the reporter at every change.
pub struct Saved<'a> {
    pub refs: Mutex<Refs>,
    pub report: &'a dyn Reporter,
}

impl Saved<'_> {
    pub async fn update(&self, f: impl FnOnce(&mut Refs)) {
        let value = {
            let Ok(mut refs) = self.refs.lock() else {
                return;
            };
            f(&mut refs);
            serde_json::to_value(&*refs).unwrap_or_default()
        };
        self.report.save_refs(value).await;
    }

    pub fn get(&self) -> Refs {
        self.refs.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The references of the generation an action acts on.
pub fn parent_refs(job: &ProviderJob) -> Refs {
    serde_json::from_value(job.parent_refs.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_round_trip_through_json() {
        let mut refs = Refs {
            account: Some("main".into()),
            ..Refs::default()
        };
        refs.upscales.insert(
            2,
            Shot {
                message_id: "5".into(),
                flags: 0,
                job_hash: None,
                url: Some("u".into()),
                buttons: vec![],
                prompt: None,
            },
        );
        let value = serde_json::to_value(&refs).unwrap();
        assert_eq!(value["upscales"]["2"]["message_id"], "5");
        let back: Refs = serde_json::from_value(value).unwrap();
        assert_eq!(back.upscales[&2].url.as_deref(), Some("u"));
    }
}
