//! The setup run behind `dkim-setup wizard`: from "no DKIM" to "every
//! outgoing mail is signed".
//!
//! 1. Detect the distribution and refuse bad input before anything else.
//! 2. Find missing packages (installed first in a real run, so that the rest
//!    is planned against the files the package really shipped).
//! 3. Plan the files: opendkim.conf, the socket overrides, the three tables,
//!    the key directories and keys, and Postfix's main.cf; plus the
//!    ownership fixes the keys need and the group a unix socket needs.
//! 4. Plan the checks (`opendkim -n`, `postfix check`, `postconf` warnings)
//!    and the service actions, only where something the service reads
//!    changed, or where a service that should run does not.
//!
//! The result is a [`Plan`]; [`crate::apply`] carries it out.

use crate::distro::{Distro, PackageDb, Profile, SocketOverride};
use crate::edit::{default_file, main_cf, opendkim_conf, tables};
use crate::error::bad_hint;
use crate::key_safety::{self, Ids};
use crate::plan::{Action, Owner, Plan, Purpose, ServiceAction, Status, Step};
use crate::services::{self, Init};
use crate::system::runner::{Runner, argv};
use crate::system::{Root, Stat};
use crate::validate::{self, Socket};
use anyhow::{Context, Result, bail};

/// The answers of a setup run, validated.
#[derive(Debug, Clone)]
pub struct Answers {
    pub domains: Vec<String>,
    /// `None`: keep a domain's configured selector, else `key`.
    pub selector: Option<String>,
    /// The selector applies to domains not configured yet; configured ones
    /// keep theirs (the interactive question for new domains).
    pub selector_for_new_only: bool,
    pub bits: u32,
    pub socket: Socket,
    pub trusted_hosts: Vec<String>,
    pub report_address: Option<String>,
    pub no_install: bool,
    pub no_restart: bool,
    /// The two-slot CNAME scheme: the host of the slot records.
    pub slot_host: Option<String>,
}

pub const DEFAULT_SELECTOR: &str = "key";
pub const LOOPBACK: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// Everything a planning or applying step needs from the outside.
pub struct Ctx<'a> {
    pub root: Root,
    pub runner: &'a dyn Runner,
    pub dry_run: bool,
}

impl Ctx<'_> {
    /// True when services are really managed: on a live system, or in tests
    /// whose recorded commands stand for a live host
    /// (`DKIM_SETUP_RECORD_LIVE=1` with `DKIM_SETUP_RECORD`).
    pub fn services_live(&self) -> bool {
        self.root.is_live()
            || (self.runner.is_recording()
                && std::env::var("DKIM_SETUP_RECORD_LIVE").is_ok_and(|v| v == "1"))
    }

    /// A command as run on the target: directly on a live system, through
    /// `chroot` in another tree.
    pub fn target_argv(&self, words: &[&str]) -> Vec<String> {
        if self.root.is_live() {
            argv(words)
        } else {
            let mut v = vec!["chroot".to_string(), self.root.base().display().to_string()];
            v.extend(argv(words));
            v
        }
    }
}

/// Refuse a malformed report address.
pub fn report_address(value: &str) -> Result<String> {
    let ok = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"'#,;:<>".contains(c))
            && validate::domain(domain).is_ok()
    });
    if ok {
        Ok(value.to_string())
    } else {
        Err(bad_hint(
            format!(
                "invalid report address '{}': it must be a plain mail address",
                validate::shown(value)
            ),
            "give it as user@example.com, without a display name or quotes",
        ))
    }
}

/// Plan a setup run. `packages_missing` means the package is not installed
/// yet (a dry run), so opendkim.conf is planned from the packaged default.
pub fn plan(ctx: &Ctx, distro: &Distro, answers: &Answers, missing: &[&str]) -> Result<Plan> {
    let profile = distro.profile();
    let mut p = Planner {
        ctx,
        profile,
        answers,
        steps: Vec::new(),
        notes: Vec::new(),
        warnings: Vec::new(),
    };

    p.steps
        .extend(crate::packages::install_steps(ctx, distro, missing)?);

    let ids = p.resolve_ids(missing.is_empty())?;
    let conf = p.plan_opendkim_conf(missing.is_empty())?;
    p.plan_socket_overrides(missing.is_empty())?;
    p.plan_socket_dir(ids)?;
    let keys_changed = p.plan_keys_and_tables(&conf, ids)?;
    let postfix = p.plan_postfix(&conf)?;

    let opendkim_changed = p
        .steps
        .iter()
        .any(|s| s.changes() && !is_postfix_step(s, profile));
    let changed = opendkim_changed || postfix.changed || keys_changed;
    if crate::selinux::enforcing(ctx) {
        let port = crate::selinux::port_step(ctx, &answers.socket)?;
        let restore = crate::selinux::restorecon_steps(ctx, &p.steps);
        p.steps.extend(port.into_iter().chain(restore));
    }
    p.plan_checks(changed);
    p.plan_services(&conf, opendkim_changed, postfix.changed)?;
    order_for_zero_outage(&mut p.steps, profile);
    if changed {
        let signing = p.signing_domains(&conf.signing_table);
        p.warn_about_origin(&postfix.text, &signing);
    }
    if let Socket::Inet { addr, .. } = &answers.socket
        && !addr.is_loopback()
    {
        p.warnings.push(format!(
            "opendkim listens on {addr}, which is not a loopback address: any host that reaches \
             it can have mail signed; firewall the port or use 127.0.0.1"
        ));
    }

    Ok(Plan {
        distro: distro.clone(),
        steps: p.steps,
        notes: p.notes,
        warnings: p.warnings,
        dns_records: Vec::new(),
    })
}

/// Put the steps in the order that keeps mail flowing (stable otherwise):
/// packages; everything opendkim reads; its validation and `opendkim -n`;
/// opendkim's service
/// action and its probe; only then main.cf, which new Postfix processes read
/// as soon as it is written, with its checks; last the Postfix reload. So
/// Postfix is never pointed at an opendkim that is not up and answering.
fn order_for_zero_outage(steps: &mut [Step], profile: &Profile) {
    let postfix_path = |p: &str| p.starts_with(profile.postfix_dir);
    let phase = |step: &Step| -> u8 {
        match step {
            Step::Command {
                purpose: Purpose::Install,
                ..
            } => 0,
            Step::Command {
                purpose: Purpose::Check,
                argv,
                ..
            } => {
                if argv.iter().any(|a| a == "opendkim") {
                    2
                } else {
                    5
                }
            }
            Step::Verify {
                scope: crate::check::Scope::Opendkim,
                ..
            } => 2,
            Step::Verify { .. } => 5,
            Step::Service { name, .. } if name == profile.opendkim_service => 3,
            Step::Service { .. } => 6,
            Step::File { path, .. } if postfix_path(path) => 4,
            Step::Command { argv, .. }
                if argv.iter().any(|a| a == "restorecon")
                    && argv.iter().any(|a| postfix_path(a)) =>
            {
                4
            }
            _ => 1,
        }
    };
    steps.sort_by_key(|s| phase(s));
}

fn is_postfix_step(step: &Step, profile: &Profile) -> bool {
    match step {
        Step::File { path, .. } => path.starts_with(profile.postfix_dir),
        Step::Command {
            purpose: Purpose::Install,
            ..
        } => false,
        Step::Command { argv, .. } => argv.iter().any(|a| a == "usermod"),
        _ => false,
    }
}

struct Planner<'a> {
    ctx: &'a Ctx<'a>,
    profile: &'static Profile,
    answers: &'a Answers,
    steps: Vec<Step>,
    notes: Vec<String>,
    warnings: Vec<String>,
}

/// What the plan decided for opendkim.conf.
struct ConfPlan {
    old_socket: Option<String>,
    /// The daemon's user changes (a restart, not a reload).
    user_changed: bool,
    key_table: String,
    signing_table: String,
    trusted_hosts: String,
    inline_internal: Vec<String>,
    /// The single-key signing (`KeyFile`, `Selector`, `Domain`) the run
    /// comments out, to be carried into the tables.
    single_key: Option<opendkim_conf::SingleKey>,
}

struct PostfixPlan {
    changed: bool,
    /// main.cf as it will be.
    text: String,
}

/// Strip a dataset prefix (`file:`, `refile:`) from a table setting.
fn dataset_path(value: &str) -> Option<String> {
    let path = value
        .strip_prefix("refile:")
        .or_else(|| value.strip_prefix("file:"))
        .unwrap_or(value);
    path.starts_with('/').then(|| path.to_string())
}

