//! `dkim-setup check`: prove that an installed setup signs, and say what to
//! fix when it does not. It reads; it never changes anything.
//!
//! 1. opendkim.conf: one Socket, a signing Mode, KeyTable and a `refile:`
//!    SigningTable, loopback among the InternalHosts, no KeyFile/Selector
//!    beside the KeyTable.
//! 2. The tables: well formed, LF only, every SigningTable key in the
//!    KeyTable; every key present, an RSA key, and safe by opendkim's rules.
//! 3. The socket: the same place in opendkim.conf, in every file that can
//!    override it, and in Postfix's milter lists; reachable from a chroot.
//! 4. The services: opendkim running and answering on its socket, Postfix
//!    running (live systems only).
//! 5. The proof: a test message from each domain, submitted to opendkim as
//!    Postfix would; the DKIM-Signature it adds must verify against the key
//!    (live systems only).
//! 6. DNS: the record at SELECTOR._domainkey.DOMAIN matches the key.
//!
//! Every check is one line: pass, fail, warn, info or skipped, with the
//! file or service concerned and, for problems, the fix.

use crate::cli::{CheckArgs, Global};
use crate::distro::{self, Profile, SocketOverride};
use crate::edit::{default_file, main_cf, opendkim_conf, tables};
use crate::key_safety::{self, Ids};
use crate::validate::{self, Socket};
use crate::{dkim_verify, dns_lookup, keys, milter, services, setup};
use anyhow::Result;
use serde::Serialize;
use std::io::IsTerminal;
use std::time::Duration;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Info,
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: String,
    pub status: Status,
    pub subject: String,
    pub message: String,
    pub fix: String,
}

/// The checks so far.
#[derive(Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, id: &str, status: Status, subject: &str, message: String, fix: &str) {
        self.checks.push(Check {
            id: id.to_string(),
            status,
            subject: subject.to_string(),
            message,
            fix: fix.to_string(),
        });
    }

    fn pass(&mut self, id: &str, subject: &str, message: String) {
        self.add(id, Status::Pass, subject, message, "");
    }

    fn fail(&mut self, id: &str, subject: &str, message: String, fix: &str) {
        self.add(id, Status::Fail, subject, message, fix);
    }

    fn warn(&mut self, id: &str, subject: &str, message: String, fix: &str) {
        self.add(id, Status::Warn, subject, message, fix);
    }

    fn skip(&mut self, id: &str, subject: &str, why: &str) {
        self.add(id, Status::Skipped, subject, why.to_string(), "");
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }
}

/// What the configuration says, as far as the later checks need it.
struct Setup {
    socket: Option<Socket>,
    keys: Vec<tables::KeyEntry>,
}

pub fn run(global: &Global, args: &CheckArgs) -> Result<u8> {
    let root = crate::root_of(global)?;
    let distro = distro::detect(&root)?;
    let mut only = Vec::new();
    for d in &args.domains {
        only.push(validate::domain(d)?);
    }
    let server = match &args.nameserver {
        Some(ns) => dns_lookup::Server::At(dns_lookup::parse_nameserver(ns)?),
        None => dns_lookup::Server::System,
    };
    let profile = distro.profile();
    let live = root.is_live();

    let mut report = Report::default();
    if let Some(setup) = check_conf(&root, profile, &mut report)? {
        let keys: Vec<_> = setup
            .keys
            .into_iter()
            .filter(|k| only.is_empty() || only.contains(&k.domain))
            .collect();
        for d in &only {
            if !keys.iter().any(|k| k.domain == *d) {
                report.fail(
                    "tables.domain",
                    d,
                    format!("no key is configured for {d}"),
                    &format!("run 'dkim-setup wizard --domain {d}'"),
                );
            }
        }
        let records = check_keys(&root, profile, &keys, &mut report)?;
        match &setup.socket {
            Some(socket) => {
                // Where opendkim really listens: a file that overrides the
                // conf decides, and Postfix must point there.
                let socket = &check_socket(&root, profile, socket, &mut report)?;
                if live {
                    let up = check_services(&root, socket, &mut report);
                    check_signing(socket, &records, up, &mut report);
                } else {
                    skip_live_checks(&mut report, OFFLINE);
                }
            }
            None => {
                let main_path = format!("{}/main.cf", profile.postfix_dir);
                report.skip("socket.agree", profile.opendkim_conf, NO_SOCKET);
                for list in ["smtpd_milters", "non_smtpd_milters"] {
                    report.skip(&format!("socket.{list}"), &main_path, NO_SOCKET);
                }
                skip_live_checks(&mut report, NO_SOCKET);
            }
        }
        for (entry, record) in &records {
            check_dns(&server, entry, record.as_deref(), &mut report);
        }
    }

    print(global, &report);
    Ok(if report.failed() { 1 } else { 0 })
}

