//! The Midjourney message reader: what one Discord message from the Midjourney (or niji) bot
//! means for a job.
//!
//! Input is the `d` object of a `MESSAGE_CREATE` / `MESSAGE_UPDATE` gateway dispatch (a whole
//! dispatch `{"op":0,"t":…,"d":{…}}` is unwrapped too). Output is a [`Reading`]: the message's
//! [`Kind`] (waiting, progress, a finished result of some action, an error, or nothing for us),
//! what its content says (prompt, percentage, speed mode, image number), and the identifiers the
//! provider correlates jobs with (nonce, interaction id, message ids, job hash, buttons).
//!
//! The module is pure: no I/O, no clock, no state. The grammar follows the protocol fact sheet
//! (`shared/docs/midjourney-protocol.md` §2.5, §3, §4). Where the open-source proxies disagree,
//! the reader accepts the union of what they accept: Midjourney changes its wording often, and
//! a message we fail to read stalls a job until its deadline.
//!
//! Classification order, first match wins:
//! 1. author is known and is not a Midjourney bot → [`Kind::Ignore`];
//! 2. an error embed with a known title (§4) or, title or not, a description opening the way
//!    reported errors do (§7: "Sorry! Our AI moderator…", "You have a pending moderation
//!    message…", "You have been blocked…", "Wow! You're making so many AI images…"), a
//!    captcha button, or such an opening as the content → [`Kind::Error`] (or
//!    [`Kind::Waiting`] for "Job queued", which is not a failure);
//! 3. the ✉️ reply to /show (`**Job ID**: <uuid>`, `**seed** <n>`) → [`Kind::Show`];
//! 4. a job line `**prompt** - … <@user> (…)`: waiting, progress, or a finished result. A
//!    message carrying the cancel button (`MJ::CancelJob::ByJobid::<uuid>`) is still running,
//!    and the button gives the job id before any image does. A percentage outside 0–100 or an
//!    image number outside 1–4 is nothing Midjourney writes: such a line is ignored;
//! 5. a progress preview that arrives as an attachment alone
//!    (`/ephemeral-attachments/…/<uuid>_<n>_step_<k>.jpeg`) → [`Kind::Progress`];
//! 6. a /describe or /shorten embed;
//! 7. any other red embed, or a title that says invalid/error/denied → [`Kind::Error`]
//!    (a yellow one is reported as a [`ErrorCode::Warning`] that fails nothing);
//! 8. a deferred "is thinking…" placeholder of an interaction → [`Kind::Waiting`];
//! 9. everything else (settings, /info, acks, other people's chatter) → [`Kind::Ignore`].

mod errors;
mod job_line;

use serde::Serialize;
use serde_json::{Map, Value};

use errors::{generic_embed_error, known_error};
use job_line::{JobLine, parse_job_line};

/// User (= application) id of the Midjourney bot.
pub const MIDJOURNEY_BOT_ID: &str = "936929561302675456";
/// User (= application) id of the niji・journey bot.
pub const NIJI_BOT_ID: &str = "1022952195194359889";

/// What a message means for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Accepted, not started: "(Waiting to start)", "(paused)", "Job queued", an empty /describe.
    Waiting,
    /// Rendering: "(NN%)", "Upscaling by", or a job line without any image or button yet.
    Progress,
    Imagine,
    Upscale,
    Variation,
    Reroll,
    Zoom,
    Pan,
    Describe,
    Blend,
    Shorten,
    Video,
    /// The DM Midjourney sends after /show and the ✉️ reaction: the job id and its seed.
    Show,
    /// The job (or the account) failed; see [`Reading::error`].
    Error,
    /// Not about a job: another author, settings, /info, acknowledgements, chatter.
    Ignore,
}

impl Kind {
    /// True for the kinds that deliver a finished job's result (images or prompts).
    #[must_use]
    pub fn is_result(self) -> bool {
        !matches!(
            self,
            Self::Waiting | Self::Progress | Self::Show | Self::Error | Self::Ignore
        )
    }
}

/// Speed mode printed at the end of a job line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Fast,
    Relaxed,
    Turbo,
}