impl Planner<'_> {
    fn root(&self) -> &Root {
        &self.ctx.root
    }

    fn owner(&self) -> Owner {
        Owner::new(self.profile.user, self.profile.group)
    }

    fn resolve_ids(&self, installed: bool) -> Result<Option<Ids>> {
        let user = self.root().user(self.profile.user)?;
        let group = self.root().group(self.profile.group)?;
        match (user, group) {
            (Some(u), Some(g)) => Ok(Some(Ids {
                uid: u.uid,
                gid: g.gid,
            })),
            _ if !installed => Ok(None),
            _ => Err(bad_hint(
                format!(
                    "{} user not found — is the opendkim package installed?",
                    self.profile.user
                ),
                format!(
                    "install it with '{} install {}'",
                    if self.profile.package_db == PackageDb::Dpkg {
                        "apt-get"
                    } else {
                        "dnf"
                    },
                    self.profile.packages.join(" ")
                ),
            )),
        }
    }

    fn plan_opendkim_conf(&mut self, installed: bool) -> Result<ConfPlan> {
        let path = self.profile.opendkim_conf;
        let current = self.read_or_packaged(path, installed)?;
        if !installed {
            self.notes.push(
                "opendkim is not installed yet: the files it ships are planned as the package \
                 ships them, and every file is planned again once it is installed"
                    .to_string(),
            );
        }
        let packaged = self.profile.packaged(path).unwrap_or_default();
        let base = current.clone().unwrap_or_else(|| packaged.to_string());
        let options = self.sysconfig_options(installed)?;
        if let Some(conf) = options
            .iter()
            .find(|(flag, _)| flag == "-x")
            .map(|(_, v)| v)
            && conf != path
        {
            bail!(
                "'{}' starts opendkim with '-x {conf}', so it never reads {path}, which \
                 dkim-setup configures\nhint: remove '-x {conf}' from OPTIONS there (or make it \
                 '-x {path}'), then run dkim-setup again",
                self.options_file().unwrap_or_default()
            );
        }

        let single_key = self.single_key(path, &base)?;

        let table = |key: &str, default: &str| {
            opendkim_conf::get(&base, key)
                .and_then(|v| dataset_path(&v))
                .unwrap_or_else(|| format!("{}/{default}", self.profile.config_dir))
        };
        let key_table = table("KeyTable", "KeyTable");
        let signing_table = table("SigningTable", "SigningTable");
        let trusted_hosts = table("InternalHosts", "TrustedHosts");
        let inline_internal = opendkim_conf::get(&base, "InternalHosts")
            .map(|v| inline_hosts(&v))
            .unwrap_or_default();

        if let Some(old) = opendkim_conf::get(&base, "SigningTable")
            && !old.starts_with("refile:")
        {
            self.notes.push(format!(
                "SigningTable in {path} changed from '{old}' to 'refile:{signing_table}': \
                 its '*@domain' patterns only match in a refile: table"
            ));
        }
        if let Some(old) = opendkim_conf::get(&base, "KeyTable")
            && old.starts_with("refile:")
        {
            self.notes.push(format!(
                "KeyTable in {path} changed from '{old}' to '{key_table}': a KeyTable is an exact \
                 lookup, not a refile: pattern table"
            ));
        }

        let socket = self.answers.socket.opendkim();
        let signing = format!("refile:{signing_table}");
        let trusted = format!("refile:{trusted_hosts}");
        let mut owned: Vec<(&str, &str)> = vec![
            ("Mode", "sv"),
            ("Socket", &socket),
            ("UMask", "007"),
            ("KeyTable", &key_table),
            ("SigningTable", &signing),
            ("ExternalIgnoreList", &trusted),
            ("InternalHosts", &trusted),
        ];
        let keeps_user = opendkim_conf::get(&base, "UserID")
            .is_some_and(|v| v.split(':').next() == Some(self.profile.user));
        if !keeps_user {
            owned.push(("UserID", self.profile.userid_value));
        }
        let pid_flag = options
            .iter()
            .find(|(flag, _)| flag == "-P")
            .map(|(_, v)| v.clone());
        let pid_file = match (&pid_flag, opendkim_conf::get(&base, "PidFile")) {
            (Some(flag), Some(conf)) if *flag != conf => {
                self.notes.push(format!(
                    "{path} had 'PidFile {conf}' while '{}' passes '-P {flag}'; both now say \
                     {flag}",
                    self.options_file().unwrap_or_default()
                ));
                Some(flag.clone())
            }
            (Some(flag), None) => Some(flag.clone()),
            (None, None) => Some(self.profile.pid_file.to_string()),
            _ => None,
        };
        if let Some(pid) = &pid_file {
            owned.push(("PidFile", pid));
        }
        if let Some(addr) = &self.answers.report_address {
            owned.push(("ReportAddress", addr));
        }
        // RHEL's unit runs opendkim-default-keygen, which makes a default
        // key for the shipped KeyFile line; with that line commented out the
        // key signs nothing.
        let default_key = format!("{}/default.private", self.profile.keys_dir);
        if self.root().exists(&default_key) {
            self.notes.push(format!(
                "'{default_key}' (made by opendkim-default-keygen) signs nothing: KeyFile is \
                 commented out and the KeyTable names the keys; it may be deleted"
            ));
        }
        let replaced = ["KeyFile", "Selector", "Domain"];
        let new = opendkim_conf::edit(&base, &owned, &replaced);
        for key in replaced {
            if let Some(value) = opendkim_conf::get(&base, key) {
                self.notes.push(format!(
                    "{path}: '{key} {value}' is now commented out: the KeyTable and SigningTable \
                     take its place"
                ));
            }
        }
        for (key, _) in &owned {
            let active = opendkim_conf::get_all(&base, key);
            if active.len() > 1 {
                self.notes.push(format!(
                    "{path} had {} active '{key}' lines ({}); opendkim silently uses the last, so \
                     only one is left active",
                    active.len(),
                    active.join(", ")
                ));
            }
        }

        if let Some(anchor) = opendkim_conf::get(&new, "TrustAnchorFile")
            && installed
            && !self.root().exists(&anchor)
        {
            self.notes.push(format!(
                "{path} names TrustAnchorFile '{anchor}', which does not exist: opendkim will \
                 refuse to start until it does"
            ));
        }

        let action = match &current {
            None => Action::Create,
            Some(old) if *old == new => Action::Unchanged,
            Some(_) => Action::Modify,
        };
        let old_socket = current
            .as_deref()
            .and_then(|c| opendkim_conf::get(c, "Socket"));
        // SIGUSR1 rereads the configuration but cannot change the user the
        // daemon runs as: a new UserID needs a restart, as a new socket does.
        let user_changed = current
            .as_deref()
            .and_then(|c| opendkim_conf::get(c, "UserID"))
            != opendkim_conf::get(&new, "UserID");
        self.steps.push(Step::File {
            path: path.to_string(),
            action,
            old: current,
            new,
            mode: 0o644,
            owner: Some(Owner::new("root", "root")),
        });
        Ok(ConfPlan {
            old_socket,
            user_changed,
            key_table,
            signing_table,
            trusted_hosts,
            inline_internal,
            single_key,
        })
    }

    /// The single-key signing of opendkim.conf's `KeyFile`, `Selector` and
    /// `Domain`, which the run comments out; refused (exit 2, nothing
    /// written) when it cannot be carried into the tables as it stands.
    /// Its key stays where it is and must be a usable private key.
    fn single_key(&self, path: &str, conf: &str) -> Result<Option<opendkim_conf::SingleKey>> {
        let refuse = |lines: &[String], why: String| {
            bad_hint(
                format!(
                    "cannot carry the single-key signing of '{path}' ('{}') into the KeyTable \
                     and SigningTable: {why}",
                    lines.join("', '")
                ),
                format!(
                    "move these lines into a KeyTable and SigningTable by hand, or remove them \
                     from {path}, then run dkim-setup again; nothing was changed"
                ),
            )
        };
        let single = match opendkim_conf::single_key(conf) {
            Ok(Some(single)) => single,
            Ok(None) => return Ok(None),
            Err(e) => return Err(refuse(&e.lines, e.why)),
        };
        let lines = [
            format!("KeyFile {}", single.key_file),
            format!("Selector {}", single.selector),
            format!("Domain {}", single.domains.join(", ")),
        ];
        let key = &single.key_file;
        match self.root().read_opt(key)? {
            None => Err(refuse(
                &lines,
                format!("the key file '{key}' does not exist"),
            )),
            Some(pem) => match crate::keys::parse_private(&pem) {
                Ok(_) => Ok(Some(single)),
                Err(e) => Err(refuse(
                    &lines,
                    format!("the key file '{key}' is not a usable private key ({e:#})"),
                )),
            },
        }
    }

    /// Keeps the domains of a single-key setup signed once its lines are
    /// commented out: their entries join the run's, with their key where it
    /// is; the run's own domains and the tables' entries win.
    fn carry_single_key(
        &mut self,
        single: &opendkim_conf::SingleKey,
        existing: (&[tables::KeyEntry], &[tables::SigningEntry]),
        entries: (&mut Vec<tables::KeyEntry>, &mut Vec<tables::SigningEntry>),
    ) {
        let path = self.profile.opendkim_conf;
        let carry = tables::carry_single_key(
            &single.domains,
            &single.selector,
            &single.key_file,
            &self.answers.domains,
            existing.0,
            existing.1,
        );
        let signed_with = format!(
            "the key '{}' (selector '{}')",
            single.key_file, single.selector
        );
        if !carry.carried.is_empty() {
            self.notes.push(format!(
                "{path}: the single-key signing of {} with {signed_with} is carried into the \
                 KeyTable and SigningTable; the key stays where it is",
                carry.carried.join(", ")
            ));
        }
        for domain in &carry.run_wins {
            self.notes.push(format!(
                "{path}: 'Domain' signed {domain} with {signed_with}; this run's answer for \
                 {domain} takes its place in the tables (publish its DNS record)"
            ));
        }
        for domain in &carry.tables_win {
            self.notes.push(format!(
                "{path}: 'Domain' signed {domain} with {signed_with}; the tables' entry for \
                 {domain} is kept instead"
            ));
        }
        entries.0.extend(carry.keys);
        entries.1.extend(carry.signing);
    }

    /// A unix socket's directory must exist and belong to opendkim (P7),
    /// except under /run, where the service makes it.
    fn plan_socket_dir(&mut self, ids: Option<Ids>) -> Result<()> {
        let Socket::Local { path } = &self.answers.socket else {
            return Ok(());
        };
        let Some(dir) = std::path::Path::new(path)
            .parent()
            .map(|d| d.display().to_string())
        else {
            return Ok(());
        };
        // /run is emptied at boot; the init script or the unit's
        // RuntimeDirectory makes opendkim's directory there at each start.
        let runtime = ["/run/", "/var/run/"].iter().any(|r| dir.starts_with(r));
        if !runtime && self.root().stat(&dir)?.is_none() {
            self.ensure_dir(&dir, 0o750, self.owner(), ids)?;
        }
        Ok(())
    }

    /// A file's text, or (before the package is installed) the text the
    /// package will ship there.
    fn read_or_packaged(&self, path: &str, installed: bool) -> Result<Option<String>> {
        Ok(match self.root().read_opt(path)? {
            Some(text) => Some(text),
            None if !installed => self.profile.packaged(path).map(str::to_string),
            None => None,
        })
    }

    /// The file whose `OPTIONS=` passes opendkim's flags, if the family has one.
    fn options_file(&self) -> Option<&'static str> {
        self.profile.socket_overrides.iter().find_map(|o| match o {
            SocketOverride::Options(path) => Some(*path),
            _ => None,
        })
    }

    /// The flags in that file's `OPTIONS=` (`-x FILE`, `-P FILE`, ...).
    fn sysconfig_options(&self, installed: bool) -> Result<Vec<(String, String)>> {
        let Some(path) = self.options_file() else {
            return Ok(Vec::new());
        };
        let text = self.read_or_packaged(path, installed)?.unwrap_or_default();
        Ok(default_file::options_flags(&text))
    }

    fn plan_socket_overrides(&mut self, installed: bool) -> Result<()> {
        let socket = self.answers.socket.opendkim();
        for over in self.profile.socket_overrides {
            let path = over.path();
            let Some(old) = self.read_or_packaged(path, installed)? else {
                continue;
            };
            let new = match over {
                SocketOverride::ShellVar(_) => default_file::set_socket_var(&old, &socket),
                SocketOverride::ExecStart(_) => default_file::set_exec_start_socket(&old, &socket),
                SocketOverride::Options(_) => default_file::set_options_socket(&old, &socket),
            };
            if new != old {
                self.notes.push(format!(
                    "{path} also sets the socket; it now says '{socket}' too"
                ));
            }
            self.file_step(path, Some(old), new, 0o644, None);
        }
        Ok(())
    }

    fn file_step(
        &mut self,
        path: &str,
        old: Option<String>,
        new: String,
        mode: u32,
        owner: Option<Owner>,
    ) {
        let action = match &old {
            None => Action::Create,
            Some(o) if *o == new => Action::Unchanged,
            Some(_) => Action::Modify,
        };
        self.steps.push(Step::File {
            path: path.to_string(),
            action,
            old,
            new,
            mode,
            owner,
        });
    }

    /// Keys, their directories and the three tables. Returns true when any
    /// of them changes.
    fn plan_keys_and_tables(&mut self, conf: &ConfPlan, ids: Option<Ids>) -> Result<bool> {
        let old_keys = self.root().read_opt(&conf.key_table)?;
        let old_signing = self.root().read_opt(&conf.signing_table)?;
        let old_trusted = self.root().read_opt(&conf.trusted_hosts)?;
        let existing_keys = match &old_keys {
            Some(text) => tables::parse_key_table(&text.replace('\r', ""))
                .map_err(|e| anyhow::anyhow!("'{}' {e}", conf.key_table))?,
            None => Vec::new(),
        };
        let existing_signing = match &old_signing {
            Some(text) => tables::parse_signing_table(&text.replace('\r', ""))
                .map_err(|e| anyhow::anyhow!("'{}' {e}", conf.signing_table))?,
            None => Vec::new(),
        };

        let orphans = tables::orphan_signing_entries(&existing_signing, &existing_keys);
        if let Some(name) = orphans.first() {
            let text = old_signing.as_deref().unwrap_or("");
            let line = text
                .lines()
                .position(|l| {
                    !l.trim_start().starts_with('#') && l.split_whitespace().nth(1) == Some(name)
                })
                .map_or(0, |i| i + 1);
            bail!(
                "'{}' line {line} names the key '{name}', which '{}' does not have: opendkim \
                 cannot sign with it\nhint: add '{name}' to the KeyTable or remove that line; \
                 nothing was changed",
                conf.signing_table,
                conf.key_table
            );
        }

        let before = self.steps.len();
        self.ensure_dir(
            self.profile.config_dir,
            0o755,
            Owner::new("root", "root"),
            ids,
        )?;
        let (state_old, mut state) = crate::rotate::read_state(self.root())?;
        let slot = self.slot_plan(&state)?;
        let mut key_entries = Vec::new();
        let mut signing_entries = Vec::new();
        for domain in &self.answers.domains {
            if let Some((host, dir, active)) = &slot {
                let (key_entry, signing_entry) = self.plan_slot_domain(
                    domain,
                    (host, dir, active),
                    (&existing_keys, &existing_signing),
                    ids,
                )?;
                key_entries.push(key_entry);
                signing_entries.push(signing_entry);
                continue;
            }
            let pattern = format!("*@{domain}");
            let configured = existing_signing
                .iter()
                .find(|e| e.pattern == pattern)
                .and_then(|e| existing_keys.iter().find(|k| k.name == e.key_name));
            let selector = match (&self.answers.selector, configured) {
                (Some(_), Some(k)) if self.answers.selector_for_new_only => k.selector.clone(),
                (Some(s), _) => s.clone(),
                (None, Some(k)) => k.selector.clone(),
                (None, None) => DEFAULT_SELECTOR.to_string(),
            };
            let name = format!("{selector}._domainkey.{domain}");
            let adopted = existing_keys
                .iter()
                .find(|k| k.name == name && k.domain == *domain && self.root().exists(&k.key_path));
            let key_path = match adopted {
                Some(k) => k.key_path.clone(),
                None => format!("{}/{domain}/{selector}.private", self.profile.keys_dir),
            };
            let key_dir = std::path::Path::new(&key_path)
                .parent()
                .map(|d| d.display().to_string());
            if let Some(dir) = key_dir.filter(|d| d.starts_with(self.profile.keys_dir)) {
                self.ensure_dir(self.profile.keys_dir, 0o750, self.owner(), ids)?;
                if dir != self.profile.keys_dir {
                    self.ensure_dir(&dir, 0o700, self.owner(), ids)?;
                }
            }
            if let Some(k) = configured
                && k.name != name
            {
                self.warnings.push(format!(
                    "signing for {domain} switches from selector '{}' to '{selector}' with this \
                     run, and receivers can verify the new signatures only once \
                     {name} is published in DNS: publish it right away (the old key stays in \
                     the KeyTable)",
                    k.selector
                ));
            }
            let was_configured = existing_keys.iter().any(|k| k.name == name);
            self.plan_key(&key_path, domain, &selector, ids, was_configured)?;
            key_entries.push(tables::KeyEntry {
                name: name.clone(),
                domain: domain.clone(),
                selector: selector.clone(),
                key_path,
            });
            signing_entries.push(tables::SigningEntry {
                pattern,
                key_name: name,
            });
        }

        if let Some(single) = &conf.single_key {
            self.carry_single_key(
                single,
                (&existing_keys, &existing_signing),
                (&mut key_entries, &mut signing_entries),
            );
        }

        let merged_keys = tables::merge_key_table(old_keys.as_deref().unwrap_or(""), &key_entries)
            .map_err(|e| anyhow::anyhow!("'{}' {e}", conf.key_table))?;
        let merged_signing =
            tables::merge_signing_table(old_signing.as_deref().unwrap_or(""), &signing_entries)
                .map_err(|e| anyhow::anyhow!("'{}' {e}", conf.signing_table))?;
        let mut hosts: Vec<String> = LOOPBACK.iter().map(|h| h.to_string()).collect();
        hosts.extend(conf.inline_internal.iter().cloned());
        hosts.extend(self.answers.trusted_hosts.iter().cloned());
        let merged_trusted =
            tables::merge_trusted_hosts(old_trusted.as_deref().unwrap_or(""), &hosts);
        for (file, edited) in [
            (&conf.key_table, &merged_keys),
            (&conf.signing_table, &merged_signing),
            (&conf.trusted_hosts, &merged_trusted),
        ] {
            for note in &edited.notes {
                self.notes.push(format!("{file}: {note}"));
            }
        }
        self.check_tables(conf, &merged_keys.text, &merged_signing.text)?;
        if let Some((host, dir, active)) = slot {
            self.plan_slot_state(state_old, &mut state, host, dir, active);
        }
        let others: Vec<String> = tables::parse_key_table(&merged_keys.text)
            .unwrap_or_default()
            .into_iter()
            .map(|k| k.key_path)
            .filter(|p| {
                !self
                    .steps
                    .iter()
                    .any(|s| matches!(s, Step::Key { path, .. } if path == p))
            })
            .collect();
        for path in others {
            self.secure_existing_key(&path, ids)?;
        }

        self.file_step(
            &conf.key_table,
            old_keys,
            merged_keys.text,
            0o644,
            Some(Owner::new("root", "root")),
        );
        self.file_step(
            &conf.signing_table,
            old_signing,
            merged_signing.text,
            0o644,
            Some(Owner::new("root", "root")),
        );
        self.file_step(
            &conf.trusted_hosts,
            old_trusted,
            merged_trusted.text,
            0o644,
            Some(Owner::new("root", "root")),
        );
        Ok(self.steps[before..].iter().any(Step::changes))
    }

    /// The two-slot scheme, when asked for or already set up: (host, key
    /// directory, active slot).
    fn slot_plan(&self, state: &crate::rotate::State) -> Result<Option<(String, String, String)>> {
        let asked = self.answers.slot_host.as_deref();
        match (asked, &state.slots) {
            (Some(a), Some(s)) if a != s.host => Err(bad_hint(
                format!(
                    "the key slots are published under '{}' already, not '{a}'",
                    s.host
                ),
                format!(
                    "keep --slot-host {} (the domains' CNAMEs point there), or leave it out",
                    s.host
                ),
            )),
            (_, Some(s)) => Ok(Some((s.host.clone(), s.dir.clone(), s.active.clone()))),
            (Some(a), None) => Ok(Some((
                a.to_string(),
                format!("{}/slots", self.profile.keys_dir),
                "a".to_string(),
            ))),
            (None, None) => Ok(None),
        }
    }

    /// One domain of the two-slot scheme: it signs with the active slot's
    /// key under that slot's selector; the key is planned once for all.
    fn plan_slot_domain(
        &mut self,
        domain: &str,
        (host, dir, active): (&str, &str, &str),
        (existing_keys, existing_signing): (&[tables::KeyEntry], &[tables::SigningEntry]),
        ids: Option<Ids>,
    ) -> Result<(tables::KeyEntry, tables::SigningEntry)> {
        let selector = crate::rotate::slot_selector(active);
        let key_path = crate::rotate::slot_key_path(dir, active);
        let name = format!("{selector}._domainkey.{domain}");
        validate::record_name(selector, domain)?;
        self.ensure_dir(self.profile.keys_dir, 0o750, self.owner(), ids)?;
        self.ensure_dir(dir, 0o700, self.owner(), ids)?;
        let planned = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::Key { path, .. } if *path == key_path));
        if !planned {
            self.plan_key(&key_path, host, selector, ids, false)?;
            if let Some(Step::Key { record, .. }) = self.steps.last_mut() {
                *record = Some(crate::rotate::slot_record_name(host, active));
            }
        }
        let pattern = format!("*@{domain}");
        let signs_with = existing_signing
            .iter()
            .find(|e| e.pattern == pattern)
            .and_then(|e| {
                existing_keys
                    .iter()
                    .find(|k| k.name.eq_ignore_ascii_case(&e.key_name))
            });
        if let Some(k) = signs_with
            && (!k.name.eq_ignore_ascii_case(&name) || k.key_path != key_path)
        {
            self.warnings.push(format!(
                "signing for {domain} switches from the key '{}' ({}) to the shared slot key \
                 '{key_path}': receivers can verify the new signatures only once {name} is a \
                 CNAME to {slot} and {slot} serves the slot key; publish both right away",
                k.key_path,
                k.name,
                slot = crate::rotate::slot_record_name(host, active)
            ));
        }
        Ok((
            tables::KeyEntry {
                name: name.clone(),
                domain: domain.to_string(),
                selector: selector.to_string(),
                key_path,
            },
            tables::SigningEntry {
                pattern,
                key_name: name,
            },
        ))
    }

    /// The slot scheme's record in the rotation state.
    fn plan_slot_state(
        &mut self,
        old: Option<String>,
        state: &mut crate::rotate::State,
        host: String,
        dir: String,
        active: String,
    ) {
        let key_path = crate::rotate::slot_key_path(&dir, &active);
        let created_now = self.steps.iter().any(
            |s| matches!(s, Step::Key { path, action: Action::Create, .. } if *path == key_path),
        );
        let slots = state.slots.get_or_insert_with(|| crate::rotate::Slots {
            host,
            dir,
            active: active.clone(),
            keys: Default::default(),
        });
        if created_now {
            slots.keys.created.insert(active, crate::rotate::now());
        }
        let new = crate::rotate::state_text(state);
        self.file_step(
            crate::rotate::STATE,
            old,
            new,
            0o644,
            Some(Owner::new("root", "root")),
        );
    }

    /// The tables opendkim will read must agree with each other and point at
    /// keys that exist (or are about to): `opendkim -n` checks none of this.
    fn check_tables(&self, conf: &ConfPlan, keys: &str, signing: &str) -> Result<()> {
        let keys = tables::parse_key_table(keys)
            .map_err(|e| anyhow::anyhow!("'{}' {e}", conf.key_table))?;
        let signing = tables::parse_signing_table(signing)
            .map_err(|e| anyhow::anyhow!("'{}' {e}", conf.signing_table))?;
        let orphans = tables::orphan_signing_entries(&signing, &keys);
        if let Some(name) = orphans.first() {
            bail!(
                "'{}' names the key '{name}', which '{}' does not have: opendkim would refuse to \
                 sign\nhint: add a KeyTable line for '{name}' or remove that SigningTable line",
                conf.signing_table,
                conf.key_table
            );
        }
        for key in &keys {
            let planned = self
                .steps
                .iter()
                .any(|s| matches!(s, Step::Key { path, .. } if *path == key.key_path));
            if !planned && !self.root().exists(&key.key_path) {
                bail!(
                    "'{}' points '{}' at the key file '{}', which does not exist",
                    conf.key_table,
                    key.name,
                    key.key_path
                );
            }
        }
        Ok(())
    }

    fn ensure_dir(&mut self, path: &str, mode: u32, owner: Owner, ids: Option<Ids>) -> Result<()> {
        if self.steps.iter().any(
            |s| matches!(s, Step::Dir { path: p, .. } | Step::Attrs { path: p, .. } if p == path),
        ) {
            return Ok(());
        }
        match self.root().stat(path)? {
            None => self.steps.push(Step::Dir {
                path: path.to_string(),
                action: Action::Create,
                mode,
                owner,
            }),
            Some(st) if !st.is_dir => bail!("'{path}' exists but is not a directory"),
            Some(st) => {
                if let Some(why) = ids.and_then(|ids| dir_problem(&st, ids, owner.user == "root")) {
                    self.steps.push(Step::Attrs {
                        path: path.to_string(),
                        mode,
                        owner,
                        why,
                    });
                }
            }
        }
        Ok(())
    }

    fn plan_key(
        &mut self,
        path: &str,
        domain: &str,
        selector: &str,
        ids: Option<Ids>,
        configured: bool,
    ) -> Result<()> {
        let owner = self.owner();
        match self.root().stat(path)? {
            None => {
                self.check_ancestors(path, ids)?;
                if configured {
                    self.warnings.push(format!(
                        "the key for {selector}._domainkey.{domain} was missing from '{path}': a \
                         NEW key is generated, so the DNS record changes; publish the new record \
                         at once, until then receivers fail every signature of {domain}"
                    ));
                }
                self.steps.push(Step::Key {
                    path: path.to_string(),
                    action: Action::Create,
                    bits: self.answers.bits,
                    domain: domain.to_string(),
                    selector: selector.to_string(),
                    owner,
                    record: None,
                });
            }
            Some(_) => {
                let bits = match self.root().read_opt(path) {
                    Ok(Some(pem)) => crate::keys::parse_private(&pem)
                        .map(|k| crate::keys::bits_of(&k))
                        .with_context(|| format!("the key file '{path}' cannot be used"))?,
                    _ => 0,
                };
                if bits != 0 && bits != self.answers.bits {
                    self.notes.push(format!(
                        "the existing key '{path}' has {bits} bits and is kept (keys are never \
                         overwritten); {} bits apply to new keys only: 'dkim-setup rotate \
                         --domain {domain} --bits {}' replaces it without a signing gap",
                        self.answers.bits, self.answers.bits
                    ));
                }
                self.steps.push(Step::Key {
                    path: path.to_string(),
                    action: Action::Unchanged,
                    bits,
                    domain: domain.to_string(),
                    selector: selector.to_string(),
                    owner,
                    record: None,
                });
                self.secure_existing_key(path, ids)?;
            }
        }
        Ok(())
    }

    /// An existing key must pass opendkim's safety rules, or every message
    /// of its domain is refused with 451: its directories are checked, and
    /// a key other users can read, or that opendkim does not own, is fixed
    /// to opendkim:opendkim 0600 (field cases B04, B05, B06).
    fn secure_existing_key(&mut self, path: &str, ids: Option<Ids>) -> Result<()> {
        self.check_ancestors(path, ids)?;
        let (Some(ids), Some(st)) = (ids, self.root().stat(path)?) else {
            return Ok(());
        };
        if self.planned_fix(path) {
            return Ok(());
        }
        let mut why = Vec::new();
        if st.mode & 0o077 != 0 {
            why.push(format!("mode {:04o} lets other users read it", st.mode));
        }
        if st.uid != ids.uid || st.gid != ids.gid {
            why.push("opendkim must own it".to_string());
        }
        if !why.is_empty() {
            let why = why.join("; ");
            self.notes.push(format!(
                "the key '{path}' is fixed to opendkim:opendkim 0600: {why}"
            ));
            let owner = self.owner();
            self.steps.push(Step::Attrs {
                path: path.to_string(),
                mode: 0o600,
                owner,
                why,
            });
        }
        Ok(())
    }

    /// opendkim refuses a key below any directory that someone other than
    /// root or opendkim could write to (field case B06).
    fn check_ancestors(&self, key_path: &str, ids: Option<Ids>) -> Result<()> {
        let Some(ids) = ids else { return Ok(()) };
        let (user, group) = (self.profile.user, self.profile.group);
        let skip = |dir: &str| self.planned_fix(dir);
        let Some((shown, why)) =
            key_safety::ancestor_problem(self.root(), key_path, ids, user, group, &skip)?
        else {
            return Ok(());
        };
        bail!(
            "the key '{key_path}' is below '{shown}', and {why}: opendkim refuses keys whose \
             directories other users can change\nhint: make '{shown}' owned by root, not \
             writable by others and enterable by opendkim (chown root: '{shown}'; chmod 755 \
             '{shown}'){}",
            if key_path.starts_with(self.profile.keys_dir) {
                String::new()
            } else {
                format!(", or keep keys under {}", self.profile.keys_dir)
            }
        );
    }

    fn planned_fix(&self, path: &str) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Attrs { path: p, .. } if p == path))
    }

    fn plan_postfix(&mut self, conf: &ConfPlan) -> Result<PostfixPlan> {
        let path = format!("{}/main.cf", self.profile.postfix_dir);
        let Some(old) = self.root().read_opt(&path)? else {
            return Err(bad_hint(
                format!("Postfix is not installed: '{path}' not found"),
                "install Postfix first (apt-get install postfix), then run dkim-setup again",
            ));
        };
        let queue_dir =
            main_cf::get(&old, "queue_directory").unwrap_or_else(|| "/var/spool/postfix".into());
        let master = self
            .root()
            .read_opt(&format!("{}/master.cf", self.profile.postfix_dir))?
            .unwrap_or_default();
        let chrooted = postfix_chrooted(&master);
        let ours = main_cf::Ours::new(
            &self.answers.socket.postfix(&queue_dir),
            main_cf::Paths::new(&queue_dir, chrooted),
        );
        if let Socket::Local { path: sock } = &self.answers.socket {
            check_chroot(sock, &queue_dir, chrooted)?;
        }

        let mut new = old.clone();
        for (name, want) in [
            ("milter_default_action", "accept"),
            ("milter_protocol", "6"),
        ] {
            match main_cf::get(&new, name) {
                None => new = main_cf::set(&new, name, want),
                Some(v) if v == want => {}
                Some(v) => self.notes.push(format!(
                    "{path} has '{name} = {v}'; dkim-setup leaves it, but '{want}' is recommended"
                )),
            }
        }
        let stale: Vec<String> = conf
            .old_socket
            .iter()
            .filter_map(|old| validate::socket(old).ok())
            .map(|old| old.postfix(&queue_dir))
            .filter(|old| !ours.is(old))
            .collect();
        let (wired, notes) = wire_milters(&new, &ours, &stale);
        new = wired;
        self.notes
            .extend(notes.into_iter().map(|n| format!("{path}: {n}")));
        for list in ["smtpd_milters", "non_smtpd_milters"] {
            for entry in main_cf::get(&new, list)
                .map(|v| main_cf::split_list(&v))
                .unwrap_or_default()
            {
                if entry.contains("inet:localhost:") {
                    self.notes.push(format!(
                        "{path}: the milter '{entry}' uses the name localhost, which may \
                         resolve to \
                         ::1 while the milter listens on 127.0.0.1; prefer a literal address"
                    ));
                }
            }
        }

        let changed = new != old;
        self.file_step(&path, Some(old), new.clone(), 0o644, None);
        let group_changed = self.plan_socket_group()?;
        Ok(PostfixPlan {
            changed: changed || group_changed,
            text: new,
        })
    }

    /// Postfix must be in opendkim's group to reach a unix socket (P3, P7).
    fn plan_socket_group(&mut self) -> Result<bool> {
        if !matches!(self.answers.socket, Socket::Local { .. }) {
            return Ok(false);
        }
        let member = match self.root().group(self.profile.group)? {
            Some(g) => self
                .root()
                .group_members(&g)?
                .iter()
                .any(|m| m == self.profile.postfix_user),
            None => false,
        };
        if member {
            return Ok(false);
        }
        let mut words = vec!["usermod".to_string()];
        if !self.ctx.root.is_live() {
            words.extend([
                "--root".to_string(),
                self.ctx.root.base().display().to_string(),
            ]);
        }
        words.extend(argv(&[
            "-a",
            "-G",
            self.profile.group,
            self.profile.postfix_user,
        ]));
        let status = if self.ctx.dry_run {
            Status::Planned
        } else {
            Status::Done
        };
        self.steps.push(Step::Command {
            argv: words,
            purpose: Purpose::Change,
            status,
            reason: None,
        });
        Ok(true)
    }

    /// Mail from cron and the sendmail command is sent as user@myorigin; warn
    /// when no signing domain covers it (field case B11).
    /// Every domain the SigningTable will sign for (`*@DOMAIN` lines), as
    /// planned: this run's and those configured before.
    fn signing_domains(&self, signing_table: &str) -> Vec<String> {
        let text = self.steps.iter().find_map(|s| match s {
            Step::File { path, new, .. } if path == signing_table => Some(new.as_str()),
            _ => None,
        });
        let mut domains = self.answers.domains.clone();
        for entry in tables::parse_signing_table(text.unwrap_or("")).unwrap_or_default() {
            if let Some(d) = entry.pattern.strip_prefix("*@")
                && !domains.iter().any(|x| x.eq_ignore_ascii_case(d))
            {
                domains.push(d.to_lowercase());
            }
        }
        domains
    }

    fn warn_about_origin(&mut self, main: &str, signing: &[String]) {
        let host = main_cf::get(main, "myhostname").unwrap_or_default();
        let domain = main_cf::get(main, "mydomain").unwrap_or_else(|| {
            host.split_once('.')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default()
        });
        let origin = main_cf::get(main, "myorigin").unwrap_or_else(|| "$myhostname".into());
        let origin = if origin.starts_with('/') {
            self.root()
                .read_opt(&origin)
                .ok()
                .flatten()
                .and_then(|t| t.lines().next().map(str::to_string))
        } else {
            Some(
                origin
                    .replace("${myhostname}", &host)
                    .replace("$myhostname", &host)
                    .replace("${mydomain}", &domain)
                    .replace("$mydomain", &domain),
            )
        };
        let Some(origin) = origin
            .map(|o| o.trim().to_lowercase())
            .filter(|o| !o.is_empty())
        else {
            return;
        };
        if !signing.contains(&origin) {
            self.notes.push(format!(
                "mail from local programs (cron, sendmail) is sent as user@{origin} (myorigin), \
                 which is not a signing domain, so it will not be signed; sign for {origin} \
                 too, or set myorigin to one of: {}",
                signing.join(", ")
            ));
        }
    }

    fn plan_checks(&mut self, changed: bool) {
        let live = self.ctx.root.is_live();
        let installing = self.steps.iter().any(|s| {
            matches!(
                s,
                Step::Command {
                    purpose: Purpose::Install,
                    ..
                }
            )
        });
        let checks: [(&[&str], &str); 3] = [
            (
                &["opendkim", "-n", "-x", self.profile.opendkim_conf],
                "/usr/sbin/opendkim",
            ),
            (&["postfix", "check"], "/usr/sbin/postfix"),
            (&["postconf", "-n"], "/usr/sbin/postconf"),
        ];
        for scope in [crate::check::Scope::Opendkim, crate::check::Scope::Postfix] {
            let (status, reason) = if !changed {
                (Status::Skipped, Some("nothing changed".to_string()))
            } else if self.ctx.dry_run {
                (Status::Planned, None)
            } else {
                (Status::Done, None)
            };
            self.steps.push(Step::Verify {
                scope,
                status,
                reason,
            });
        }
        for (words, binary) in checks {
            let (status, reason) = if !changed {
                (Status::Skipped, Some("nothing changed".to_string()))
            } else if !live && !installing && !self.ctx.root.exists(binary) {
                (
                    Status::Skipped,
                    Some(format!("'{binary}' is not in the tree")),
                )
            } else if self.ctx.dry_run {
                (Status::Planned, None)
            } else {
                (Status::Done, None)
            };
            self.steps.push(Step::Command {
                argv: self.ctx.target_argv(words),
                purpose: Purpose::Check,
                status,
                reason,
            });
        }
    }

    fn plan_services(
        &mut self,
        conf: &ConfPlan,
        opendkim_changed: bool,
        postfix_changed: bool,
    ) -> Result<()> {
        let socket_changed = conf.old_socket.as_deref()
            != Some(self.answers.socket.opendkim().as_str())
            || conf.user_changed
            || self.steps.iter().any(|s| {
                matches!(s, Step::File { path, action: Action::Modify, .. }
                if self.profile.socket_overrides.iter().any(|o| o.path() == path))
            })
            || self.steps.iter().any(
                |s| matches!(s, Step::Command { argv, .. } if argv.iter().any(|a| a == "usermod")),
            );
        let live = self.ctx.services_live();
        let skip_reason = if !live {
            Some("offline tree (--root)")
        } else if self.answers.no_restart {
            Some("--no-restart")
        } else {
            None
        };
        let init = services::init_system(self.root());
        let status = if self.ctx.dry_run {
            Status::Planned
        } else {
            Status::Done
        };

        let opendkim = self.profile.opendkim_service;
        let postfix = self.profile.postfix_service;
        let unit_changed = self.steps.iter().any(|s| {
            matches!(s, Step::File { path, action: Action::Modify | Action::Create, .. }
                if path.starts_with("/etc/systemd/"))
        });
        if live && init == Init::Systemd && unit_changed {
            // systemd reads a changed drop-in (the socket's -p) only after
            // daemon-reload; without it opendkim would start on the old one.
            self.steps.push(Step::Command {
                argv: argv(&["systemctl", "daemon-reload"]),
                purpose: Purpose::Change,
                status,
                reason: None,
            });
        }
        if !live && !self.answers.no_restart {
            let unit = ["/lib/systemd/system", "/usr/lib/systemd/system"]
                .iter()
                .any(|d| self.root().exists(&format!("{d}/{opendkim}.service")));
            if unit && !services::enabled(self.root(), opendkim) {
                let base = self.ctx.root.base().display().to_string();
                let words = argv(&["systemctl", "--root", &base, "enable", opendkim]);
                self.service(opendkim, ServiceAction::Enable, words, status, None);
            }
        }
        if let Some(reason) = skip_reason {
            let skipped = [
                (opendkim, ServiceAction::Restart, opendkim_changed),
                (postfix, ServiceAction::Reload, postfix_changed),
            ];
            for (name, action, changed) in skipped {
                if changed {
                    let words = services::argv(init, name, action);
                    self.service(name, action, words, Status::Skipped, Some(reason));
                }
            }
            return Ok(());
        }

        let running = !services::opendkim_pids().is_empty();
        let enabled = init != Init::Systemd || services::enabled(self.root(), opendkim);
        if !enabled && !running {
            // The RHEL unit ships disabled: enable and start in one step.
            let words = argv(&["systemctl", "enable", "--now", opendkim]);
            self.service(opendkim, ServiceAction::Start, words, status, None);
        } else if !enabled {
            let words = services::argv(init, opendkim, ServiceAction::Enable);
            self.service(opendkim, ServiceAction::Enable, words, status, None);
        }
        let opendkim_action = if !running && !enabled {
            None
        } else if !running {
            Some(ServiceAction::Start)
        } else if socket_changed {
            Some(ServiceAction::Restart)
        } else if opendkim_changed {
            Some(ServiceAction::Reload)
        } else {
            None
        };
        let postfix_action = if !services::postfix_running() {
            Some(ServiceAction::Start)
        } else if postfix_changed {
            Some(ServiceAction::Reload)
        } else {
            None
        };
        for (name, action) in [(opendkim, opendkim_action), (postfix, postfix_action)] {
            if let Some(action) = action {
                self.service(
                    name,
                    action,
                    services::argv(init, name, action),
                    status,
                    None,
                );
            }
        }
        Ok(())
    }

    fn service(
        &mut self,
        name: &str,
        action: ServiceAction,
        argv: Vec<String>,
        status: Status,
        reason: Option<&str>,
    ) {
        self.steps.push(Step::Service {
            name: name.to_string(),
            action,
            argv,
            status,
            reason: reason.map(str::to_string),
        });
    }
}

