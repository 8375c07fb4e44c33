//! Printing: one JSON document on stdout with `--json`; otherwise plain lines on stdout, and
//! human notices and progress on stderr only when it is a terminal.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::api::EventView;
use crate::domain::EventKind;
use crate::error::AppError;

pub struct Out {
    pub json: bool,
    pub tty: bool,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// The command's result: JSON with `--json`, else the human text.
    pub fn result(&self, value: &impl Serialize, human: impl FnOnce() -> String) {
        if self.json {
            self.print_json(value);
        } else {
            self.text(&human());
        }
    }

    pub fn print_json(&self, value: &impl Serialize) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| {
            format!("{{\"error\":{{\"code\":\"internal\",\"message\":\"{e}\"}}}}")
        });
        self.text(&text);
    }

    pub fn text(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
    }

    /// A notice for a person at a terminal.
    pub fn notice(&self, text: &str) {
        if self.tty && !self.json {
            eprintln!("{text}");
        }
    }

    pub fn error(&self, e: &AppError) {
        let code = match e {
            AppError::Invalid(_) => "invalid_input",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) | AppError::WrongState(_) => "conflict",
            AppError::QueueFull(_) => "queue_full",
            AppError::Forbidden(_) => "forbidden",
            AppError::InsufficientCredits { .. } => "insufficient_credits",
            AppError::Failed(f) => f.code.as_str(),
            AppError::Unreachable(_) => "unreachable",
            AppError::Remote { code, .. } => code,
            _ => "internal",
        };
        eprintln!("error: {e}");
        if self.json {
            self.print_json(
                &serde_json::json!({"error": {"code": code, "message": e.to_string()}}),
            );
        }
    }
}

/// The line a person at a terminal sees for an event that carries a notice (a `.progress`
/// event whose `error` does not end the generation: a job waiting for Discord, an account
/// taken out of the pool); `None` for every other event.
pub fn notice_line(event: &EventView) -> Option<String> {
    if event.kind != EventKind::Progress.as_str() {
        return None;
    }
    let notice = event.error.as_ref()?;
    Some(format!("note: {}", notice.message))
}

#[cfg(test)]
mod tests {
    use super::notice_line;
    use crate::domain::{ErrorCode, Event, EventKind, Failure, GenerationId, GenerationStatus};

    fn event(kind: EventKind, error: Option<Failure>) -> Event {
        Event {
            generation_id: GenerationId::new(),
            seq: 3,
            kind,
            at: time::OffsetDateTime::UNIX_EPOCH,
            status: GenerationStatus::Running,
            phase: None,
            progress: 25.0,
            index: None,
            image_id: None,
            error,
        }
    }

    #[test]
    fn only_progress_notices_make_a_line() {
        let waiting = Failure::new(
            ErrorCode::ProviderUnavailable,
            "waiting for Midjourney account main: cannot connect to ws://127.0.0.1:9: connection refused",
        );
        assert_eq!(
            notice_line(&(&event(EventKind::Progress, Some(waiting.clone()))).into()).as_deref(),
            Some(
                "note: waiting for Midjourney account main: cannot connect to ws://127.0.0.1:9: connection refused"
            )
        );
        assert_eq!(
            notice_line(&(&event(EventKind::Progress, None)).into()),
            None
        );
        // A failure is the command's error, printed once at the end, not a notice.
        assert_eq!(
            notice_line(&(&event(EventKind::Failed, Some(waiting))).into()),
            None
        );
    }
}
