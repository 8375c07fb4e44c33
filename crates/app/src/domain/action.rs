//! Actions on an earlier result: Midjourney's buttons, as provider-neutral requests.
//!
//! On a grid: `u1`–`u4` (one image at full size), `v1`–`v4` (variations of one image),
//! `reroll` (the same prompt again). On an upscaled image: `vary-strong`, `vary-subtle`,
//! `upscale-subtle`, `upscale-creative`, `zoom-out-2x`, `zoom-out-1.5x`, `zoom-custom` (the
//! caller's new prompt, with `--zoom 1` to `2`: the one action that takes a prompt), and
//! `pan-left|right|up|down`. Each makes a new generation whose parent is the acted-on one.
//!
//! Video: `animate-high` and `animate-low` on an upscaled picture make a video grid (four
//! clips in one animated picture), followed by its automatic clip upscales; `video-u1`–`video-u4`
//! on a video grid make one clip; `extend-high` and `extend-low` on a clip make a longer one.
//! [`makes_video`] is the rule that tells a video generation from a picture one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{GenerationKind, MediaKind, Parameters, Role};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Left,
    Right,
    Up,
    Down,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Action {
    /// U1–U4 on a grid.
    Upscale {
        index: u8,
    },
    /// V1–V4 on a grid.
    Variation {
        index: u8,
    },
    Reroll,
    /// The rest act on upscale `index` of the parent.
    VaryStrong {
        index: u8,
    },
    VarySubtle {
        index: u8,
    },
    UpscaleSubtle {
        index: u8,
    },
    UpscaleCreative {
        index: u8,
    },
    /// Zoom out by `factor` ×10 (20 = 2×, 15 = 1.5×).
    ZoomOut {
        index: u8,
        factor: u8,
    },
    Pan {
        index: u8,
        direction: Direction,
    },
    /// Custom Zoom on upscale `index`: a zoom out by the `--zoom` of the new prompt the caller
    /// gives (the generation's prompt).
    ZoomCustom {
        index: u8,
    },
    /// Animate (high or low motion) on upscale `index`: a video grid.
    Animate {
        index: u8,
        motion: Motion,
    },
    /// One clip of a video grid, at its full size (the video grid's U1–U4).
    VideoUpscale {
        index: u8,
    },
    /// Extend (high or low motion) the clip of upscale `index`: a longer clip.
    Extend {
        index: u8,
        motion: Motion,
    },
}

/// How much a clip moves.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Motion {
    High,
    Low,
}

impl Motion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Low => "low",
        }
    }
}

/// An action without its image number: what a provider declares it plays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ActionName {
    Upscale,
    Variation,
    Reroll,
    VaryStrong,
    VarySubtle,
    UpscaleSubtle,
    UpscaleCreative,
    ZoomOut,
    ZoomCustom,
    Pan,
    Animate,
    VideoUpscale,
    Extend,
}

impl ActionName {
    /// Video's actions: a provider that plays them declares them besides [`Self::ALL`].
    pub const VIDEO: [Self; 3] = [Self::Animate, Self::VideoUpscale, Self::Extend];

    /// The picture actions and the video ones: Midjourney's buttons since mid-2025.
    pub const WITH_VIDEO: [Self; 13] = [
        Self::Upscale,
        Self::Variation,
        Self::Reroll,
        Self::VaryStrong,
        Self::VarySubtle,
        Self::UpscaleSubtle,
        Self::UpscaleCreative,
        Self::ZoomOut,
        Self::ZoomCustom,
        Self::Pan,
        Self::Animate,
        Self::VideoUpscale,
        Self::Extend,
    ];

    /// The picture actions.
    pub const ALL: [Self; 10] = [
        Self::Upscale,
        Self::Variation,
        Self::Reroll,
        Self::VaryStrong,
        Self::VarySubtle,
        Self::UpscaleSubtle,
        Self::UpscaleCreative,
        Self::ZoomOut,
        Self::ZoomCustom,
        Self::Pan,
    ];
}

