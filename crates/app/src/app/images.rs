//! Images: read, list, change (status, tags), their files, and the records the library
//! layout keeps beside them.

use time::OffsetDateTime;

use super::{App, GenerationWithImages};
use crate::api::ImageQuery;
use crate::catalogue::ImageFilter;
use crate::domain::{Actor, Category, Generation, GenerationId, Image, ImageId, ImageStatus, Role};
use crate::error::AppError;
use crate::pipeline::Processed;
use crate::store::KeyContext;

/// The most images one page lists.
pub const MAX_PAGE: u32 = 500;

/// One page of images, newest first, and the cursor of the next (the last one's id).
#[derive(Clone, Debug)]
pub struct ImagePage {
    pub images: Vec<Image>,
    pub next: Option<ImageId>,
}

impl App {
    /// A generation's images, by role (the engine's and the owner's view: no actor check).
    pub(crate) async fn images_of(&self, id: GenerationId) -> Result<Vec<Image>, AppError> {
        Ok(in_role_order(self.catalogue.generation_images(id).await?))
    }

    pub async fn image(&self, actor: Actor, id: ImageId) -> Result<Image, AppError> {
        self.visible_image(actor, id).await
    }

    /// Images `actor` may see, newest first, by `query`, at most [`MAX_PAGE`] a page (`limit`
    /// unset: every one, for the CLI's listing).
    pub async fn images(&self, actor: Actor, query: &ImageQuery) -> Result<ImagePage, AppError> {
        let filter = ImageFilter {
            owner: actor.scope(),
            status: query.status,
            kind: query.kind,
            category: query.category,
            subject: query.subject.clone(),
            tag: query.tag.clone(),
            provider: query.provider.clone(),
            generation_id: query.generation_id,
            text: query
                .text
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            created_from: query.created_from,
            created_until: query.created_until,
            before: query.before,
            limit: query.limit.map(|l| l.clamp(1, MAX_PAGE)),
        };
        let images = self.catalogue.images(&filter).await?;
        let next = filter
            .limit
            .filter(|l| images.len() == *l as usize)
            .and_then(|_| images.last().map(|i| i.id));
        Ok(ImagePage { images, next })
    }

    pub async fn set_image_status(
        &self,
        actor: Actor,
        id: ImageId,
        status: ImageStatus,
    ) -> Result<Image, AppError> {
        self.visible_image(actor, id).await?;
        let image = self.catalogue.set_image_status(id, status).await?;
        self.audit_work(
            actor,
            crate::domain::AuditAction::Update,
            format!("image:{id}"),
            serde_json::json!({"status": status.as_str()}),
        )
        .await;
        Ok(image)
    }

    /// Applies an update of several fields at once: everything is checked before anything
    /// changes, then each change is made (and audited) in turn.
    pub async fn update_image(
        &self,
        actor: Actor,
        id: ImageId,
        update: &crate::api::ImageUpdate,
    ) -> Result<Image, AppError> {
        let status = update
            .status
            .as_deref()
            .map(|v| {
                ImageStatus::parse(v).ok_or_else(|| {
                    AppError::Invalid(format!("status {v:?} is not one of draft, final, archived"))
                })
            })
            .transpose()?;
        let category = update
            .category
            .as_deref()
            .map(|v| {
                Category::parse(v).ok_or_else(|| {
                    AppError::Invalid(format!(
                        "category {v:?} is not one of character, scene, element"
                    ))
                })
            })
            .transpose()?;
        let subject = match update.subject.as_deref() {
            None => None,
            Some(s) if s.trim().is_empty() => Some(None),
            Some(s) => Some(Some(crate::domain::check_subject(s)?)),
        };
        let tags = update
            .tags
            .as_deref()
            .map(crate::domain::tags::normalise)
            .transpose()?;
        let mut current = self.visible_image(actor, id).await?;
        if let Some(tags) = &tags {
            crate::domain::tags::merged(&current.tags, tags)?;
        }
        if let Some(status) = status {
            current = self.set_image_status(actor, id, status).await?;
        }
        if let Some(tags) = &tags {
            current = self.tag(actor, id, tags).await?;
        }
        if update.favourite.is_some() || update.public.is_some() {
            current = self
                .set_image_marks(actor, id, update.favourite, update.public)
                .await?;
        }
        if category.is_some() || subject.is_some() {
            current = self
                .set_image_labels(actor, id, category, subject.as_ref().map(Option::as_deref))
                .await?;
        }
        Ok(current)
    }

