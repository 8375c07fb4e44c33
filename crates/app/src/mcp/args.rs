//! The tools' arguments. Their doc comments and attributes are the JSON schemas clients show
//! the assistant, so they say what each value means, what it accepts and what it defaults to.
//! Unknown fields are refused, so a misspelt argument is an error, never silently ignored.

use schemars::JsonSchema;
use serde::Deserialize;

/// Kinds of picture in an illustrated book's library.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CategoryArg {
    Character,
    Scene,
    Element,
}

impl CategoryArg {
    pub fn domain(self) -> crate::domain::Category {
        match self {
            Self::Character => crate::domain::Category::Character,
            Self::Scene => crate::domain::Category::Scene,
            Self::Element => crate::domain::Category::Element,
        }
    }
}

/// Where an image stands in the author's work.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusArg {
    /// Just made, not chosen yet.
    Draft,
    /// Chosen: the one that goes in the book.
    Final,
    /// Kept, but out of the way.
    Archived,
}

impl StatusArg {
    pub fn domain(self) -> crate::domain::ImageStatus {
        match self {
            Self::Draft => crate::domain::ImageStatus::Draft,
            Self::Final => crate::domain::ImageStatus::Final,
            Self::Archived => crate::domain::ImageStatus::Archived,
        }
    }
}

/// What an asset is.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindArg {
    /// A still picture.
    Image,
    /// A clip (MP4 or animated WebP); its thumbnail is its first frame.
    Video,
}

impl KindArg {
    pub fn domain(self) -> crate::domain::MediaKind {
        match self {
            Self::Image => crate::domain::MediaKind::Image,
            Self::Video => crate::domain::MediaKind::Video,
        }
    }
}

/// Midjourney's buttons. On a grid image: `u1`–`u4` (one picture at full size), `v1`–`v4`
/// (variations of one picture), `reroll` (the prompt again). On a video grid: `video-u1`–`video-u4`
/// (one clip). On a clip: `extend-high`, `extend-low`. On an upscaled image: the rest.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
pub enum ActionArg {
    #[serde(rename = "u1")]
    U1,
    #[serde(rename = "u2")]
    U2,
    #[serde(rename = "u3")]
    U3,
    #[serde(rename = "u4")]
    U4,
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v2")]
    V2,
    #[serde(rename = "v3")]
    V3,
    #[serde(rename = "v4")]
    V4,
    #[serde(rename = "reroll")]
    Reroll,
    #[serde(rename = "vary-strong")]
    VaryStrong,
    #[serde(rename = "vary-subtle")]
    VarySubtle,
    #[serde(rename = "upscale-subtle")]
    UpscaleSubtle,
    #[serde(rename = "upscale-creative")]
    UpscaleCreative,
    #[serde(rename = "zoom-out-2x")]
    ZoomOut2x,
    #[serde(rename = "zoom-out-1.5x")]
    ZoomOut15x,
    /// Zoom out by the `--zoom` (1 to 2) of a new `prompt`.
    #[serde(rename = "zoom-custom")]
    ZoomCustom,
    #[serde(rename = "pan-left")]
    PanLeft,
    #[serde(rename = "pan-right")]
    PanRight,
    #[serde(rename = "pan-up")]
    PanUp,
    #[serde(rename = "pan-down")]
    PanDown,
    #[serde(rename = "animate-high")]
    AnimateHigh,
    #[serde(rename = "animate-low")]
    AnimateLow,
    #[serde(rename = "video-u1")]
    VideoU1,
    #[serde(rename = "video-u2")]
    VideoU2,
    #[serde(rename = "video-u3")]
    VideoU3,
    #[serde(rename = "video-u4")]
    VideoU4,
    #[serde(rename = "extend-high")]
    ExtendHigh,
    #[serde(rename = "extend-low")]
    ExtendLow,
}