/// Why a job or an account cannot go on. The first five are product error codes (spec §4.2);
/// the others name account states an operator must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BannedPrompt,
    InvalidParameter,
    QueueFull,
    ProviderUnavailable,
    InsufficientCredits,
    /// "Invalid request", "Job action restricted": Midjourney refused this request.
    InvalidRequest,
    /// "(Stopped)" at the end of a job line.
    Stopped,
    /// Any other red embed or failure-looking title.
    ProviderError,
    /// "Job queued": the account is at its concurrency limit; the job will start later.
    JobQueued,
    /// A yellow (warning) embed nobody has classified; informative only.
    Warning,
    SubscriptionRequired,
    /// "Pending mod message": a moderation notice must be acknowledged by a human.
    Moderation,
    /// "Blocked": the account was banned.
    Blocked,
    /// Human verification (hCaptcha / Cloudflare / 2023 image quiz).
    Captcha,
    /// "Action needed to continue": an appeal or acknowledgement prompt.
    ActionRequired,
    /// "Tos not accepted": the account must click "Accept `ToS`" once.
    TosNotAccepted,
}

/// What an error stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FatalFor {
    /// This job fails; the account is fine.
    Job,
    /// The account must stop taking jobs until a human (or a mode switch) intervenes.
    Account,
    /// Nothing fails (e.g. "Job queued": extend the deadline and keep waiting).
    None,
}

/// An error (or notice) read from an embed or the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub fatal_for: FatalFor,
    /// Embed title as Midjourney wrote it.
    pub title: Option<String>,
    /// Embed description, or the content for content-borne errors: the human message to store.
    pub message: Option<String>,
}

/// The message's first attachment: the grid, the upscale, the video or the progress preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub url: Option<String>,
    pub proxy_url: Option<String>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub size: Option<u64>,
}

/// Discord message flags. `raw` must be echoed as `message_flags` when clicking a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Flags {
    pub raw: u64,
    /// Bit 6 (64): only the invoking user sees it (/settings, many error replies).
    pub ephemeral: bool,
    /// Bit 7 (128): "Midjourney is thinking…" placeholder of a deferred interaction.
    pub loading: bool,
}

const FLAG_EPHEMERAL: u64 = 1 << 6;
const FLAG_LOADING: u64 = 1 << 7;

/// Everything the reader got out of one message. Serialised as JSON by `atelier midjourney parse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reading {
    pub kind: Kind,
    /// Percentage from "(NN%)", clamped to 100.
    pub progress: Option<u8>,
    /// The text between the `**` pair, whitespace collapsed. Kept in Midjourney's own form,
    /// `<https://s.mj.run/…>` wrappers included: that form is what every later message of the
    /// job echoes, so it compares equal across messages; stripping the wrappers would lose the
    /// link boundaries the proxies' fallback matching relies on. For error embeds it comes from
    /// the `/imagine …` footer.
    pub prompt: Option<String>,
    pub mode: Option<Mode>,
    /// Image number: "Image #N" (upscale), "image #N" in the legacy waiting prefixes.
    pub index: Option<u8>,
    /// Lower-case qualifier of the action: `strong`/`subtle`/`region` (variations, remix),
    /// `subtle`/`creative`/`2x`/`4x`… (upscales), `left`/`right`/`up`/`down` (pan).
    pub variant: Option<String>,
    /// Midjourney job UUID, from the buttons (the cancel button of a progress message
    /// included), else the attachment, else the job link; for /show, its `Job ID` line.
    pub job_hash: Option<String>,
    /// The seed the /show reply gives.
    pub seed: Option<u32>,
    /// Every component `custom_id`, in display order.
    pub buttons: Vec<String>,
    /// The numbered prompts of a /describe or /shorten result.
    pub prompts: Vec<String>,
    pub error: Option<ErrorInfo>,
    pub nonce: Option<String>,
    /// `interaction_metadata.id`, else `interaction.id`.
    pub interaction_id: Option<String>,
    pub message_id: String,
    pub channel_id: String,
    /// `message_reference.message_id`, else `referenced_message.id` (the grid of a U result).
    pub referenced_message_id: Option<String>,
    pub author_id: Option<String>,
    /// The Discord user the job belongs to (interaction user, else the `<@id>` mention).
    pub user_id: Option<String>,
    pub attachment: Option<Attachment>,
    pub flags: Flags,
}

