//! Image prompts: the stored pictures an imagine starts from (Midjourney puts their URLs at the
//! start of the prompt), and the picture a video ends on. They are the caller's own images or
//! imports, still pictures, checked before anything is written; pictures a client sends inline are checked as if they were
//! stored already, so a request that would be refused stores none of them.

use super::App;
use crate::domain::{Actor, GenerationRequest, ImageId, MediaKind};
use crate::error::AppError;

impl App {
    /// Refuses image prompts `actor` may not use: an image it cannot see is "not found", a clip
    /// is no image prompt.
    pub(super) async fn check_image_prompts(
        &self,
        actor: Actor,
        ids: &[ImageId],
    ) -> Result<(), AppError> {
        for id in ids {
            let image = self.visible_image(actor, *id).await?;
            if image.kind() != MediaKind::Image {
                return Err(AppError::Invalid(format!(
                    "image {id} is a clip: an image prompt is a still picture"
                )));
            }
        }
        Ok(())
    }

    /// [`App::check`] for a request whose image prompts will be `inline` more pictures sent
    /// with it, and whose end frame one more when `inline_end`, none stored yet: checked as if
    /// they were (their number, the provider's capabilities, what its rules make of a prompt
    /// that starts with pictures). The request comes back validated, with its own pictures only.
    pub fn check_with_pictures(
        &self,
        request: GenerationRequest,
        inline: usize,
        inline_end: bool,
    ) -> Result<GenerationRequest, AppError> {
        let own = request.image_prompts.len();
        let own_end = request.end_frame;
        let mut asked = request;
        // Stand-ins that name no image: only their number is judged here.
        asked
            .image_prompts
            .extend(std::iter::repeat_with(ImageId::new).take(inline));
        if inline_end {
            asked.end_frame = Some(ImageId::new());
        }
        let mut checked = self.check(asked)?;
        checked.image_prompts.truncate(own);
        checked.end_frame = own_end;
        Ok(checked)
    }
}
