//! The `sandbox` provider, the embedded default when no real provider is configured.
//!
//! It draws deterministic synthetic grids from the prompt and seed (see `draw.rs`), reports
//! progress in steps like Midjourney does, and delivers PNG bytes like a real provider would,
//! so the whole pipeline runs for real. Its images are flagged synthetic.
//! `separate.rs` is the same drawing in the other shape: several separate pictures a render.
//! `clip.rs` draws real clips (H.264 MP4 or animated WebP, written by `mp4_writer.rs` and
//! libwebp) for `video.rs`, the sandbox that delivers one clip a render, and for the
//! simulators of other providers.

pub mod clip;
pub mod draw;
mod memo;
mod mp4_writer;
mod separate;
mod video;

pub use clip::{ClipError, ClipSpec, draw_clip};
pub use separate::Separate;
pub use video::Video;

use std::time::Duration;

use async_trait::async_trait;

use super::{Capabilities, Output, Provider, ProviderError, ProviderJob, Reporter};
use crate::domain::{Action, ErrorCode, GenerationKind};

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

    async fn wait_with_progress(total: Duration, report: &dyn Reporter) {
        let step = total / STEPS.len() as u32;
        for pct in STEPS {
            report.progress(pct).await;
            if !step.is_zero() {
                tokio::time::sleep(step).await;
            }
        }
    }

    /// The seed an action starts from: the one its parent drew with.
    fn parent_seed(job: &ProviderJob) -> u32 {
        job.parent_refs["seed"]
            .as_u64()
            .map_or_else(|| Self::seed(job), |s| s as u32)
    }

    async fn draw(&self, job: &ProviderJob, what: Picture) -> Result<Vec<u8>, ProviderError> {
        let (prompt, size, generation) = (job.prompt.clone(), self.size, job.generation_id);
        let drawn = tokio::task::spawn_blocking(move || {
            let pixels = match what {
                Picture::Grid(seed) => {
                    let (grid, quadrants) = draw::grid_and_quadrants(&prompt, seed, size);
                    memo::keep(generation, seed, quadrants);
                    grid
                }
                Picture::Quadrant(seed, i, edge) => memo::take(generation, seed, edge, i)
                    .unwrap_or_else(|| draw::quadrant(&prompt, seed, edge, i)),
            };
            pixels.encode_png()
        })
        .await
        .map_err(|e| ProviderError::new(ErrorCode::Internal, format!("drawing failed: {e}")))?
        .map_err(|e| ProviderError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(drawn)
    }
}

impl Sandbox {
    /// "Describes" a picture the way a sandbox can: by its size and colours, in four
    /// phrasings, saved as the generation's prompts; no picture is delivered.
    async fn describe(job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let input = job.inputs.first().ok_or_else(|| {
            ProviderError::new(ErrorCode::InvalidParameter, "describe needs an image")
        })?;
        let bytes = input.bytes.clone();
        let analysed = tokio::task::spawn_blocking(move || crate::pipeline::process_image(bytes))
            .await
            .map_err(|e| ProviderError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| ProviderError::new(ErrorCode::IntegrityFailed, e.to_string()))?;
        let (w, h) = (analysed.width, analysed.height);
        let gcd = (1..=w.min(h))
            .rev()
            .find(|d| w % d == 0 && h % d == 0)
            .unwrap_or(1);
        let (w, h) = (w / gcd, h / gcd);
        let colour = analysed.dominant.hex();
        let shape = match w.cmp(&h) {
            std::cmp::Ordering::Greater => "a wide landscape",
            std::cmp::Ordering::Less => "a tall portrait",
            std::cmp::Ordering::Equal => "a square scene",
        };
        let prompts = vec![
            format!("{shape} dominated by {colour}, soft light --ar {w}:{h}"),
            format!("{shape} in shades of {colour}, painterly texture --ar {w}:{h}"),
            format!("synthetic study of {colour} forms, {shape} --ar {w}:{h}"),
            format!("{colour} palette, {shape}, detailed, grain --ar {w}:{h}"),
        ];
        report
            .save_refs(serde_json::json!({"prompts": prompts}))
            .await
    }
}

/// "Shortens" a prompt the way a sandbox can: five versions keeping fewer and fewer of its
/// words (the small ones dropped first), each with the prompt's parameters; deterministic.
fn shortened(prompt: &str) -> Vec<String> {
    const SMALL: [&str; 16] = [
        "a", "an", "the", "of", "in", "on", "at", "with", "and", "by", "for", "to", "very", "is",
        "its", "from",
    ];
    let (text, tail) = match prompt.find(" --") {
        Some(at) => prompt.split_at(at),
        None => (prompt, ""),
    };
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !SMALL.contains(&w.to_ascii_lowercase().as_str()))
        .collect();
    let words = if words.is_empty() {
        text.split_whitespace().collect()
    } else {
        words
    };
    let mut out: Vec<String> = Vec::new();
    for tenths in [9, 7, 5, 3, 1] {
        let keep = (words.len() * tenths).div_ceil(10).max(1);
        let short = format!("{}{tail}", words[..keep.min(words.len())].join(" "));
        if !out.contains(&short) {
            out.push(short);
        }
    }
    out
}

