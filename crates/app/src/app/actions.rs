//! Actions on an earlier result (Midjourney's buttons): a new generation whose parent is the
//! acted-on one, run by the same provider (and, for Midjourney, the same account).

use super::{App, NotifyHook};
use crate::domain::{
    Action, Actor, Generation, GenerationKind, GenerationStatus, ImageId, MediaKind, Output, Role,
    UpscaleSelection,
};
use crate::error::AppError;

impl App {
    /// Queues `action` (see [`crate::domain::action`]) on image `image`: a grid for
    /// u1–u4 / v1–v4 / reroll, an upscale for the others. Grid results get the automatic
    /// upscales in `upscale`.
    pub async fn act(
        &self,
        actor: Actor,
        image: ImageId,
        action: &str,
        upscale: &UpscaleSelection,
    ) -> Result<Generation, AppError> {
        self.act_notified(actor, image, action, upscale, None, None)
            .await
    }

    /// [`App::act`], with a notify hook (its deliveries start with the new generation) and
    /// the caller's reference for the new generation (checked here, before anything is
    /// written).
    pub async fn act_notified(
        &self,
        actor: Actor,
        image: ImageId,
        action: &str,
        upscale: &UpscaleSelection,
        hook: Option<NotifyHook>,
        reference: Option<&str>,
    ) -> Result<Generation, AppError> {
        let options = ActOptions {
            upscale: upscale.clone(),
            hook,
            reference,
            ..ActOptions::default()
        };
        self.act_with(actor, image, action, options).await
    }

    /// [`App::act_notified`] with everything an action may take, its prompt included
    /// (`zoom-custom`'s new prompt, with its `--zoom`; the other actions refuse one). The
    /// prompt is checked as a generation's is (its provider's rules included) and becomes the
    /// new generation's.
    pub async fn act_with(
        &self,
        actor: Actor,
        image: ImageId,
        action: &str,
        options: ActOptions<'_>,
    ) -> Result<Generation, AppError> {
        let client_reference = client_reference(options.reference)?;
        let generation = self
            .prepare_action(actor, image, action, options.prompt, &options.upscale)
            .await?;
        let generation = Generation {
            client_reference,
            ..generation
        };
        self.enqueue_hooked(actor, generation, options.hook.map(|h| h.0))
            .await
    }

    /// Refuses what [`App::act_with`] would refuse, writing nothing: for a front-end that
    /// must write something of its own first (a notify hook's secret) only for a good request.
    pub async fn check_action(
        &self,
        actor: Actor,
        image: ImageId,
        action: &str,
        prompt: Option<&str>,
    ) -> Result<(), AppError> {
        self.prepare_action(actor, image, action, prompt, &UpscaleSelection::none())
            .await
            .map(|_| ())
    }

    /// The generation an action makes, every check passed.
    async fn prepare_action(
        &self,
        actor: Actor,
        image: ImageId,
        action: &str,
        prompt: Option<&str>,
        upscale: &UpscaleSelection,
    ) -> Result<Generation, AppError> {
        let (_, parent, action) = self.acting_on(actor, image, action).await?;
        action
            .check_prompt(prompt, &parent.prompt)
            .map_err(AppError::Invalid)?;
        // A new prompt brings its own parameters (`--zoom`, `--ar`…), on the parent's bot.
        let (prompt, mut parameters) = match prompt.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                let mut request = crate::domain::GenerationRequest::new(p.to_owned());
                request.provider = Some(parent.provider.clone());
                if let Some(bot) = parent.parameters.extra.get("bot") {
                    request.extra.insert("bot".into(), bot.clone());
                }
                let request = self.check(request)?;
                let parameters = request.parameters()?;
                (request.prompt, parameters)
            }
            None => (parent.prompt.clone(), parent.parameters.clone()),
        };
        parameters.extra.insert(
            "action".into(),
            serde_json::to_value(action).unwrap_or_default(),
        );
        parameters.upscale = match action.output() {
            Output::Grid => upscale.indices().to_vec(),
            Output::Single => Vec::new(),
        };
        Ok(Generation {
            kind: action.kind(),
            prompt,
            parameters,
            ..parent.child()
        })
    }
}

