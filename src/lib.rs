//! dkim-setup: sets up DKIM signing for Postfix with OpenDKIM, and keeps it healthy.
//!
//! The crate is a library with a thin binary (`src/main.rs`). A run computes a
//! [`plan::Plan`] first, without touching the machine, then shows or applies it
//! ([`apply`]). Every path goes through [`system::Root`], every process through
//! [`system::runner::Runner`].

#[macro_use]
pub mod say;

pub mod answers_file;
pub mod apply;
pub mod ask;
pub mod assets;
pub mod check;
pub mod cli;
pub mod distro;
pub mod dkim_verify;
pub mod dns;
pub mod dns_lookup;
pub mod edit;
pub mod error;
pub mod interrupt;
pub mod journal;
pub mod key_safety;
pub mod keys;
pub mod milter;
pub mod packages;
pub mod plan;
pub mod progress;
pub mod revert;
pub mod rotate;
pub mod selinux;
pub mod services;
pub mod setup;
pub mod system;
pub mod validate;
pub mod wizard;

use anyhow::Result;
use cli::{Cli, Command};

/// Run a parsed command line; returns the exit code for success paths.
pub fn run(cli: Cli) -> Result<u8> {
    match &cli.command {
        Command::Wizard(args) => wizard::run(&cli.global, args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Revert(args) => revert::run(&cli.global, args),
        Command::Rotate(args) => rotate::run(&cli.global, args),
        Command::Status(args) => rotate::status(&cli.global, args),
        Command::Completions(args) => assets::print_completions(args),
        Command::Manpage => assets::print_manpage(),
        Command::Dns(args) => {
            let root = root_of(&cli.global)?;
            let distro = distro::detect(&root)?;
            let mut only = Vec::new();
            for d in &args.domains {
                only.push(validate::domain(d)?);
            }
            let found = dns::configured_records(&root, distro.profile().opendkim_conf, &only)?;
            let format = if cli.global.json {
                dns::Format::Json
            } else {
                args.format
            };
            out!("{}", dns::render(&found.records, format));
            match found.problems.split_last() {
                None => Ok(0),
                Some((last, others)) => {
                    for problem in others {
                        errln!("error: {problem}");
                    }
                    Err(error::Reported(anyhow::anyhow!("{last}")).into())
                }
            }
        }
    }
}

/// The tree a command acts on: `/`, or `--root DIR`, which must exist.
pub fn root_of(global: &cli::Global) -> Result<system::Root> {
    let base = global.root.clone().unwrap_or_else(|| "/".into());
    if !base.is_dir() {
        return Err(error::bad_hint(
            format!("the root directory '{}' does not exist", base.display()),
            "give --root the directory that holds the system tree (its etc/, usr/, var/)",
        ));
    }
    // `--root /tmp/..` or a link to / is the live system, and must be
    // treated as one (root needed, services started, no chroot).
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let root = system::Root::new(base);
    if !root.is_live() {
        say::set_root(&root.base().display().to_string());
    }
    Ok(root)
}

/// The tree a changing command acts on, and its distribution: a live
/// system needs root, except for a dry run (exit 2 otherwise).
pub fn changing_root(global: &cli::Global) -> Result<(system::Root, distro::Distro)> {
    let root = root_of(global)?;
    let distro = distro::detect(&root)?;
    if root.is_live() && !global.dry_run && !nix::unistd::geteuid().is_root() {
        return Err(error::bad_hint(
            "dkim-setup must run as root to change this system",
            "run it with sudo, or add --dry-run to only see what it would change",
        ));
    }
    Ok((root, distro))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(root: &str) -> cli::Global {
        cli::Global {
            root: Some(root.into()),
            dry_run: false,
            json: false,
            verbose: 0,
            quiet: false,
        }
    }

    #[test]
    fn a_root_that_leads_back_to_slash_is_the_live_system() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("slash");
        std::os::unix::fs::symlink("/", &link).unwrap();
        assert!(
            root_of(&global(&link.display().to_string()))
                .unwrap()
                .is_live()
        );
        assert!(root_of(&global("/tmp/..")).unwrap().is_live());
        assert!(
            !root_of(&global(&dir.path().display().to_string()))
                .unwrap()
                .is_live()
        );
    }
}
