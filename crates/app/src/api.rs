//! Wire types: the JSON that front-ends print or serve. The only place where domain values
//! become protocol documents, so the catalogue's shape never leaks into the API by accident.

pub mod mjproxy;
mod users;
mod webhooks;

pub use users::{ApiKeyView, AuditEntryView, CreditsView, LedgerEntryView, NewKeyView, UserView};
pub use webhooks::{
    AttemptView, DeliveryView, WebhookData, WebhookPayload, WebhookRequest, WebhookSecretView,
};

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::GenerationWithImages;
use crate::domain::{Event, Failure, Generation, Image};
use crate::store::Store;

/// A word from a fixed set (a status, a kind, a code): borrowed when a view is made from the
/// domain, owned when a client reads one off the wire (`client.rs`).
pub type Word = Cow<'static, str>;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct ErrorView {
    #[schema(value_type = String)]
    pub code: Word,
    pub message: String,
}

impl From<&Failure> for ErrorView {
    fn from(f: &Failure) -> Self {
        Self {
            code: f.code.as_str().into(),
            message: f.message.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct ImageView {
    pub id: String,
    pub generation_id: String,
    pub role: String,
    /// `image` (a still picture) or `video` (a clip; its thumbnail is its first frame).
    #[schema(value_type = MediaKindName)]
    pub kind: Word,
    /// A clip's length in milliseconds; null for a picture.
    pub duration_ms: Option<u64>,
    /// A clip's frame count; null for a picture.
    pub frames: Option<u32>,
    /// A clip's video codec (`h264`, `vp8`, `vp8l`); null for a picture.
    pub codec: Option<String>,
    /// Absolute path, for the folder store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub storage_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_path: Option<String>,
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub palette: Vec<String>,
    pub dominant_color: Option<String>,
    #[schema(value_type = Option<String>)]
    pub category: Option<Word>,
    pub subject: Option<String>,
    pub version: u32,
    #[schema(value_type = String)]
    pub status: Word,
    pub favourite: bool,
    pub public: bool,
    pub tags: Vec<String>,
    pub synthetic: bool,
    pub created_at: String,
}

impl ImageView {
    /// Without the folder store's file paths: a server's clients have no business with them.
    #[must_use]
    pub fn without_paths(mut self) -> Self {
        self.path = None;
        self.thumbnail_path = None;
        self
    }

    pub fn new(i: &Image, store: &Store) -> Self {
        let path = |k: &str| store.local_path(k).map(|p| p.display().to_string());
        Self {
            id: i.id.to_string(),
            generation_id: i.generation_id.to_string(),
            role: i.role.to_string(),
            kind: i.kind().as_str().into(),
            duration_ms: i.clip.as_ref().map(|c| c.duration_ms),
            frames: i.clip.as_ref().map(|c| c.frames),
            codec: i.clip.as_ref().map(|c| c.codec.clone()),
            path: path(&i.storage_key),
            storage_key: i.storage_key.clone(),
            url: i.public_url.clone(),
            thumbnail_path: i.thumbnail_key.as_deref().and_then(path),
            width: i.width,
            height: i.height,
            format: i.format.clone(),
            size_bytes: i.size_bytes,
            sha256: i.sha256.clone(),
            palette: i.palette.iter().map(|c| c.hex()).collect(),
            dominant_color: i.dominant.map(crate::domain::Rgb::hex),
            category: i.category.map(|c| c.as_str().into()),
            subject: i.subject.clone(),
            version: i.version,
            status: i.status.as_str().into(),
            favourite: i.favourite,
            public: i.public,
            tags: i.tags.clone(),
            synthetic: i.synthetic,
            created_at: rfc3339(i.created_at),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct GenerationView {
    pub id: String,
    #[schema(value_type = String)]
    pub kind: Word,
    pub provider: String,
    /// The provider account that ran it (Midjourney's pool chooses one).
    pub account: Option<String>,
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    #[schema(value_type = Option<String>)]
    pub category: Option<Word>,
    pub subject: Option<String>,
    /// The caller's own reference, as given at creation (`client_reference`, or a
    /// midjourney-proxy submit's `state`); absent when none was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
    pub version: u32,
    pub parent_id: Option<String>,
    #[schema(value_type = String)]
    pub status: Word,
    #[schema(value_type = Option<String>)]
    pub phase: Option<Word>,
    pub progress: f64,
    pub error: Option<ErrorView>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub images: Vec<ImageView>,
    /// The prompts a describe generation found for its image, or a shorten generation for
    /// its prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// The model the provider ran it on, where it says (Midjourney: `v8.1`, `v7`, `niji 7`,
    /// the one the prompt selects or the bot's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The tokens the provider billed for it, as it reported them (OpenAI's GPT image
    /// models: `input_tokens`, `output_tokens`, `total_tokens` and their details), summed
    /// over every request the generation made.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub usage: Option<serde_json::Value>,
}

impl GenerationView {
    /// Without the folder store's file paths (see [`ImageView::without_paths`]).
    #[must_use]
    pub fn without_paths(mut self) -> Self {
        self.images = self
            .images
            .into_iter()
            .map(ImageView::without_paths)
            .collect();
        self
    }

    pub fn new(g: &Generation, images: &[Image], store: &Store) -> Self {
        Self {
            id: g.id.to_string(),
            kind: g.kind.as_str().into(),
            provider: g.provider.clone(),
            account: g.account.clone(),
            prompt: g.prompt.clone(),
            negative_prompt: g.negative_prompt.clone(),
            parameters: serde_json::to_value(&g.parameters).unwrap_or_default(),
            category: g.category.map(|c| c.as_str().into()),
            subject: g.subject.clone(),
            client_reference: g.client_reference.clone(),
            version: g.version,
            parent_id: g.parent_id.map(|p| p.to_string()),
            status: g.status.as_str().into(),
            phase: g.phase.map(|p| p.as_str().into()),
            progress: g.progress,
            error: g.error.as_ref().map(ErrorView::from),
            created_at: rfc3339(g.created_at),
            started_at: g.started_at.map(rfc3339),
            completed_at: g.completed_at.map(rfc3339),
            images: images.iter().map(|i| ImageView::new(i, store)).collect(),
            prompts: g.provider_refs["prompts"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            model: g.provider_refs["model"].as_str().map(str::to_owned),
            usage: g
                .provider_refs
                .get("usage")
                .filter(|u| u.is_object())
                .cloned(),
        }
    }

    pub fn of(g: &GenerationWithImages, store: &Store) -> Self {
        Self::new(&g.generation, &g.images, store)
    }
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct EventView {
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: Word,
    pub generation_id: String,
    pub seq: u64,
    pub at: String,
    #[schema(value_type = String)]
    pub status: Word,
    #[schema(value_type = Option<String>)]
    pub phase: Option<Word>,
    pub progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
}

/// An event in the feed of all events (`atelier events`): the event and its position, from
/// which a follower may start again (`--after POSITION`).
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct FeedEventView {
    pub position: i64,
    #[serde(flatten)]
    pub event: EventView,
}

/// A page of the feed (`GET /v1/events` with `Accept: application/json`).
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct FeedPage {
    /// The stored events after the position asked for, oldest first.
    pub data: Vec<FeedEventView>,
    /// The feed's last position when it was read: a stream started after it gets only the
    /// events written since.
    pub end: i64,
}

impl From<&crate::catalogue::FeedEntry> for FeedEventView {
    fn from(e: &crate::catalogue::FeedEntry) -> Self {
        Self {
            position: e.position,
            event: EventView::from(&e.event),
        }
    }
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            kind: e.kind.as_str().into(),
            generation_id: e.generation_id.to_string(),
            seq: e.seq,
            at: rfc3339(e.at),
            status: e.status.as_str().into(),
            phase: e.phase.map(|p| p.as_str().into()),
            progress: e.progress,
            index: e.index,
            image_id: e.image_id.map(|i| i.to_string()),
            error: e.error.as_ref().map(ErrorView::from),
        }
    }
}

/// Which images to list, newest first (every front-end's query; empty fields do not filter).
#[derive(Clone, Debug, Default)]
pub struct ImageQuery {
    pub status: Option<crate::domain::ImageStatus>,
    /// Pictures or clips.
    pub kind: Option<crate::domain::MediaKind>,
    pub category: Option<crate::domain::Category>,
    pub subject: Option<String>,
    pub tag: Option<String>,
    pub provider: Option<String>,
    pub generation_id: Option<crate::domain::GenerationId>,
    /// Words in the prompt (case-insensitive for ASCII letters; no wildcards).
    pub text: Option<String>,
    /// Created at or after.
    pub created_from: Option<OffsetDateTime>,
    /// Created before.
    pub created_until: Option<OffsetDateTime>,
    /// The cursor a previous page gave: only older images.
    pub before: Option<crate::domain::ImageId>,
    /// At most this many (unset: every one; the server always sets it).
    pub limit: Option<u32>,
}

/// Which generations to list, newest first (empty fields do not filter).
#[derive(Clone, Debug, Default)]
pub struct GenerationQuery {
    pub status: Option<crate::domain::GenerationStatus>,
    pub provider: Option<String>,
    /// The cursor a previous page gave: only older generations.
    pub before: Option<crate::domain::GenerationId>,
    pub limit: Option<u32>,
}

/// `POST /v1/generations`: what a client asks for. Unknown fields are refused, so a typo is
/// an error rather than a silently ignored setting.
#[derive(Serialize, serde::Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGeneration {
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<CategoryName>)]
    pub category: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    /// `"all"`, `"none"`, `"1,3"` or `[1, 3]`; default all.
    #[serde(default)]
    pub upscale: Option<UpscaleChoice>,
    #[serde(default)]
    pub seed: Option<u32>,
    #[serde(default)]
    pub aspect_ratio: Option<String>,
    /// Provider settings that are not prompt parameters (`{"bot": "niji"}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Image prompts: ids of the caller's still pictures (its own images or imports) the
    /// generation starts from, 1 to 5, in order; for a provider that takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<uuid::Uuid>, max_items = 5)]
    pub image_prompts: Vec<String>,
    /// Where the generation's events are delivered (`http` or `https`), signed.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Which events the webhook receives; unset: `completed`, `failed`, `canceled`.
    #[serde(default)]
    pub webhook_events: Option<Vec<String>>,
    /// The caller's own reference (an order number, a job id of theirs): at most 255
    /// characters without control characters, kept as given and shown back on the generation;
    /// Atelier never reads it.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub client_reference: Option<String>,
}

/// Which upscales to keep, as text or as a list of numbers.
#[derive(Serialize, serde::Deserialize, Debug, Clone, utoipa::ToSchema)]
#[serde(untagged)]
pub enum UpscaleChoice {
    Text(String),
    List(Vec<u8>),
}

impl UpscaleChoice {
    pub fn selection(&self) -> Result<crate::domain::UpscaleSelection, crate::domain::Invalid> {
        match self {
            Self::Text(s) => crate::domain::UpscaleSelection::parse(s),
            Self::List(l) => crate::domain::UpscaleSelection::from_indices(l),
        }
    }
}

impl CreateGeneration {
    /// The webhook asked for, if any (checked by `App::submit_with_webhook`); events without
    /// a webhook are refused.
    pub fn webhook(&self) -> Result<Option<WebhookRequest>, crate::domain::Invalid> {
        match (&self.webhook, &self.webhook_events) {
            (None, Some(_)) => Err(crate::domain::Invalid::Other(
                "webhook_events needs a webhook URL (webhook)".into(),
            )),
            (None, None) => Ok(None),
            (Some(url), events) => Ok(Some(WebhookRequest {
                url: url.clone(),
                events: events.clone(),
            })),
        }
    }

    /// The domain's request; a category no one knows is refused here.
    pub fn request(self) -> Result<crate::domain::GenerationRequest, crate::domain::Invalid> {
        let category = self
            .category
            .map(|c| {
                crate::domain::Category::parse(&c)
                    .ok_or_else(|| crate::domain::Invalid::Other(format!("unknown category {c:?}")))
            })
            .transpose()?;
        let mut r = crate::domain::GenerationRequest::new(self.prompt);
        r.negative_prompt = self.negative_prompt;
        r.provider = self.provider;
        r.category = category;
        r.subject = self.subject;
        if let Some(u) = &self.upscale {
            r.upscale = u.selection()?;
        }
        r.seed = self.seed;
        r.aspect_ratio = self.aspect_ratio;
        r.extra = self.parameters;
        r.client_reference = self.client_reference;
        r.image_prompts = self
            .image_prompts
            .iter()
            .enumerate()
            .map(|(i, id)| {
                id.trim().parse().map_err(|_| {
                    crate::domain::Invalid::Other(format!(
                        "image_prompts[{i}]: {id:?} is not an image id"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(r)
    }
}

/// `POST /v1/images/{id}/actions`: a button pressed on an image.
#[derive(Serialize, serde::Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// `u1`–`u4`, `v1`–`v4`, `reroll` (on a grid); `vary-strong`, `vary-subtle`,
    /// `upscale-subtle`, `upscale-creative`, `zoom-out-2x`, `zoom-out-1.5x`, `pan-left`,
    /// `pan-right`, `pan-up`, `pan-down` (on an upscale); and video's `animate-high`,
    /// `animate-low`, `video-u1`–`video-u4`, `extend-high`, `extend-low`.
    pub action: String,
    /// The new prompt of an action that takes one: `zoom-custom`'s, with `--zoom 1` to `2`
    /// (how far to zoom out). The other actions refuse a prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Upscales kept automatically when the action makes a grid; default none.
    #[serde(default)]
    pub upscale: Option<UpscaleChoice>,
}

/// `GET /v1/images/{id}/actions`: the buttons an image offers.
#[derive(Serialize, serde::Deserialize, Debug, utoipa::ToSchema)]
pub struct ActionList {
    /// The names `POST /v1/images/{id}/actions` takes (`u1`, `vary-strong`, `zoom-out-1.5x`…),
    /// as the image's result offers them: a Midjourney image's own buttons, which differ from
    /// one model to the next; empty for an imported image or an unfinished generation.
    pub actions: Vec<String>,
}

/// `PATCH /v1/images/{id}`: what may change on an image.
#[derive(Serialize, serde::Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUpdate {
    #[serde(default)]
    #[schema(value_type = Option<ImageStatusName>)]
    pub status: Option<String>,
    /// Tags added (existing ones stay).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub favourite: Option<bool>,
    /// Readable by anyone with its URL (a public bucket's, or Supabase's row-level security).
    #[serde(default)]
    pub public: Option<bool>,
    /// `character`, `scene` or `element`.
    #[serde(default)]
    pub category: Option<String>,
    /// The image's subject; an empty string clears it.
    #[serde(default)]
    pub subject: Option<String>,
}

/// Where a queued generation stands.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct QueueView {
    /// Jobs of the same provider account before it.
    pub ahead: u64,
    /// About how long until it ends, from recent runs of its provider; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<f64>,
}

/// One page of a list and the cursor of the next (absent on the last page).
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The values the API takes and shows for a generation's status, as the document lists them
/// (the domain parses and names them; this only describes them).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatusName {
    Queued,
    Submitted,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

/// An image's status, as the document lists it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatusName {
    Draft,
    Final,
    Archived,
}

/// What an asset is, as the document lists it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaKindName {
    Image,
    Video,
}

/// An image's category, as the document lists it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CategoryName {
    Character,
    Scene,
    Element,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The action names the `OpenAPI` document shows (the schemas' descriptions, written from
    /// these doc comments) are names the route takes.
    #[test]
    fn the_documented_action_names_are_actions() {
        use utoipa::PartialSchema as _;
        for (schema, field) in [
            (ActionRequest::schema(), "action"),
            (ActionList::schema(), "actions"),
        ] {
            let schema = serde_json::to_value(schema).unwrap();
            let text = schema["properties"][field]["description"]
                .as_str()
                .unwrap_or_else(|| panic!("no description of {field}: {schema}"));
            // Quoted words, less the route the list's text names.
            let names: Vec<&str> = text
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| !n.starts_with("POST "))
                .collect();
            assert!(names.len() >= 3, "{text}");
            for name in names {
                assert!(
                    crate::domain::Action::parse(name, Some(1)).is_ok(),
                    "{field}: {name:?} is not an action the route takes"
                );
            }
        }
    }
}