impl App {
    /// The checks every action passes before anything is written: the image is the caller's
    /// and was made by a provider job that succeeded, the action is one its provider plays, on
    /// the right kind and role of image, and the image offers it. Gives the acted-on image,
    /// its generation and the action.
    pub(crate) async fn acting_on(
        &self,
        actor: Actor,
        image: ImageId,
        action: &str,
    ) -> Result<(crate::domain::Image, Generation, Action), AppError> {
        let source = self.visible_image(actor, image).await?;
        let parent = self.catalogue.generation(source.generation_id).await?;
        if parent.kind == GenerationKind::Import {
            return Err(AppError::Invalid(format!(
                "image {image} was imported: no provider job made it, so there is nothing to act on"
            )));
        }
        if parent.status != GenerationStatus::Succeeded {
            return Err(AppError::Invalid(format!(
                "generation {} is {}; actions need a finished one",
                parent.id,
                parent.status.as_str()
            )));
        }
        let index = shown(source.role, parent.action());
        let action = Action::parse(action, index).map_err(AppError::Invalid)?;
        if source.kind() != action.acts_on() {
            return Err(AppError::Invalid(format!(
                "{action} acts on a {}, and image {image} is a {}",
                media_name(action.acts_on()),
                media_name(source.kind())
            )));
        }
        // An action the provider does not play is refused first: its results may have no grid.
        self.providers
            .serving(Some(&parent.provider), action.kind(), Some(action))
            .map_err(AppError::Invalid)?;
        if action.on_grid() && source.role != Role::Grid {
            return Err(AppError::Invalid(format!(
                "{action} is pressed on a grid, and image {image} is {}: use the grid's image id",
                source.role
            )));
        }
        // What the result offers (Midjourney's buttons differ from one model to the next).
        let offered = self.offered(&parent, source.role);
        if !offered.contains(&action) {
            return Err(AppError::Invalid(format!(
                "image {image} does not offer {action}; it offers {}",
                list(&offered)
            )));
        }
        Ok((source, parent, action))
    }
}

/// A caller's reference, checked by the domain's rule.
fn client_reference(raw: Option<&str>) -> Result<Option<String>, AppError> {
    Ok(match raw {
        Some(raw) => crate::domain::check_client_reference(raw)?,
        None => None,
    })
}

/// What an action asks for besides its image and its name.
pub struct ActOptions<'a> {
    /// The new prompt of an action that takes one (`zoom-custom`).
    pub prompt: Option<&'a str>,
    /// The automatic upscales of a grid result.
    pub upscale: UpscaleSelection,
    /// A notify hook: its deliveries start with the new generation.
    pub hook: Option<NotifyHook>,
    /// The caller's reference for the new generation (the proxies' `state`).
    pub reference: Option<&'a str>,
}

impl Default for ActOptions<'_> {
    fn default() -> Self {
        Self {
            prompt: None,
            upscale: UpscaleSelection::none(),
            hook: None,
            reference: None,
        }
    }
}

/// [`App::check_shorten`]'s rule, for a caller that has no `App` yet (the CLI checks before
/// it opens, and so creates, the data directory).
pub fn shorten_request(
    request: crate::domain::GenerationRequest,
    banned_words: &[String],
    providers: &crate::providers::Providers,
) -> Result<crate::domain::GenerationRequest, AppError> {
    let request = request.validated()?;
    crate::domain::banned::check(&request, banned_words)?;
    providers
        .serving(request.provider.as_deref(), GenerationKind::Shorten, None)
        .map_err(AppError::Invalid)?;
    Ok(request)
}

/// Actions as a caller names them, in one line.
fn list(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "no action".to_owned();
    }
    let names: Vec<String> = actions.iter().map(ToString::to_string).collect();
    names.join(", ")
}

impl App {
    /// The actions image `image` offers, by the names [`App::act`] takes: its result's own
    /// buttons where the provider kept them, else what the provider plays on such an image;
    /// none on an imported image or an unfinished generation.
    pub async fn actions(&self, actor: Actor, image: ImageId) -> Result<Vec<String>, AppError> {
        let source = self.visible_image(actor, image).await?;
        let parent = self.catalogue.generation(source.generation_id).await?;
        if parent.kind == GenerationKind::Import || parent.status != GenerationStatus::Succeeded {
            return Ok(Vec::new());
        }
        Ok(self
            .offered(&parent, source.role)
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    /// What image `role` of generation `g` offers: a grid its grid actions, an upscale (or a
    /// U1–U4 result) the actions on one picture, anything else none.
    pub(super) fn offered(&self, g: &Generation, role: Role) -> Vec<Action> {
        let index = shown(role, g.action());
        if index.is_none() && role != Role::Grid {
            return Vec::new();
        }
        self.providers
            .offers(&g.provider, &g.provider_refs, role, index)
    }
}

/// The upscale an image of role `role` is, for the actions on one picture, in a generation
/// `made_by` an action: an upscale is its own; a U1–U4 result acts like the upscale it is, and
/// so does a video grid's clip or an extended clip (its message carries the clip's buttons).
fn shown(role: Role, made_by: Option<Action>) -> Option<u8> {
    match (role, made_by) {
        (Role::Upscale(i), _) => Some(i),
        (Role::Variant(1), Some(Action::Upscale { index } | Action::VideoUpscale { index })) => {
            Some(index)
        }
        (Role::Variant(1), Some(Action::Extend { .. })) => Some(1),
        _ => None,
    }
}

/// What an image is, in an error message.
fn media_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "picture",
        MediaKind::Video => "clip",
    }
}

