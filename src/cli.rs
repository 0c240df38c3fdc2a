//! Command-line flags, as `../spec.md` lists them.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dkim-setup",
    version,
    max_term_width = 80,
    about = "Set up DKIM signing for Postfix with OpenDKIM",
    after_help = "\
Examples:
  # Ask what is missing, show the plan, apply it on Enter
  dkim-setup wizard
  # Unattended, for scripts: sign for example.com
  dkim-setup wizard -y -d example.com
  # The DNS records to publish, in zone-file form
  dkim-setup dns --format bind
  # Prove signing, key safety and the published record
  dkim-setup check
  # Undo the last run
  dkim-setup revert

Run 'dkim-setup COMMAND --help' for each command's options and examples."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Act on the system tree at DIR instead of /
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Show the full plan (diffs, commands, keys) and change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Print one JSON document on stdout; human text goes to stderr
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up DKIM signing step by step
    #[command(after_help = "\
Examples:
  # At a terminal: ask what is missing, show the plan, apply it on Enter
  dkim-setup wizard
  # Unattended, two domains
  dkim-setup wizard -y -d example.com -d example.org
  # Every diff and command, changing nothing
  dkim-setup wizard -y -d example.com --dry-run
  # Save this run's answers, then replay them on every server of a fleet,
  # each signing with its own selector (mx1 on mx1.example.com)
  dkim-setup wizard -d example.com --selector-from-hostname \\
      --save-answers fleet.toml
  dkim-setup wizard --answers fleet.toml
  # Two key slots behind CNAMEs, for rotation without DNS edits per domain
  dkim-setup wizard -y -d example.com --rotation cname \\
      --slot-host mail.example.net")]
    Wizard(WizardArgs),
    /// Print the DNS records to publish for the configured domains
    #[command(after_help = "\
Examples:
  # One line per record, the value unquoted (for web control panels)
  dkim-setup dns
  # Zone-file form, the value split into quoted strings
  dkim-setup dns --format bind --domain example.com
  # JSON: [{name, type, value, strings}]
  dkim-setup dns --format json")]
    Dns(DnsArgs),
    /// Prove that an installed setup signs, and that DNS matches
    #[command(after_help = "\
Examples:
  # Every check, every configured domain
  dkim-setup check
  # One domain, asking the zone's own name server (no caches)
  dkim-setup check --domain example.com --nameserver 192.0.2.53")]
    Check(CheckArgs),
    /// Undo the last (or a named) run from its journal, byte for byte
    #[command(after_help = "\
Examples:
  # The runs recorded on this system
  dkim-setup revert --list
  # Undo the last run
  dkim-setup revert
  # What undoing a given run would do
  dkim-setup revert 20261204T101500.000000Z-4242 --dry-run")]
    Revert(RevertArgs),
    /// Replace a domain's key without a signing gap: new key, activate, retire
    #[command(after_help = "\
Examples:
  # 1. A new key beside the old one; prints the record to publish
  dkim-setup rotate --domain example.com
  # 2. Once DNS serves it: sign with the new key
  dkim-setup rotate --domain example.com --activate
  # 3. A week later: remove the old key
  dkim-setup rotate --domain example.com --retire")]
    Rotate(RotateArgs),
    /// Per domain: selector, key, age, pending rotation, rotation due
    #[command(after_help = "\
Examples:
  # Key ages and pending rotations
  dkim-setup status
  # For cron: exit 1 when a key is older than 180 days
  dkim-setup status --max-age 180 --fail-if-due")]
    Status(StatusArgs),
    /// Print the shell completion script for SHELL
    #[command(after_help = "\