    /// Files an image under another category or subject (`Some(None)` clears the subject); an
    /// unset one stays.
    pub async fn set_image_labels(
        &self,
        actor: Actor,
        id: ImageId,
        category: Option<Category>,
        subject: Option<Option<&str>>,
    ) -> Result<Image, AppError> {
        let subject = match subject {
            Some(Some(raw)) => Some(Some(crate::domain::check_subject(raw)?)),
            Some(None) => Some(None),
            None => None,
        };
        self.visible_image(actor, id).await?;
        let image = self
            .catalogue
            .set_image_labels(id, category, subject.as_ref().map(Option::as_deref))
            .await?;
        self.audit_work(
            actor,
            crate::domain::AuditAction::Update,
            format!("image:{id}"),
            serde_json::json!({
                "category": image.category.map(Category::as_str),
                "subject": image.subject,
            }),
        )
        .await;
        Ok(image)
    }

    /// Deletes an image: its row, then its file and thumbnail (a blob left behind by a failed
    /// delete costs space, never a row without its file). Refused while its generation runs,
    /// since the job may still be storing or reading it.
    pub async fn delete_image(&self, actor: Actor, id: ImageId) -> Result<(), AppError> {
        let image = self.visible_image(actor, id).await?;
        let generation = self.catalogue.generation(image.generation_id).await?;
        if !generation.status.is_terminal() {
            return Err(AppError::WrongState(format!(
                "image {id}'s generation is still {}; cancel it or wait for its end before deleting its images",
                generation.status.as_str()
            )));
        }
        self.catalogue.delete_image(id).await?;
        for key in std::iter::once(&image.storage_key).chain(image.thumbnail_key.as_ref()) {
            if let Err(e) = self.store.delete(key).await {
                tracing::warn!(image = %id, key, error = %e, "a deleted image's blob is left in the store");
            }
        }
        // The library layout's record of the generation lists its images: write it again.
        if let Err(e) = self.write_metadata(image.generation_id).await {
            tracing::warn!(image = %id, error = %e, "the generation's record still lists a deleted image");
        }
        self.audit_work(
            actor,
            crate::domain::AuditAction::Delete,
            format!("image:{id}"),
            serde_json::json!({"generation": image.generation_id.to_string(), "role": image.role.to_string()}),
        )
        .await;
        Ok(())
    }

    /// Marks an image a favourite or public (or not); an unset mark stays. Making an image
    /// public or private is recorded in the audit log as a share.
    pub async fn set_image_marks(
        &self,
        actor: Actor,
        id: ImageId,
        favourite: Option<bool>,
        public: Option<bool>,
    ) -> Result<Image, AppError> {
        let before = self.visible_image(actor, id).await?;
        let image = self
            .catalogue
            .set_image_marks(id, favourite, public)
            .await?;
        if image.public != before.public {
            self.audit_work(
                actor,
                crate::domain::AuditAction::Share,
                format!("image:{id}"),
                serde_json::json!({"public": image.public}),
            )
            .await;
        }
        if image.favourite != before.favourite {
            self.audit_work(
                actor,
                crate::domain::AuditAction::Update,
                format!("image:{id}"),
                serde_json::json!({"favourite": image.favourite}),
            )
            .await;
        }
        Ok(image)
    }

    /// Adds tags, by the domain's rules (`domain::tags`): trimmed, lower-cased, 1–64
    /// characters of letters, digits, `-`, `_`, `:`, at most 32 on an image.
    pub async fn tag(&self, actor: Actor, id: ImageId, tags: &[String]) -> Result<Image, AppError> {
        let tags = crate::domain::tags::normalise(tags)?;
        let image = self.visible_image(actor, id).await?;
        crate::domain::tags::merged(&image.tags, &tags)?;
        let image = self.catalogue.add_tags(id, &tags).await?;
        self.audit_work(
            actor,
            crate::domain::AuditAction::Update,
            format!("image:{id}"),
            serde_json::json!({"tags_added": tags}),
        )
        .await;
        Ok(image)
    }

