//! Printing: one JSON document on stdout with `--json`; otherwise plain lines on stdout, and
//! human notices and progress on stderr only when it is a terminal.

use std::io::{IsTerminal, Write};

use serde::Serialize;

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
            AppError::Conflict(_) => "conflict",
            AppError::Failed(f) => f.code.as_str(),
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