/// Why the service and signing checks do not run on a tree.
const OFFLINE: &str = "offline tree (--root)";

/// Why the checks that need opendkim's socket do not run.
const NO_SOCKET: &str = "no usable Socket in opendkim.conf";

/// The service checks and the signing proof, skipped for `why`.
fn skip_live_checks(report: &mut Report, why: &str) {
    report.skip("service.opendkim", "opendkim", why);
    report.skip("service.postfix", "postfix", why);
    report.skip("signing", "opendkim", why);
}

/// What the self-check of a setup run looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// opendkim.conf, the tables and the keys: what opendkim reads, and
    /// what `opendkim -n` does not check (platform note P12).
    Opendkim,
    /// Also Postfix's milter lists against opendkim's socket.
    Postfix,
}

/// The failures `check` would report for the files as they are now, without
/// services or DNS: the setup run's own validation of what it wrote.
/// `ownership`: whether key owners count (not when the run could not chown,
/// as a normal user on a test tree).
pub fn written_problems(
    root: &crate::system::Root,
    profile: &Profile,
    scope: Scope,
    ownership: bool,
) -> Result<Vec<String>> {
    let mut report = Report::default();
    if let Some(setup) = check_conf(root, profile, &mut report)? {
        check_keys_with(root, profile, &setup.keys, ownership, &mut report)?;
        if let (Scope::Postfix, Some(socket)) = (scope, &setup.socket) {
            check_socket(root, profile, socket, &mut report)?;
        }
    }
    Ok(report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| {
            if c.fix.is_empty() {
                c.message.clone()
            } else {
                format!("{} (fix: {})", c.message, c.fix)
            }
        })
        .collect())
}

/// The signing proof alone, on a live system: every signing domain's test
/// message must come back signed with the key its tables name. Run after
/// opendkim was started or reloaded, this also makes a reload take effect
/// (opendkim applies SIGUSR1 at its next milter connection).
pub fn signing_problems(root: &crate::system::Root, profile: &Profile) -> Result<Vec<String>> {
    let mut report = Report::default();
    let Some(setup) = check_conf(root, profile, &mut report)? else {
        return Ok(Vec::new());
    };
    let Some(socket) = setup.socket else {
        return Ok(Vec::new());
    };
    let mut scratch = Report::default();
    let records = check_keys(root, profile, &setup.keys, &mut scratch)?;
    let mut proof = Report::default();
    check_signing(&socket, &records, true, &mut proof);
    Ok(proof
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.message.clone())
        .collect())
}

