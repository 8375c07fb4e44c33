//! A stored image and its catalogue attributes.

use std::fmt;

use time::OffsetDateTime;

use super::{GenerationId, ImageId, UserId};

/// Which picture of a generation this is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    Grid,
    /// U1–U4, numbered from 1.
    Upscale(u8),
    /// A single image that is neither a grid nor an upscale (imports, variants).
    Variant(u8),
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        if s == "grid" {
            return Some(Self::Grid);
        }
        let (prefix, n) = s.rsplit_once('_')?;
        let n: u8 = n.parse().ok()?;
        match prefix {
            "upscale" if (1..=4).contains(&n) => Some(Self::Upscale(n)),
            "variant" if n >= 1 => Some(Self::Variant(n)),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Grid => f.write_str("grid"),
            Self::Upscale(n) => write!(f, "upscale_{n}"),
            Self::Variant(n) => write!(f, "variant_{n}"),
        }
    }
}

/// The draft → final → archived workflow of an image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImageStatus {
    Draft,
    Final,
    Archived,
}

impl ImageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Final => "final",
            Self::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => Self::Draft,
            "final" => Self::Final,
            "archived" => Self::Archived,
            _ => return None,
        })
    }
}

/// The illustrator's sorting of images.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Category {
    Character,
    Scene,
    Element,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Character => "character",
            Self::Scene => "scene",
            Self::Element => "element",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "character" => Self::Character,
            "scene" => Self::Scene,
            "element" => Self::Element,
            _ => return None,
        })
    }
}

/// An sRGB colour.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    /// `#rrggbb`, the form stored and shown everywhere.
    pub fn hex(self) -> String {
        let [r, g, b] = self.0;
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    pub fn parse_hex(s: &str) -> Option<Self> {
        let s = s.strip_prefix('#')?;
        if s.len() != 6 || !s.is_ascii() {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).ok();
        Some(Self([byte(0)?, byte(2)?, byte(4)?]))
    }
}

/// What an asset is: a still picture or a clip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MediaKind {
    Image,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "image" => Self::Image,
            "video" => Self::Video,
            _ => return None,
        })
    }
}

/// What the catalogue records of a clip besides its picture size: read from its container
/// when it was verified.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Clip {
    /// Its length, in milliseconds.
    pub duration_ms: u64,
    /// How many frames it holds.
    pub frames: u32,
    /// Its video codec as the container names it: `h264` (MP4), `vp8` or `vp8l` (WebP).
    pub codec: String,
}

/// One stored image as the catalogue holds it.
#[derive(Clone, PartialEq, Debug)]
pub struct Image {
    pub id: ImageId,
    pub generation_id: GenerationId,
    /// Its generation's owner.
    pub owner: Option<UserId>,
    pub role: Role,
    pub storage_key: String,
    pub public_url: Option<String>,
    pub thumbnail_key: Option<String>,
    pub width: u32,
    pub height: u32,
    /// `png`, `jpeg` or `webp`; a clip's `mp4` or `webp`.
    pub format: String,
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the stored bytes.
    pub sha256: String,
    pub dominant: Option<Rgb>,
    pub palette: Vec<Rgb>,
    pub category: Option<Category>,
    pub subject: Option<String>,
    pub version: u32,
    pub status: ImageStatus,
    pub favourite: bool,
    pub public: bool,
    pub tags: Vec<String>,
    pub synthetic: bool,
    pub created_at: OffsetDateTime,
    /// A clip's length, frames and codec; `None` for a still picture. Its thumbnail is its
    /// first frame (the poster).
    pub clip: Option<Clip>,
}

impl Image {
    /// The media type of its file: `image/png`, `image/jpeg`, `image/webp` (an animated WebP
    /// too) or `video/mp4`.
    pub fn media_type(&self) -> String {
        match self.format.as_str() {
            "jpg" | "jpeg" => "image/jpeg".into(),
            "mp4" => "video/mp4".into(),
            other => format!("image/{other}"),
        }
    }

    /// A still picture or a clip.
    pub fn kind(&self) -> MediaKind {
        if self.clip.is_some() {
            MediaKind::Video
        } else {
            MediaKind::Image
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in [
            Role::Grid,
            Role::Upscale(1),
            Role::Upscale(4),
            Role::Variant(7),
        ] {
            assert_eq!(Role::parse(&role.to_string()), Some(role));
        }
        assert_eq!(Role::parse("upscale_5"), None);
        assert_eq!(Role::parse("upscale_0"), None);
        assert_eq!(Role::parse("thumb"), None);
    }

    #[test]
    fn colours_round_trip() {
        let c = Rgb([0x12, 0xab, 0xff]);
        assert_eq!(c.hex(), "#12abff");
        assert_eq!(Rgb::parse_hex("#12abff"), Some(c));
        assert_eq!(Rgb::parse_hex("12abff"), None);
        assert_eq!(Rgb::parse_hex("#12abfg"), None);
        assert_eq!(Rgb::parse_hex("#é2abf"), None);
    }
}
