//! Midjourney's model versions: the ones `--v`/`--version` and `--niji` select.

use std::fmt;

/// One model version. The rules differ between versions, so every check names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V1,
    V2,
    V3,
    V4,
    V5,
    V5_1,
    V5_2,
    V6,
    V6_1,
    V7,
    V8,
    V8_1,
    Niji4,
    Niji5,
    Niji6,
    Niji7,
}

impl Version {
    /// The Midjourney bot's default model: V8.1 since June 2026.
    pub const DEFAULT: Self = Self::V8_1;
    /// The niji・journey bot's default model, and what `--niji` alone selects: niji 7 since
    /// January 2026.
    pub const NIJI_DEFAULT: Self = Self::Niji7;

    /// Every version, Midjourney's first, newest last, then niji's.
    pub const ALL: &'static [Self] = &[
        Self::V1,
        Self::V2,
        Self::V3,
        Self::V4,
        Self::V5,
        Self::V5_1,
        Self::V5_2,
        Self::V6,
        Self::V6_1,
        Self::V7,
        Self::V8,
        Self::V8_1,
        Self::Niji4,
        Self::Niji5,
        Self::Niji6,
        Self::Niji7,
    ];

    /// The `--v` values Midjourney accepts, with the version each selects.
    const V_VALUES: &'static [(&'static str, Self)] = &[
        ("1", Self::V1),
        ("2", Self::V2),
        ("3", Self::V3),
        ("4", Self::V4),
        ("5", Self::V5),
        ("5.0", Self::V5),
        ("5.1", Self::V5_1),
        ("5.2", Self::V5_2),
        ("6", Self::V6),
        ("6.0", Self::V6),
        ("6.1", Self::V6_1),
        ("7", Self::V7),
        ("7.0", Self::V7),
        ("8", Self::V8),
        ("8.0", Self::V8),
        ("8.1", Self::V8_1),
    ];

    /// The `--niji` values, `""` being `--niji` alone.
    const NIJI_VALUES: &'static [(&'static str, Self)] = &[
        ("", Self::NIJI_DEFAULT),
        ("4", Self::Niji4),
        ("5", Self::Niji5),
        ("6", Self::Niji6),
        ("7", Self::Niji7),
    ];

    /// The version a `--v`/`--version` value selects.
    pub fn from_v(value: &str) -> Option<Self> {
        Self::V_VALUES
            .iter()
            .find(|(v, _)| *v == value)
            .map(|&(_, version)| version)
    }

    /// The version a `--niji` value selects (`""`: the latest niji).
    pub fn from_niji(value: &str) -> Option<Self> {
        Self::NIJI_VALUES
            .iter()
            .find(|(v, _)| *v == value)
            .map(|&(_, version)| version)
    }

    pub fn is_niji(self) -> bool {
        matches!(self, Self::Niji4 | Self::Niji5 | Self::Niji6 | Self::Niji7)
    }

    /// The number as Midjourney writes it: `7`, `8.1`, `6` (of niji 6).
    pub fn number(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
            Self::V3 => "3",
            Self::V4 | Self::Niji4 => "4",
            Self::V5 | Self::Niji5 => "5",
            Self::V5_1 => "5.1",
            Self::V5_2 => "5.2",
            Self::V6 | Self::Niji6 => "6",
            Self::V6_1 => "6.1",
            Self::V7 | Self::Niji7 => "7",
            Self::V8 => "8",
            Self::V8_1 => "8.1",
        }
    }

    /// What `--v` accepts, for messages: `1, 2, …, 8 or 8.1`.
    pub(crate) fn v_choices() -> String {
        let mut seen: Vec<&str> = Vec::new();
        for &(_, version) in Self::V_VALUES {
            if !seen.contains(&version.number()) {
                seen.push(version.number());
            }
        }
        crate::table::or_list(&seen)
    }
}

/// As the bot names it in its refusals: `--version 7`, `--niji 6`.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_niji() {
            write!(f, "--niji {}", self.number())
        } else {
            write!(f, "--version {}", self.number())
        }
    }
}