Examples:
  # Bash, for every user (the .deb and .rpm ship it already)
  dkim-setup completions bash > /etc/bash_completion.d/dkim-setup
  # Zsh and fish, for yourself
  dkim-setup completions zsh > ~/.zfunc/_dkim-setup
  dkim-setup completions fish > ~/.config/fish/completions/dkim-setup.fish")]
    Completions(crate::assets::CompletionsArgs),
    /// Print the man page (roff), for packaging
    #[command(hide = true)]
    Manpage,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Domain to rotate (repeatable)
    #[arg(short, long = "domain", value_name = "DOMAIN")]
    pub domains: Vec<String>,
    /// Every configured domain
    #[arg(long, conflicts_with = "domains")]
    pub all: bool,
    /// Selector of the new key [default: the other of key and key1]
    #[arg(long, value_name = "NAME")]
    pub new_selector: Option<String>,
    /// Switch signing to the pending key, once DNS serves it
    #[arg(long)]
    pub activate: bool,
    /// Remove the old key after the retention period
    #[arg(long)]
    pub retire: bool,
    /// Retention period before --retire, in days after the activation [default: 7]
    #[arg(long, value_name = "DAYS")]
    pub after: Option<u64>,
    /// Skip the DNS check of --activate, or the retention period of --retire
    #[arg(long)]
    pub force: bool,
    /// Ask this DNS server (e.g. the zone's authoritative one) for --activate
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,
    /// RSA size of the new key [default: the current key's]
    #[arg(long, value_name = "N")]
    pub bits: Option<u32>,
    /// Allow a 4096-bit key, whose DNS record many providers truncate
    #[arg(long)]
    pub allow_long_key: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Mark a key older than this as due for rotation
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub max_age: u64,
    /// Exit 1 when a rotation is due (for cron and monitoring)
    #[arg(long)]
    pub fail_if_due: bool,
    /// Ask this DNS server whether pending keys are published
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevertArgs {
    /// The run to undo, as `revert --list` shows it [default: the last completed run]
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// List the runs recorded on this system
    #[arg(long, conflicts_with_all = ["run", "force"])]
    pub list: bool,
    /// Also put back files changed by hand (or by a later run) since that run
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only this domain (repeatable)
    #[arg(short, long = "domain", value_name = "DOMAIN")]
    pub domains: Vec<String>,
    /// Ask this DNS server (e.g. the zone's authoritative one) instead of the system resolver
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WizardArgs {
    /// Domain to sign for (repeatable)
    #[arg(short, long = "domain", value_name = "DOMAIN")]
    pub domains: Vec<String>,
    /// DKIM selector [default: key, or the domain's configured one]
    #[arg(short, long, value_name = "NAME")]
    pub selector: Option<String>,
    /// Selector from the host name's first label (mx1 on mx1.example.com), for fleets
    #[arg(long, conflicts_with = "selector")]
    pub selector_from_hostname: bool,
    /// RSA key size: 1024 (warns), 2048, 3072 or 4096 [default: 2048]
    #[arg(long, value_name = "N")]
    pub bits: Option<u32>,
    /// Allow a 4096-bit key, whose DNS record many providers truncate
    #[arg(long)]
    pub allow_long_key: bool,
    /// Where opendkim listens; Postfix is pointed at the same place [default: inet:8891@127.0.0.1]
    #[arg(long, value_name = "SPEC")]
    pub socket: Option<String>,
    /// Extra InternalHosts/ExternalIgnoreList entry (repeatable); loopback is always there
    #[arg(long = "trusted-host", value_name = "HOST")]
    pub trusted_hosts: Vec<String>,
    /// opendkim ReportAddress
    #[arg(long, value_name = "ADDR")]
    pub report_address: Option<String>,
    /// Do not install packages
    #[arg(long)]
    pub no_install: bool,
    /// Write everything but do not enable, start or restart services
    #[arg(long)]
    pub no_restart: bool,
    /// Never prompt; a missing answer is an error
    #[arg(short = 'y', long)]
    pub non_interactive: bool,
    /// Rotation scheme: a new selector per domain, or two key slots behind CNAMEs
    #[arg(long, value_enum, value_name = "SCHEME")]
    pub rotation: Option<Rotation>,
    /// With --rotation cname: the host whose dkim_a/dkim_b TXT records hold the keys
    #[arg(long, value_name = "HOST")]
    pub slot_host: Option<String>,
    /// Replay the answers saved in FILE (TOML), unattended; flags override them
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Write this run's answers to FILE (TOML), for --answers on other servers
    #[arg(long, value_name = "FILE")]
    pub save_answers: Option<PathBuf>,
    /// Where the values an answers file gave came from (not a flag).
    #[arg(skip)]
    pub from_file: Option<crate::answers_file::Origin>,
}

/// How keys are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rotation {
    /// A new selector per domain (key, key1, ...)
    Selector,
    /// Two key slots shared by all domains, behind CNAMEs published once
    Cname,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Only this domain (repeatable)
    #[arg(short, long = "domain", value_name = "DOMAIN")]
    pub domains: Vec<String>,
    /// Output form
    #[arg(long, value_enum, default_value = "plain")]
    pub format: crate::dns::Format,
}
