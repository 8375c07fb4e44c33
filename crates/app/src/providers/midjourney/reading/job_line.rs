//! Job lines, the content of every job message:
//! `[legacy prefix] **prompt** - [action] <@user> [(NN%)] [(status)…] (mode)`.

use super::{Attachment, Interaction, Kind, Mode, find_uuid};

/// What the content of a job line says.
#[derive(Debug, Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts read off one line, each set by its own part of the grammar"
)]
pub(super) struct JobLine {
    pub(super) prompt: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) progress: Option<u8>,
    pub(super) mode: Option<Mode>,
    pub(super) index: Option<u8>,
    pub(super) variant: Option<String>,
    waiting: bool,
    pub(super) stopped: bool,
    /// The action named before the mention, if any (none = the imagine-like shape).
    action: Option<Action>,
    /// UUID of the `[(Open on website for full quality)](<https://midjourney.com/jobs/<uuid>>)` link.
    pub(super) job_link: Option<String>,
    /// The line names the job's owner or mode, or is a recognised status: it is about a job.
    is_job: bool,
    /// A status Midjourney never writes: a percentage below 0 or above 100, an image number
    /// outside 1–4. Such a line is neither progress nor a result: the message is ignored.
    malformed: bool,
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
    /// The content is a job line (its prompt is the user's text, whatever it says).
    pub(super) fn is_job(&self) -> bool {
        self.is_job
    }

    /// The message kind, or `None` when the content is not a job line.
    pub(super) fn kind(
        &self,
        has_result: bool,
        interaction: &Interaction,
        attachment: Option<&Attachment>,
    ) -> Option<Kind> {
        if !self.is_job || self.malformed {
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

pub(super) fn parse_job_line(content: &str) -> Option<JobLine> {
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
            match percent {
                Percent::Progress(p) => line.progress = line.progress.or(Some(p)),
                Percent::Impossible => line.malformed = true,
            }
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
        line.index = image_number(&lower[at + 7..], &mut line.malformed);
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
    if let Some(at) = head.find("image #")
        && line.index.is_none()
    {
        line.index = image_number(&head[at + 7..], &mut line.malformed);
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

/// A group shaped like a percentage.
enum Percent {
    /// "31%", "31 %", "31.5%" (→ 31).
    Progress(u8),
    /// No progress Midjourney writes: signed, or above 100.
    Impossible,
}

/// The percentage group `s`, if it is one.
fn parse_percent(s: &str) -> Option<Percent> {
    let number = s.strip_suffix('%')?.trim();
    let (signed, unsigned) = match number.strip_prefix(['-', '+', '\u{2212}']) {
        Some(rest) => (true, rest.trim_start()),
        None => (false, number),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    if signed {
        return Some(Percent::Impossible);
    }
    let whole = whole.trim_start_matches('0');
    // More than three digits is above 100 whatever they are; no parse can overflow.
    let value = if whole.len() > 3 {
        u32::MAX
    } else {
        whole.parse::<u32>().unwrap_or(0)
    };
    let over = value > 100 || (value == 100 && fraction.bytes().any(|b| b != b'0'));
    Some(
        u8::try_from(value)
            .ok()
            .filter(|_| !over)
            .map_or(Percent::Impossible, Percent::Progress),
    )
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

/// The N of "Image #N": a grid has images 1–4; any other number (or none) marks the line
/// malformed.
fn image_number(s: &str, malformed: &mut bool) -> Option<u8> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse::<u8>().ok().filter(|n| (1..=4).contains(n));
    if n.is_none() {
        *malformed = true;
    }
    n
}
