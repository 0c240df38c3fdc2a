//! The two kinds of failure a user sees: bad input (exit 2) and everything else (exit 1).
//!
//! Bad input is refused before anything is written; it carries a message that
//! names the value and, where one is known, a hint line with the fix.

use std::fmt;

/// Input the tool refuses: an invalid flag value, an unsupported system, a
/// missing answer without a terminal, or not being root. Maps to exit code 2.
#[derive(Debug)]
pub struct BadInput {
    pub message: String,
    pub hint: Option<String>,
}

impl BadInput {
    pub fn new(message: impl Into<String>) -> Self {
        BadInput {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadInput {}

/// Shorthand for returning a [`BadInput`] wrapped in `anyhow::Error`.
pub fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput::new(message).into()
}

/// Shorthand for a [`BadInput`] with a hint line.
pub fn bad_hint(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    BadInput::new(message).hint(hint).into()
}

/// An error whose JSON report was already printed; `main` prints only the
/// human message for it.
#[derive(Debug)]
pub struct Reported(pub anyhow::Error);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Reported {}

/// Ctrl-C (or SIGTERM, SIGHUP) during apply, after everything was restored
/// (exit 130, 143, 129). Carries
/// what was restored.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted ({})\n{}", crate::interrupt::what(), self.0)
    }
}

impl std::error::Error for Interrupted {}
