//! What the Midjourney provider saves in a generation's `provider_refs`: the account, each
//! result message, the interactions in flight and the image prompts' uploaded URLs, so a
//! restarted job resumes instead of sending (or uploading) again.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::reading::Reading;
use crate::providers::{ProviderError, ProviderJob, Reporter};

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
    /// The cancel buttons of the job's running Midjourney jobs, by Midjourney job id: what
    /// a cancel presses. Each is dropped when its job's result is saved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub running: BTreeMap<String, Running>,
    /// The model the job ran on (`v8.1`, `niji 7`), saved with its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The prompts /describe or /shorten found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// The CDN URLs the job's image prompts were given (uploaded, then sent in a message of
    /// the account's channel), in order: a resumed /imagine puts these first again rather
    /// than uploading the pictures twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_prompts: Vec<String>,
    /// Interactions whose outcome is not known yet, by step (`grid`, `upscale_N`, `result`,
    /// `source`, `describe`, `shorten`) → nonce: after a crash, each one's messages are looked for before
    /// it is sent again. U1–U4 run at once, so several may be pending. A nonce may be saved
    /// ahead of its send (the U presses' are saved with the grid's result): looking for a
    /// press that was never sent finds nothing, and it is sent then.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "pending_by_step"
    )]
    pub pending: BTreeMap<String, String>,
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

/// The progress message of a running Midjourney job and its cancel button
/// (`MJ::CancelJob::ByJobid::<job id>`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Running {
    pub message_id: String,
    #[serde(default)]
    pub flags: u64,
    pub custom_id: String,
    /// The bot the message is from: the press goes to it.
    pub application_id: String,
}

/// `pending` as stored: a map by step, or (written before U1–U4 ran at once) one
/// `{"step", "nonce"}` object, or null.
fn pending_by_step<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        One { step: String, nonce: String },
        ByStep(BTreeMap<String, String>),
    }
    Ok(match Option::<Stored>::deserialize(d)? {
        None => BTreeMap::new(),
        Some(Stored::One { step, nonce }) => BTreeMap::from([(step, nonce)]),
        Some(Stored::ByStep(map)) => map,
    })
}

/// The refs of a running job as its reporter holds them: the calls running at once for one
/// job (U1–U4) read and change the same refs, and every change is saved before it returns.
pub struct Saved<'a> {
    pub report: &'a dyn Reporter,
}

impl Saved<'_> {
    /// Applies `f` to the refs as last saved (by any call of the job) and saves them.
    pub async fn update(&self, f: impl FnOnce(&mut Refs) + Send) -> Result<(), ProviderError> {
        self.report
            .update_refs(Box::new(move |value| {
                let mut refs = read(value);
                f(&mut refs);
                if let Ok(v) = serde_json::to_value(&refs) {
                    *value = v;
                }
            }))
            .await
    }

    pub fn get(&self) -> Refs {
        read(&self.report.refs())
    }
}

/// Refs from their JSON; anything unreadable counts as nothing saved.
pub fn read(value: &serde_json::Value) -> Refs {
    Refs::deserialize(value).unwrap_or_default()
}

/// The references of the generation an action acts on.
pub fn parent_refs(job: &ProviderJob) -> Refs {
    read(&job.parent_refs)
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

    #[test]
    fn pending_sends_are_kept_by_step() {
        let mut refs = Refs::default();
        refs.pending.insert("upscale_1".into(), "11".into());
        refs.pending.insert("upscale_3".into(), "33".into());
        let value = serde_json::to_value(&refs).unwrap();
        assert_eq!(
            value["pending"],
            serde_json::json!({"upscale_1": "11", "upscale_3": "33"})
        );
        assert_eq!(read(&value).pending, refs.pending);
        // Nothing pending: the key is left out, and null reads as nothing.
        let none = serde_json::to_value(Refs::default()).unwrap();
        assert!(none.get("pending").is_none());
        assert!(
            read(&serde_json::json!({"pending": null}))
                .pending
                .is_empty()
        );
    }

    #[test]
    fn a_single_pending_send_saved_by_an_earlier_version_still_resumes() {
        let old = serde_json::json!({
            "account": "main",
            "grid": {"message_id": "7"},
            "pending": {"step": "upscale_2", "nonce": "1234"}
        });
        let refs = read(&old);
        assert_eq!(refs.account.as_deref(), Some("main"));
        assert_eq!(
            refs.pending,
            BTreeMap::from([("upscale_2".to_owned(), "1234".to_owned())])
        );
    }
}
