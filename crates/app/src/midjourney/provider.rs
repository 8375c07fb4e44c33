//! The Midjourney provider: /imagine for the grid, U1–U4 for the upscales, over the account
//! pool, with every step's Discord references saved so that a restarted job picks up where
//! the last process stopped instead of paying for the same render twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_discord::rest::SlashCommand;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::account::Account;
use super::download::{self, Retries};
use super::exchange::{self, Exchange, Send, Timing};
use super::pool::Pool;
use super::reading::{Kind, MIDJOURNEY_BOT_ID, NIJI_BOT_ID, Reading};
use super::router::{Expect, normalise};
use crate::domain::ErrorCode;
use crate::domain::prompt_params;
use crate::providers::{Delivery, Provider, ProviderError, ProviderJob, Reporter};

pub struct Midjourney {
    pub pool: Arc<Pool>,
    pub timing: Timing,
    pub retries: Retries,
}

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
    fn of(r: &Reading) -> Self {
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
struct Saved<'a> {
    refs: Mutex<Refs>,
    report: &'a dyn Reporter,
}

impl Saved<'_> {
    async fn update(&self, f: impl FnOnce(&mut Refs)) {
        let value = {
            let Ok(mut refs) = self.refs.lock() else {
                return;
            };
            f(&mut refs);
            serde_json::to_value(&*refs).unwrap_or_default()
        };
        self.report.save_refs(value).await;
    }

    fn get(&self) -> Refs {
        self.refs.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The bot a job talks to: niji・journey when the job asks for it.
fn application_id(job: &ProviderJob) -> &'static str {
    match job.parameters.extra.get("bot").and_then(|v| v.as_str()) {
        Some("niji") => NIJI_BOT_ID,
        _ => MIDJOURNEY_BOT_ID,
    }
}

/// The /imagine prompt: the user's text with its own parameters, plus the ones given apart
/// from it (seed, aspect ratio, negative prompt) that it does not already carry.
pub fn imagine_prompt(job: &ProviderJob) -> String {
    let mut prompt = job.prompt.clone();
    let inline = prompt_params::parse(&prompt)
        .map(|(_, p)| p)
        .unwrap_or_default();
    if inline.aspect_ratio.is_none()
        && let Some(ar) = &job.parameters.aspect_ratio
    {
        prompt.push_str(&format!(" --ar {ar}"));
    }
    if inline.seed.is_none()
        && let Some(seed) = job.parameters.seed
    {
        prompt.push_str(&format!(" --seed {seed}"));
    }
    if inline.no.is_none()
        && let Some(neg) = &job.negative_prompt
    {
        prompt.push_str(&format!(" --no {neg}"));
    }
    prompt
}

impl Midjourney {
    fn exchange<'a>(
        &'a self,
        account: &'a Arc<Account>,
        report: &'a dyn Reporter,
        job: &ProviderJob,
    ) -> Exchange<'a> {
        Exchange {
            account,
            timing: &self.timing,
            report,
            application_id: application_id(job),
        }
    }

    /// The account this job holds (taking one on its first call).
    async fn account<'a>(
        &self,
        job: &ProviderJob,
        saved: &Saved<'a>,
    ) -> Result<Arc<Account>, ProviderError> {
        let wanted = saved.get().account;
        let account = self.pool.hold(job.generation_id, wanted.as_deref()).await?;
        if wanted.is_none() {
            let name = account.name.clone();
            saved.update(|r| r.account = Some(name.clone())).await;
            saved.report.account(&name).await;
        }
        Ok(account)
    }

    async fn deliver(&self, account: &Account, shot: &Shot) -> Result<Delivery, ProviderError> {
        let url = shot.url.as_deref().ok_or_else(|| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                "the result message has no image attachment",
            )
        })?;
        let bytes = download::fetch(account, &shot.message_id, url, &self.retries).await?;
        Ok(Delivery { bytes })
    }

    /// Runs one step (`step` names it in the refs) and records its result message.
    async fn step(
        &self,
        exchange: &Exchange<'_>,
        saved: &Saved<'_>,
        step: &str,
        what: Send,
        expect: Expect,
    ) -> Result<Reading, ProviderError> {
        let resumed = saved
            .get()
            .pending
            .filter(|p| p.step == step)
            .map(|p| p.nonce);
        let result = exchange
            .run(&what, expect, resumed, |nonce| {
                saved.update(move |r| {
                    r.pending = Some(Pending {
                        step: step.to_owned(),
                        nonce,
                    });
                })
            })
            .await;
        if result.is_err() {
            saved.update(|r| r.pending = None).await;
        }
        result
    }
}