/// Point Postfix's milter lists at opendkim exactly once, ahead of
/// OpenDMARC, keeping every other milter in its place (field cases B07, B09,
/// B10, B11). Pure: main.cf text in, new text and notes out.
///
/// 1. Every list, and every parameter a list refers to (`$dkim_milter`),
///    has opendkim's entries under another spelling or at its old socket
///    replaced by `ours`, once.
/// 2. A list that does not reach `ours` gets it, before OpenDMARC or first;
///    a missing `non_smtpd_milters` becomes `$smtpd_milters`.
/// 3. A list that reaches `ours` twice (a literal entry and a reference)
///    loses the literal one; one that still reaches it more than once, through
///    references only, keeps the first and has each later one replaced by its
///    other entries ([`main_cf::reach_once`]).
/// 4. A literal `ours` behind an OpenDMARC entry moves in front of it.
///
/// An entry reaches opendkim when [`main_cf::Paths::same_milter`] says so. A
/// unix path spelled another way (`unix:/opendkim/opendkim.sock` in the
/// chroot) is the user's and stays; a loopback TCP name other than ours
/// (`inet:localhost:8891`) is respelled (field case B09).
pub fn wire_milters(text: &str, ours: &main_cf::Ours, stale: &[String]) -> (String, Vec<String>) {
    const LISTS: [&str; 2] = ["smtpd_milters", "non_smtpd_milters"];
    let mut new = text.to_string();
    let mut notes = Vec::new();

    let mut names: Vec<String> = LISTS.iter().map(|s| s.to_string()).collect();
    let mut i = 0;
    while i < names.len() {
        let value = main_cf::get(&new, &names[i]).unwrap_or_default();
        for entry in main_cf::split_list(&value) {
            if let Some(name) = main_cf::reference(&entry)
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
        i += 1;
    }
    for name in &names {
        let Some(value) = main_cf::get(&new, name) else {
            continue;
        };
        if let Some((replaced, gone)) = replace_stale_milters(&value, ours, stale) {
            new = main_cf::set(&new, name, &replaced);
            notes.push(match gone.is_empty() {
                true => format!("{name} listed opendkim twice; it now lists it once"),
                false => format!(
                    "{name} pointed at opendkim as '{}'; it now uses '{}' once",
                    gone.join("', '"),
                    ours.address
                ),
            });
        }
    }

    // Before counting: a list that reaches `$smtpd_milters` and `ours` only
    // reaches `ours` twice once smtpd_milters has it.
    let smtpd = main_cf::merged_milter_value(&new, "smtpd_milters", ours);
    new = main_cf::set(&new, "smtpd_milters", &smtpd);
    let non_smtpd = match main_cf::get(&new, "non_smtpd_milters") {
        None => "$smtpd_milters".to_string(),
        Some(_) => main_cf::merged_milter_value(&new, "non_smtpd_milters", ours),
    };
    new = main_cf::set(&new, "non_smtpd_milters", &non_smtpd);

    let reached = |text: &str, list: &str| {
        main_cf::effective_milters(text, list)
            .iter()
            .filter(|a| ours.is(a))
            .count()
    };
    for list in LISTS {
        // Until a round changes nothing: splicing can leave a direct entry
        // beside a reference it could not splice (an unclosed group). A round
        // splices or takes a duplicate away, so a few are enough.
        let mut rounds = 2 * reached(&new, list) + 1;
        loop {
            let old = new.clone();
            let before = reached(&new, list);
            let Some(value) = main_cf::get(&new, list) else {
                break;
            };
            let entries = main_cf::split_list(&value);
            let literal = entries.iter().any(|e| ours.is(&main_cf::milter_address(e)));
            if before > 1 && literal {
                let kept: Vec<String> = entries
                    .into_iter()
                    .filter(|e| !ours.is(&main_cf::milter_address(e)))
                    .collect();
                new = main_cf::set(&new, list, &kept.join(", "));
                notes.push(format!(
                    "{list} reached opendkim twice; the direct entry was removed"
                ));
            }
            if let Some(value) = main_cf::reach_once(&new, list, ours) {
                new = main_cf::set(&new, list, &value);
                notes.push(format!(
                    "{list} reached opendkim more than once through its references; a repeated \
                     reference now gives way to its other milters"
                ));
            }
            if new == old || rounds == 0 {
                break;
            }
            rounds -= 1;
        }
    }

    for list in LISTS {
        let Some(value) = main_cf::get(&new, list) else {
            continue;
        };
        let mut entries = main_cf::split_list(&value);
        let at_ours = entries
            .iter()
            .position(|e| ours.is(&main_cf::milter_address(e)));
        let at_dmarc = entries.iter().position(|e| main_cf::is_opendmarc(e));
        if let (Some(o), Some(d)) = (at_ours, at_dmarc)
            && o > d
        {
            let entry = entries.remove(o);
            entries.insert(d, entry);
            new = main_cf::set(&new, list, &entries.join(", "));
            notes.push(format!(
                "{list} ran OpenDMARC before opendkim; opendkim now comes first, so DMARC sees \
                 the signature"
            ));
        }
    }
    (new, notes)
}

/// A unix socket outside Postfix's chroot cannot be reached by chrooted
/// smtpd or cleanup (field case B08).
fn check_chroot(sock: &str, queue_dir: &str, chrooted: bool) -> Result<()> {
    if chrooted && !sock.starts_with(&format!("{}/", queue_dir.trim_end_matches('/'))) {
        return Err(bad_hint(
            format!(
                "invalid socket 'local:{sock}': Postfix's smtpd runs chrooted in '{queue_dir}' \
                 (master.cf), where '{sock}' does not exist"
            ),
            format!(
                "use local:{queue_dir}/opendkim/opendkim.sock, or the default \
                 inet:8891@127.0.0.1"
            ),
        ));
    }
    Ok(())
}

/// True when master.cf runs smtpd or cleanup (the daemons that call
/// milters) chrooted, so a unix socket must live under the queue directory.
pub fn postfix_chrooted(master: &str) -> bool {
    master.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        !line.starts_with(char::is_whitespace)
            && !line.starts_with('#')
            && f.len() >= 8
            && f[4] == "y"
            && (f[7] == "smtpd" || f[7] == "cleanup")
    })
}