impl ActionArg {
    /// The name `App::act` reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::U1 => "u1",
            Self::U2 => "u2",
            Self::U3 => "u3",
            Self::U4 => "u4",
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::V3 => "v3",
            Self::V4 => "v4",
            Self::Reroll => "reroll",
            Self::VaryStrong => "vary-strong",
            Self::VarySubtle => "vary-subtle",
            Self::UpscaleSubtle => "upscale-subtle",
            Self::UpscaleCreative => "upscale-creative",
            Self::ZoomOut2x => "zoom-out-2x",
            Self::ZoomOut15x => "zoom-out-1.5x",
            Self::ZoomCustom => "zoom-custom",
            Self::PanLeft => "pan-left",
            Self::PanRight => "pan-right",
            Self::PanUp => "pan-up",
            Self::PanDown => "pan-down",
            Self::AnimateHigh => "animate-high",
            Self::AnimateLow => "animate-low",
            Self::VideoU1 => "video-u1",
            Self::VideoU2 => "video-u2",
            Self::VideoU3 => "video-u3",
            Self::VideoU4 => "video-u4",
            Self::ExtendHigh => "extend-high",
            Self::ExtendLow => "extend-low",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateImage {
    /// What to draw, in words. Midjourney parameters may follow (`--ar 3:2 --stylize 250`).
    #[schemars(length(min = 1, max = 4000))]
    pub prompt: String,
    /// What the picture must not show (providers that take one).
    #[serde(default)]
    pub negative_prompt: Option<String>,
    /// What kind of picture this is, to sort the library.
    #[serde(default)]
    pub category: Option<CategoryArg>,
    /// Who or what it shows, to sort the library ("squirrel", "the mill at night").
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub subject: Option<String>,
    /// A provider from `list_providers`; the default provider when absent.
    #[serde(default)]
    pub provider: Option<String>,
    /// Width:height, such as "3:2" or "16:9" (the same rule as `--ar`).
    #[serde(default)]
    pub aspect_ratio: Option<String>,
    /// A seed, for a repeatable picture.
    #[serde(default)]
    pub seed: Option<u32>,
    /// Provider settings that are not prompt parameters, such as `{"bot": "niji"}`.
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Which pictures of the 2×2 grid to upscale automatically, numbered 1–4 left to right,
    /// top to bottom; `[]` for none. Default: all four.
    #[serde(default)]
    #[schemars(length(max = 4), inner(range(min = 1, max = 4)))]
    pub upscale: Option<Vec<u8>>,
    /// Seconds to wait for the pictures, with progress notifications, before answering (at
    /// most the server's limit, 60 by default). 0 answers at once. The generation goes on
    /// either way: `wait_for_generation` picks it up. Default 50.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub wait: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationRef {
    /// A generation's id (a UUID), as `generate_image` returned it.
    pub generation_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForGeneration {
    /// A generation's id (a UUID), as `generate_image` returned it.
    pub generation_id: String,
    /// Seconds to wait for its end, with progress notifications (at most the server's limit,
    /// 60 by default). Default 50.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub wait: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunAction {
    /// The image to act on (a grid for u/v/reroll, an upscaled picture for the others).
    pub image_id: String,
    pub action: ActionArg,
    /// The new prompt, for `zoom-custom` only (with `--zoom 1` to `2`: how far to zoom out).
    #[serde(default)]
    #[schemars(length(min = 1, max = 4000))]
    pub prompt: Option<String>,
    /// When the action makes a new grid (v1–v4, reroll): which of its pictures to upscale,
    /// 1–4. Default none.
    #[serde(default)]
    #[schemars(length(max = 4), inner(range(min = 1, max = 4)))]
    pub upscale: Option<Vec<u8>>,
    /// Seconds to wait for the result, as in `generate_image`. Default 50.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub wait: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// An image's id (a UUID).
    pub image_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersion {
    /// The image whose generation to run again: same prompt and settings, next version.
    pub image_id: String,
    /// Seconds to wait for the result, as in `generate_image`. Default 50.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub wait: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetImageStatus {
    pub image_id: String,
    pub status: StatusArg,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagImage {
    pub image_id: String,
    /// Tags to add (the image keeps its others): letters, digits, `-`, `_` or `:`, 1–64
    /// characters, lower-cased; at most 32 on an image.
    #[schemars(length(min = 1, max = 32))]
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListImages {
    #[serde(default)]
    pub status: Option<StatusArg>,
    /// Only still pictures or only clips.
    #[serde(default)]
    pub kind: Option<KindArg>,
    #[serde(default)]
    pub category: Option<CategoryArg>,
    /// Exactly this subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Images carrying this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Made by this provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// The images of one generation.
    #[serde(default)]
    pub generation_id: Option<String>,
    /// At most this many, newest first. Default 20.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page: only older images.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Also show each image's thumbnail (WebP, at most 512 px), for the first 8 images.
    #[serde(default)]
    pub thumbnails: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchImages {
    /// Words found in the image's prompt, as written (case does not matter; `%` and `_` are
    /// plain characters).
    #[schemars(length(min = 1, max = 200))]
    pub text: String,
    #[serde(default)]
    pub status: Option<StatusArg>,
    #[serde(default)]
    pub category: Option<CategoryArg>,
    /// Exactly this subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Images carrying this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// At most this many, newest first. Default 20.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page: only older images.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Also show each image's thumbnail (WebP, at most 512 px), for the first 8 images.
    #[serde(default)]
    pub thumbnails: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}
