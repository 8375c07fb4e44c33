//! The slash commands a job sends: which bot, /imagine's prompt, /blend's options, and the
//! uploads /describe and /blend attach.

use std::fmt::Write as _;

use atelier_discord::rest::SlashCommand;
use atelier_midjourney_params::Version;
use serde_json::json;

use super::account::Account;
use super::exchange::Send;
use super::reading::{MIDJOURNEY_BOT_ID, NIJI_BOT_ID};
use crate::domain::{ErrorCode, Parameters, prompt_params};
use crate::providers::{ProviderError, ProviderJob};

/// The bot a job talks to: niji・journey when the job asks for it.
pub fn application_id(job: &ProviderJob) -> &'static str {
    if niji(&job.parameters) {
        NIJI_BOT_ID
    } else {
        MIDJOURNEY_BOT_ID
    }
}

fn niji(parameters: &Parameters) -> bool {
    parameters.extra.get("bot").and_then(|v| v.as_str()) == Some("niji")
}

/// The /imagine prompt: the user's text with its own parameters, plus the ones given apart
/// from it (seed, aspect ratio, negative prompt) that it does not already carry.
pub fn imagine_prompt(job: &ProviderJob) -> String {
    imagine_text(&job.prompt, job.negative_prompt.as_deref(), &job.parameters)
}

fn imagine_text(prompt: &str, negative_prompt: Option<&str>, parameters: &Parameters) -> String {
    let mut prompt = prompt.to_owned();
    let inline = prompt_params::parse(&prompt)
        .map(|(_, p)| p)
        .unwrap_or_default();
    if inline.aspect_ratio.is_none()
        && let Some(ar) = &parameters.aspect_ratio
    {
        let _ = write!(prompt, " --ar {ar}");
    }
    if inline.seed.is_none()
        && let Some(seed) = parameters.seed
    {
        let _ = write!(prompt, " --seed {seed}");
    }
    if inline.no.is_none()
        && let Some(neg) = negative_prompt
    {
        let _ = write!(prompt, " --no {neg}");
    }
    prompt
}

/// Refuses what the bot would refuse, judging the /imagine prompt a job would send by
/// Midjourney's table for the model it selects (the bot's default model unless it says).
pub fn check(
    prompt: &str,
    negative_prompt: Option<&str>,
    parameters: &Parameters,
) -> Result<(), String> {
    let sent = imagine_text(prompt, negative_prompt, parameters);
    let default = if niji(parameters) {
        Version::NIJI_DEFAULT
    } else {
        Version::DEFAULT
    };
    atelier_midjourney_params::check(&sent, default)
        .map(|_| ())
        .map_err(|refusal| format!("Midjourney refuses this prompt: {refusal}"))
}

/// The model the job's prompt runs on (`v8.1`, `v7`, `niji 7`), as the bot chooses it: what
/// the prompt selects, else the bot's default; `None` for a prompt the bot would refuse.
pub fn model(job: &ProviderJob) -> Option<String> {
    let default = if niji(&job.parameters) {
        Version::NIJI_DEFAULT
    } else {
        Version::DEFAULT
    };
    let version = atelier_midjourney_params::check(&imagine_prompt(job), default).ok()?;
    Some(if version.is_niji() {
        format!("niji {}", version.number())
    } else {
        format!("v{}", version.number())
    })
}

/// The /blend command for the job's pictures (2 to 5), with its dimensions.
pub async fn blend(account: &Account, job: &ProviderJob) -> Result<Send, ProviderError> {
    if !(2..=5).contains(&job.inputs.len()) {
        return Err(ProviderError::new(
            ErrorCode::InvalidParameter,
            format!("blend takes 2 to 5 images, not {}", job.inputs.len()),
        ));
    }
    let uploaded = upload(account, &job.inputs).await?;
    let mut options: Vec<serde_json::Value> = (0..uploaded.len())
        .map(|i| json!({"type": 11, "name": format!("image{}", i + 1), "value": i}))
        .collect();
    let ratio = match job
        .parameters
        .extra
        .get("dimensions")
        .and_then(|d| d.as_str())
    {
        Some("portrait") => Some("--ar 2:3"),
        Some("landscape") => Some("--ar 3:2"),
        Some("square") => Some("--ar 1:1"),
        _ => None,
    };
    if let Some(ratio) = ratio {
        options.push(json!({"type": 3, "name": "dimensions", "value": ratio}));
    }
    Ok(Send::Slash(SlashCommand {
        name: "blend".into(),
        options,
        attachments: uploaded,
    }))
}

/// Uploads pictures to the account's channel for a slash command.
pub async fn upload(
    account: &Account,
    inputs: &[crate::providers::Input],
) -> Result<Vec<serde_json::Value>, ProviderError> {
    let files = inputs
        .iter()
        .map(|i| (i.filename.clone(), i.bytes.clone()))
        .collect();
    let uploaded = account
        .rest
        .upload_attachments(&account.place.channel_id, files)
        .await
        .map_err(|e| {
            ProviderError::new(
                ErrorCode::ProviderUnavailable,
                format!("uploading to Discord failed: {e}"),
            )
        })?;
    Ok(uploaded
        .iter()
        .map(atelier_discord::rest::UploadedAttachment::to_json)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GenerationId;

    fn job(prompt: &str) -> ProviderJob {
        ProviderJob {
            generation_id: GenerationId::new(),
            kind: crate::domain::GenerationKind::Imagine,
            prompt: prompt.into(),
            negative_prompt: None,
            parameters: Parameters::default(),
            account: None,
            refs: json!({}),
            action: None,
            parent_refs: serde_json::Value::Null,
            inputs: Vec::new(),
            upscales: Vec::new(),
            stored: Vec::new(),
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
    fn the_prompt_sent_is_checked_against_its_model() {
        let mut p = Parameters::default();
        assert_eq!(check("a fox --v 7 --q 2", None, &p), Ok(()));
        assert_eq!(
            check("a fox --stop 50 --v 7", None, &p),
            Err("Midjourney refuses this prompt: --stop is not compatible with --version 7".into())
        );
        // What is given apart from the prompt is sent, so it is checked too.
        p.aspect_ratio = Some("99999:1".into());
        assert!(check("a fox", None, &p).is_err());
        // niji・journey's default model has --q; Midjourney's (V8.1) has not.
        let mut niji = Parameters::default();
        assert!(check("a fox --q 2", None, &niji).is_err());
        niji.extra.insert("bot".into(), json!("niji"));
        assert_eq!(check("a fox --q 2", None, &niji), Ok(()));
    }
}