/// Replace list entries that reach opendkim under another loopback name
/// (`inet:localhost:8891` for `inet:127.0.0.1:8891`) or at its old socket
/// with `ours`, and drop repeats; every other entry keeps its place, and so
/// does the first one that reaches the unix socket in a spelling of its own
/// (`unix:/opendkim/opendkim.sock`). Returns the new value and the
/// addresses replaced, or `None` when nothing changes.
fn replace_stale_milters(
    value: &str,
    ours: &main_cf::Ours,
    stale: &[String],
) -> Option<(String, Vec<String>)> {
    let mut seen = false;
    let mut changed = false;
    let mut gone = Vec::new();
    let mut out = Vec::new();
    for entry in main_cf::split_list(value) {
        let address = main_cf::milter_address(&entry);
        let reaches = ours.is(&address);
        if reaches || stale.iter().any(|s| ours.paths.same_milter(&address, s)) {
            let kept =
                address == ours.address || (reaches && ours.paths.unix_path(&address).is_some());
            if !kept {
                gone.push(address.clone());
            }
            if seen {
                changed = true;
            } else if kept {
                out.push(entry);
            } else {
                out.push(entry.replacen(&address, &ours.address, 1));
                changed = true;
            }
            seen = true;
        } else {
            out.push(entry);
        }
    }
    changed.then(|| (out.join(", "), gone))
}

