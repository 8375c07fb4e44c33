//! Error messages (protocol fact sheet §4): known embed titles and contents, and the catch-all
//! for red and yellow embeds.

use serde_json::{Map, Value};

use super::{ErrorCode, ErrorInfo, FatalFor, non_empty, path, text};

/// Embed titles, lower case, matched as prefixes ("Banned prompt detected", "Invalid link!").
#[rustfmt::skip]
const ERROR_TITLES: &[(&str, ErrorCode, FatalFor)] = &[
    ("banned", ErrorCode::BannedPrompt, FatalFor::Job),
    ("request cancelled due to output filters", ErrorCode::BannedPrompt, FatalFor::Job),
    ("invalid parameter", ErrorCode::InvalidParameter, FatalFor::Job),
    ("invalid prompt", ErrorCode::InvalidParameter, FatalFor::Job),
    ("empty prompt", ErrorCode::InvalidParameter, FatalFor::Job),
    ("invalid link", ErrorCode::InvalidParameter, FatalFor::Job),
    ("duplicate images", ErrorCode::InvalidParameter, FatalFor::Job),
    ("invalid request", ErrorCode::InvalidRequest, FatalFor::Job),
    ("job action restricted", ErrorCode::InvalidRequest, FatalFor::Job),
    ("queue full", ErrorCode::QueueFull, FatalFor::Job),
    ("job queued", ErrorCode::JobQueued, FatalFor::None),
    ("credits exhausted", ErrorCode::InsufficientCredits, FatalFor::Account),
    ("subscription required", ErrorCode::SubscriptionRequired, FatalFor::Account),
    ("subscription paused", ErrorCode::SubscriptionRequired, FatalFor::Account),
    ("plan cancelled", ErrorCode::SubscriptionRequired, FatalFor::Account),
    ("plan canceled", ErrorCode::SubscriptionRequired, FatalFor::Account),
    ("pending mod message", ErrorCode::Moderation, FatalFor::Account),
    ("blocked", ErrorCode::Blocked, FatalFor::Account),
    ("action needed to continue", ErrorCode::ActionRequired, FatalFor::Account),
    ("action required to continue", ErrorCode::Captcha, FatalFor::Account),
    ("please complete the task", ErrorCode::Captcha, FatalFor::Account),
    ("tos not accepted", ErrorCode::TosNotAccepted, FatalFor::Account),
];

/// Openings of error messages as people have reported them, often without any title (an
/// embed with a description only, or plain content), lower case, apostrophes straightened.
/// Matched at the start of the text only: a /shorten or /describe result may quote a user's
/// prompt holding these words anywhere else.
#[rustfmt::skip]
const ERROR_OPENINGS: &[(&str, ErrorCode, FatalFor)] = &[
    // "Sorry! Our AI moderator thinks this prompt is probably against our community standards."
    // and the "Banned prompt detected" body "Sorry! Our AI moderators feel your prompt…".
    ("sorry! our ai moderator", ErrorCode::BannedPrompt, FatalFor::Job),
    ("you have a pending moderation message", ErrorCode::Moderation, FatalFor::Account),
    ("you have been blocked from accessing midjourney", ErrorCode::Blocked, FatalFor::Account),
    ("wow! you're making so many ai images", ErrorCode::Captcha, FatalFor::Account),
    ("could not validate this link", ErrorCode::InvalidParameter, FatalFor::Job),
];

/// The reported opening `text` starts with, if any.
fn opening(text: &str) -> Option<(ErrorCode, FatalFor)> {
    // A mention, markdown and emoji in front ("<@1> Sorry!", "**Sorry!**", "⚠️ You have…")
    // are decoration.
    let text = text.trim_start();
    let text = text
        .strip_prefix("<@")
        .and_then(|rest| rest.split_once('>'))
        .map_or(text, |(_, rest)| rest);
    let start: String = text
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .take(64)
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '`' => '\'',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let start = start.replace("**", "");
    ERROR_OPENINGS
        .iter()
        .find(|(o, ..)| start.starts_with(o))
        .map(|&(_, code, fatal_for)| (code, fatal_for))
}

