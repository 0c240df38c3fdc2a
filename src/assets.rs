//! Shell completions and the man page, generated from the clap definitions.
//!
//! An administrator who installs dkim-setup from a package expects
//! `man dkim-setup` and tab completion to work. Both come from the same
//! `clap::Command` that parses the flags, so they cannot drift from it:
//! `dkim-setup completions SHELL` prints the completion script
//! (clap_complete), and the hidden `dkim-setup manpage` prints one roff page
//! (clap_mangen) that documents the global options and, in a section of its
//! own, every subcommand with its options. `scripts/package` runs both on
//! the release binary and ships the results in the .deb and the .rpm.
//!
//! Neither needs root, a supported system or Postfix: they only print text.

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};
use std::io::Write;

/// The name the completions and the man page are written for.
const BIN: &str = "dkim-setup";

/// `dkim-setup completions SHELL`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// The subcommands a user can type: every subcommand that is not hidden,
/// in the order of the definitions (`help` is added by clap later).
pub fn visible_subcommands() -> Vec<clap::Command> {
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect()
}

/// The completion script for `shell`. clap_complete also completes hidden
/// subcommands, so it is given the command line without them.
pub fn completions(shell: Shell) -> Vec<u8> {
    let full = Cli::command();
    let mut cmd = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default())
        .subcommand_required(full.is_subcommand_required_set())
        .args(full.get_arguments().cloned())
        .subcommands(visible_subcommands());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    if shell == Shell::Bash {
        out = bash_state_fix(&String::from_utf8_lossy(&out)).into_bytes();
    }
    out
}

/// clap_complete (4.6.12 and before, clap-rs/clap#6421) spells bash's state
/// for a subcommand of a hyphenated binary two ways: the loop that reads the
/// words arrives at `dkim__setup__subcmd__wizard`, the case arms that offer
/// the options say `dkim__subcmd__setup__subcmd__wizard`, so no subcommand's
/// options would ever complete. The arms are given the loop's spelling; once
/// clap_complete is fixed this changes nothing.
fn bash_state_fix(script: &str) -> String {
    let wrong = format!("{}__subcmd__", BIN.replace('-', "__subcmd__"));
    let right = format!("{}__subcmd__", BIN.replace('-', "__"));
    script.replace(&wrong, &right)
}

/// The man page, dkim-setup(1), as roff source.
pub fn manpage() -> Result<String> {
    let man = Man::new(Cli::command().subcommand_value_name("COMMAND"))
        .title("DKIM-SETUP")
        .section("1")
        .date(page_date())
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .manual("User Commands");
    let mut page = preamble();
    page.push_str(&section(|w| man.render_title(w))?);
    page.push_str(&section(|w| man.render_name_section(w))?);
    page.push_str(&section(|w| man.render_synopsis_section(w))?);
    page.push_str(&body(&description()));
    page.push_str(&section(|w| man.render_options_section(w))?);
    page.push_str(&body(&commands_heading()));
    for sub in visible_subcommands() {
        page.push_str(&command_section(sub, BIN)?);
    }
    page.push_str(&body(&closing_sections()));
    Ok(page)
}

/// Print the completion script for `shell` on stdout.
pub fn print_completions(args: &CompletionsArgs) -> Result<u8> {
    write_stdout(&completions(args.shell))?;
    Ok(0)
}

/// Print the man page on stdout.
pub fn print_manpage() -> Result<u8> {
    write_stdout(manpage()?.as_bytes())?;
    Ok(0)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("could not write to stdout")
}

/// The page's date, YYYY-MM-DD: that of `SOURCE_DATE_EPOCH` when set (so a
/// package build is reproducible; scripts/package sets it to the last
/// commit's time), otherwise today's.
fn page_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to the proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// What every rendered piece starts with (the apostrophe definitions); only
/// the page's first piece keeps it.
fn preamble() -> String {
    Roff::new().render()
}