fn check_conf(
    root: &crate::system::Root,
    profile: &Profile,
    report: &mut Report,
) -> Result<Option<Setup>> {
    let path = profile.opendkim_conf;
    let Some(conf) = root.read_opt(path)? else {
        report.fail(
            "conf.readable",
            path,
            format!("{path} does not exist"),
            "run 'dkim-setup wizard'",
        );
        return Ok(None);
    };
    report.pass("conf.readable", path, format!("{path} is readable"));

    let sockets = opendkim_conf::get_all(&conf, "Socket");
    let socket = match sockets.as_slice() {
        [] => {
            report.fail(
                "conf.socket",
                path,
                "no active Socket: opendkim will not start \
                (\"milter socket must be specified\")"
                    .into(),
                "set 'Socket inet:8891@127.0.0.1'",
            );
            None
        }
        [one] => match validate::socket(one) {
            Ok(s) => {
                report.pass("conf.socket", path, format!("one Socket: {one}"));
                Some(s)
            }
            Err(e) => {
                report.fail(
                    "conf.socket",
                    path,
                    format!("{e}"),
                    "set 'Socket inet:8891@127.0.0.1'",
                );
                None
            }
        },
        many => {
            report.fail(
                "conf.socket",
                path,
                format!(
                    "{} active Socket lines ({}); opendkim silently uses the last",
                    many.len(),
                    many.join(", ")
                ),
                "comment out all but one Socket line",
            );
            many.last().and_then(|s| validate::socket(s).ok())
        }
    };

    match opendkim_conf::get(&conf, "Mode") {
        Some(mode) if !mode.contains('s') => report.fail(
            "conf.mode",
            path,
            format!("Mode {mode} does not sign"),
            "set 'Mode sv'",
        ),
        Some(mode) => report.pass("conf.mode", path, format!("Mode {mode} signs")),
        None => report.pass(
            "conf.mode",
            path,
            "no Mode: opendkim signs and verifies (sv)".into(),
        ),
    }

    let key_table = opendkim_conf::get(&conf, "KeyTable");
    let signing_table = opendkim_conf::get(&conf, "SigningTable");
    let (Some(kt), Some(st)) = (key_table, signing_table) else {
        report.fail(
            "conf.tables",
            path,
            "KeyTable or SigningTable is not set".into(),
            "run 'dkim-setup wizard' to write the tables",
        );
        return Ok(Some(Setup {
            socket,
            keys: Vec::new(),
        }));
    };
    let kt_path = kt
        .trim_start_matches("refile:")
        .trim_start_matches("file:")
        .to_string();
    let st_path = st
        .trim_start_matches("refile:")
        .trim_start_matches("file:")
        .to_string();
    if kt.starts_with("refile:") {
        report.fail(
            "conf.tables",
            path,
            format!(
                "KeyTable is '{kt}': a KeyTable is an exact \
            lookup, and opendkim-testkey refuses a refile: KeyTable"
            ),
            &format!("set 'KeyTable {}'", kt.trim_start_matches("refile:")),
        );
    }
    let signing_text = root.read_opt(&st_path)?;
    let wildcards = signing_text
        .as_deref()
        .unwrap_or_default()
        .lines()
        .any(|l| !l.trim_start().starts_with('#') && l.contains('*'));
    if wildcards && !st.starts_with("refile:") {
        report.fail(
            "conf.tables",
            path,
            format!(
                "SigningTable is '{st}', but its '*@domain' \
            patterns only match in a refile: table: nothing is signed"
            ),
            &format!("set 'SigningTable refile:{st_path}'"),
        );
    } else if !kt.starts_with("refile:") {
        report.pass(
            "conf.tables",
            path,
            format!("KeyTable {kt}, SigningTable {st}"),
        );
    }

    check_internal_hosts(root, path, &conf, report)?;
    if let Some(v) =
        opendkim_conf::get(&conf, "KeyFile").or_else(|| opendkim_conf::get(&conf, "Selector"))
    {
        report.warn(
            "conf.keyfile",
            path,
            format!(
                "KeyFile/Selector ('{v}') is set beside the \
            KeyTable, which replaces it"
            ),
            "comment out KeyFile and Selector",
        );
    }

    let keys = check_tables(root, &kt_path, &st_path, signing_text.as_deref(), report)?;
    Ok(Some(Setup { socket, keys }))
}

fn check_internal_hosts(
    root: &crate::system::Root,
    path: &str,
    conf: &str,
    report: &mut Report,
) -> Result<()> {
    let Some(value) = opendkim_conf::get(conf, "InternalHosts") else {
        report.warn(
            "conf.internal-hosts",
            path,
            "InternalHosts is not set: only 127.0.0.1 counts \
            as internal, so mail over SMTP from ::1 is not signed"
                .into(),
            "set 'InternalHosts refile:/etc/opendkim/TrustedHosts' listing 127.0.0.1, ::1 and \
             localhost",
        );
        return Ok(());
    };
    let file = value
        .strip_prefix("refile:")
        .or_else(|| value.strip_prefix("file:"))
        .map(str::to_string)
        .or_else(|| value.starts_with('/').then(|| value.clone()));
    let hosts: Vec<String> = match &file {
        Some(f) => root
            .read_opt(f)?
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect(),
        None => value
            .trim_start_matches("csl:")
            .split(',')
            .map(|h| h.trim().to_lowercase())
            .collect(),
    };
    let covers = |want: &str| {
        hosts.iter().any(|h| {
            h == want || (want == "127.0.0.1" && (h == "127.0.0.0/8" || h == "127.0.0.1/32"))
        })
    };
    let missing: Vec<&str> = ["127.0.0.1", "::1", "localhost"]
        .into_iter()
        .filter(|h| !covers(h))
        .collect();
    let subject = file.as_deref().unwrap_or(path);
    if missing.contains(&"127.0.0.1") {
        report.fail(
            "conf.internal-hosts",
            subject,
            "127.0.0.1 is not an internal host: mail from \
            this server (sendmail, cron) is only verified, never signed"
                .into(),
            "add 127.0.0.1, ::1 and localhost to the InternalHosts list",
        );
    } else if !missing.is_empty() {
        report.warn(
            "conf.internal-hosts",
            subject,
            format!(
                "{} missing from InternalHosts: mail \
            arriving that way is not signed",
                missing.join(" and ")
            ),
            &format!("add {} to the InternalHosts list", missing.join(" and ")),
        );
    } else {
        report.pass(
            "conf.internal-hosts",
            subject,
            "loopback (127.0.0.1, ::1, localhost) is internal".into(),
        );
    }
    Ok(())
}

