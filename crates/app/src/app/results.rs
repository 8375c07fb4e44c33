//! What a request will end with, for front-ends that answer with the results themselves
//! rather than with a generation to follow (the drop-in OpenAI Images route): whether its
//! provider renders a grid, which parameters it takes by name, how many pictures it ends with.

use super::App;
use crate::domain::GenerationRequest;
use crate::error::AppError;
use crate::providers::{Registered, Shape};

impl App {
    fn registered(&self, provider: Option<&str>) -> Result<&Registered, AppError> {
        let name = self.provider_name(provider)?;
        self.providers
            .get(&name)
            .ok_or_else(|| AppError::Invalid(format!("unknown provider {name:?}")))
    }

    /// Whether the provider asked for (else the default) renders a 2×2 grid with upscales,
    /// rather than separate pictures.
    pub fn renders_grid(&self, provider: Option<&str>) -> Result<bool, AppError> {
        Ok(self.registered(provider)?.provider.capabilities().shape == Shape::GridWithUpscales)
    }

    /// Whether the provider asked for (else the default) may deliver clips (`--video` makes
    /// a video only there).
    pub fn makes_clips(&self, provider: Option<&str>) -> Result<bool, AppError> {
        Ok(self.registered(provider)?.provider.capabilities().video)
    }

    /// Whether that provider takes `parameter` (by its service's API name) as its own.
    pub fn takes_parameter(
        &self,
        provider: Option<&str>,
        parameter: &str,
    ) -> Result<bool, AppError> {
        Ok(self.registered(provider)?.provider.takes(parameter))
    }

    /// The pictures a generation of `request` ends with: on a grid, the upscales it asks for
    /// (the grid itself when none); else the separate outputs its parameters make.
    pub fn results_count(&self, request: &GenerationRequest) -> Result<u8, AppError> {
        let registered = self.registered(request.provider.as_deref())?;
        Ok(match registered.provider.capabilities().shape {
            Shape::GridWithUpscales => request.upscale.count().max(1),
            Shape::Separate { .. } => registered.provider.outputs(&request.parameters()?),
        })
    }
}
