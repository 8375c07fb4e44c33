//! The slash commands a job sends: which bot, /imagine's prompt (its image prompts' URLs
//! first), /blend's options, the uploads /describe and /blend attach, and the message that
//! gives an image prompt its URL.

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

/// The /imagine prompt: the image prompts' URLs (`urls`, one per input picture) first, then the
/// user's text with its own parameters, plus the ones given apart from it (seed, aspect ratio,
/// negative prompt) that it does not already carry, and `--end` with the end frame's URL (the
/// last of `urls`) when the job has one.
pub fn imagine_prompt(job: &ProviderJob, urls: &[String]) -> String {
    with_pictures(
        urls,
        &job.parameters,
        imagine_text(&job.prompt, job.negative_prompt.as_deref(), &job.parameters),
    )
}

fn with_pictures(urls: &[String], parameters: &Parameters, text: String) -> String {
    let ends = parameters.extra.get("end_frame") == Some(&serde_json::Value::Bool(true));
    let (prompts, end) = match urls.split_last() {
        Some((end, prompts)) if ends => (prompts, Some(end)),
        _ => (urls, None),
    };
    let mut sent = if prompts.is_empty() {
        text
    } else {
        format!("{} {text}", prompts.join(" "))
    };
    if let Some(end) = end {
        let _ = write!(sent, " --end {end}");
    }
    sent
}

/// How many image prompts the parameters carry (`inputs`, the pictures' image ids).
fn image_prompts(parameters: &Parameters) -> usize {
    parameters
        .extra
        .get("inputs")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len)
}

/// Stand-ins for image prompts not uploaded yet, where a prompt is judged before its pictures
/// have URLs: a Discord attachment URL as the upload will give one.
fn stand_ins(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("https://cdn.discordapp.com/attachments/0/0/image-prompt-{i}.png"))
        .collect()
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
    let sent = with_pictures(
        &stand_ins(image_prompts(parameters)),
        parameters,
        imagine_text(prompt, negative_prompt, parameters),
    );
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
    // The pictures by their number in the parameters: an action's job loads none.
    let sent = imagine_prompt(job, &stand_ins(image_prompts(&job.parameters)));
    let version = atelier_midjourney_params::check(&sent, default).ok()?;
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

/// Gives each picture a URL Midjourney can fetch, as the proxies do: the pictures uploaded to
/// the account's channel, then a message there carrying them; its attachments' CDN URLs, in
/// order.
pub async fn image_prompt_urls(
    account: &Account,
    inputs: &[crate::providers::Input],
) -> Result<Vec<String>, ProviderError> {
    let files = inputs
        .iter()
        .map(|i| (i.filename.clone(), i.bytes.clone()))
        .collect();
    let failed = |e: atelier_discord::RestError| {
        ProviderError::new(
            ErrorCode::ProviderUnavailable,
            format!("uploading the image prompts to Discord failed: {e}"),
        )
    };
    let channel = &account.place.channel_id;
    let uploaded = account
        .rest
        .upload_attachments(channel, files)
        .await
        .map_err(failed)?;
    let message = account
        .rest
        .send_message(channel, "", &uploaded)
        .await
        .map_err(failed)?;
    attachment_urls(&message, inputs.len())
}

/// The CDN URLs of a sent message's `count` attachments, in order.
fn attachment_urls(
    message: &serde_json::Value,
    count: usize,
) -> Result<Vec<String>, ProviderError> {
    let urls: Vec<String> = message["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["url"].as_str())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned)
        .collect();
    if urls.len() != count {
        return Err(ProviderError::new(
            ErrorCode::ProviderUnavailable,
            format!("Discord gave {} URLs for {count} image prompts", urls.len()),
        ));
    }
    Ok(urls)
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
        assert_eq!(imagine_prompt(&j, &[]), "a fox --ar 2:3 --seed 9 --no cars");
        let urls = [
            "https://cdn/a.png".to_owned(),
            "https://cdn/b.png".to_owned(),
        ];
        assert_eq!(
            imagine_prompt(&j, &urls),
            "https://cdn/a.png https://cdn/b.png a fox --ar 2:3 --seed 9 --no cars"
        );
    }

    #[test]
    fn video_from_an_image_prompt_is_judged_with_the_picture_first() {
        let p = Parameters::default();
        // Without a picture, --video is refused in the bot's words...
        assert_eq!(
            check("a fox runs --video --motion high", None, &p),
            Err("Midjourney refuses this prompt: --video needs an image prompt (a picture's URL first)".into())
        );
        // ...and with an image prompt carried apart it is what the bot will get.
        let mut with = Parameters::default();
        with.extra.insert("inputs".into(), json!(["i1"]));
        assert_eq!(
            check("a fox runs --video --motion high", None, &with),
            Ok(())
        );
        assert_eq!(check("--video --loop", None, &with), Ok(()));
        assert!(check("a fox --video --loop --end https://x/e.png", None, &with).is_err());
        // An end frame carried apart is `--end` with its URL, judged like one written.
        let mut ends = with.clone();
        ends.extra.insert("inputs".into(), json!(["i1", "i2"]));
        ends.extra.insert("end_frame".into(), json!(true));
        assert_eq!(check("a fox --video", None, &ends), Ok(()));
        assert!(check("a fox --video --loop", None, &ends).is_err());
        let mut j = job("a fox --video");
        j.parameters = ends;
        let urls = [
            "https://cdn/s.png".to_owned(),
            "https://cdn/e.png".to_owned(),
        ];
        assert_eq!(
            imagine_prompt(&j, &urls),
            "https://cdn/s.png a fox --video --end https://cdn/e.png"
        );
    }

    #[test]
    fn a_sent_message_gives_one_url_per_picture() {
        let message = json!({"attachments": [
            {"id": "1", "url": "https://cdn.discordapp.com/attachments/1/1/a.png?ex=1&is=2&hm=3&"},
            {"id": "2", "url": "http://127.0.0.1:9/attachments/1/2/b.png?ex=1&is=2&hm=3&"}
        ]});
        let urls = attachment_urls(&message, 2).unwrap();
        assert_eq!(
            urls[1],
            "http://127.0.0.1:9/attachments/1/2/b.png?ex=1&is=2&hm=3&"
        );
        assert!(attachment_urls(&message, 3).is_err());
        assert!(
            attachment_urls(&json!({"attachments": [{"url": "file:///etc/passwd"}]}), 1).is_err()
        );
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
