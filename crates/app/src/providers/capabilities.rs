//! What a provider declares it can do: the shape of a render's results, whether it may deliver
//! clips, whether it takes a negative prompt or image prompts, and which actions, /describe and
//! /blend it plays.
//! The engine drives a job by it, and `Providers::check` refuses what a provider cannot serve
//! before anything is written.

use crate::domain::{Action, ActionName, GenerationKind};

/// A provider's declared abilities.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each flag is a yes-or-no declaration of its own, not a state"
)]
pub struct Capabilities {
    /// What one render delivers.
    pub shape: Shape,
    /// It may deliver clips ([`super::OutputKind::Video`]) as well as pictures.
    pub video: bool,
    /// It takes a negative prompt (what the result must not show).
    pub negative_prompt: bool,
    /// The actions on earlier results it plays (Midjourney's buttons).
    pub actions: &'static [ActionName],
    /// It reads a picture and proposes prompts for it (/describe).
    pub describe: bool,
    /// It proposes shorter versions of a prompt (/shorten).
    pub shorten: bool,
    /// It blends several pictures into one result (/blend).
    pub blend: bool,
    /// It takes image prompts: stored pictures an /imagine starts from (Midjourney's URLs at
    /// the start of the prompt).
    pub image_prompts: bool,
}

/// What one render delivers, which decides how the engine maps it onto the progress scale.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// A 2×2 grid, then its upscales 1–4, each asked for alone ([`super::Provider::upscale`])
    /// or cut from the stored grid (`local_split`): Midjourney's flow. Grid stored at 50, the
    /// upscales share the second half.
    GridWithUpscales,
    /// `count` separate outputs (at least one), delivered as they come; they share the second
    /// half of the scale evenly.
    Separate { count: u8 },
}

impl Capabilities {
    /// Midjourney's pictures, which the sandbox mimics: a grid with upscales, every picture
    /// action, /describe and /blend, a negative prompt (`--no`), image prompts, no clips. The Midjourney
    /// provider adds video to it (clips, [`ActionName::VIDEO`]).
    pub const MIDJOURNEY: Self = Self {
        shape: Shape::GridWithUpscales,
        video: false,
        negative_prompt: true,
        actions: &ActionName::ALL,
        describe: true,
        shorten: true,
        blend: true,
        image_prompts: true,
    };

    /// Whether it plays `action`.
    pub fn plays(&self, action: Action) -> bool {
        self.actions.contains(&action.name())
    }

    /// Refuses, in one line naming `provider`, a job these abilities cannot serve: a
    /// /describe, a /blend or an action it does not play.
    pub fn serves(
        &self,
        provider: &str,
        kind: GenerationKind,
        action: Option<Action>,
    ) -> Result<(), String> {
        if let Some(action) = action {
            return if self.plays(action) {
                Ok(())
            } else {
                Err(format!("provider {provider:?} does not play {action}"))
            };
        }
        match kind {
            GenerationKind::Describe if !self.describe => {
                Err(format!("provider {provider:?} does not describe pictures"))
            }
            GenerationKind::Shorten if !self.shorten => {
                Err(format!("provider {provider:?} does not shorten prompts"))
            }
            GenerationKind::Blend if !self.blend => {
                Err(format!("provider {provider:?} does not blend pictures"))
            }
            _ => Ok(()),
        }
    }

    /// Refuses image prompts a provider would drop silently.
    pub fn takes_image_prompts(&self, provider: &str, count: usize) -> Result<(), String> {
        if count > 0 && !self.image_prompts {
            return Err(format!(
                "provider {provider:?} takes no image prompts; leave them out"
            ));
        }
        Ok(())
    }

    /// Refuses a negative prompt a provider would drop silently.
    pub fn takes_negative_prompt(
        &self,
        provider: &str,
        negative_prompt: Option<&str>,
    ) -> Result<(), String> {
        if negative_prompt.is_some() && !self.negative_prompt {
            return Err(format!(
                "provider {provider:?} takes no negative prompt; leave it out"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUR_IMAGES: Capabilities = Capabilities {
        shape: Shape::Separate { count: 4 },
        video: false,
        negative_prompt: false,
        actions: &[ActionName::Reroll],
        describe: false,
        shorten: false,
        blend: false,
        image_prompts: false,
    };

    #[test]
    fn midjourney_plays_everything_it_declares() {
        let mj = Capabilities::MIDJOURNEY;
        for name in ["u1", "v2", "reroll"] {
            let action = Action::parse(name, None).unwrap();
            assert!(mj.serves("midjourney", action.kind(), Some(action)).is_ok());
        }
        let pan = Action::parse("pan-up", Some(2)).unwrap();
        assert!(mj.plays(pan));
        assert!(mj.serves("mj", GenerationKind::Describe, None).is_ok());
        assert!(mj.serves("mj", GenerationKind::Blend, None).is_ok());
        assert!(mj.takes_negative_prompt("mj", Some("text")).is_ok());
        assert!(mj.takes_image_prompts("mj", 5).is_ok());
    }

    #[test]
    fn what_is_not_declared_is_refused_by_name() {
        let caps = FOUR_IMAGES;
        let reroll = Action::parse("reroll", None).unwrap();
        assert!(caps.serves("four", reroll.kind(), Some(reroll)).is_ok());
        let u1 = Action::parse("u1", None).unwrap();
        let refused = caps.serves("four", u1.kind(), Some(u1)).unwrap_err();
        assert_eq!(refused, "provider \"four\" does not play u1");
        assert!(
            caps.serves("four", GenerationKind::Describe, None)
                .unwrap_err()
                .contains("describe")
        );
        assert!(
            caps.serves("four", GenerationKind::Blend, None)
                .unwrap_err()
                .contains("blend")
        );
        assert!(caps.serves("four", GenerationKind::Imagine, None).is_ok());
        assert!(caps.takes_negative_prompt("four", None).is_ok());
        assert!(caps.takes_image_prompts("four", 0).is_ok());
        assert_eq!(
            caps.takes_image_prompts("four", 1).unwrap_err(),
            "provider \"four\" takes no image prompts; leave them out"
        );
        assert!(
            caps.takes_negative_prompt("four", Some("blur"))
                .unwrap_err()
                .contains("no negative prompt")
        );
    }
}