impl ActionName {
    /// The names a caller gives for it ([`Action::parse`]'s words).
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Self::Upscale => &["u1", "u2", "u3", "u4"],
            Self::Variation => &["v1", "v2", "v3", "v4"],
            Self::Reroll => &["reroll"],
            Self::VaryStrong => &["vary-strong"],
            Self::VarySubtle => &["vary-subtle"],
            Self::UpscaleSubtle => &["upscale-subtle"],
            Self::UpscaleCreative => &["upscale-creative"],
            Self::ZoomOut => &["zoom-out-2x", "zoom-out-1.5x"],
            Self::ZoomCustom => &["zoom-custom"],
            Self::Pan => &["pan-left", "pan-right", "pan-up", "pan-down"],
            Self::Animate => &["animate-high", "animate-low"],
            Self::VideoUpscale => &["video-u1", "video-u2", "video-u3", "video-u4"],
            Self::Extend => &["extend-high", "extend-low"],
        }
    }
}

/// What an action's result is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Output {
    /// A 2×2 grid, followed by its automatic upscales.
    Grid,
    /// One picture.
    Single,
}

pub const NAMES: &str = "u1-u4, v1-v4, reroll (on a grid); vary-strong, vary-subtle, upscale-subtle, upscale-creative, zoom-out-2x, zoom-out-1.5x, zoom-custom (with a prompt), pan-left, pan-right, pan-up, pan-down, animate-high, animate-low (on an upscale); video-u1-video-u4 (on a video grid); extend-high, extend-low (on a clip)";

/// Why `name`, an action on one picture or clip, was refused on an image that is neither (a
/// grid), and what to press instead.
fn on_one(name: &str) -> String {
    if name.starts_with("extend") {
        format!(
            "{name} lengthens a clip, and this image is a grid, not a clip: press video-u1 to \
             video-u4 on the video grid first, then {name} on the clip that makes"
        )
    } else {
        format!(
            "{name} works on one upscaled picture, and this image is a grid: press u1 to u4 on \
             the grid first (or use one of its automatic upscales), then {name} on that picture"
        )
    }
}

