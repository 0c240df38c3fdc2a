//! How a run shows its steps: plain status lines, or live progress lines.
//!
//! Without a terminal (scripts, CI, `--json`), each step is one plain line
//! on stderr as it begins, with no escape sequence ever. On a terminal, each
//! step is one line with a spinner while it runs, which ends as `✔` (done),
//! `–` (skipped, with why) or `✘` (failed, with the error).

use crate::apply::Progress;
use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::time::Duration;

/// Plain status lines on stderr, silenced by `-q`.
pub struct Lines {
    pub quiet: bool,
}

impl Progress for Lines {
    fn step(&self, verb: &str, text: &str) {
        if !self.quiet {
            errln!("{verb:>11} {text}");
        }
    }
}

/// Live progress lines on a terminal.
#[derive(Default)]
pub struct Bars {
    current: RefCell<Option<(ProgressBar, String)>>,
}

impl Bars {
    fn finish(&self, mark: String, text: String) {
        if let Some((bar, _)) = self.current.borrow_mut().take() {
            bar.set_style(ProgressStyle::with_template("{msg}").expect("static template"));
            bar.finish_with_message(format!("{mark} {text}"));
        }
    }

    fn line(text: String) {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{msg}").expect("static template"));
        bar.finish_with_message(text);
    }
}

impl Progress for Bars {
    fn step(&self, verb: &str, text: &str) {
        if let Some((_, label)) = self.current.borrow().clone() {
            self.finish(style("✔").green().to_string(), label);
        }
        let label = format!("{verb} {text}");
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let spinner =
            ProgressStyle::with_template("{spinner:.cyan} {msg}").expect("static template");
        bar.set_style(spinner);
        bar.set_message(label.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        *self.current.borrow_mut() = Some((bar, label));
    }

    fn done(&self) {
        let label = self.current.borrow().as_ref().map(|(_, l)| l.clone());
        if let Some(label) = label {
            self.finish(style("✔").green().to_string(), label);
        }
    }

    fn failed(&self, error: &str) {
        let label = self.current.borrow().as_ref().map(|(_, l)| l.clone());
        if let Some(label) = label {
            let first = error.lines().next().unwrap_or("");
            self.finish(style("✘").red().to_string(), format!("{label}: {first}"));
        }
    }

    fn skipped(&self, text: &str, why: &str) {
        Bars::line(format!("{} {text} (skipped: {why})", style("–").dim()));
    }

    fn warn(&self, text: &str) {
        Bars::line(format!("{} {text}", style("warning:").yellow()));
    }
}
