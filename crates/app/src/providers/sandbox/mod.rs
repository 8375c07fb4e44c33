//! The `sandbox` provider, the embedded default when no real provider is configured.
//!
//! It draws deterministic synthetic grids from the prompt and seed (see `draw.rs`), reports
//! progress in steps like Midjourney does, and delivers PNG bytes like a real provider would,
//! so the whole pipeline runs for real. Its images are flagged synthetic.

pub mod draw;

use std::time::Duration;

use async_trait::async_trait;

use super::{Delivery, Provider, ProviderError, ProviderJob, Reporter};
use crate::domain::ErrorCode;

/// The percentages Midjourney typically reports while rendering.
const STEPS: [f64; 7] = [0.0, 15.0, 31.0, 46.0, 62.0, 78.0, 93.0];

#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Side of the grid in pixels; each upscale is half of it.
    pub size: u32,
    /// Total time to render a grid; an upscale takes a quarter of it.
    pub delay: Duration,
}

impl Sandbox {
    /// The seed of a generation: the user's, else one derived from the generation id, so a
    /// retried job draws the same picture.
    fn seed(job: &ProviderJob) -> u32 {
        job.parameters.seed.unwrap_or_else(|| {
            let id = job.generation_id.as_uuid().as_u128();
            (id ^ (id >> 64) ^ (id >> 32)) as u32
        })
    }

    async fn wait_with_progress(&self, total: Duration, report: &dyn Reporter) {
        let step = total / STEPS.len() as u32;
        for pct in STEPS {
            report.progress(pct).await;
            if !step.is_zero() {
                tokio::time::sleep(step).await;
            }
        }
    }

    async fn draw(
        &self,
        job: &ProviderJob,
        quadrant: Option<u8>,
    ) -> Result<Delivery, ProviderError> {
        let (prompt, seed, size) = (job.prompt.clone(), Self::seed(job), self.size);
        let drawn = tokio::task::spawn_blocking(move || {
            let pixels = match quadrant {
                None => draw::grid(&prompt, seed, size),
                Some(i) => draw::quadrant(&prompt, seed, size / 2, i),
            };
            pixels.encode_png()
        })
        .await
        .map_err(|e| ProviderError::new(ErrorCode::Internal, format!("drawing failed: {e}")))?
        .map_err(|e| ProviderError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(Delivery { bytes: drawn })
    }
}

#[async_trait]
impl Provider for Sandbox {
    async fn render(
        &self,
        job: &ProviderJob,
        report: &dyn Reporter,
    ) -> Result<Delivery, ProviderError> {
        self.wait_with_progress(self.delay, report).await;
        self.draw(job, None).await
    }

    async fn upscale(
        &self,
        job: &ProviderJob,
        index: u8,
        report: &dyn Reporter,
    ) -> Result<Delivery, ProviderError> {
        if !(1..=4).contains(&index) {
            return Err(ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("there is no upscale {index}; a grid has four"),
            ));
        }
        self.wait_with_progress(self.delay / 4, report).await;
        self.draw(job, Some(index)).await
    }
}