impl Action {
    /// Parses an action name. `index` is the upscale the action is on (for the actions that
    /// work on an upscale); grid actions carry their own number.
    pub fn parse(name: &str, index: Option<u8>) -> Result<Self, String> {
        let name = name.trim().to_ascii_lowercase();
        let numbered = |prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| (1..=4).contains(n))
        };
        if let Some(i) = numbered("u") {
            return Ok(Self::Upscale { index: i });
        }
        if let Some(i) = numbered("v") {
            return Ok(Self::Variation { index: i });
        }
        if name == "reroll" {
            return Ok(Self::Reroll);
        }
        if let Some(i) = numbered("video-u") {
            return Ok(Self::VideoUpscale { index: i });
        }
        // Matched by the name each prints (`Display`), so a name is written once.
        match Self::on_one_image(index.unwrap_or(1))
            .into_iter()
            .find(|a| a.to_string() == name)
        {
            Some(_) if index.is_none() => Err(on_one(&name)),
            Some(action) => Ok(action),
            None => Err(format!("unknown action {name:?}; actions: {NAMES}")),
        }
    }

    /// Every action on one picture or clip, upscale `index`.
    fn on_one_image(index: u8) -> [Self; 15] {
        let pan = |direction| Self::Pan { index, direction };
        let animate = |motion| Self::Animate { index, motion };
        let extend = |motion| Self::Extend { index, motion };
        [
            Self::VaryStrong { index },
            Self::VarySubtle { index },
            Self::UpscaleSubtle { index },
            Self::UpscaleCreative { index },
            Self::ZoomOut { index, factor: 20 },
            Self::ZoomOut { index, factor: 15 },
            Self::ZoomCustom { index },
            pan(Direction::Left),
            pan(Direction::Right),
            pan(Direction::Up),
            pan(Direction::Down),
            animate(Motion::High),
            animate(Motion::Low),
            extend(Motion::High),
            extend(Motion::Low),
        ]
    }

    /// Whether the action is pressed on the grid (else on upscale `index`).
    pub fn on_grid(self) -> bool {
        matches!(
            self,
            Self::Upscale { .. }
                | Self::Variation { .. }
                | Self::Reroll
                | Self::VideoUpscale { .. }
        )
    }

    /// What the acted-on image must be: a clip for the video grid's upscales and for
    /// extends, a picture for the rest (Animate starts from a still).
    pub fn acts_on(self) -> MediaKind {
        match self {
            Self::VideoUpscale { .. } | Self::Extend { .. } => MediaKind::Video,
            _ => MediaKind::Image,
        }
    }

    /// The image of the parent the action works on.
    pub fn source(self) -> Role {
        match self {
            Self::Upscale { .. }
            | Self::Variation { .. }
            | Self::Reroll
            | Self::VideoUpscale { .. } => Role::Grid,
            Self::VaryStrong { index }
            | Self::Animate { index, .. }
            | Self::Extend { index, .. }
            | Self::VarySubtle { index }
            | Self::UpscaleSubtle { index }
            | Self::UpscaleCreative { index }
            | Self::ZoomOut { index, .. }
            | Self::ZoomCustom { index }
            | Self::Pan { index, .. } => Role::Upscale(index),
        }
    }

    /// The action without its image number.
    pub fn name(self) -> ActionName {
        match self {
            Self::Upscale { .. } => ActionName::Upscale,
            Self::Variation { .. } => ActionName::Variation,
            Self::Reroll => ActionName::Reroll,
            Self::VaryStrong { .. } => ActionName::VaryStrong,
            Self::VarySubtle { .. } => ActionName::VarySubtle,
            Self::UpscaleSubtle { .. } => ActionName::UpscaleSubtle,
            Self::UpscaleCreative { .. } => ActionName::UpscaleCreative,
            Self::ZoomOut { .. } => ActionName::ZoomOut,
            Self::ZoomCustom { .. } => ActionName::ZoomCustom,
            Self::Pan { .. } => ActionName::Pan,
            Self::Animate { .. } => ActionName::Animate,
            Self::VideoUpscale { .. } => ActionName::VideoUpscale,
            Self::Extend { .. } => ActionName::Extend,
        }
    }

    pub fn kind(self) -> GenerationKind {
        match self {
            Self::Upscale { .. }
            | Self::UpscaleSubtle { .. }
            | Self::UpscaleCreative { .. }
            | Self::VideoUpscale { .. } => GenerationKind::Upscale,
            Self::Animate { .. } | Self::Extend { .. } => GenerationKind::Animate,
            Self::Variation { .. } | Self::VaryStrong { .. } | Self::VarySubtle { .. } => {
                GenerationKind::Variation
            }
            Self::Reroll => GenerationKind::Reroll,
            Self::ZoomOut { .. } | Self::ZoomCustom { .. } => GenerationKind::Zoom,
            Self::Pan { .. } => GenerationKind::Pan,
        }
    }

    pub fn output(self) -> Output {
        match self {
            // An extend is one longer clip.
            Self::Extend { .. } => Output::Single,
            _ if self.kind() == GenerationKind::Upscale => Output::Single,
            _ => Output::Grid,
        }
    }

    /// Whether the action runs on a prompt the caller gives (the new generation's prompt):
    /// Custom Zoom's, which says how far to zoom (`--zoom`). The others take none: they run
    /// on their parent's prompt.
    pub fn takes_prompt(self) -> bool {
        matches!(self, Self::ZoomCustom { .. })
    }

    /// Refuses the prompt given with the action, or its absence: Custom Zoom needs the new
    /// prompt, whose `--zoom` (1 to 2, checked with the other parameters) says how far to zoom
    /// out; the other actions run on their parent's prompt and take none.
    pub fn check_prompt(self, prompt: Option<&str>, parent_prompt: &str) -> Result<(), String> {
        let prompt = prompt.map(str::trim).filter(|p| !p.is_empty());
        match (self.takes_prompt(), prompt) {
            (true, Some(p)) => {
                let (_, params) = super::prompt_params::parse(p).map_err(|e| e.to_string())?;
                if params.extra.contains_key("zoom") {
                    Ok(())
                } else {
                    Err(format!(
                        "{self} needs --zoom 1 to 2 in its prompt (how far to zoom out), e.g. \"{parent_prompt} --zoom 1.5\""
                    ))
                }
            }
            (true, None) => Err(format!(
                "{self} needs a prompt: the new prompt with --zoom 1 to 2, e.g. \"{parent_prompt} --zoom 1.5\""
            )),
            (false, Some(_)) => Err(format!(
                "{self} takes no prompt: it runs on the prompt of the image it acts on"
            )),
            (false, None) => Ok(()),
        }
    }

    /// Whether the action's result is video (a video grid or a clip).
    pub fn makes_video(self) -> bool {
        matches!(
            self,
            Self::Animate { .. } | Self::VideoUpscale { .. } | Self::Extend { .. }
        )
    }
}

