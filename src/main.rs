//! The binary: parse flags, set up logging, run, map errors to exit codes
//! (0 done, 1 failed, 2 bad input).

use clap::Parser;
use dkim_setup::cli::Cli;
use dkim_setup::error::{BadInput, Interrupted, Reported};
use dkim_setup::{errln, outln};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let usage = e.use_stderr();
            // A script that asked for JSON gets one document even for a typo.
            if usage && std::env::args().any(|a| a == "--json") {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("bad usage");
                let message = first.strip_prefix("error: ").unwrap_or(first);
                let doc = serde_json::json!({"changed": false, "error": message});
                outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            }
            return ExitCode::from(if usage { 2 } else { 0 });
        }
    };
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DKIM_SETUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let (json, dry_run) = (cli.global.json, cli.global.dry_run);
    let err = match dkim_setup::run(cli) {
        Ok(code) => return ExitCode::from(code),
        Err(err) => err,
    };

    let interrupted = err.downcast_ref::<Interrupted>().is_some()
        || err
            .downcast_ref::<Reported>()
            .is_some_and(|r| r.0.is::<Interrupted>());
    let (message, hint, code) = match err.downcast_ref::<BadInput>() {
        Some(bad) => (bad.message.clone(), bad.hint.clone(), 2),
        None if interrupted => (format!("{err:#}"), None, dkim_setup::interrupt::exit_code()),
        None => (format!("{err:#}"), None, 1),
    };
    if json && err.downcast_ref::<Reported>().is_none() {
        let mut doc = serde_json::json!({"changed": false, "dry_run": dry_run, "error": message});
        if let Some(hint) = &hint {
            doc["hint"] = serde_json::json!(hint);
        }
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    errln!("error: {message}");
    if let Some(hint) = hint {
        errln!("hint: {hint}");
    }
    ExitCode::from(code)
}