impl App {
    /// Queues a /describe of a stored image: the provider proposes four prompts for it.
    pub async fn describe(
        &self,
        actor: Actor,
        image: ImageId,
        provider: Option<&str>,
    ) -> Result<Generation, AppError> {
        self.describe_notified(actor, image, provider, None, None)
            .await
    }

    /// [`App::describe`], with a notify hook and the caller's reference.
    pub async fn describe_notified(
        &self,
        actor: Actor,
        image: ImageId,
        provider: Option<&str>,
        hook: Option<NotifyHook>,
        reference: Option<&str>,
    ) -> Result<Generation, AppError> {
        let reference = client_reference(reference)?;
        self.visible_image(actor, image).await?;
        let mut parameters = crate::domain::Parameters::default();
        parameters
            .extra
            .insert("inputs".into(), serde_json::json!([image.to_string()]));
        self.enqueue_with_inputs(
            actor,
            GenerationKind::Describe,
            format!("describe {image}"),
            parameters,
            provider,
            (hook, reference),
        )
        .await
    }

    /// Queues a /shorten of `request`'s prompt (with its provider, its provider settings such
    /// as the niji bot, and its client reference): the provider proposes shorter prompts for it, saved with the
    /// generation as /describe's are; no picture is made.
    pub async fn shorten(
        &self,
        actor: Actor,
        request: crate::domain::GenerationRequest,
        hook: Option<NotifyHook>,
    ) -> Result<Generation, AppError> {
        let request = self.check_shorten(request)?;
        let parameters = crate::domain::Parameters {
            extra: request.extra.clone(),
            ..crate::domain::Parameters::default()
        };
        self.enqueue_with_inputs(
            actor,
            GenerationKind::Shorten,
            request.prompt,
            parameters,
            request.provider.as_deref(),
            (hook, request.client_reference),
        )
        .await
    }

    /// Refuses a /shorten request before anything is written: the prompt is held to a
    /// generation's rules (not blank, not too long, no banned word), not to its model's
    /// parameter rules, since /shorten analyses any prompt; and the provider must shorten.
    pub fn check_shorten(
        &self,
        request: crate::domain::GenerationRequest,
    ) -> Result<crate::domain::GenerationRequest, AppError> {
        shorten_request(request, &self.banned_words, &self.providers)
    }

    /// Queues a /blend of 2 to 5 stored images into a new grid; `dimensions` is `portrait`,
    /// `square` or `landscape`.
    pub async fn blend(
        &self,
        actor: Actor,
        images: &[ImageId],
        dimensions: Option<&str>,
        upscale: &UpscaleSelection,
        provider: Option<&str>,
    ) -> Result<Generation, AppError> {
        self.blend_notified(actor, images, dimensions, upscale, provider, None, None)
            .await
    }

    /// [`App::blend`], with a notify hook and the caller's reference.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is one of the request's fields"
    )]
    pub async fn blend_notified(
        &self,
        actor: Actor,
        images: &[ImageId],
        dimensions: Option<&str>,
        upscale: &UpscaleSelection,
        provider: Option<&str>,
        hook: Option<NotifyHook>,
        reference: Option<&str>,
    ) -> Result<Generation, AppError> {
        let reference = client_reference(reference)?;
        if !(2..=5).contains(&images.len()) {
            return Err(AppError::Invalid(format!(
                "blend takes 2 to 5 images, not {}",
                images.len()
            )));
        }
        if let Some(d) = dimensions
            && !matches!(d, "portrait" | "square" | "landscape")
        {
            return Err(AppError::Invalid(format!(
                "dimensions must be portrait, square or landscape, not {d:?}"
            )));
        }
        for image in images {
            self.visible_image(actor, *image).await?;
        }
        let mut parameters = crate::domain::Parameters {
            upscale: upscale.indices().to_vec(),
            ..crate::domain::Parameters::default()
        };
        let ids: Vec<String> = images.iter().map(ToString::to_string).collect();
        parameters
            .extra
            .insert("inputs".into(), serde_json::json!(ids));
        if let Some(d) = dimensions {
            parameters
                .extra
                .insert("dimensions".into(), serde_json::json!(d));
        }
        let prompt = format!("blend of {}", ids.join(" "));
        self.enqueue_with_inputs(
            actor,
            GenerationKind::Blend,
            prompt,
            parameters,
            provider,
            (hook, reference),
        )
        .await
    }

    async fn enqueue_with_inputs(
        &self,
        actor: Actor,
        kind: GenerationKind,
        prompt: String,
        parameters: crate::domain::Parameters,
        provider: Option<&str>,
        (hook, client_reference): (Option<NotifyHook>, Option<String>),
    ) -> Result<Generation, AppError> {
        let provider = self
            .providers
            .serving(provider, kind, None)
            .map_err(AppError::Invalid)?;
        let generation = Generation {
            client_reference,
            ..Generation::queued(provider, kind, prompt, parameters)
        };
        self.enqueue_hooked(actor, generation, hook.map(|h| h.0))
            .await
    }
}
