//! The sandbox in the other shape: `count` separate pictures per render, each delivered as
//! soon as it is drawn, as an HTTP image model asked for several outputs does. It takes no
//! negative prompt and plays no action, so those refusals are exercised offline too.

use std::time::Duration;

use async_trait::async_trait;

use super::{Sandbox, draw};
use crate::domain::ErrorCode;
use crate::providers::{
    Capabilities, Output, Provider, ProviderError, ProviderJob, Reporter, Shape,
};

/// Draws `count` separate pictures per render.
#[derive(Clone, Debug)]
pub struct Separate {
    /// Side of each picture in pixels.
    pub size: u32,
    /// Time before the first picture (the provider's own percentage runs meanwhile); each
    /// further one comes a `count`-th of it later.
    pub delay: Duration,
    /// Pictures per render (at least one).
    pub count: u8,
}

impl Separate {
    fn count(&self) -> u8 {
        self.count.max(1)
    }
}

/// Picture `index` (from 1) of a render with `seed`: the quadrants of the grid drawn with
/// `seed`, then of the next seeds', four by four.
fn picture(prompt: &str, seed: u32, side: u32, index: u8) -> Result<Vec<u8>, ProviderError> {
    let n = index.saturating_sub(1);
    draw::quadrant(prompt, seed.wrapping_add(u32::from(n / 4)), side, n % 4 + 1)
        .encode_png()
        .map_err(|e| ProviderError::new(ErrorCode::Internal, e.to_string()))
}

#[async_trait]
impl Provider for Separate {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shape: Shape::Separate {
                count: self.count(),
            },
            video: false,
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
        let apart = self.delay / u32::from(self.count());
        for index in 1..=self.count() {
            if index > 1 && !apart.is_zero() {
                tokio::time::sleep(apart).await;
            }
            let (prompt, side) = (job.prompt.clone(), self.size);
            let bytes = tokio::task::spawn_blocking(move || picture(&prompt, seed, side, index))
                .await
                .map_err(|e| {
                    ProviderError::new(ErrorCode::Internal, format!("drawing failed: {e}"))
                })??;
            report.output(Output::image(index, bytes)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_differ_and_repeat_for_the_same_seed() {
        let all: Vec<Vec<u8>> = (1..=6)
            .map(|i| picture("six apart", 9, 32, i).unwrap())
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b, "two outputs of one render are the same picture");
            }
        }
        assert_eq!(picture("six apart", 9, 32, 5).unwrap(), all[4]);
    }

    #[test]
    fn capabilities_say_separate_outputs_and_nothing_else() {
        let none = Separate {
            size: 16,
            delay: Duration::ZERO,
            count: 0,
        };
        let caps = none.capabilities();
        assert_eq!(caps.shape, Shape::Separate { count: 1 });
        assert!(!caps.negative_prompt && caps.actions.is_empty());
        assert!(!caps.describe && !caps.blend && !caps.video);
    }
}