/// A seed drawn from pictures' bytes (FNV-1a over every 97th byte).
fn pictures_seed(inputs: &[super::Input]) -> u32 {
    inputs
        .iter()
        .flat_map(|i| i.bytes.iter().step_by(97))
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        })
}

/// What to draw.
#[derive(Clone, Copy)]
enum Picture {
    Grid(u32),
    /// Quadrant `index` of the grid drawn with `seed`, `side` pixels square.
    Quadrant(u32, u8, u32),
}

#[async_trait]
impl Provider for Sandbox {
    fn capabilities(&self) -> Capabilities {
        Capabilities::MIDJOURNEY
    }

    async fn render(&self, job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        let Some(picture) = self.picture(job, report).await? else {
            return Ok(());
        };
        let bytes = self.draw(job, picture).await?;
        report.output(Output::image(1, bytes)).await
    }

    async fn upscale(
        &self,
        job: &ProviderJob,
        index: u8,
        report: &dyn Reporter,
    ) -> Result<Output, ProviderError> {
        if !(1..=4).contains(&index) {
            return Err(ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("there is no upscale {index}; a grid has four"),
            ));
        }
        Self::wait_with_progress(self.delay / 4, report).await;
        let seed = job.refs["seed"]
            .as_u64()
            .map_or_else(|| Self::seed(job), |s| s as u32);
        let bytes = self
            .draw(job, Picture::Quadrant(seed, index, self.size / 2))
            .await?;
        Ok(Output::image(index, bytes))
    }

    async fn release(&self, job: &ProviderJob) {
        memo::forget(job.generation_id);
    }
}

impl Sandbox {
    /// What a render draws, once its progress is reported and its seed saved; `None` for
    /// /describe and /shorten, which draw nothing.
    async fn picture(
        &self,
        job: &ProviderJob,
        report: &dyn Reporter,
    ) -> Result<Option<Picture>, ProviderError> {
        Self::wait_with_progress(self.delay, report).await;
        match job.kind {
            GenerationKind::Describe => return Self::describe(job, report).await.map(|()| None),
            GenerationKind::Shorten => {
                let prompts = shortened(&job.prompt);
                report
                    .save_refs(serde_json::json!({"prompts": prompts}))
                    .await?;
                return Ok(None);
            }
            GenerationKind::Blend => {
                // A new scene seeded by the inputs' bytes: the same inputs blend the same way.
                let seed = pictures_seed(&job.inputs);
                report.save_refs(serde_json::json!({"seed": seed})).await?;
                return Ok(Some(Picture::Grid(seed)));
            }
            _ => {}
        }
        let Some(action) = job.action else {
            // Image prompts steer the drawing as they steer Midjourney's: the first picture's
            // bytes mixed into the seed, so the same pictures and prompt draw the same grid.
            let seed = match job.inputs.first() {
                Some(first) => Self::seed(job) ^ pictures_seed(std::slice::from_ref(first)),
                None => Self::seed(job),
            };
            report.save_refs(serde_json::json!({"seed": seed})).await?;
            return Ok(Some(Picture::Grid(seed)));
        };
        // Actions redraw from the parent's seed: U1–U4 are exactly its quadrants, the
        // upscalers its quadrant at twice the size, the rest a new grid seeded by the action.
        let parent = Self::parent_seed(job);
        let picture = match action {
            Action::Upscale { index } => Picture::Quadrant(parent, index, self.size / 2),
            Action::UpscaleSubtle { index } | Action::UpscaleCreative { index } => {
                Picture::Quadrant(parent, index, self.size)
            }
            other => {
                // An action on a prompt of the caller's (Custom Zoom) draws by it too.
                let mut name = other.to_string();
                if other.takes_prompt() {
                    name.push_str(&job.prompt);
                }
                let seed = name
                    .bytes()
                    .fold(parent ^ 0x9e37_79b9, |h, b| h.rotate_left(5) ^ u32::from(b))
                    .wrapping_mul(0x0100_0193)
                    ^ u32::from(other.source() != crate::domain::Role::Grid);
                report.save_refs(serde_json::json!({"seed": seed})).await?;
                Picture::Grid(seed)
            }
        };
        Ok(Some(picture))
    }
}

#[cfg(test)]
mod tests {
    use super::shortened;

    #[test]
    fn shortening_keeps_fewer_words_and_the_parameters() {
        let prompts = shortened("a portrait of the old fisherman at dawn with a red hat --ar 2:3");
        assert_eq!(prompts[0], "portrait old fisherman dawn red hat --ar 2:3");
        assert_eq!(
            prompts.last().map(String::as_str),
            Some("portrait --ar 2:3")
        );
        // Each is shorter than the one before; none repeats.
        for pair in prompts.windows(2) {
            assert!(pair[1].len() < pair[0].len(), "{pair:?}");
        }
        // A prompt of small words only still gives something, and one word gives itself.
        assert_eq!(
            shortened("the of"),
            vec!["the of".to_owned(), "the".to_owned()]
        );
        assert_eq!(shortened("fox"), vec!["fox".to_owned()]);
    }
}