fn check_tables(
    root: &crate::system::Root,
    kt_path: &str,
    st_path: &str,
    signing_text: Option<&str>,
    report: &mut Report,
) -> Result<Vec<tables::KeyEntry>> {
    let kt_text = root.read_opt(kt_path)?;
    // The KeyTable's domains, for the wizard command that writes both tables.
    let known = kt_text
        .as_deref()
        .and_then(|t| tables::parse_key_table(&t.replace('\r', "")).ok())
        .unwrap_or_default();
    if signing_text.is_none() {
        report.fail(
            "tables.signingtable",
            st_path,
            format!("the SigningTable '{st_path}' does not exist: opendkim signs nothing"),
            &wizard_fix(&known),
        );
    }
    let Some(kt_text) = kt_text else {
        report.fail(
            "tables.keytable",
            kt_path,
            format!("the KeyTable '{kt_path}' does not exist: opendkim has no key to sign with"),
            &wizard_fix(&known),
        );
        report.skip("tables.consistent", st_path, "a table is missing");
        return Ok(Vec::new());
    };
    let Some(signing_text) = signing_text else {
        report.skip("tables.consistent", st_path, "a table is missing");
        return Ok(Vec::new());
    };
    for (file, text) in [(kt_path, kt_text.as_str()), (st_path, signing_text)] {
        if text.contains('\r') {
            report.fail(
                "tables.format",
                file,
                format!(
                    "{file} has CR (Windows) line endings: its \
                patterns never match"
                ),
                "run 'dkim-setup wizard' (it converts them) or dos2unix",
            );
        } else if text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.ends_with([' ', '\t']))
        {
            report.fail(
                "tables.format",
                file,
                format!(
                    "{file} has lines ending in blanks, which \
                become part of a refile: pattern"
                ),
                "remove the trailing blanks",
            );
        }
    }
    let keys = match tables::parse_key_table(&kt_text.replace('\r', "")) {
        Ok(k) => k,
        Err(e) => {
            report.fail(
                "tables.keytable",
                kt_path,
                format!("{kt_path} {e}"),
                "fix that line",
            );
            report.skip("tables.consistent", st_path, "the KeyTable cannot be read");
            return Ok(Vec::new());
        }
    };
    let signing = match tables::parse_signing_table(&signing_text.replace('\r', "")) {
        Ok(s) => s,
        Err(e) => {
            report.fail(
                "tables.signingtable",
                st_path,
                format!("{st_path} {e}"),
                "fix that line",
            );
            report.skip(
                "tables.consistent",
                st_path,
                "the SigningTable cannot be read",
            );
            return Ok(keys);
        }
    };
    if signing.is_empty() {
        report.fail(
            "tables.signingtable",
            st_path,
            format!("the SigningTable '{st_path}' has no active entries: opendkim signs nothing"),
            &wizard_fix(&keys),
        );
        report.skip("tables.consistent", st_path, "the SigningTable is empty");
        return Ok(Vec::new());
    }
    let orphans = tables::orphan_signing_entries(&signing, &keys);
    if orphans.is_empty() {
        report.pass(
            "tables.consistent",
            st_path,
            match signing.len() {
                1 => "the SigningTable entry names a KeyTable key".to_string(),
                n => format!("{n} SigningTable entries, each naming a KeyTable key"),
            },
        );
    } else {
        report.fail(
            "tables.consistent",
            st_path,
            format!(
                "{st_path} names keys that {kt_path} lacks: {}",
                orphans.join(", ")
            ),
            "add those keys to the KeyTable or remove the SigningTable lines",
        );
    }
    let signed: Vec<&tables::KeyEntry> = keys
        .iter()
        .filter(|k| signing.iter().any(|s| s.key_name == k.name))
        .collect();
    Ok(signed.into_iter().cloned().collect())
}