/// Errors recognised by title, by the opening of a title-less description, by captcha button
/// or by content, with the prompt from the embed footer (`/imagine <prompt>`, which BK reads
/// for "Job queued"). `job_line` says the content is a job line (its prompt is the user's
/// text, never an error message).
pub(super) fn known_error(
    embeds: &[&Map<String, Value>],
    buttons: &[String],
    content: &str,
    job_line: bool,
) -> Option<(ErrorInfo, Option<String>)> {
    let captcha_button = buttons.iter().any(|b| b.starts_with("MJ::Captcha"));
    for embed in embeds {
        let title = text(embed.get("title")).map_or("", str::trim);
        let lower = title.to_ascii_lowercase();
        let description = text(embed.get("description")).map(str::trim);
        // The title decides when it is a known one; else the description's opening does.
        let known = ERROR_TITLES
            .iter()
            .find(|(t, ..)| lower.starts_with(t))
            .map(|&(_, code, fatal_for)| (code, fatal_for))
            .or_else(|| description.and_then(opening));
        let Some((mut code, fatal_for)) = known else {
            continue;
        };
        // The 2023 "verify you're human" quiz came as "Action needed to continue" (ER).
        if code == ErrorCode::ActionRequired
            && (captcha_button
                || description.is_some_and(|d| d.to_ascii_lowercase().contains("verify you")))
        {
            code = ErrorCode::Captcha;
        }
        let footer_prompt = text(path(embed, &["footer", "text"]))
            .and_then(|f| f.trim().strip_prefix("/imagine"))
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty());
        let error = ErrorInfo {
            code,
            fatal_for,
            title: non_empty(title),
            message: description.and_then(non_empty),
        };
        return Some((error, footer_prompt));
    }
    let content = content.trim();
    let error = |code, fatal_for| ErrorInfo {
        code,
        fatal_for,
        title: None,
        message: non_empty(content),
    };
    if captcha_button {
        return Some((error(ErrorCode::Captcha, FatalFor::Account), None));
    }
    if job_line {
        return None;
    }
    if let Some((code, fatal_for)) = opening(content) {
        return Some((error(code, fatal_for), None));
    }
    // NZ fails the task on any content starting "Failed": an internal Midjourney failure.
    if content.starts_with("Failed") {
        return Some((error(ErrorCode::ProviderUnavailable, FatalFor::Job), None));
    }
    None
}

const RED: u64 = 0xFF_00_00;
/// Yellow (16776960) per TA/ER; NZ also logs 16239475 as a warning.
const WARNING_COLOURS: [u64; 2] = [0xFF_FF_00, 16_239_475];

/// TA's catch-all: a red embed, or a title saying invalid/error/denied, fails the job.
pub(super) fn generic_embed_error(embeds: &[&Map<String, Value>]) -> Option<ErrorInfo> {
    embeds.iter().find_map(|embed| {
        let title = text(embed.get("title")).map_or("", str::trim);
        let lower = title.to_ascii_lowercase();
        let colour = embed.get("color").and_then(Value::as_u64);
        let (code, fatal_for) = if colour == Some(RED)
            || ["invalid", "error", "denied", "could not"]
                .iter()
                .any(|w| lower.contains(w))
        {
            (ErrorCode::ProviderError, FatalFor::Job)
        } else if colour.is_some_and(|c| WARNING_COLOURS.contains(&c)) {
            (ErrorCode::Warning, FatalFor::None)
        } else {
            return None;
        };
        let message = text(embed.get("description"))
            .map(str::trim)
            .and_then(non_empty);
        Some(ErrorInfo {
            code,
            fatal_for,
            title: non_empty(title),
            message,
        })
    })
}
