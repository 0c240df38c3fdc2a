//! Command-line flags, as `../spec.md` lists them.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dkim-setup",
    version,
    about = "Set up DKIM signing for Postfix with OpenDKIM"
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
    Wizard(WizardArgs),
    /// Print the DNS records to publish for the configured domains
    Dns(DnsArgs),
    /// Prove that an installed setup signs, and that DNS matches
    Check(CheckArgs),
    /// Undo the last (or a named) run from its journal, byte for byte
    Revert(RevertArgs),
    /// Replace a domain's key without a signing gap: new key, activate, retire
    Rotate(RotateArgs),
    /// Per domain: selector, key, age, pending rotation, rotation due
    Status(StatusArgs),
    /// Print the shell completion script for SHELL
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
    /// RSA key size: 1024 (warns), 2048, 3072 or 4096 [default: 2048]
    #[arg(long, value_name = "N")]
    pub bits: Option<u32>,
    /// Allow a 4096-bit key, whose DNS record many providers truncate
    #[arg(long)]
    pub allow_long_key: bool,
    /// Where opendkim listens; Postfix is pointed at the same place
    #[arg(long, default_value = "inet:8891@127.0.0.1", value_name = "SPEC")]
    pub socket: String,
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
