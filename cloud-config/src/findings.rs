//! Findings (errors, warnings, notes) with positions. A leaf: the parsers
//! and checkers all make them; `report.rs` collects them for one file.

use std::fmt;

use serde::Serialize;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The configuration will not be applied as written.
    Error,
    /// Probably a mistake; the rest of the configuration still applies.
    Warning,
    /// Worth knowing; nothing is wrong as such.
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        })
    }
}

/// One thing to tell the user, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub line: usize,
    pub column: usize,
    pub level: Level,
    pub message: String,
}

impl Finding {
    pub fn new(line: usize, column: usize, level: Level, message: impl Into<String>) -> Self {
        Finding {
            line,
            column,
            level,
            message: message.into(),
        }
    }

    pub fn error(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self::new(line, column, Level::Error, message)
    }

    pub fn warning(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self::new(line, column, Level::Warning, message)
    }

    pub fn info(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self::new(line, column, Level::Info, message)
    }
}