/// Whether a generation makes video rather than pictures: a video action, or a prompt that
/// asks for `--video`. The engine stores such a generation's grid, upscales and single
/// result as clips, and refuses pictures there (and clips anywhere in a picture generation).
pub fn makes_video(action: Option<Action>, parameters: &Parameters) -> bool {
    match action {
        Some(action) => action.makes_video(),
        None => parameters.extra.contains_key("video"),
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Upscale { index } => write!(f, "u{index}"),
            Self::Variation { index } => write!(f, "v{index}"),
            Self::Reroll => f.write_str("reroll"),
            Self::VaryStrong { .. } => f.write_str("vary-strong"),
            Self::VarySubtle { .. } => f.write_str("vary-subtle"),
            Self::UpscaleSubtle { .. } => f.write_str("upscale-subtle"),
            Self::UpscaleCreative { .. } => f.write_str("upscale-creative"),
            Self::ZoomOut { factor: 15, .. } => f.write_str("zoom-out-1.5x"),
            Self::ZoomOut { .. } => f.write_str("zoom-out-2x"),
            Self::ZoomCustom { .. } => f.write_str("zoom-custom"),
            Self::Pan { direction, .. } => write!(
                f,
                "pan-{}",
                match direction {
                    Direction::Left => "left",
                    Direction::Right => "right",
                    Direction::Up => "up",
                    Direction::Down => "down",
                }
            ),
            Self::Animate { motion, .. } => write!(f, "animate-{}", motion.as_str()),
            Self::VideoUpscale { index } => write!(f, "video-u{index}"),
            Self::Extend { motion, .. } => write!(f, "extend-{}", motion.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (name, index) in [
            ("u2", None),
            ("v4", None),
            ("reroll", None),
            ("vary-strong", Some(1)),
            ("upscale-creative", Some(3)),
            ("zoom-out-1.5x", Some(2)),
            ("zoom-out-2x", Some(2)),
            ("zoom-custom", Some(3)),
            ("pan-up", Some(4)),
            ("animate-high", Some(1)),
            ("animate-low", Some(3)),
            ("video-u2", None),
            ("extend-high", Some(1)),
            ("extend-low", Some(2)),
        ] {
            let action = Action::parse(name, index).unwrap();
            assert_eq!(action.to_string(), name);
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(serde_json::from_value::<Action>(json).unwrap(), action);
        }
    }

    #[test]
    fn only_custom_zoom_takes_a_prompt_and_it_must_say_how_far() {
        let zoom = Action::parse("zoom-custom", Some(2)).unwrap();
        assert_eq!(zoom.source(), Role::Upscale(2));
        assert_eq!(zoom.kind(), GenerationKind::Zoom);
        assert!(zoom.check_prompt(Some("a fox --zoom 1.5"), "a fox").is_ok());
        let missing = zoom.check_prompt(None, "a fox").unwrap_err();
        assert!(
            missing.contains("needs a prompt") && missing.contains("a fox --zoom 1.5"),
            "{missing}"
        );
        let blank = zoom.check_prompt(Some("  "), "a fox").unwrap_err();
        assert!(blank.contains("needs a prompt"), "{blank}");
        let no_zoom = zoom
            .check_prompt(Some("a fox --ar 1:1"), "a fox")
            .unwrap_err();
        assert!(no_zoom.contains("needs --zoom"), "{no_zoom}");
        // The table's range: Custom Zoom zooms out by 1 to 2.
        let far = zoom
            .check_prompt(Some("a fox --zoom 3"), "a fox")
            .unwrap_err();
        assert!(far.contains("zoom"), "{far}");
        let pan = Action::parse("pan-left", Some(1)).unwrap();
        assert!(pan.check_prompt(None, "a fox").is_ok());
        let refused = pan.check_prompt(Some("a cat"), "a fox").unwrap_err();
        assert!(refused.contains("takes no prompt"), "{refused}");
    }

    #[test]
    fn an_action_on_one_picture_refused_on_a_grid_says_what_to_press() {
        let extend = Action::parse("extend-high", None).unwrap_err();
        for words in [
            "extend-high lengthens a clip",
            "is a grid",
            "video-u1 to video-u4",
        ] {
            assert!(extend.contains(words), "{extend}");
        }
        let vary = Action::parse("vary-strong", None).unwrap_err();
        for words in ["one upscaled picture", "is a grid", "press u1 to u4"] {
            assert!(vary.contains(words), "{vary}");
        }
        assert!(!vary.contains("upscale_1"), "{vary}");
    }

    #[test]
    fn actions_know_their_source_and_result() {
        assert_eq!(Action::parse("u3", None).unwrap().source(), Role::Grid);
        assert_eq!(Action::parse("u3", None).unwrap().output(), Output::Single);
        let pan = Action::parse("pan-left", Some(2)).unwrap();
        assert_eq!(pan.source(), Role::Upscale(2));
        assert_eq!(pan.output(), Output::Grid);
        assert_eq!(pan.kind(), GenerationKind::Pan);
        assert_eq!(pan.name(), ActionName::Pan);
        let animate = Action::parse("animate-high", Some(2)).unwrap();
        assert_eq!(animate.source(), Role::Upscale(2));
        assert_eq!(animate.output(), Output::Grid);
        assert_eq!(animate.acts_on(), MediaKind::Image);
        let clip = Action::parse("video-u3", None).unwrap();
        assert_eq!(clip.source(), Role::Grid);
        assert_eq!(clip.output(), Output::Single);
        assert_eq!(clip.acts_on(), MediaKind::Video);
        let extend = Action::parse("extend-low", Some(1)).unwrap();
        assert_eq!(extend.output(), Output::Single);
        assert_eq!(extend.kind(), GenerationKind::Animate);
        assert_eq!(extend.acts_on(), MediaKind::Video);
    }

    #[test]
    fn video_generations_are_told_by_their_action_or_their_prompt() {
        let mut parameters = Parameters::default();
        assert!(!makes_video(None, &parameters));
        assert!(!makes_video(Action::parse("u1", None).ok(), &parameters));
        assert!(makes_video(
            Action::parse("animate-low", Some(1)).ok(),
            &parameters
        ));
        parameters.extra.insert("video".into(), true.into());
        assert!(makes_video(None, &parameters));
        // Each action says for itself: a picture upscale of a video prompt's parent is not.
        assert!(!makes_video(Action::parse("u1", None).ok(), &parameters));
        assert!(makes_video(
            Action::parse("video-u1", None).ok(),
            &parameters
        ));
    }

    #[test]
    fn bad_actions_are_refused() {
        for (name, index) in [
            ("u5", None),
            ("v0", None),
            ("spin", None),
            ("vary-strong", None),
            ("video-u5", None),
            ("animate-high", None),
            ("extend-low", None),
        ] {
            assert!(Action::parse(name, index).is_err(), "{name} accepted");
        }
    }
}
