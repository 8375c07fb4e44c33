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
//! 2. an error embed with a known title (§4), a captcha button, or a known error content →
//!    [`Kind::Error`] (or [`Kind::Waiting`] for "Job queued", which is not a failure);
//! 3. a job line `**prompt** - … <@user> (…)`: waiting, progress, or a finished result;
//! 4. a /describe or /shorten embed;
//! 5. any other red embed, or a title that says invalid/error/denied → [`Kind::Error`]
//!    (a yellow one is reported as a [`ErrorCode::Warning`] that fails nothing);
//! 6. a deferred "is thinking…" placeholder of an interaction → [`Kind::Waiting`];
//! 7. everything else (settings, /info, acks, other people's chatter) → [`Kind::Ignore`].

use serde::Serialize;
use serde_json::{Map, Value};

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
    /// The job (or the account) failed; see [`Reading::error`].
    Error,
    /// Not about a job: another author, settings, /info, acknowledgements, chatter.
    Ignore,
}

impl Kind {
    /// True for the kinds that deliver a finished result.
    #[must_use]
    pub fn is_result(self) -> bool {
        !matches!(
            self,
            Self::Waiting | Self::Progress | Self::Error | Self::Ignore
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
    /// Midjourney job UUID, from the buttons, else the attachment, else the job link.
    pub job_hash: Option<String>,
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

        if let Some((error, footer_prompt)) = known_error(&self.embeds, &self.buttons, self.content)
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

        let has_result = reading.attachment.is_some() || !reading.buttons.is_empty();
        if let Some(line) = &self.line
            && let Some(kind) =
                line.kind(has_result, &self.interaction, reading.attachment.as_ref())
        {
            reading.kind = kind;
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
// Job lines: `[legacy prefix] **prompt** - [action] <@user> [(NN%)] [(status)…] (mode)`

/// What the content of a job line says.
#[derive(Debug, Default)]
struct JobLine {
    prompt: Option<String>,
    user_id: Option<String>,
    progress: Option<u8>,
    mode: Option<Mode>,
    index: Option<u8>,
    variant: Option<String>,
    waiting: bool,
    stopped: bool,
    /// The action named before the mention, if any (none = the imagine-like shape).
    action: Option<Action>,
    /// UUID of the `[(Open on website for full quality)](<https://midjourney.com/jobs/<uuid>>)` link.
    job_link: Option<String>,
    /// The line names the job's owner or mode, or is a recognised status: it is about a job.
    is_job: bool,
}

#[derive(Debug, Clone, Copy)]
struct Action {
    kind: Kind,
    /// Present participle: the job is still running even without a percentage.
    running: bool,
}

/// Keywords of the words between " - " and "by <@user>" (lower case), first match wins, and
/// what they mean. Matching a keyword rather than the whole phrase keeps older and future
/// wordings ("Light upscale by", "Upscaled (Redo) by") readable; the qualifier in parentheses
/// ("Variations (Strong) by") becomes the variant, so new qualifiers need no change here.
#[rustfmt::skip]
const ACTIONS: &[(&str, Kind, bool, Option<&str>)] = &[
    ("upscaling", Kind::Upscale, true, None),
    ("upscale", Kind::Upscale, false, None),
    ("variation", Kind::Variation, false, None),
    ("vary", Kind::Variation, false, None),
    ("remix", Kind::Variation, false, None),
    ("remaster", Kind::Variation, false, None),
    ("zoom", Kind::Zoom, false, None),
    ("pan left", Kind::Pan, false, Some("left")),
    ("pan right", Kind::Pan, false, Some("right")),
    ("pan up", Kind::Pan, false, Some("up")),
    ("pan down", Kind::Pan, false, Some("down")),
    ("pan", Kind::Pan, false, None),
];

impl JobLine {
    /// The message kind, or `None` when the content is not a job line.
    fn kind(
        &self,
        has_result: bool,
        interaction: &Interaction,
        attachment: Option<&Attachment>,
    ) -> Option<Kind> {
        if !self.is_job {
            return None;
        }
        if self.stopped {
            return Some(Kind::Error);
        }
        if self.waiting {
            return Some(Kind::Waiting);
        }
        // Final = an image or buttons and no percentage (§3.1 step 6): finals carry the nonce
        // too since 2025, so its presence proves nothing.
        if self.progress.is_some() || self.action.is_some_and(|a| a.running) || !has_result {
            return Some(Kind::Progress);
        }
        if let Some(action) = self.action {
            return Some(action.kind);
        }
        Some(self.imagine_like_kind(interaction, attachment))
    }

    /// `**prompt** - <@user> (mode)` is shared by imagine, reroll, blend and video (§3.2).
    fn imagine_like_kind(
        &self,
        interaction: &Interaction,
        attachment: Option<&Attachment>,
    ) -> Kind {
        let prompt = self.prompt.as_deref().unwrap_or("");
        let is_video_file = attachment.is_some_and(|a| {
            a.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("video/"))
                || a.filename
                    .as_deref()
                    .is_some_and(|f| f.to_ascii_lowercase().ends_with(".mp4"))
        });
        if is_video_file
            || prompt
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("--video"))
        {
            return Kind::Video;
        }
        match interaction.name.as_deref() {
            Some("blend") => return Kind::Blend,
            Some("imagine") => return Kind::Imagine,
            _ => {}
        }
        // A grid produced by a button click (3) or a modal (5, remix mode) on a job message
        // with the imagine shape can only be a reroll; variations, pans and zooms say so.
        if matches!(interaction.kind, Some(3 | 5)) {
            return Kind::Reroll;
        }
        if looks_like_blend(prompt) {
            return Kind::Blend;
        }
        Kind::Imagine
    }
}

/// /blend echoes only the uploaded images' links plus parameters (UC's heuristic; TA's
/// examples `**** - <@…>` and `**--v 7.0 --ar 1:1** - <@…>`): no words before the first
/// `--param`, and not exactly one link (/imagine needs text or two images; /blend two images).
fn looks_like_blend(prompt: &str) -> bool {
    let words: Vec<&str> = prompt
        .split_whitespace()
        .take_while(|w| !w.starts_with("--"))
        .collect();
    words.len() != 1
        && words
            .iter()
            .all(|w| w.starts_with("<http") && w.ends_with('>'))
}

fn parse_job_line(content: &str) -> Option<JobLine> {
    let content = content.trim();
    if content.is_empty() {
        return None;
    }
    let (head, prompt, tail) = match split_prompt(content) {
        Some((head, prompt, tail)) => (head, Some(prompt), tail),
        None => ("", None, content),
    };
    // Later lines are decoration ("-# Create, explore, and organize on midjourney.com").
    let tail = tail.lines().next().unwrap_or("");
    let mut line = JobLine {
        prompt: prompt.map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")),
        ..JobLine::default()
    };

    let mention = tail.find("<@");
    if let Some(at) = mention {
        let digits = tail[at + 2..].trim_start_matches(['!', '&']);
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        if end > 0 {
            line.user_id = Some(digits[..end].to_owned());
        }
    }

    // Only the tail: a prompt may quote other jobs' URLs (`--sref https://cdn.midjourney.com/<uuid>/…`).
    line.job_link = tail
        .find("/jobs/")
        .and_then(|at| find_uuid(&tail[at..]))
        .map(str::to_owned);

    // Every "(…)" group after the prompt: percentage, mode, status, or an action qualifier.
    let mut first_status_at = None;
    for (at, inner) in paren_groups(tail) {
        let lower = inner.trim().to_ascii_lowercase();
        let is_status = if let Some(percent) = parse_percent(&lower) {
            line.progress = line.progress.or(Some(percent));
            true
        } else if let Some(mode) = parse_mode(&lower) {
            line.mode = Some(mode);
            true
        } else if lower.contains("waiting to start") || lower == "paused" {
            line.waiting = true;
            true
        } else if lower == "stopped" {
            line.stopped = true;
            true
        } else {
            lower.starts_with("open on website")
        };
        if is_status && first_status_at.is_none() {
            first_status_at = Some(at);
        }
    }

    // The action words sit between the " - " separator and the mention (or the first status).
    let action_end = mention.or(first_status_at).unwrap_or(tail.len());
    let action_text = tail[..action_end]
        .trim()
        .trim_start_matches(['-', '–', '—'])
        .trim();
    let lower = action_text.to_ascii_lowercase();
    if let Some(at) = lower.find("image #") {
        line.index = parse_leading_u8(&lower[at + 7..]);
        line.action = Some(Action {
            kind: Kind::Upscale,
            running: false,
        });
    } else if !lower.is_empty() {
        let words = lower.strip_suffix("by").unwrap_or(&lower).trim_end();
        let (verb, qualifier) = match (words.rfind('('), words.strip_suffix(')')) {
            (Some(open), Some(inner)) => (words[..open].trim_end(), Some(inner[open + 1..].trim())),
            _ => (words, None),
        };
        let verb = verb.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(&(_, kind, running, variant)) = ACTIONS.iter().find(|(v, ..)| verb.contains(v))
        {
            line.action = Some(Action { kind, running });
            line.variant = qualifier.map(str::to_owned).or(variant.map(str::to_owned));
        }
    }

    // Legacy prefixes: "Making variations for image #N with prompt **…", "Upscaling image #N with **…".
    let head = head.to_ascii_lowercase();
    if let Some(at) = head.find("image #") {
        line.index = line.index.or_else(|| parse_leading_u8(&head[at + 7..]));
    }

    line.is_job = line.waiting
        || line.stopped
        || (prompt.is_some()
            && (mention.is_some() || line.mode.is_some() || line.action.is_some()))
        || (mention.is_some() && line.progress.is_some());
    Some(line)
}

/// Splits `head **prompt** tail`. The closing `**` is the last one on the opening line that is
/// followed by " -" (prompts may themselves contain `**`), else the next `**` (NZ's greedy and
/// TA's lazy regexes both accept these).
fn split_prompt(content: &str) -> Option<(&str, &str, &str)> {
    let open = content.find("**")?;
    let rest = &content[open + 2..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let on_line = &rest[..line_end];
    let close = (0..on_line.len().saturating_sub(1))
        .rev()
        .filter(|&i| on_line.is_char_boundary(i) && on_line[i..].starts_with("**"))
        .find(|&i| {
            on_line[i + 2..]
                .trim_start_matches([' ', '\t', '\u{a0}'])
                .starts_with(['-', '–', '—'])
        })
        .or_else(|| rest.find("**"))?;
    Some((&content[..open], &rest[..close], &rest[close + 2..]))
}

/// `(inner)` groups in order, with the byte offset of their `(`. Not nested; an unclosed `(`
/// ends the scan.
fn paren_groups(s: &str) -> Vec<(usize, &str)> {
    let mut groups = Vec::new();
    let mut from = 0;
    while let Some(open) = s[from..].find('(').map(|i| from + i) {
        let Some(close) = s[open + 1..].find(')').map(|i| open + 1 + i) else {
            break;
        };
        groups.push((open, &s[open + 1..close]));
        from = close + 1;
    }
    groups
}

/// "31%", "31 %", "31.5%" → 31; above 100 is clamped.
fn parse_percent(s: &str) -> Option<u8> {
    let number = s.strip_suffix('%')?.trim();
    let whole = number.split_once('.').map_or(number, |(w, f)| {
        if f.bytes().all(|b| b.is_ascii_digit()) {
            w
        } else {
            ""
        }
    });
    if whole.is_empty() || whole.len() > 6 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse::<u32>().ok().map(|p| p.min(100) as u8)
}

/// "fast", "relaxed", "turbo", optionally followed by ", stealth" (TA `MODE_PATTERN`).
fn parse_mode(s: &str) -> Option<Mode> {
    match s.split(',').next().map(str::trim) {
        Some("fast") => Some(Mode::Fast),
        Some("relaxed" | "relax") => Some(Mode::Relaxed),
        Some("turbo") => Some(Mode::Turbo),
        _ => None,
    }
}

fn parse_leading_u8(s: &str) -> Option<u8> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Errors (§4)

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

/// Errors recognised by title, captcha button or content, with the prompt from the embed
/// footer (`/imagine <prompt>`, which BK reads for "Job queued").
fn known_error(
    embeds: &[&Map<String, Value>],
    buttons: &[String],
    content: &str,
) -> Option<(ErrorInfo, Option<String>)> {
    let captcha_button = buttons.iter().any(|b| b.starts_with("MJ::Captcha"));
    for embed in embeds {
        let title = text(embed.get("title")).map_or("", str::trim);
        let lower = title.to_ascii_lowercase();
        let Some(&(_, mut code, fatal_for)) =
            ERROR_TITLES.iter().find(|(t, ..)| lower.starts_with(t))
        else {
            continue;
        };
        let description = text(embed.get("description")).map(str::trim);
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
    // "Sorry! Our AI moderator thinks this prompt is probably against our community standards."
    if content
        .to_ascii_lowercase()
        .contains("against our community standards")
    {
        return Some((error(ErrorCode::BannedPrompt, FatalFor::Job), None));
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
fn generic_embed_error(embeds: &[&Map<String, Value>]) -> Option<ErrorInfo> {
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
