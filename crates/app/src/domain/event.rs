//! Life-cycle events. Persisted with a per-generation sequence number so they can be replayed;
//! SSE and webhooks carry the same JSON.

use time::OffsetDateTime;

use super::{Failure, GenerationId, GenerationStatus, ImageId, Phase};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventKind {
    Created,
    Submitted,
    Progress,
    GridCompleted,
    UpscaleCompleted,
    /// One of a render's separate outputs is stored (with `index`).
    OutputCompleted,
    Completed,
    Failed,
    Canceled,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        Self::Created,
        Self::Submitted,
        Self::Progress,
        Self::GridCompleted,
        Self::UpscaleCompleted,
        Self::OutputCompleted,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "generation.created",
            Self::Submitted => "generation.submitted",
            Self::Progress => "generation.progress",
            Self::GridCompleted => "generation.grid_completed",
            Self::UpscaleCompleted => "generation.upscale_completed",
            Self::OutputCompleted => "generation.output_completed",
            Self::Completed => "generation.completed",
            Self::Failed => "generation.failed",
            Self::Canceled => "generation.canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// One event about one generation.
#[derive(Clone, PartialEq, Debug)]
pub struct Event {
    pub generation_id: GenerationId,
    /// 1, 2, 3… per generation, without gaps.
    pub seq: u64,
    pub kind: EventKind,
    pub at: OffsetDateTime,
    pub status: GenerationStatus,
    pub phase: Option<Phase>,
    pub progress: f64,
    /// The upscale number, for `generation.upscale_completed`.
    pub index: Option<u8>,
    pub image_id: Option<ImageId>,
    pub error: Option<Failure>,
}