/// Why an input could not be read as a message. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("input is empty: expected one Discord message object as JSON")]
    Empty,
    #[error("input is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("expected a Discord message object, got {0}")]
    NotAnObject(&'static str),
    #[error("message has no `{0}` field")]
    MissingField(&'static str),
    #[error("message field `{0}` is not a Discord id (a string or an integer)")]
    BadId(&'static str),
}

/// Reads raw bytes (the CLI's stdin) holding one message object or one gateway dispatch.
/// `extra_bot_ids` are accepted as Midjourney authors besides the two official bots.
///
/// # Errors
/// Empty input, malformed JSON, a JSON value that is not an object, or a message without a
/// usable `id` / `channel_id`. Never panics, whatever the bytes.
pub fn read_json(input: &[u8], extra_bot_ids: &[&str]) -> Result<Reading, ReadError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadError::Empty);
    }
    let value: Value = serde_json::from_slice(input).map_err(ReadError::Json)?;
    read(&value, extra_bot_ids)
}

/// Reads one message object (or a gateway dispatch wrapping one).
/// Only `id` and `channel_id` are required; every other field may be absent, null or odd.
///
/// # Errors
/// A value that is not an object, or a message without a usable `id` / `channel_id`.
pub fn read(message: &Value, extra_bot_ids: &[&str]) -> Result<Reading, ReadError> {
    let mut obj = message
        .as_object()
        .ok_or(ReadError::NotAnObject(json_type(message)))?;
    // A pasted dispatch: `{"op":0,"t":"MESSAGE_CREATE","s":7,"d":{…}}`.
    if let (true, Some(Value::Object(d))) = (
        obj.contains_key("op") || obj.contains_key("t"),
        obj.get("d"),
    ) {
        obj = d;
    }
    let parts = Parts::new(obj)?;
    let mut reading = parts.base_reading();
    let from_bot = reading.author_id.as_deref().is_none_or(|id| {
        id == MIDJOURNEY_BOT_ID || id == NIJI_BOT_ID || extra_bot_ids.contains(&id)
    });
    // Other authors stay `ignore`, with their ids reported: the caller may log what it skipped.
    if from_bot {
        parts.classify(&mut reading);
    }
    Ok(reading)
}

/// The parts of a message object the reader looks at, gathered once.
struct Parts<'a> {
    obj: &'a Map<String, Value>,
    message_id: String,
    channel_id: String,
    interaction: Interaction,
    buttons: Vec<String>,
    button_urls: Vec<String>,
    content: &'a str,
    embeds: Vec<&'a Map<String, Value>>,
    line: Option<JobLine>,
}

impl<'a> Parts<'a> {
    fn new(obj: &'a Map<String, Value>) -> Result<Self, ReadError> {
        let message_id = required_id(obj, "id")?;
        let channel_id = required_id(obj, "channel_id")?;
        // Discord replaced `interaction` by `interaction_metadata` in 2024; messages may carry
        // either or both, so every field is taken from whichever has it.
        let sources: Vec<&Map<String, Value>> =
            [obj.get("interaction_metadata"), obj.get("interaction")]
                .into_iter()
                .filter_map(object)
                .collect();
        let interaction = Interaction {
            id: sources.iter().find_map(|i| snowflake(i.get("id"))),
            name: sources
                .iter()
                .find_map(|i| text(i.get("name")).map(str::to_owned)),
            kind: sources
                .iter()
                .find_map(|i| i.get("type").and_then(Value::as_u64)),
            user_id: sources.iter().find_map(|i| {
                snowflake(path(i, &["user", "id"])).or_else(|| snowflake(i.get("user_id")))
            }),
        };
        let mut buttons = Vec::new();
        let mut button_urls = Vec::new();
        if let Some(components) = obj.get("components") {
            walk_components(components, 0, &mut buttons, &mut button_urls);
        }
        let content = text(obj.get("content")).unwrap_or("");
        let embeds = obj
            .get("embeds")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default();
        Ok(Self {
            obj,
            message_id,
            channel_id,
            interaction,
            buttons,
            button_urls,
            content,
            embeds,
            line: parse_job_line(content),
        })
    }

