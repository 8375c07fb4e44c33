//! A generation and its life cycle: status, phase and progress (product.md §4.2).

use time::OffsetDateTime;

use super::{ErrorCode, Failure, GenerationId, Parameters, UserId};
use crate::domain::Category;

/// `queued` → `submitted` → `running` → `succeeded` | `failed` | `canceled`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GenerationStatus {
    Queued,
    Submitted,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl GenerationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Submitted => "submitted",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "submitted" => Self::Submitted,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }

    /// Statuses only move forward. A retried job may report `submitted` again while already
    /// `running`; that is not a transition and is ignored by the caller.
    pub fn can_become(self, next: Self) -> bool {
        use GenerationStatus::{Canceled, Failed, Queued, Running, Submitted, Succeeded};
        matches!(
            (self, next),
            (Queued, Submitted | Running)
                | (Submitted, Running)
                | (Queued | Submitted | Running, Succeeded | Failed | Canceled)
        )
    }
}

/// Where a Midjourney-style flow stands; orthogonal to the status.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    GridRendering,
    GridCompleted,
    UpscalesInProgress,
    /// A render's separate outputs are being stored, as they come.
    OutputsInProgress,
    Completed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GridRendering => "grid_rendering",
            Self::GridCompleted => "grid_completed",
            Self::UpscalesInProgress => "upscales_in_progress",
            Self::OutputsInProgress => "outputs_in_progress",
            Self::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "grid_rendering" => Self::GridRendering,
            "grid_completed" => Self::GridCompleted,
            "upscales_in_progress" => Self::UpscalesInProgress,
            "outputs_in_progress" => Self::OutputsInProgress,
            "completed" => Self::Completed,
            _ => return None,
        })
    }
}

/// What a generation asked the provider for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GenerationKind {
    Imagine,
    Upscale,
    Variation,
    Reroll,
    Zoom,
    Pan,
    Describe,
    /// Shorter versions of a prompt (/shorten): prompts, no picture.
    Shorten,
    Blend,
    /// A video made from a picture or a clip: Animate, Extend.
    Animate,
    Import,
}

impl GenerationKind {
    /// Whether its result is prompts (saved with the generation) rather than pictures:
    /// /describe and /shorten.
    pub fn makes_prompts(self) -> bool {
        matches!(self, Self::Describe | Self::Shorten)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imagine => "imagine",
            Self::Upscale => "upscale",
            Self::Variation => "variation",
            Self::Reroll => "reroll",
            Self::Zoom => "zoom",
            Self::Pan => "pan",
            Self::Describe => "describe",
            Self::Shorten => "shorten",
            Self::Blend => "blend",
            Self::Animate => "animate",
            Self::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "imagine" => Self::Imagine,
            "upscale" => Self::Upscale,
            "variation" => Self::Variation,
            "reroll" => Self::Reroll,
            "zoom" => Self::Zoom,
            "pan" => Self::Pan,
            "describe" => Self::Describe,
            "shorten" => Self::Shorten,
            "blend" => Self::Blend,
            "animate" => Self::Animate,
            "import" => Self::Import,
            _ => return None,
        })
    }
}

/// One generation as the catalogue holds it.
#[derive(Clone, PartialEq, Debug)]
pub struct Generation {
    pub id: GenerationId,
    /// The user who asked for it; `None` for the operator's (the CLI on the data's machine).
    pub owner: Option<UserId>,
    pub provider: String,
    pub account: Option<String>,
    pub kind: GenerationKind,
    pub parent_id: Option<GenerationId>,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub parameters: Parameters,
    pub category: Option<Category>,
    pub subject: Option<String>,
    /// The caller's own reference (the midjourney-proxy's `state`), kept as given and shown
    /// back; checked by [`super::check_client_reference`].
    pub client_reference: Option<String>,
    pub version: u32,
    pub status: GenerationStatus,
    pub phase: Option<Phase>,
    /// 0–100, never goes down.
    pub progress: f64,
    pub error: Option<Failure>,
    /// Provider references (message id, job hash…) needed to resume after a crash.
    pub provider_refs: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
}

impl Generation {
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error.as_ref().map(|f| f.code)
    }

    /// A new queued generation of `kind`, with a fresh id and life cycle.
    pub fn queued(
        provider: String,
        kind: GenerationKind,
        prompt: String,
        parameters: Parameters,
    ) -> Self {
        Self {
            id: GenerationId::new(),
            owner: None,
            provider,
            account: None,
            kind,
            parent_id: None,
            prompt,
            negative_prompt: None,
            parameters,
            category: None,
            subject: None,
            client_reference: None,
            version: 0,
            status: GenerationStatus::Queued,
            phase: None,
            progress: 0.0,
            error: None,
            provider_refs: serde_json::json!({}),
            created_at: OffsetDateTime::now_utc(),
            started_at: None,
            completed_at: None,
        }
    }

    /// A new queued generation that asks for what `self` asked (provider, prompt,
    /// parameters, category and subject), as a child of `self`, with a fresh life cycle; not
    /// the caller's reference, which each request brings of its own.
    #[must_use]
    pub fn child(&self) -> Self {
        let fresh = Self::queued(
            self.provider.clone(),
            self.kind,
            self.prompt.clone(),
            self.parameters.clone(),
        );
        Self {
            parent_id: Some(self.id),
            owner: self.owner,
            account: self.account.clone(),
            negative_prompt: self.negative_prompt.clone(),
            category: self.category,
            subject: self.subject.clone(),
            ..fresh
        }
    }

    /// The action on the parent this generation performs, if it is one (kept in the
    /// parameters under `action`).
    pub fn action(&self) -> Option<super::Action> {
        self.parameters
            .extra
            .get("action")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::GenerationStatus::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(Queued.can_become(Submitted));
        assert!(Submitted.can_become(Running));
        assert!(Running.can_become(Succeeded));
        assert!(Queued.can_become(Canceled));
        assert!(!Running.can_become(Queued));
        assert!(!Succeeded.can_become(Running));
        assert!(!Failed.can_become(Succeeded));
        assert!(!Canceled.can_become(Failed));
        for s in [Queued, Submitted, Running, Succeeded, Failed, Canceled] {
            assert_eq!(super::GenerationStatus::parse(s.as_str()), Some(s));
        }
    }
}
