//! The binary: parse flags, set up logging, run, map errors to exit codes
//! (0 done, 1 failed, 2 bad input).

use clap::Parser;
use dkim_setup::cli::Cli;
use dkim_setup::error::BadInput;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
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
        .init();

    match dkim_setup::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if let Some(bad) = err.downcast_ref::<BadInput>() {
                eprintln!("error: {}", bad.message);
                if let Some(hint) = &bad.hint {
                    eprintln!("hint: {hint}");
                }
                return ExitCode::from(2);
            }
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