    /// The reading of an unclassified (`ignore`) message: ids, buttons, attachment, flags.
    fn base_reading(&self) -> Reading {
        let obj = self.obj;
        let raw_flags = obj.get("flags").and_then(Value::as_u64).unwrap_or(0);
        let mut reading = Reading {
            kind: Kind::Ignore,
            progress: None,
            prompt: None,
            mode: None,
            index: None,
            variant: None,
            job_hash: None,
            seed: None,
            buttons: self.buttons.clone(),
            prompts: Vec::new(),
            error: None,
            nonce: snowflake(obj.get("nonce")),
            interaction_id: self.interaction.id.clone(),
            message_id: self.message_id.clone(),
            channel_id: self.channel_id.clone(),
            referenced_message_id: snowflake(path(obj, &["message_reference", "message_id"]))
                .or_else(|| snowflake(path(obj, &["referenced_message", "id"]))),
            author_id: snowflake(path(obj, &["author", "id"])),
            user_id: self
                .interaction
                .user_id
                .clone()
                .or_else(|| self.line.as_ref().and_then(|l| l.user_id.clone()))
                .or_else(|| snowflake(path_index(obj, "mentions", "id"))),
            attachment: obj
                .get("attachments")
                .and_then(Value::as_array)
                .and_then(|list| list.iter().find_map(Value::as_object))
                .map(attachment),
            flags: Flags {
                raw: raw_flags,
                ephemeral: raw_flags & FLAG_EPHEMERAL != 0,
                loading: raw_flags & FLAG_LOADING != 0,
            },
        };
        reading.job_hash = job_hash(&reading, &self.button_urls, self.line.as_ref());
        reading
    }