/// The wizard command that writes both tables for the domains `keys` name,
/// or for a placeholder domain when they name none.
fn wizard_fix(keys: &[tables::KeyEntry]) -> String {
    let mut domains: Vec<&str> = Vec::new();
    for k in keys {
        if !domains.contains(&k.domain.as_str()) {
            domains.push(&k.domain);
        }
    }
    if domains.is_empty() {
        return "run 'dkim-setup wizard --domain DOMAIN' for each domain to sign".to_string();
    }
    let flags: Vec<String> = domains.iter().map(|d| format!("--domain {d}")).collect();
    format!("run 'dkim-setup wizard {}'", flags.join(" "))
}

/// Each key: present, RSA, safe. Returns the DNS record each key implies.
fn check_keys(
    root: &crate::system::Root,
    profile: &Profile,
    keys: &[tables::KeyEntry],
    report: &mut Report,
) -> Result<Vec<(tables::KeyEntry, Option<String>)>> {
    check_keys_with(root, profile, keys, true, report)
}

fn check_keys_with(
    root: &crate::system::Root,
    profile: &Profile,
    keys: &[tables::KeyEntry],
    ownership: bool,
    report: &mut Report,
) -> Result<Vec<(tables::KeyEntry, Option<String>)>> {
    let ids = match (root.user(profile.user)?, root.group(profile.group)?) {
        (Some(u), Some(g)) => Some(Ids {
            uid: u.uid,
            gid: g.gid,
        }),
        _ => None,
    };
    let mut out = Vec::new();
    for entry in keys {
        let id = format!("key.{}", entry.domain);
        let path = &entry.key_path;
        let record = match root.read_opt(path) {
            Ok(Some(pem)) => match keys::parse_private(&pem) {
                Ok(key) => Some((keys::bits_of(&key), keys::record_for(&key)?)),
                Err(_) => {
                    report.fail(
                        &id,
                        path,
                        format!("{path} is not an RSA private key in PEM"),
                        &format!(
                            "restore the key from a backup; or move it aside (mv '{path}' \
                             '{path}.broken') and run 'dkim-setup wizard --domain {}', which \
                             makes a new key whose record must then be published",
                            entry.domain
                        ),
                    );
                    None
                }
            },
            Ok(None) => {
                report.fail(
                    &id,
                    path,
                    format!("{path} does not exist"),
                    "restore the key, or run 'dkim-setup wizard' to make one (and publish its \
                     record)",
                );
                None
            }
            Err(e) => {
                report.fail(&id, path, format!("{e:#}"), "run check as root");
                None
            }
        };
        if let (Some((bits, _)), false) = (&record, ownership) {
            report.pass(
                &id,
                path,
                format!("{bits}-bit RSA key (owners not checked)"),
            );
        } else if let (Some((bits, _)), Some(ids)) = (&record, ids) {
            let problem = key_safety::key_problem(root, path, ids, profile.user, profile.group)?;
            let above = key_safety::ancestor_problem(
                root,
                path,
                ids,
                profile.user,
                profile.group,
                &|_| false,
            )?;
            match (problem, above) {
                (Some(p), _) => report.fail(
                    &id,
                    path,
                    format!("opendkim refuses it: {p}"),
                    &format!(
                        "chown {}:{} '{path}'; chmod 600 '{path}'",
                        profile.user, profile.group
                    ),
                ),
                (None, Some((dir, why))) => report.fail(
                    &id,
                    path,
                    format!("opendkim refuses it: it is below '{dir}', and {why}"),
                    &format!("make '{dir}' owned by root and not writable by others"),
                ),
                (None, None) => {
                    report.pass(&id, path, format!("{bits}-bit RSA key, safe for opendkim"))
                }
            }
        } else if record.is_some() {
            report.fail(
                &id,
                path,
                format!("user '{}' not found", profile.user),
                "install the opendkim package",
            );
        }
        out.push((entry.clone(), record.map(|(_, r)| r)));
    }
    Ok(out)
}