    /// An image's file (or its thumbnail), checked against its recorded SHA-256 when it is
    /// the image itself.
    pub async fn image_bytes(
        &self,
        actor: Actor,
        id: ImageId,
        thumbnail: bool,
    ) -> Result<(Image, Vec<u8>), AppError> {
        let image = self.visible_image(actor, id).await?;
        let bytes = if thumbnail {
            let key = image
                .thumbnail_key
                .clone()
                .ok_or_else(|| AppError::NotFound(format!("thumbnail of image {id}")))?;
            self.store.read(&key).await?
        } else {
            self.store.get(&image.storage_key, &image.sha256).await?
        };
        Ok((image, bytes))
    }

    /// Writes the generation's JSON record (the generation with its images, as the API shows
    /// it) where the storage layout keeps one; does nothing for layouts that keep none.
    pub async fn write_metadata(&self, id: GenerationId) -> Result<(), AppError> {
        if !self.store.layout().keeps_metadata() {
            return Ok(());
        }
        let generation = self.catalogue.generation(id).await?;
        let images = self.images_of(id).await?;
        self.write_record(&GenerationWithImages { generation, images })
            .await
    }

    pub(crate) async fn write_record(&self, g: &GenerationWithImages) -> Result<(), AppError> {
        let ctx = KeyContext {
            generation_id: g.generation.id,
            category: g.generation.category,
            subject: g.generation.subject.as_deref(),
            version: g.generation.version,
            created_at: g.generation.created_at,
        };
        let Some(key) = self.store.layout().metadata_key(&ctx) else {
            return Ok(());
        };
        let view = crate::api::GenerationView::of(g, &self.store);
        let json =
            serde_json::to_vec_pretty(&view).map_err(|e| AppError::Internal(e.to_string()))?;
        self.store.put(&key, json).await?;
        Ok(())
    }

    /// Writes an image's thumbnail and the image, and returns its catalogue row (not yet
    /// inserted). Keys depend only on the generation, so a retry overwrites, never duplicates.
    pub async fn store_image(
        &self,
        g: &Generation,
        role: Role,
        p: Processed,
        synthetic: bool,
    ) -> Result<Image, AppError> {
        let (image, blobs) = self.image_and_blobs(g, role, p, synthetic);
        // The row that names the blobs is written only after both are stored.
        self.store.put_all(blobs).await?;
        Ok(image)
    }

    /// An image's catalogue row and the blobs (thumbnail, image) to store before inserting it.
    pub(crate) fn image_and_blobs(
        &self,
        g: &Generation,
        role: Role,
        p: Processed,
        synthetic: bool,
    ) -> (Image, Vec<(String, Vec<u8>)>) {
        let ctx = KeyContext {
            generation_id: g.id,
            category: g.category,
            subject: g.subject.as_deref(),
            version: g.version,
            created_at: g.created_at,
        };
        let layout = *self.store.layout();
        let key = layout.image_key(&ctx, role, p.format.extension());
        let thumb = layout.thumbnail_key(&ctx, role);
        let size = p.bytes.len() as u64;
        let image = Image {
            id: ImageId::new(),
            generation_id: g.id,
            owner: g.owner,
            role,
            public_url: self.store.url(&key),
            storage_key: key.clone(),
            thumbnail_key: Some(thumb.clone()),
            width: p.width,
            height: p.height,
            format: p.format.as_str().to_owned(),
            size_bytes: size,
            sha256: p.sha256,
            dominant: Some(p.dominant),
            palette: p.palette,
            category: g.category,
            subject: g.subject.clone(),
            version: g.version,
            status: ImageStatus::Draft,
            favourite: false,
            public: false,
            tags: Vec::new(),
            synthetic,
            created_at: OffsetDateTime::now_utc(),
            clip: p.clip,
        };
        (image, vec![(thumb, p.thumbnail), (key, p.bytes)])
    }
}

/// A generation's images in the order they are shown: by role.
pub(super) fn in_role_order(mut images: Vec<Image>) -> Vec<Image> {
    images.sort_by_key(|i| i.role.to_string());
    images
}