#[async_trait]
impl Provider for Midjourney {
    async fn render(
        &self,
        job: &ProviderJob,
        report: &dyn Reporter,
    ) -> Result<Delivery, ProviderError> {
        let saved = Saved {
            refs: Mutex::new(serde_json::from_value(job.refs.clone()).unwrap_or_default()),
            report,
        };
        let account = self.account(job, &saved).await?;
        if let Some(grid) = saved.get().grid {
            return self.deliver(&account, &grid).await;
        }
        let prompt = imagine_prompt(job);
        let expect = Expect {
            kinds: vec![Kind::Imagine, Kind::Reroll],
            index: None,
            source_message: None,
            prompt: Some(normalise(&prompt)),
        };
        let command = SlashCommand {
            name: "imagine".into(),
            options: vec![json!({"type": 3, "name": "prompt", "value": prompt})],
            attachments: Vec::new(),
        };
        let exchange = self.exchange(&account, report, job);
        let reading = self
            .step(&exchange, &saved, "grid", Send::Slash(command), expect)
            .await?;
        let shot = Shot::of(&reading);
        saved
            .update(|r| {
                r.grid = Some(shot.clone());
                r.pending = None;
            })
            .await;
        self.deliver(&account, &shot).await
    }

    async fn upscale(
        &self,
        job: &ProviderJob,
        index: u8,
        report: &dyn Reporter,
    ) -> Result<Delivery, ProviderError> {
        let saved = Saved {
            refs: Mutex::new(serde_json::from_value(job.refs.clone()).unwrap_or_default()),
            report,
        };
        let account = self.account(job, &saved).await?;
        let refs = saved.get();
        if let Some(shot) = refs.upscales.get(&index) {
            return self.deliver(&account, shot).await;
        }
        let grid = refs.grid.ok_or_else(|| {
            ProviderError::new(
                ErrorCode::Internal,
                "no grid message is recorded for this generation",
            )
        })?;
        let custom_id = upscale_button(&grid, index).ok_or_else(|| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("the grid message has no U{index} button and no job hash"),
            )
        })?;
        let expect = Expect {
            kinds: vec![Kind::Upscale],
            index: Some(index),
            source_message: Some(grid.message_id.clone()),
            prompt: grid.prompt.as_deref().map(normalise),
        };
        let exchange = self.exchange(&account, report, job);
        let press = Send::Button(exchange::button(&grid.message_id, grid.flags, &custom_id));
        let reading = self
            .step(
                &exchange,
                &saved,
                &format!("upscale_{index}"),
                press,
                expect,
            )
            .await?;
        let shot = Shot::of(&reading);
        saved
            .update(|r| {
                r.upscales.insert(index, shot.clone());
                r.pending = None;
            })
            .await;
        self.deliver(&account, &shot).await
    }

    async fn release(&self, job: &ProviderJob) {
        self.pool.release(job.generation_id);
    }
}

/// The U`index` button of a grid message: as the message lists it, else built from the job
/// hash (older messages, or buttons lost with a partial read).
fn upscale_button(grid: &Shot, index: u8) -> Option<String> {
    let prefix = format!("MJ::JOB::upsample::{index}::");
    grid.buttons
        .iter()
        .find(|b| b.starts_with(&prefix))
        .cloned()
        .or_else(|| grid.job_hash.as_ref().map(|h| format!("{prefix}{h}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GenerationId, Parameters};

    fn job(prompt: &str) -> ProviderJob {
        ProviderJob {
            generation_id: GenerationId::new(),
            prompt: prompt.into(),
            negative_prompt: None,
            parameters: Parameters::default(),
            account: None,
            refs: json!({}),
        }
    }

    #[test]
    fn prompts_carry_parameters_given_apart() {
        let mut j = job("a fox --ar 2:3");
        j.parameters.aspect_ratio = Some("2:3".into());
        j.parameters.seed = Some(9);
        j.negative_prompt = Some("cars".into());
        assert_eq!(imagine_prompt(&j), "a fox --ar 2:3 --seed 9 --no cars");
    }

    #[test]
    fn upscale_buttons_come_from_the_message_or_the_hash() {
        let mut grid = Shot {
            message_id: "1".into(),
            flags: 0,
            job_hash: Some("h".into()),
            url: None,
            buttons: vec!["MJ::JOB::upsample::2::real".into()],
            prompt: None,
        };
        assert_eq!(
            upscale_button(&grid, 2).as_deref(),
            Some("MJ::JOB::upsample::2::real")
        );
        assert_eq!(
            upscale_button(&grid, 3).as_deref(),
            Some("MJ::JOB::upsample::3::h")
        );
        grid.job_hash = None;
        assert_eq!(upscale_button(&grid, 3), None);
    }

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