/// The socket checks; returns the socket opendkim listens on, which is
/// the conf's unless a file that overrides it says otherwise.
fn check_socket(
    root: &crate::system::Root,
    profile: &Profile,
    socket: &Socket,
    report: &mut Report,
) -> Result<Socket> {
    let ours = socket.opendkim();
    // (file, its socket, whether it overrides opendkim.conf)
    let mut others: Vec<(String, String, bool)> = Vec::new();
    for over in profile.socket_overrides {
        let path = over.path();
        let other = match over {
            // Every systemd drop-in counts, not only this one: read below.
            SocketOverride::ExecStart(_) => continue,
            _ => match root.read_opt(path)? {
                None => continue,
                Some(text) => match over {
                    SocketOverride::ShellVar(_) => shell_socket(&text),
                    _ => default_file::options_flags(&text)
                        .into_iter()
                        .find(|(f, _)| f == "-p")
                        .map(|(_, v)| v),
                },
            },
        };
        if let Some(other) = other {
            // Debian's SOCKET= gives way to the conf's Socket in the init
            // script, but under systemd it becomes the unit's -p (the
            // generated drop-in), which wins.
            let overrides =
                !matches!(over, SocketOverride::ShellVar(_)) || root.exists("/run/systemd/system");
            others.push((path.to_string(), other, overrides));
        }
    }
    if let Some((path, other)) = drop_in_socket(root, profile.opendkim_service)? {
        others.push((path, other, true));
    }
    // The file that moves opendkim off the conf's socket, if any: every
    // later failure has the same fix, making that file agree.
    let moved = others
        .iter()
        .filter(|(_, _, overrides)| *overrides)
        .filter_map(|(path, other, _)| validate::socket(other).ok().map(|s| (path.clone(), s)))
        .next_back()
        .filter(|(_, s)| s != socket);
    let effective = moved
        .as_ref()
        .map_or_else(|| socket.clone(), |(_, s)| s.clone());
    let agree_first = |fix: String| match &moved {
        Some((path, _)) => format!(
            "make '{path}' say '{ours}' as opendkim.conf does (dkim-setup wizard does), or {fix}"
        ),
        None => fix,
    };
    let mut agree = true;
    for (path, other, overrides) in others {
        if validate::socket(&other).is_ok_and(|s| s == *socket) {
            continue;
        }
        agree = false;
        let message = format!(
            "{path} says socket '{other}', opendkim.conf says '{ours}'{}",
            if overrides {
                ", and it overrides the conf"
            } else {
                ""
            }
        );
        let fix = format!("make it '{ours}' (dkim-setup wizard does)");
        if overrides {
            report.fail("socket.agree", &path, message, &fix)
        } else {
            report.warn("socket.agree", &path, message, &fix)
        }
    }
    if agree {
        report.pass(
            "socket.agree",
            profile.opendkim_conf,
            format!("no other file sets a socket other than '{ours}'"),
        );
    }

    let main_path = format!("{}/main.cf", profile.postfix_dir);
    let Some(main) = root.read_opt(&main_path)? else {
        report.fail(
            "socket.postfix",
            &main_path,
            format!("{main_path} does not exist"),
            "install Postfix",
        );
        for list in ["smtpd_milters", "non_smtpd_milters"] {
            report.skip(&format!("socket.{list}"), &main_path, "no main.cf");
        }
        return Ok(effective);
    };
    let queue =
        main_cf::get(&main, "queue_directory").unwrap_or_else(|| "/var/spool/postfix".into());
    let socket = &effective;
    let want = socket.postfix(&queue);
    let master = root
        .read_opt(&format!("{}/master.cf", profile.postfix_dir))?
        .unwrap_or_default();
    let chrooted = setup::postfix_chrooted(&master);
    let ours = main_cf::Ours::new(&want, main_cf::Paths::new(&queue, chrooted));
    for list in ["smtpd_milters", "non_smtpd_milters"] {
        let entries = main_cf::effective_milters(&main, list);
        if let Some(found) = entries.iter().find(|e| ours.is(e)) {
            report.pass(
                &format!("socket.{list}"),
                &main_path,
                match *found == want {
                    true => format!("{list} reaches opendkim at {want}"),
                    false => format!("{list} reaches opendkim at {want} (as {found})"),
                },
            );
        } else {
            let path_of = if list == "smtpd_milters" {
                "mail received over SMTP"
            } else {
                "mail from sendmail, cron and web applications"
            };
            report.fail(
                &format!("socket.{list}"),
                &main_path,
                format!(
                    "{list} does not reach opendkim at {want} ({}): {path_of} is not signed",
                    if entries.is_empty() {
                        "it is empty".to_string()
                    } else {
                        entries.join(", ")
                    }
                ),
                &agree_first(format!("add {want} to {list}")),
            );
        }
    }
    if let Socket::Local { path } = socket {
        if chrooted && !path.starts_with(&format!("{}/", queue.trim_end_matches('/'))) {
            report.fail(
                "socket.chroot",
                path,
                format!(
                    "Postfix's smtpd runs chrooted in {queue}, \
                where {path} does not exist"
                ),
                &agree_first(format!(
                    "move the socket under {queue}/, e.g. \
                local:{queue}/opendkim/opendkim.sock"
                )),
            );
        } else {
            report.pass(
                "socket.chroot",
                path,
                format!("Postfix's smtpd can reach {path}"),
            );
        }
    }
    Ok(effective.clone())
}