    /// Fills kind, content fields and error of a message from a Midjourney bot.
    fn classify(&self, reading: &mut Reading) {
        if let Some(line) = &self.line {
            reading.prompt.clone_from(&line.prompt);
            reading.progress = line.progress;
            reading.mode = line.mode;
            reading.index = line.index;
            reading.variant.clone_from(&line.variant);
        }

        let job_line = self.line.as_ref().is_some_and(JobLine::is_job);
        if let Some((error, footer_prompt)) =
            known_error(&self.embeds, &self.buttons, self.content, job_line)
        {
            if reading.prompt.is_none() {
                reading.prompt = footer_prompt;
            }
            reading.kind = if error.code == ErrorCode::JobQueued {
                Kind::Waiting
            } else {
                Kind::Error
            };
            reading.error = Some(error);
            return;
        }

        if !job_line && let Some((job, seed, prompt)) = show_reply(self.content) {
            reading.kind = Kind::Show;
            reading.job_hash = Some(job);
            reading.seed = seed;
            reading.prompt = prompt;
            return;
        }

        // The cancel button sits on running jobs only: it is no result's button.
        let cancel = reading.buttons.iter().any(|b| is_cancel(b));
        let has_other_buttons = reading.buttons.iter().any(|b| !is_cancel(b));
        let has_result = reading.attachment.is_some() || has_other_buttons;
        if let Some(line) = &self.line
            && let Some(kind) =
                line.kind(has_result, &self.interaction, reading.attachment.as_ref())
        {
            reading.kind = if cancel && kind.is_result() {
                Kind::Progress
            } else {
                kind
            };
            if line.stopped {
                reading.error = Some(ErrorInfo {
                    code: ErrorCode::Stopped,
                    fatal_for: FatalFor::Job,
                    title: None,
                    message: non_empty(self.content.trim()),
                });
            }
            return;
        }

        if !job_line
            && self.embeds.is_empty()
            && !has_other_buttons
            && reading.attachment.as_ref().is_some_and(is_preview)
        {
            reading.kind = Kind::Progress;
            return;
        }

        if let Some((kind, prompts)) =
            describe_or_shorten(&self.embeds, &self.buttons, &self.interaction)
        {
            reading.kind = kind;
            reading.prompts = prompts;
            return;
        }

        if let Some(error) = generic_embed_error(&self.embeds) {
            if error.fatal_for != FatalFor::None {
                reading.kind = Kind::Error;
            }
            reading.error = Some(error);
        } else if reading.flags.loading && self.interaction.id.is_some() {
            // "Midjourney Bot is thinking…": a deferred reply to our command, content to come.
            reading.kind = Kind::Waiting;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages without a job line: the /show reply, attachment-only previews

/// `**prompt**\n**Job ID**: <uuid>\n**seed** <n>`, the DM after /show and the ✉️ reaction
/// (TA's handler): the job id, the seed when the line is there, the prompt when given.
fn show_reply(content: &str) -> Option<(String, Option<u32>, Option<String>)> {
    let mut job = None;
    let mut seed = None;
    let mut prompt = None;
    for line in content.lines().map(str::trim) {
        let plain = line.replace("**", "");
        let plain = plain.trim();
        let lower = plain.to_ascii_lowercase();
        if lower.starts_with("job id") {
            // Searched in the original text: ids keep their case.
            job = job.or_else(|| plain.get(6..).and_then(find_uuid).map(str::to_owned));
        } else if let Some(rest) = lower.strip_prefix("seed") {
            let digits = rest.trim_start_matches([':', ' ', '\t']);
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            seed = seed.or_else(|| digits[..end].parse::<u32>().ok());
        } else if prompt.is_none()
            && job.is_none()
            && let Some(inner) = line.strip_prefix("**").and_then(|l| l.strip_suffix("**"))
        {
            prompt = non_empty(&inner.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    Some((job?, seed, prompt))
}

fn is_cancel(custom_id: &str) -> bool {
    custom_id.starts_with("MJ::CancelJob")
}

/// A progress preview: `<uuid>_<n>_step_<k>.jpeg` (2025, under `/ephemeral-attachments/`) or
/// `<uuid>_grid_0.webp` (2023), named after its job.
fn is_preview(a: &Attachment) -> bool {
    let Some(name) = a.filename.as_deref() else {
        return false;
    };
    let Some(uuid) = find_uuid(name) else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    let stem = lower.rsplit_once('.').map_or(lower.as_str(), |(s, _)| s);
    let numbered_step = stem
        .rsplit_once("_step_")
        .is_some_and(|(_, k)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    numbered_step
        || stem.ends_with("_grid_0")
        || (a
            .url
            .as_deref()
            .is_some_and(|u| u.contains("/ephemeral-attachments/"))
            && lower.starts_with(&uuid.to_ascii_lowercase()))
}

// ---------------------------------------------------------------------------------------------
// /describe and /shorten (embeds, no `**` content)

fn describe_or_shorten(
    embeds: &[&Map<String, Value>],
    buttons: &[String],
    interaction: &Interaction,
) -> Option<(Kind, Vec<String>)> {
    let name = interaction.name.as_deref();
    let has_button = |marker: &str| {
        buttons
            .iter()
            .any(|b| b.to_ascii_lowercase().contains(marker))
    };
    let footer_says = |needle: &str| {
        embeds.iter().any(|e| {
            text(path(e, &["footer", "text"]))
                .is_some_and(|f| f.to_ascii_lowercase().contains(needle))
        })
    };
    let prompts = embeds
        .iter()
        .filter_map(|e| text(e.get("description")))
        .map(numbered_prompts)
        .find(|p| !p.is_empty())
        .unwrap_or_default();
    let kind = if name == Some("shorten")
        || has_button("promptanalyzer")
        || footer_says("shortened prompts")
    {
        Kind::Shorten
    } else if name == Some("describe")
        || has_button("picreader")
        || (!prompts.is_empty() && embeds.iter().any(|e| path(e, &["image", "url"]).is_some()))
    {
        Kind::Describe
    } else {
        return None;
    };
    // The first /describe message carries only the image; the options arrive in an update.
    Some((
        if prompts.is_empty() {
            Kind::Waiting
        } else {
            kind
        },
        prompts,
    ))
}

/// Options written as `1️⃣ text` (keycap digit), separated by blank lines; a wrapped option's
/// later lines are joined to it.
fn numbered_prompts(description: &str) -> Vec<String> {
    let mut prompts: Vec<String> = Vec::new();
    let mut open = false;
    for line in description.lines().map(str::trim) {
        if let Some(rest) = strip_keycap(line) {
            prompts.push(rest.split_whitespace().collect::<Vec<_>>().join(" "));
            open = true;
        } else if line.is_empty() {
            open = false;
        } else if open && let Some(last) = prompts.last_mut() {
            last.push(' ');
            last.push_str(&line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    prompts.retain(|p| !p.is_empty());
    prompts
}

/// "1️⃣ text" → "text": a digit, an optional U+FE0F, then U+20E3.
fn strip_keycap(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(|c: char| c.is_ascii_digit())?;
    let rest = rest.strip_prefix('\u{fe0f}').unwrap_or(rest);
    rest.strip_prefix('\u{20e3}').map(str::trim)
}

// ---------------------------------------------------------------------------------------------
// Correlation fields

#[derive(Debug, Default)]
struct Interaction {
    id: Option<String>,
    user_id: Option<String>,
    /// Command name (`imagine`, `blend`, `describe`, `shorten`, `settings`…), when given.
    name: Option<String>,
    /// 2 = slash command, 3 = button/select, 5 = modal submit.
    kind: Option<u64>,
}

/// Collects `custom_id`s (and link-button URLs) depth-first, through action rows and the
/// nested `components` / `accessory` of newer layouts.
fn walk_components(value: &Value, depth: usize, ids: &mut Vec<String>, urls: &mut Vec<String>) {
    if depth > 32 {
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                walk_components(item, depth + 1, ids, urls);
            }
        }
        Value::Object(component) => {
            if let Some(id) = text(component.get("custom_id")) {
                ids.push(id.to_owned());
            }
            if let Some(url) = text(component.get("url")) {
                urls.push(url.to_owned());
            }
            for key in ["components", "accessory"] {
                if let Some(child) = component.get(key) {
                    walk_components(child, depth + 1, ids, urls);
                }
            }
        }
        _ => {}
    }
}

/// The job UUID, most reliable source first (§3.4): `MJ::JOB::<verb>::<i>::<hash>` buttons,
/// any other button carrying a UUID (`MJ::Outpaint`, `MJ::CustomZoom`, `MJ::BOOKMARK`), the
/// attachment name (`…_<uuid>.png`, `<uuid>_grid_0.webp`, `<uuid>_0_0.png`), the job link in
/// the content or a link button, the attachment URL.
fn job_hash(reading: &Reading, button_urls: &[String], line: Option<&JobLine>) -> Option<String> {
    let job_button = reading.buttons.iter().find_map(|id| {
        let mut parts = id.split("::");
        (parts.next() == Some("MJ") && parts.next() == Some("JOB"))
            .then(|| parts.nth(2))
            .flatten()
            .and_then(find_uuid)
    });
    let attachment = reading.attachment.as_ref();
    job_button
        .or_else(|| {
            reading
                .buttons
                .iter()
                .filter(|b| b.starts_with("MJ::"))
                .find_map(|b| find_uuid(b))
        })
        .or_else(|| {
            attachment
                .and_then(|a| a.filename.as_deref())
                .and_then(find_uuid)
        })
        .or_else(|| line.and_then(|l| l.job_link.as_deref()))
        .or_else(|| {
            button_urls
                .iter()
                .find(|u| u.contains("/jobs/"))
                .and_then(|u| find_uuid(u))
        })
        .or_else(|| {
            attachment
                .and_then(|a| a.url.as_deref())
                .and_then(find_uuid)
        })
        .map(str::to_owned)
}

/// The first `8-4-4-4-12` hex UUID in `s`.
fn find_uuid(s: &str) -> Option<&str> {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    let bytes = s.as_bytes();
    (0..bytes.len().checked_sub(35)?)
        .find(|&start| {
            bytes[start..start + 36].iter().enumerate().all(|(i, b)| {
                if DASHES.contains(&i) {
                    *b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            })
        })
        .map(|start| &s[start..start + 36])
}

fn attachment(a: &Map<String, Value>) -> Attachment {
    let number = |key| a.get(key).and_then(Value::as_u64);
    Attachment {
        url: text(a.get("url")).map(str::to_owned),
        proxy_url: text(a.get("proxy_url")).map(str::to_owned),
        filename: text(a.get("filename")).map(str::to_owned),
        content_type: text(a.get("content_type")).map(str::to_owned),
        width: number("width").and_then(|n| u32::try_from(n).ok()),
        height: number("height").and_then(|n| u32::try_from(n).ok()),
        size: number("size"),
    }
}

// ---------------------------------------------------------------------------------------------
// Liberal JSON access: absent, null and wrong-typed fields all read as "not there".

fn required_id(obj: &Map<String, Value>, key: &'static str) -> Result<String, ReadError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(ReadError::MissingField(key)),
        value => snowflake(value).ok_or(ReadError::BadId(key)),
    }
}

/// A Discord id or nonce: a non-empty string, or an integer (some clients send numbers).
fn snowflake(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => non_empty(s.trim()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

fn object(value: Option<&Value>) -> Option<&Map<String, Value>> {
    value.and_then(Value::as_object)
}

fn path<'a>(obj: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    let (first, rest) = keys.split_first()?;
    rest.iter()
        .try_fold(obj.get(*first)?, |value, key| value.get(key))
}

/// `obj[list][0][key]`.
fn path_index<'a>(obj: &'a Map<String, Value>, list: &str, key: &str) -> Option<&'a Value> {
    obj.get(list)?.as_array()?.first()?.get(key)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