/// The hosts of an inline InternalHosts list (`csl:` or a bare comma list),
/// kept when the setting moves to the TrustedHosts file. Other data set
/// types (files, databases) give nothing.
fn inline_hosts(value: &str) -> Vec<String> {
    const TYPES: &[&str] = &[
        "file", "refile", "db", "dsn", "ldap", "ldapi", "ldaps", "lua", "memcache", "mdb", "mysql",
        "odbc", "pgsql", "redis", "sqlite3",
    ];
    let list = match value.split_once(':') {
        Some(("csl", rest)) => rest,
        Some((kind, _)) if TYPES.contains(&kind) => return Vec::new(),
        _ if value.starts_with('/') => return Vec::new(),
        _ => value,
    };
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether a directory is fit to hold keys: owned by root or opendkim,
/// writable by nobody else, and traversable by opendkim.
fn dir_problem(st: &Stat, ids: Ids, root_owned_ok: bool) -> Option<String> {
    if st.mode & 0o022 != 0 {
        return Some(format!("mode {:04o} lets other users write to it", st.mode));
    }
    if st.uid != 0 && st.uid != ids.uid {
        return Some(format!("it is owned by uid {}", st.uid));
    }
    let traversable = (st.uid == ids.uid && st.mode & 0o100 != 0)
        || (st.gid == ids.gid && st.mode & 0o010 != 0)
        || st.mode & 0o001 != 0;
    if !traversable && !root_owned_ok {
        return Some("opendkim cannot enter it".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "inet:127.0.0.1:8891";

    fn ours() -> main_cf::Ours {
        main_cf::Ours::new(OURS, main_cf::Paths::new("/var/spool/postfix", false))
    }

    fn wired(tail: &str) -> String {
        let (text, _) = wire_milters(tail, &ours(), &[]);
        let (again, notes) = wire_milters(&text, &ours(), &[]);
        assert_eq!(again, text, "second pass changed something: {notes:?}");
        text
    }

    #[test]
    fn stale_and_respelled_milters_are_replaced_once() {
        let (v, gone) =
            replace_stale_milters("inet:localhost:8891, inet:127.0.0.1:8893", &ours(), &[])
                .unwrap();
        assert_eq!(v, "inet:127.0.0.1:8891, inet:127.0.0.1:8893");
        assert_eq!(gone, vec!["inet:localhost:8891"]);
        let stale = vec!["inet:127.0.0.1:8899".to_string()];
        let (v, _) =
            replace_stale_milters("inet:127.0.0.1:8899, unix:clamav/x.ctl", &ours(), &stale)
                .unwrap();
        assert_eq!(v, "inet:127.0.0.1:8891, unix:clamav/x.ctl");
        assert!(replace_stale_milters("inet:127.0.0.1:11332", &ours(), &stale).is_none());
        let (v, _) =
            replace_stale_milters("{ inet:localhost:8891, connect_timeout=10s }", &ours(), &[])
                .unwrap();
        assert_eq!(v, "{ inet:127.0.0.1:8891, connect_timeout=10s }");
        let (v, gone) =
            replace_stale_milters("inet:127.0.0.1:8891, inet:127.0.0.1:8891", &ours(), &[])
                .unwrap();
        assert_eq!((v.as_str(), gone.len()), (OURS, 0));
    }

    #[test]
    fn a_duplicate_entry_is_removed() {
        let text = wired("smtpd_milters = inet:127.0.0.1:8891, inet:127.0.0.1:8891\n");
        assert_eq!(main_cf::get(&text, "smtpd_milters").unwrap(), OURS);
        assert_eq!(
            main_cf::get(&text, "non_smtpd_milters").unwrap(),
            "$smtpd_milters"
        );
    }

    #[test]
    fn a_milter_behind_a_variable_is_respelled_not_duplicated() {
        let text = wired(
            "dkim_milter = inet:localhost:8891\nsmtpd_milters = $dkim_milter\n\
             non_smtpd_milters = $dkim_milter\n",
        );
        assert_eq!(main_cf::get(&text, "dkim_milter").unwrap(), OURS);
        assert_eq!(
            main_cf::get(&text, "smtpd_milters").unwrap(),
            "$dkim_milter"
        );
        assert_eq!(
            main_cf::effective_milters(&text, "non_smtpd_milters"),
            vec![OURS]
        );
    }

    #[test]
    fn a_direct_entry_beside_a_reference_to_ours_is_dropped() {
        let text = wired(
            "dkim_milter = inet:127.0.0.1:8891\nsmtpd_milters = $dkim_milter, \
             inet:127.0.0.1:8891\n",
        );
        assert_eq!(
            main_cf::effective_milters(&text, "smtpd_milters"),
            vec![OURS]
        );
    }

    #[test]
    fn a_repeated_reference_to_ours_is_listed_once() {
        // Found by fuzzing: `$s` twice, with `s` holding opendkim, reached it twice.
        let text = wired("s = inet:127.0.0.1:8891\nsmtpd_milters = $s $s\n");
        assert_eq!(main_cf::get(&text, "smtpd_milters").unwrap(), "$s");
        let text = wired("a = inet:127.0.0.1:8891\nb = $a, unix:rspamd\nsmtpd_milters = $a, $b\n");
        assert_eq!(
            main_cf::get(&text, "smtpd_milters").unwrap(),
            "$a, unix:rspamd"
        );
        for list in ["smtpd_milters", "non_smtpd_milters"] {
            assert_eq!(
                main_cf::effective_milters(&text, list),
                vec![OURS, "unix:rspamd"]
            );
        }
    }

    #[test]
    fn a_direct_entry_beside_smtpd_milters_is_dropped_once_that_reaches_ours() {
        // Found by fuzzing: smtpd_milters only got opendkim after the lists
        // were counted, so the second run removed the direct entry.
        let text = wired("non_smtpd_milters = $smtpd_milters, inet:127.0.0.1:8891\n");
        assert_eq!(main_cf::get(&text, "smtpd_milters").unwrap(), OURS);
        assert_eq!(
            main_cf::get(&text, "non_smtpd_milters").unwrap(),
            "$smtpd_milters"
        );
        let text = wired(
            "smtpd_milters = unix:rspamd\n\
             non_smtpd_milters = $smtpd_milters, inet:127.0.0.1:8891\n",
        );
        assert_eq!(
            main_cf::effective_milters(&text, "non_smtpd_milters"),
            vec![OURS, "unix:rspamd"]
        );
    }

    #[test]
    fn a_direct_entry_beside_a_reference_that_cannot_be_spliced_goes_in_one_run() {
        // Found by fuzzing: `$s` reached opendkim twice, once through `$sm`,
        // whose unclosed `{` kept it from being spliced; the first run left
        // the spliced direct entry beside `$sm`, the second removed it.
        let text = wired(
            "sm = inet:127.0.0.1:8891, x{\ns = inet:127.0.0.1:8891, $sm\nsmtpd_milters = $s\n",
        );
        assert_eq!(main_cf::get(&text, "smtpd_milters").unwrap(), "$sm");
    }

    #[test]
    fn opendkim_moves_ahead_of_opendmarc() {
        let text = wired("smtpd_milters = unix:opendmarc/opendmarc.sock, inet:127.0.0.1:8891\n");
        assert_eq!(
            main_cf::get(&text, "smtpd_milters").unwrap(),
            "inet:127.0.0.1:8891, unix:opendmarc/opendmarc.sock"
        );
        let text = wired(
            "smtpd_milters = inet:127.0.0.1:8893, inet:127.0.0.1:8891, inet:127.0.0.1:11332\n",
        );
        assert_eq!(
            main_cf::get(&text, "smtpd_milters").unwrap(),
            "inet:127.0.0.1:8891, inet:127.0.0.1:8893, inet:127.0.0.1:11332"
        );
    }

    /// The wiring for opendkim at /var/spool/postfix/opendkim/opendkim.sock.
    fn unix_ours(chrooted: bool) -> main_cf::Ours {
        main_cf::Ours::new(
            "unix:opendkim/opendkim.sock",
            main_cf::Paths::new("/var/spool/postfix", chrooted),
        )
    }

    #[test]
    fn unix_spellings_that_reach_opendkim_in_the_chroot_are_kept_as_they_are() {
        let ours = unix_ours(true);
        let text = "smtpd_milters = unix:/opendkim/opendkim.sock\n\
                    non_smtpd_milters = local:opendkim/opendkim.sock\n";
        let (once, notes) = wire_milters(text, &ours, &[]);
        assert_eq!(once, text, "{notes:?}");
        assert!(notes.is_empty(), "{notes:?}");
        for list in ["smtpd_milters", "non_smtpd_milters"] {
            let reached = main_cf::effective_milters(&once, list);
            assert_eq!(reached.iter().filter(|a| ours.is(a)).count(), 1, "{list}");
        }
    }

    #[test]
    fn unix_spellings_of_opendkim_are_listed_once() {
        let ours = unix_ours(true);
        let (text, notes) = wire_milters(
            "smtpd_milters = unix:/opendkim/opendkim.sock, unix:rspamd/rspamd.sock, \
             local:opendkim/opendkim.sock, unix:opendkim/opendkim.sock\n",
            &ours,
            &[],
        );
        assert_eq!(
            main_cf::get(&text, "smtpd_milters").unwrap(),
            "unix:/opendkim/opendkim.sock, unix:rspamd/rspamd.sock"
        );
        assert_eq!(
            notes,
            ["smtpd_milters listed opendkim twice; it now lists it once"]
        );
        assert_eq!(wire_milters(&text, &ours, &[]).0, text);
        // A literal entry beside a reference that reaches opendkim goes.
        let (text, _) = wire_milters(
            "dkim = local:/opendkim/opendkim.sock\nsmtpd_milters = $dkim\n\
             non_smtpd_milters = $smtpd_milters, unix:opendkim/opendkim.sock\n",
            &ours,
            &[],
        );
        assert_eq!(
            main_cf::get(&text, "non_smtpd_milters").unwrap(),
            "$smtpd_milters"
        );
        assert_eq!(wire_milters(&text, &ours, &[]).0, text);
    }

    #[test]
    fn an_absolute_path_reaches_opendkim_without_the_chroot_only_when_it_is_the_real_one() {
        let ours = unix_ours(false);
        let text = "smtpd_milters = unix:/var/spool/postfix/opendkim/opendkim.sock\n\
                    non_smtpd_milters = $smtpd_milters\n";
        assert_eq!(wire_milters(text, &ours, &[]).0, text);
        let (text, _) = wire_milters("smtpd_milters = unix:/opendkim/opendkim.sock\n", &ours, &[]);
        assert_eq!(
            main_cf::get(&text, "smtpd_milters").unwrap(),
            "unix:opendkim/opendkim.sock, unix:/opendkim/opendkim.sock"
        );
    }

    #[test]
    fn an_old_unix_socket_in_another_spelling_is_replaced() {
        let ours = unix_ours(true);
        let stale = vec!["unix:opendkim/old.sock".to_string()];
        let (text, notes) = wire_milters(
            "smtpd_milters = local:/opendkim/old.sock, unix:rspamd\n",
            &ours,
            &stale,
        );
        assert_eq!(
            main_cf::get(&text, "smtpd_milters").unwrap(),
            "unix:opendkim/opendkim.sock, unix:rspamd"
        );
        assert!(notes[0].contains("'local:/opendkim/old.sock'"), "{notes:?}");
    }

    #[test]
    fn inline_internal_hosts_are_kept() {
        assert_eq!(
            inline_hosts("192.168.0.0/16, 10.0.0.0/8"),
            vec!["192.168.0.0/16", "10.0.0.0/8"]
        );
        assert_eq!(inline_hosts("csl:::1,127.0.0.1"), vec!["::1", "127.0.0.1"]);
        assert_eq!(inline_hosts("::1"), vec!["::1"]);
        assert!(inline_hosts("refile:/etc/opendkim/TrustedHosts").is_empty());
        assert!(inline_hosts("/etc/opendkim/TrustedHosts").is_empty());
    }

    #[test]
    fn dataset_prefixes_are_stripped() {
        assert_eq!(dataset_path("refile:/etc/x").as_deref(), Some("/etc/x"));
        assert_eq!(dataset_path("file:/etc/x").as_deref(), Some("/etc/x"));
        assert_eq!(dataset_path("/etc/x").as_deref(), Some("/etc/x"));
        assert_eq!(dataset_path("127.0.0.1, ::1"), None);
    }

    #[test]
    fn key_directories_must_be_private() {
        let ids = Ids { uid: 103, gid: 107 };
        let st = |mode, uid, gid| Stat {
            mode,
            uid,
            gid,
            is_dir: true,
        };
        assert!(dir_problem(&st(0o750, 103, 107), ids, false).is_none());
        assert!(dir_problem(&st(0o750, 0, 107), ids, false).is_none());
        assert!(dir_problem(&st(0o777, 103, 107), ids, false).is_some());
        assert!(dir_problem(&st(0o700, 0, 0), ids, false).is_some());
        assert!(dir_problem(&st(0o750, 1000, 107), ids, false).is_some());
    }
}