fn shell_socket(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("SOCKET="))
        .next_back()
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|v| !v.contains('$'))
}

/// The socket that the unit's systemd drop-ins pass with `-p`, and the file
/// that passes it. Drop-ins in /etc and /run apply in the lexical order of
/// their names (one in /etc hides one of the same name in /run); the last
/// `ExecStart=` wins, and an empty one clears those before it.
fn drop_in_socket(root: &crate::system::Root, service: &str) -> Result<Option<(String, String)>> {
    let mut files: Vec<(String, String)> = Vec::new();
    for base in ["/etc/systemd/system", "/run/systemd/system"] {
        let dir = format!("{base}/{service}.service.d");
        for name in root.list_dir(&dir)? {
            if name.ends_with(".conf") && !files.iter().any(|(n, _)| *n == name) {
                files.push((name.clone(), format!("{dir}/{name}")));
            }
        }
    }
    files.sort();
    let mut winner: Option<(String, String)> = None;
    for (_, path) in files {
        let Some(text) = root.read_opt(&path)? else {
            continue;
        };
        let mut in_service = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if in_service && key.trim() == "ExecStart" {
                let value = value.trim();
                winner = (!value.is_empty()).then(|| (path.clone(), value.to_string()));
            }
        }
    }
    Ok(winner.and_then(|(path, command)| {
        let words: Vec<&str> = command.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "-p")?;
        words.get(at + 1).map(|s| (path, s.to_string()))
    }))
}

/// opendkim and Postfix running; true when opendkim answers on its socket.
fn check_services(root: &crate::system::Root, socket: &Socket, report: &mut Report) -> bool {
    let where_ = match socket {
        Socket::Inet { port, addr } => format!("{addr}:{port}"),
        Socket::Local { path } => path.clone(),
    };
    let running = !services::opendkim_pids().is_empty();
    const START: &str =
        "start it (service opendkim start / systemctl start opendkim) and read the mail log";
    let up = match services::probe(root, socket, Duration::from_secs(2)) {
        Err(_) if !running => {
            let message = "opendkim is not running".to_string();
            report.fail("service.opendkim", "opendkim", message, START);
            false
        }
        Ok(()) => {
            let message = format!("running and answering on {where_}");
            report.pass("service.opendkim", "opendkim", message);
            true
        }
        Err(e) => {
            report.fail("service.opendkim", "opendkim", format!("{e:#}"), START);
            false
        }
    };
    if services::postfix_running() {
        report.pass("service.postfix", "postfix", "running".into());
    } else {
        report.fail(
            "service.postfix",
            "postfix",
            "Postfix is not running".into(),
            "start it (postfix start)",
        );
    }
    up
}

