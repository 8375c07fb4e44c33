//! Wording of the text-only results: /describe's four prompts (from the image's size and
//! average colour), /shorten's analysis, and the numbered prompts read back from them; the
//! error replies people have reported without a title.

/// Keycap digits 1️⃣ … 5️⃣.
const KEYCAPS: [&str; 5] = ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣"];

/// The nearest plain colour name.
fn colour_name([r, g, b]: [u8; 3]) -> &'static str {
    const NAMES: &[(&str, [i32; 3])] = &[
        ("black", [20, 20, 20]),
        ("white", [235, 235, 235]),
        ("grey", [128, 128, 128]),
        ("red", [200, 40, 40]),
        ("orange", [230, 130, 40]),
        ("yellow", [230, 210, 60]),
        ("green", [60, 160, 70]),
        ("teal", [40, 150, 150]),
        ("blue", [50, 90, 200]),
        ("purple", [130, 60, 170]),
        ("pink", [230, 130, 180]),
        ("brown", [120, 80, 50]),
    ];
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    NAMES
        .iter()
        .min_by_key(|(_, [cr, cg, cb])| (r - cr).pow(2) + (g - cg).pow(2) + (b - cb).pow(2))
        .map_or("grey", |(name, _)| name)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// The description of a /describe result: four `N️⃣ prompt` options separated by blank lines.
pub(crate) fn describe((width, height): (u32, u32), colour: [u8; 3], variant: u32) -> String {
    let g = gcd(width, height);
    let ratio = format!("--ar {}:{}", width / g, height / g);
    let c = colour_name(colour);
    let styles = [
        format!("a {c} abstract composition with soft gradients, digital art"),
        format!("a quiet {c} landscape at dusk, painterly texture, muted tones"),
        format!("minimalist {c} shapes on a plain background, flat illustration"),
        format!("close-up of {c} textures, macro photography, shallow depth of field"),
        format!("a {c} still life in morning light, oil painting, loose brushwork"),
        format!("an isometric {c} diorama, soft shadows, 3d render"),
    ];
    (0..4)
        .map(|i| {
            let style = &styles[(i + variant as usize) % styles.len()];
            format!("{} {style} {ratio}", KEYCAPS[i])
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The description of a /shorten result: important tokens, then five shortened prompts.
pub(crate) fn shorten(prompt: &str) -> String {
    let text: Vec<&str> = prompt
        .split_whitespace()
        .take_while(|w| !w.starts_with("--"))
        .collect();
    let marked: Vec<String> = text
        .iter()
        .map(|w| {
            if w.len() > 3 {
                format!("**{w}**")
            } else {
                format!("~~{w}~~")
            }
        })
        .collect();
    let important: Vec<&str> = text.iter().copied().filter(|w| w.len() > 3).collect();
    let mut options = Vec::new();
    for keep in [2, 3, 4, 6, text.len()] {
        let words = if keep >= text.len() {
            text.join(" ")
        } else {
            important
                .iter()
                .take(keep)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        };
        options.push(if words.is_empty() {
            prompt.trim().to_owned()
        } else {
            words
        });
    }
    let lines: Vec<String> = options
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{} {o}", KEYCAPS[i]))
        .collect();
    format!(
        "**Important tokens**\n{}\n\n**Shortened prompts**\n{}",
        marked.join(" "),
        lines.join("\n")
    )
}

/// The numbered options of a /describe or /shorten description, in order.
pub(crate) fn numbered(description: &str) -> Vec<String> {
    description
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            KEYCAPS
                .iter()
                .find_map(|k| line.strip_prefix(k))
                .map(|rest| rest.trim().to_owned())
        })
        .collect()
}

/// An error reply as people have reported it: an embed with a description and no title.
pub(crate) struct UntitledError {
    /// The prompt word (whole word, any case) that gets this reply instead of a job.
    pub(crate) word: &'static str,
    pub(crate) description: &'static str,
    /// The embed's colour; `None` leaves the field out, as some logged replies do.
    pub(crate) colour: Option<u64>,
}

/// The title-less replies, each on its trigger word: the AI moderator refuses one prompt; the
/// others concern the account (a moderation notice to acknowledge, a ban, a human check).
pub(crate) const UNTITLED_ERRORS: &[UntitledError] = &[
    UntitledError {
        word: "aimoderator",
        description: "Sorry! Our AI moderator thinks this prompt is probably against our community standards.",
        colour: Some(super::messages::RED),
    },
    UntitledError {
        word: "pendingmod",
        description: "You have a pending moderation message. Please acknowledge it before using the bot further.",
        colour: Some(super::messages::RED),
    },
    UntitledError {
        word: "blockedaccount",
        description: "You have been blocked from accessing Midjourney. This happens on repeated or serious ToS violations.",
        colour: None,
    },
    UntitledError {
        word: "verifyhuman",
        description: "Wow! You\u{2019}re making so many AI images we need to verify you\u{2019}re human \u{1f602}\n\nPlease click the button that best describes the image.",
        colour: Some(0),
    },
];

/// The title-less reply a prompt triggers, if one of its words is a trigger word.
pub(crate) fn untitled_error(prompt: &str) -> Option<&'static UntitledError> {
    let words: Vec<&str> = prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    UNTITLED_ERRORS
        .iter()
        .find(|e| words.iter().any(|w| w.eq_ignore_ascii_case(e.word)))
}

#[cfg(test)]
mod tests {
    use super::{describe, numbered, shorten, untitled_error};

    #[test]
    fn untitled_errors_are_triggered_by_whole_words() {
        let e = untitled_error("a harbour, PendingMod at dawn").map(|e| e.word);
        assert_eq!(e, Some("pendingmod"));
        assert!(untitled_error("a pendingmodern harbour").is_none());
        assert!(untitled_error("a harbour").is_none());
    }

    #[test]
    fn describe_and_shorten_read_back() {
        let text = describe((1536, 1024), [200, 50, 40], 0);
        let prompts = numbered(&text);
        assert_eq!(prompts.len(), 4);
        assert!(prompts[0].starts_with("a red abstract") && prompts[0].ends_with("--ar 3:2"));
        assert!(text.contains("\n\n2️⃣ "));
        let short = shorten("A very red fox standing in the snow, watercolor --ar 3:2");
        let options = numbered(&short);
        assert_eq!(options.len(), 5);
        assert_eq!(
            options[4],
            "A very red fox standing in the snow, watercolor"
        );
        assert!(short.starts_with("**Important tokens**\n~~A~~ **very**"));
    }
}
