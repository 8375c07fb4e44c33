//! The sandbox as a video model: one real clip a render (see `clip.rs`), delivered as a
//! provider of clips delivers it, after the provider's own percentage has run. It takes no
//! negative prompt and plays no action. Registered as `sandbox-video` when
//! `[providers.sandbox.video]` is enabled.

use std::time::Duration;

use async_trait::async_trait;

use super::{ClipSpec, Sandbox, draw_clip};
use crate::domain::ErrorCode;
use crate::providers::{
    Capabilities, Output, Provider, ProviderError, ProviderJob, Reporter, Shape,
};

/// Draws one clip per render.
#[derive(Clone, Debug)]
pub struct Video {
    pub spec: ClipSpec,
    /// Time before the clip is delivered (the provider's own percentage runs meanwhile).
    pub delay: Duration,
}

#[async_trait]
impl Provider for Video {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shape: Shape::Separate { count: 1 },
            video: true,
            negative_prompt: false,
            actions: &[],
            describe: false,
            shorten: false,
            blend: false,
            image_prompts: false,
        }
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let seed = job.refs["seed"]
            .as_u64()
            .map_or_else(|| Sandbox::seed(job), |s| s as u32);
        report.save_refs(serde_json::json!({"seed": seed})).await?;
        Sandbox::wait_with_progress(self.delay, report).await;
        let (prompt, spec) = (job.prompt.clone(), self.spec);
        let bytes = tokio::task::spawn_blocking(move || draw_clip(&prompt, seed, &spec))
            .await
            .map_err(|e| ProviderError::new(ErrorCode::Internal, format!("drawing failed: {e}")))?
            .map_err(|e| ProviderError::new(ErrorCode::Internal, e.to_string()))?;
        report
            .output(Output::video(1, self.spec.format, bytes))
            .await
    }
}