/// Submit a test message per domain to opendkim and verify what it adds.
fn check_signing(
    socket: &Socket,
    records: &[(tables::KeyEntry, Option<String>)],
    up: bool,
    report: &mut Report,
) {
    let address = match socket {
        Socket::Inet { port, addr } => {
            milter::Address::Tcp(std::net::SocketAddr::new(*addr, *port))
        }
        Socket::Local { path } => milter::Address::Unix(path.into()),
    };
    if records.is_empty() {
        report.skip("signing", "opendkim", "no domain is configured for signing");
    }
    for (entry, record) in records {
        let id = format!("signing.{}", entry.domain);
        let (true, Some(record)) = (up, record) else {
            report.skip(
                &id,
                &entry.domain,
                "opendkim is not answering, or the key is unusable",
            );
            continue;
        };
        let headers = test_headers(&entry.domain);
        let body = "This message proves DKIM signing; it is never sent.\r\n";
        let from = format!("dkim-check@{}", entry.domain);
        let to = format!("postmaster@{}", entry.domain);
        let local = std::net::IpAddr::from([127, 0, 0, 1]);
        let outcome = milter::submit(
            &address,
            Duration::from_secs(10),
            local,
            &from,
            &to,
            &headers,
            body,
        );
        let mods = match outcome {
            Ok(m) => m,
            Err(e) => {
                report.fail(
                    &id,
                    &entry.domain,
                    format!("the test message could not be submitted: {e:#}"),
                    "read the mail log for opendkim's reason",
                );
                continue;
            }
        };
        let Some((_, signature)) = mods
            .inserted
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"))
        else {
            let verdict = match mods.verdict {
                't' => "it answered tempfail, as it does when it cannot load the key",
                'r' => "it rejected the message",
                _ => "it let the message pass unsigned",
            };
            report.fail(
                &id,
                &entry.domain,
                format!("opendkim added no DKIM-Signature to a message from {from}: {verdict}"),
                "fix the problems above; for more, set 'LogWhy yes' and read the mail log",
            );
            continue;
        };
        match dkim_verify::verify(signature, &headers, body, record) {
            Ok(v) => report.pass(
                &id,
                &entry.domain,
                format!(
                    "opendkim signed a test message (d={}, s={}, {}, {}) and it verifies",
                    v.domain, v.selector, v.algorithm, v.canonicalization
                ),
            ),
            Err(e) => report.fail(
                &id,
                &entry.domain,
                format!(
                    "opendkim signed, but the signature \
                does not verify: {e:#}"
                ),
                "check that the KeyTable points at the key whose record is published",
            ),
        }
    }
}

fn test_headers(domain: &str) -> Vec<(String, String)> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = crate::apply::civil_from_days((secs / 86_400) as i64);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let rest = secs % 86_400;
    let date = format!(
        "{}, {d} {} {y} {:02}:{:02}:{:02} +0000",
        days[(secs / 86_400 % 7) as usize],
        months[(m - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    vec![
        (
            "From".into(),
            format!("dkim-setup check <dkim-check@{domain}>"),
        ),
        ("To".into(), format!("<postmaster@{domain}>")),
        ("Subject".into(), "dkim-setup check".into()),
        ("Date".into(), date),
        (
            "Message-ID".into(),
            format!("<check.{secs}.{}@{domain}>", std::process::id()),
        ),
    ]
}

fn check_dns(
    server: &dns_lookup::Server,
    entry: &tables::KeyEntry,
    record: Option<&str>,
    report: &mut Report,
) {
    let name = format!("{}._domainkey.{}", entry.selector, entry.domain);
    let id = format!("dns.{}", entry.domain);
    let Some(record) = record else {
        report.skip(
            &id,
            &name,
            "the key is unusable, so there is nothing to compare",
        );
        return;
    };
    match dns_lookup::lookup_txt(server, &name, Duration::from_secs(5)) {
        Err(e) => report.fail(
            &id,
            &name,
            format!("{e:#}"),
            "check the name server, or pass --nameserver",
        ),
        Ok(answer) => {
            let findings = dns_lookup::analyse(&answer, record);
            let mut bad = false;
            for f in &findings {
                let status = match f.severity {
                    dns_lookup::Severity::Fail => {
                        bad = true;
                        Status::Fail
                    }
                    dns_lookup::Severity::Warn => {
                        bad = true;
                        Status::Warn
                    }
                    dns_lookup::Severity::Info => Status::Info,
                };
                report.add(&id, status, &name, f.message.clone(), &f.fix);
            }
            if !bad {
                report.pass(&id, &name, "DNS serves the key that signs".into());
            }
        }
    }
}

fn print(global: &Global, report: &Report) {
    if global.json {
        let doc = serde_json::json!({"ok": !report.failed(), "checks": report.checks});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    let colour = std::io::stdout().is_terminal();
    for c in &report.checks {
        let word = match c.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Warn => "warn",
            Status::Info => "info",
            Status::Skipped => "skip",
        };
        let shown = if !colour {
            word.to_string()
        } else {
            let styled = console::style(word);
            match c.status {
                Status::Pass => styled.green(),
                Status::Fail => styled.red().bold(),
                Status::Warn => styled.yellow(),
                _ => styled.dim(),
            }
            .force_styling(true)
            .to_string()
        };
        outln!("{shown} {:<24} {}", c.id, c.message);
        if !c.fix.is_empty() && matches!(c.status, Status::Fail | Status::Warn) {
            outln!("     {:<24} fix: {}", "", c.fix);
        }
    }
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    outln!(
        "\n{} checks: {} passed, {} failed, {} warnings",
        report.checks.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Warn)
    );
}
