//! Storage key layouts (product.md §4.3).
//!
//! - `default` (the `MidPicture` bucket layout): `{generation_id}/grid.png`,
//!   `{generation_id}/upscale_{n}.png`, thumbnails beside them as `thumb_{role}.webp`.
//! - `library` (illustrations): `raw/{category}/{category}_{subject}_v{version}_{timestamp}_{id}_{role}.{ext}`,
//!   thumbnails under `processed/`, the generation's JSON metadata under `metadata/`. `{id}` (the
//!   last 8 hex digits of the generation id) keeps generations made in the same second apart;
//!   the role suffix keeps the grid and its upscales, which share one version, apart.
//!
//! Keys depend only on the generation (never on the clock at write time), so a retried job
//! writes the same keys again instead of leaving orphans.

use time::OffsetDateTime;
use time::macros::format_description;

use crate::domain::{Category, GenerationId, Role};

/// How keys are named (`[storage] layout`: `default` or `library`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    Default,
    Library,
}

/// What a key is made of.
#[derive(Clone, Debug)]
pub struct KeyContext<'a> {
    pub generation_id: GenerationId,
    pub category: Option<Category>,
    pub subject: Option<&'a str>,
    pub version: u32,
    pub created_at: OffsetDateTime,
}

impl KeyContext<'_> {
    fn stem(&self) -> String {
        let category = self.category.map_or("uncategorized", Category::as_str);
        let subject = slug(self.subject.unwrap_or("untitled"));
        let stamp = self
            .created_at
            .to_offset(time::UtcOffset::UTC)
            .format(format_description!(
                "[year][month][day]_[hour][minute][second]"
            ))
            .unwrap_or_else(|_| self.created_at.unix_timestamp().to_string());
        // The generation id's random tail keeps two generations of one subject, version and
        // second apart (UUIDv7's head is the timestamp, so the tail is the part that differs).
        let id = self.generation_id.as_uuid().simple().to_string();
        let tail = &id[id.len() - 8..];
        format!("{category}_{subject}_v{}_{stamp}_{tail}", self.version)
    }

    fn category_dir(&self) -> &'static str {
        self.category.map_or("uncategorized", Category::as_str)
    }
}

impl Layout {
    /// The key of an image. `ext` is the stored format's extension (`png`, `jpg`, `webp`).
    pub fn image_key(self, ctx: &KeyContext<'_>, role: Role, ext: &str) -> String {
        match self {
            Self::Default => format!("{}/{role}.{ext}", ctx.generation_id),
            Self::Library => format!("raw/{}/{}_{role}.{ext}", ctx.category_dir(), ctx.stem()),
        }
    }

    /// The key of an image's WebP thumbnail.
    pub fn thumbnail_key(self, ctx: &KeyContext<'_>, role: Role) -> String {
        match self {
            Self::Default => format!("{}/thumb_{role}.webp", ctx.generation_id),
            Self::Library => {
                format!(
                    "processed/{}/{}_{role}_thumb.webp",
                    ctx.category_dir(),
                    ctx.stem()
                )
            }
        }
    }

    /// Whether the layout keeps a JSON record of each generation beside its images.
    pub fn keeps_metadata(self) -> bool {
        matches!(self, Self::Library)
    }

    /// The key of the generation's JSON metadata, for layouts that keep one.
    pub fn metadata_key(self, ctx: &KeyContext<'_>) -> Option<String> {
        self.keeps_metadata()
            .then(|| format!("metadata/{}/{}.json", ctx.category_dir(), ctx.stem()))
    }
}

/// Lower-case ASCII letters, digits and dashes; at most 60 characters.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "untitled".to_owned()
    } else {
        out.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(subject: Option<&str>) -> KeyContext<'_> {
        KeyContext {
            generation_id: "0192f0c1-0000-7000-8000-000000000001".parse().unwrap(),
            category: Some(Category::Character),
            subject,
            version: 3,
            created_at: time::macros::datetime!(2026-11-21 09:05:07 UTC),
        }
    }

    #[test]
    fn default_layout_is_the_bucket_layout() {
        let c = ctx(None);
        let id = "0192f0c1-0000-7000-8000-000000000001";
        assert_eq!(
            Layout::Default.image_key(&c, Role::Grid, "png"),
            format!("{id}/grid.png")
        );
        assert_eq!(
            Layout::Default.image_key(&c, Role::Upscale(2), "png"),
            format!("{id}/upscale_2.png")
        );
        assert_eq!(
            Layout::Default.thumbnail_key(&c, Role::Upscale(2)),
            format!("{id}/thumb_upscale_2.webp")
        );
        assert_eq!(Layout::Default.metadata_key(&c), None);
    }

    #[test]
    fn library_layout_names_by_category_subject_and_version() {
        let c = ctx(Some("Fox King, the 2nd!"));
        assert_eq!(
            Layout::Library.image_key(&c, Role::Upscale(1), "png"),
            "raw/character/character_fox-king-the-2nd_v3_20261121_090507_00000001_upscale_1.png"
        );
        assert_eq!(
            Layout::Library.thumbnail_key(&c, Role::Grid),
            "processed/character/character_fox-king-the-2nd_v3_20261121_090507_00000001_grid_thumb.webp"
        );
        assert_eq!(
            Layout::Library.metadata_key(&c).unwrap(),
            "metadata/character/character_fox-king-the-2nd_v3_20261121_090507_00000001.json"
        );
    }

    #[test]
    fn slugs_never_escape_their_folder() {
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("  "), "untitled");
        assert_eq!(slug("Épée"), "p-e");
        assert!(slug(&"x".repeat(500)).len() <= 60);
    }
}