/// A roff piece without its preamble.
fn body(roff: &Roff) -> String {
    let text = roff.render();
    match text.strip_prefix(&preamble()) {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// One of clap_mangen's sections, without its preamble.
fn section(render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<String> {
    let mut out = Vec::new();
    render(&mut out)?;
    let text = String::from_utf8(out).context("the man page is not UTF-8")?;
    Ok(match text.strip_prefix(&preamble()) {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// A section heading of clap_mangen's (`.SH OPTIONS`) dropped, so that its
/// items can stand under a subcommand's `.SS`.
fn without_headings(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn description() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "dkim-setup sets up DKIM signing for Postfix with OpenDKIM on Debian, Ubuntu and \
         RHEL-family servers, and keeps it healthy. One run installs OpenDKIM, edits \
         /etc/opendkim.conf, writes the KeyTable, SigningTable and TrustedHosts, generates the \
         keys with safe ownership, wires the milter settings into Postfix's main.cf, checks the \
         new configuration, restarts only what changed, proves that opendkim answers on its \
         socket, and prints the DNS records to publish.",
    )]);
    r.control("PP", []);
    r.text([roman(
        "Every change is planned first, backed up, and restored if anything fails. A second run \
         with the same answers changes nothing and restarts nothing. With ",
    )]);
    r.text([
        bold("--non-interactive"),
        roman(" it never prompts, and with "),
        bold("--json"),
        roman(" it prints one JSON document on standard output, for provisioning tools."),
    ]);
    r
}

fn commands_heading() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["COMMANDS"]);
    r.text([roman(
        "The global options above are accepted by every command, before or after its name.",
    )]);
    r
}

/// `.SS "dkim-setup NAME"`: what the command does, its synopsis and its
/// options; then the same for its own subcommands, if it has any.
fn command_section(sub: clap::Command, parent: &str) -> Result<String> {
    let name = format!("{parent} {}", sub.get_name());
    let nested: Vec<clap::Command> = sub
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    let about = sub
        .get_long_about()
        .or_else(|| sub.get_about())
        .map(|a| a.to_string());
    let man = Man::new(sub.bin_name(&name).disable_help_flag(true));

    let mut head = Roff::new();
    head.control("SS", [name.as_str()]);
    for line in about.iter().flat_map(|a| a.lines()) {
        head.text([roman(line)]);
    }
    head.control("PP", []);
    let mut text = body(&head);
    text.push_str(&without_headings(&section(|w| {
        man.render_synopsis_section(w)
    })?));
    text.push_str(&without_headings(&section(|w| {
        man.render_options_section(w)
    })?));
    for sub in nested {
        text.push_str(&command_section(sub, &name)?);
    }
    Ok(text)
}

fn closing_sections() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        (
            "0",
            "done, whether anything changed or not; check: every check passed",
        ),
        (
            "1",
            "failed, with every file it had started changing restored; check: a problem was found",
        ),
        (
            "2",
            "bad usage or input: an unknown flag, an invalid domain or selector, a missing answer \
             without a terminal, an unsupported system, or not root where root is needed; \
             nothing was changed",
        ),
        (
            "130, 143, 129",
            "interrupted by Ctrl-C, SIGTERM or SIGHUP while applying; files were restored first",
        ),
    ] {
        r.control("TP", []);
        r.text([bold(code)]);
        r.text([roman(meaning)]);
    }

    r.control("SH", ["FILES"]);
    for (path, meaning) in [
        (
            "/etc/opendkim.conf",
            "edited in place; comments and unknown settings are kept",
        ),
        (
            "/etc/opendkim/KeyTable, /etc/opendkim/SigningTable, /etc/opendkim/TrustedHosts",
            "the tables; lines for other domains are kept",
        ),
        (
            "/etc/opendkim/keys/DOMAIN/SELECTOR.private",
            "the private keys, 0600, owned by the opendkim user; never overwritten",
        ),
        ("/etc/postfix/main.cf", "the milter settings"),
        (
            "/var/lib/dkim-setup/",
            "the journal of each run (for revert), the run lock, and the rotation state",
        ),
        (
            "/var/backups/dkim-setup/",
            "a copy of every file a run modified, as it was before",
        ),
    ] {
        r.control("TP", []);
        r.text([italic(path)]);
        r.text([roman(meaning)]);
    }

    r.control("SH", ["ENVIRONMENT"]);
    r.control("TP", []);
    r.text([bold("DKIM_SETUP_LOG")]);
    r.text([roman(
        "a tracing filter (such as debug) that replaces the level chosen by -v and -q",
    )]);

    r.control("SH", ["EXAMPLES"]);
    for (example, meaning) in [
        (
            "dkim-setup wizard",
            "ask, show the plan, and apply it on Enter",
        ),
        (
            "dkim-setup wizard -y -d example.com --json",
            "set up signing for example.com unattended, and print one JSON document",
        ),
        (
            "dkim-setup wizard -y -d example.com --dry-run",
            "show every diff and command, and change nothing",
        ),
        ("dkim-setup dns --format bind", "the records to publish"),
        (
            "dkim-setup check",
            "prove signing, key safety and the published DNS record",
        ),
        ("dkim-setup revert", "undo the last run, byte for byte"),
    ] {
        r.control("TP", []);
        r.text([bold(example)]);
        r.text([roman(meaning)]);
    }

    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("opendkim"),
        roman("(8), "),
        bold("opendkim.conf"),
        roman("(5), "),
        bold("postconf"),
        roman("(5); the flags, the files and the JSON schema in detail: "),
        italic("/usr/share/doc/dkim-setup/usage.md"),
    ]);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_shell_gets_a_script_naming_every_subcommand() {
        for shell in Shell::value_variants() {
            let script = String::from_utf8(completions(*shell)).unwrap();
            for sub in visible_subcommands() {
                assert!(
                    script.contains(sub.get_name()),
                    "{shell} completions lack '{}'",
                    sub.get_name()
                );
            }
        }
    }

    #[test]
    fn the_hidden_manpage_command_is_neither_completed_nor_documented() {
        assert!(
            !visible_subcommands()
                .iter()
                .any(|c| c.get_name() == "manpage")
        );
        let page = manpage().unwrap();
        assert!(!page.contains("dkim-setup manpage"));
        for shell in Shell::value_variants() {
            let script = String::from_utf8(completions(*shell)).unwrap();
            assert!(!script.contains("manpage"), "{shell} completes manpage");
        }
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
    }

    #[test]
    fn the_page_has_one_preamble_and_a_section_per_subcommand() {
        let page = manpage().unwrap();
        assert!(page.starts_with(&preamble()));
        assert_eq!(page.matches(preamble().as_str()).count(), 1);
        assert!(page.contains(".TH DKIM-SETUP 1"));
        for sub in visible_subcommands() {
            let heading = format!(".SS \"dkim-setup {}\"", sub.get_name());
            assert!(page.contains(&heading), "no {heading}");
        }
        // Options of a subcommand are under it, and --domain is there.
        assert!(page.contains("\\-\\-domain"));
        // No references to pages that are not shipped.
        assert!(!page.contains("dkim-setup-wizard(1)"));
    }
}
