//! Applying a plan: the only code that writes to the machine.
//!
//! Before each change the way to undo it is written to the run's journal on
//! disk ([`crate::journal`]), and a modified file is also copied under
//! `/var/backups/dkim-setup/STAMP/` for the administrator, so that any
//! failure (a write, a check of the new configuration, a service that does
//! not come up, or the process being killed) can restore every file, remove
//! what was created, and bring the old configuration back up. Files are
//! written to a temporary name beside the target and renamed into place;
//! keys are created 0600 and owned by the opendkim user before a single byte
//! of them is written, and a key file is never overwritten.

use crate::journal::{self, Journal, Outcome, Record, sha256};
use crate::keys;
use crate::plan::{DnsRecord, Owner, Plan, Purpose, ServiceAction, Status, Step};
use crate::services::{self, Init};
use crate::setup::Ctx;
use crate::validate::Socket;
use anyhow::{Context, Result, anyhow, bail};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A file as it was before the run changed it, kept in the journal.
struct Old {
    before: String,
    mode: u32,
    uid: u32,
    gid: u32,
    sha: String,
}

/// Status lines for the user, printed as the run goes.
pub trait Progress {
    /// A step begins, e.g. `("editing", "/etc/opendkim.conf")`.
    fn step(&self, verb: &str, text: &str);
    /// The step that began last ended well.
    fn done(&self) {}
    /// The step that began last failed.
    fn failed(&self, _error: &str) {}
    /// A planned step was skipped, and why.
    fn skipped(&self, _text: &str, _why: &str) {}
    /// A message that is not a step.
    fn warn(&self, text: &str) {
        errln!("warning: {text}");
    }
}

/// Applies a plan and remembers how to undo it.
pub struct Applier<'a> {
    ctx: &'a Ctx<'a>,
    progress: &'a dyn Progress,
    backup_dir: String,
    journal: Journal,
    euid_root: bool,
}

impl<'a> Applier<'a> {
    pub fn new(ctx: &'a Ctx<'a>, progress: &'a dyn Progress, command: &str) -> Self {
        let run = timestamp();
        let mut running = Vec::new();
        if ctx.services_live() {
            if !services::opendkim_pids().is_empty() {
                running.push("opendkim".to_string());
            }
            if services::postfix_running() {
                running.push("postfix".to_string());
            }
        }
        Applier {
            ctx,
            progress,
            backup_dir: format!("/var/backups/dkim-setup/{run}"),
            journal: Journal::new(&ctx.root, &run, command, running),
            euid_root: nix::unistd::geteuid().is_root(),
        }
    }

    /// The id of this run's journal, once it changed something.
    pub fn run_id(&self) -> Option<&str> {
        self.journal.started().then(|| self.journal.run())
    }

    /// Run one command step now (the package install, before planning files).
    pub fn run_command(&mut self, step: &Step) -> Result<()> {
        let Step::Command { argv, .. } = step else {
            return Ok(());
        };
        self.progress.step("running", &argv.join(" "));
        let env = [("DEBIAN_FRONTEND", "noninteractive")];
        let mut out = self.ctx.runner.run_env(argv, &env)?;
        if !out.success()
            && argv.iter().any(|a| a == "apt-get")
            && out.said().contains("Unable to locate")
        {
            let mut update: Vec<String> = argv
                .iter()
                .take_while(|a| *a != "apt-get")
                .cloned()
                .collect();
            update.extend(["apt-get".to_string(), "update".to_string()]);
            self.progress.step("running", &update.join(" "));
            self.ctx.runner.run_env(&update, &env)?;
            out = self.ctx.runner.run_env(argv, &env)?;
        }
        if !out.success() {
            self.progress.failed(&format!("exit {}", out.status));
            bail!(
                "'{}' failed (exit {}):\n{}",
                argv.join(" "),
                out.status,
                out.said()
            );
        }
        self.progress.done();
        Ok(())
    }

    /// Apply every step of the plan after the package install. On failure,
    /// everything is restored and the error says what was restored.
    pub fn apply(&mut self, plan: &mut Plan, socket: &Socket) -> Result<()> {
        let init = services::init_system(&self.ctx.root);
        let profile = plan.distro.profile();
        let mut records = Vec::new();
        let mut failure = None;
        for i in 0..plan.steps.len() {
            if crate::interrupt::requested() {
                failure = Some((i, anyhow!("interrupted ({})", crate::interrupt::what())));
                break;
            }
            let result = self.journal.between_steps().and_then(|()| {
                self.apply_step(&plan.steps[i], profile, init, socket, &mut records)
            });
            match result {
                Ok(()) => self.progress.done(),
                Err(e) => {
                    self.progress.failed(&format!("{e:#}"));
                    mark_failed(&mut plan.steps[i]);
                    failure = Some((i, e));
                    break;
                }
            }
        }
        if let Some((i, err)) = failure {
            self.progress.step("restoring", "everything changed so far");
            let (restored, kept) = self.restore(profile);
            if let Err(e) = self.journal.end(Outcome::RolledBack, kept) {
                tracing::warn!("cannot close the journal: {e:#}");
            }
            self.progress.done();
            if crate::interrupt::requested() {
                return Err(crate::error::Interrupted(restored).into());
            }
            let before = self.already_failing(&plan.steps[i]);
            return Err(anyhow!("{err:#}\n{restored}{before}"));
        }
        plan.dns_records = records;
        self.journal.end(Outcome::Complete, Vec::new())?;
        Ok(())
    }

    /// After a failed check and the restore: does the same check fail on the
    /// configuration as it was? Then the problem predates this run.
    fn already_failing(&self, step: &Step) -> String {
        let Step::Command {
            argv,
            purpose: Purpose::Check,
            ..
        } = step
        else {
            return String::new();
        };
        match self.ctx.runner.run(argv) {
            Ok(out) if !out.success() => format!(
                "\nhint: '{}' fails on the configuration as it was before this run too: the \
                 problem was already there; fix it, then run dkim-setup again",
                argv.join(" ")
            ),
            _ => String::new(),
        }
    }

    fn apply_step(
        &mut self,
        step: &Step,
        profile: &'static crate::distro::Profile,
        init: Init,
        socket: &Socket,
        records: &mut Vec<DnsRecord>,
    ) -> Result<()> {
        match step {
            Step::File {
                path,
                old,
                new,
                mode,
                owner,
                ..
            } => {
                if old.as_deref() == Some(new.as_str()) {
                    return Ok(());
                }
                self.progress
                    .step(if old.is_some() { "editing" } else { "writing" }, path);
                self.still_as_planned(path, old.as_deref())?;
                self.write_file(path, new, *mode, owner.as_ref())
            }
            Step::Dir {
                path,
                action,
                mode,
                owner,
            } => {
                if *action == crate::plan::Action::Unchanged {
                    return Ok(());
                }
                self.progress.step("creating", &format!("{path}/"));
                self.create_dir(path, *mode, owner)
            }
            Step::Attrs {
                path,
                mode,
                owner,
                why,
            } => {
                self.progress.step("fixing", &format!("{path} ({why})"));
                self.set_attrs(path, *mode, owner)
            }
            Step::Key {
                path,
                action,
                bits,
                domain,
                selector,
                owner,
                record: published_at,
            } => {
                let record = if *action == crate::plan::Action::Create {
                    self.progress
                        .step("generating", &format!("{path} ({bits}-bit RSA)"));
                    self.create_key(
                        path,
                        *bits,
                        domain,
                        selector,
                        owner,
                        published_at.as_deref(),
                    )?
                } else {
                    let pem = fs::read_to_string(self.ctx.root.path(path))
                        .with_context(|| format!("cannot read the key '{path}'"))?;
                    keys::record_for(
                        &keys::parse_private(&pem)
                            .with_context(|| format!("the key file '{path}' cannot be used"))?,
                    )?
                };
                records.push(DnsRecord {
                    name: published_at
                        .clone()
                        .unwrap_or_else(|| format!("{selector}._domainkey.{domain}")),
                    kind: "TXT".into(),
                    value: record,
                });
                Ok(())
            }
            Step::Command {
                argv,
                purpose,
                status,
                reason,
            } => {
                if *status == Status::Skipped {
                    let why = reason.as_deref().unwrap_or("not needed");
                    self.progress.skipped(&argv.join(" "), why);
                    return Ok(());
                }
                match purpose {
                    Purpose::Install => Ok(()),
                    Purpose::Change => {
                        self.progress.step("running", &argv.join(" "));
                        self.journal.record(Record::Command {
                            argv: argv.clone(),
                            undo: undo_of(argv).unwrap_or_default(),
                        })?;
                        services::run_checked(self.ctx.runner, argv)
                    }
                    Purpose::Check => {
                        self.progress.step("checking", &argv.join(" "));
                        let out = self.ctx.runner.run(argv)?;
                        let warned = argv.last().is_some_and(|a| a == "-n")
                            && argv.iter().any(|a| a == "postconf")
                            && out.stderr.contains("warning:");
                        if !out.success() || warned {
                            bail!(
                                "the new configuration failed '{}' (exit {}): {}",
                                argv.join(" "),
                                out.status,
                                out.said()
                            );
                        }
                        Ok(())
                    }
                }
            }
            Step::Remove { path, why } => {
                self.progress.step("removing", &format!("{path} ({why})"));
                self.remove_file(path)
            }
            Step::Verify {
                scope,
                status,
                reason,
            } => {
                let what = crate::plan::scope_text(*scope);
                if *status == Status::Skipped {
                    self.progress
                        .skipped(what, reason.as_deref().unwrap_or("not needed"));
                    return Ok(());
                }
                self.progress.step("verifying", what);
                let problems = crate::check::written_problems(
                    &self.ctx.root,
                    profile,
                    *scope,
                    self.euid_root,
                )?;
                if !problems.is_empty() {
                    bail!(
                        "the files as written would not work (opendkim -n and postfix check do \
                         not see this): {}",
                        problems.join("; ")
                    );
                }
                Ok(())
            }
            Step::Service {
                name,
                action,
                argv,
                status,
                reason,
            } => {
                if *status == Status::Skipped {
                    let why = reason.as_deref().unwrap_or("not needed");
                    self.progress.skipped(&argv.join(" "), why);
                    return Ok(());
                }
                let verb = match action {
                    ServiceAction::Enable => "enabling",
                    ServiceAction::Start => "starting",
                    ServiceAction::Restart => "restarting",
                    ServiceAction::Reload => "reloading",
                };
                self.progress.step(verb, name);
                self.journal.record(Record::Service {
                    name: name.clone(),
                    action: format!("{action:?}").to_lowercase(),
                    argv: argv.clone(),
                })?;
                let (runner, root) = (self.ctx.runner, &self.ctx.root);
                services::perform(runner, root, init, name, *action, argv, socket)?;
                let proves = name == "opendkim"
                    && *action != ServiceAction::Enable
                    && root.is_live()
                    && !runner.is_recording();
                if proves {
                    // Answering on the socket is not signing: prove it, with
                    // the keys the tables now name.
                    let problems = crate::check::signing_problems(root, profile)?;
                    if !problems.is_empty() {
                        bail!(
                            "opendkim is up but does not sign as configured: {}",
                            problems.join("; ")
                        );
                    }
                }
                Ok(())
            }
        }
    }

    fn ids(&self, owner: &Owner) -> Result<(u32, u32)> {
        let user = self
            .ctx
            .root
            .user(&owner.user)?
            .ok_or_else(|| anyhow!("user '{}' not found in /etc/passwd", owner.user))?;
        let group = self
            .ctx
            .root
            .group(&owner.group)?
            .ok_or_else(|| anyhow!("group '{}' not found in /etc/group", owner.group))?;
        Ok((user.uid, group.gid))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        if self.euid_root {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("cannot change the owner of '{}'", path.display()))?;
        }
        Ok(())
    }

    fn backup(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let dest = self.ctx.root.path(&format!("{}{path}", self.backup_dir));
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).with_context(|| {
                format!("cannot create the backup directory '{}'", parent.display())
            })?;
            fs::set_permissions(
                self.ctx.root.path(&self.backup_dir),
                fs::Permissions::from_mode(0o700),
            )?;
        }
        fs::write(&dest, bytes).with_context(|| format!("cannot back up '{path}'"))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    /// A file is written only while it is what the plan was computed from:
    /// an edit by hand, or another run, since the plan stops the run.
    fn still_as_planned(&self, path: &str, old: Option<&str>) -> Result<()> {
        let now = fs::read(self.ctx.root.path(path)).ok();
        if now.as_deref() == old.map(str::as_bytes) {
            return Ok(());
        }
        bail!(
            "'{path}' changed while this run was being planned (edited by hand, or by another \
             run); nothing of it was overwritten\nhint: run dkim-setup again to plan against \
             the file as it is now"
        )
    }

    fn write_file(
        &mut self,
        path: &str,
        text: &str,
        mode: u32,
        owner: Option<&Owner>,
    ) -> Result<()> {
        let real = self.ctx.root.path(path);
        let (mode, uid, gid) = match fs::metadata(&real) {
            Ok(_) => {
                let old = self.keep_old(path, true)?;
                self.journal.record(Record::Modify {
                    path: path.to_string(),
                    before: old.before,
                    mode: old.mode,
                    uid: old.uid,
                    gid: old.gid,
                    old_sha: old.sha,
                    new_sha: sha256(text.as_bytes()),
                })?;
                (old.mode, old.uid, old.gid)
            }
            Err(_) => {
                let (uid, gid) = match owner {
                    Some(o) => self.ids(o)?,
                    None => (0, 0),
                };
                self.journal.record(Record::Create {
                    path: path.to_string(),
                    new_sha: sha256(text.as_bytes()),
                    tmp: Some(tmp_target(path)),
                })?;
                (mode, uid, gid)
            }
        };
        journal::write_atomic(&real, text.as_bytes(), mode, Some((uid, gid)))
            .with_context(|| format!("cannot write '{path}'"))
    }

    /// Keep a file's bytes in the journal before it changes (and, with
    /// `backup`, a copy under /var/backups for the administrator; never for
    /// a key).
    fn keep_old(&mut self, path: &str, backup: bool) -> Result<Old> {
        let real = self.ctx.root.path(path);
        let meta = fs::symlink_metadata(&real).with_context(|| format!("cannot stat '{path}'"))?;
        let bytes = fs::read(&real).with_context(|| format!("cannot read '{path}'"))?;
        if backup {
            self.backup(path, &bytes)?;
        }
        Ok(Old {
            before: self.journal.save_before(path, &bytes)?,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            sha: sha256(&bytes),
        })
    }

    fn remove_file(&mut self, path: &str) -> Result<()> {
        let old = self.keep_old(path, false)?;
        self.journal.record(Record::Delete {
            path: path.to_string(),
            before: old.before,
            mode: old.mode,
            uid: old.uid,
            gid: old.gid,
            old_sha: old.sha,
        })?;
        fs::remove_file(self.ctx.root.path(path)).with_context(|| format!("cannot remove '{path}'"))
    }

    fn create_dir(&mut self, path: &str, mode: u32, owner: &Owner) -> Result<()> {
        let (uid, gid) = self.ids(owner)?;
        let real = self.ctx.root.path(path);
        // Only a directory this run really creates may ever be removed by
        // an undo: one that appeared since the plan stops the run here.
        if fs::symlink_metadata(&real).is_ok() {
            bail!(
                "'{path}' appeared while this run was being planned; nothing of it was \
                 changed\nhint: run dkim-setup again to plan against the system as it is now"
            );
        }
        self.journal.record(Record::Mkdir {
            path: path.to_string(),
        })?;
        fs::create_dir(&real).with_context(|| format!("cannot create the directory '{path}'"))?;
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))?;
        self.chown(&real, uid, gid)
    }

    fn set_attrs(&mut self, path: &str, mode: u32, owner: &Owner) -> Result<()> {
        let (uid, gid) = self.ids(owner)?;
        let real = self.ctx.root.path(path);
        let meta = fs::symlink_metadata(&real).with_context(|| format!("cannot stat '{path}'"))?;
        let (new_uid, new_gid) = if self.euid_root {
            (uid, gid)
        } else {
            (meta.uid(), meta.gid())
        };
        self.journal.record(Record::Attrs {
            path: path.to_string(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            new_mode: mode,
            new_uid,
            new_gid,
        })?;
        self.chown(&real, uid, gid)?;
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot change the mode of '{path}'"))
    }

    fn create_key(
        &mut self,
        path: &str,
        bits: u32,
        domain: &str,
        selector: &str,
        owner: &Owner,
        published_at: Option<&str>,
    ) -> Result<String> {
        let (uid, gid) = self.ids(owner)?;
        let real = self.ctx.root.path(path);
        if real.exists() {
            bail!("refusing to overwrite the existing key '{path}'");
        }
        let key = keys::generate(bits)?;
        let tmp = journal::tmp_name(&real);
        self.journal.record(Record::Create {
            path: path.to_string(),
            new_sha: sha256(key.pem.as_bytes()),
            tmp: Some(tmp_target(path)),
        })?;
        let write = || -> Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
            self.chown(&tmp, uid, gid)?;
            file.write_all(key.pem.as_bytes())?;
            file.sync_all()?;
            fs::hard_link(&tmp, &real)?;
            Ok(())
        };
        let _ = fs::remove_file(&tmp);
        let result = write();
        let _ = fs::remove_file(&tmp);
        result.with_context(|| format!("cannot write the key '{path}'"))?;

        let txt = path
            .strip_suffix(".private")
            .map(|p| format!("{p}.txt"))
            .unwrap_or_else(|| format!("{path}.txt"));
        if !self.ctx.root.exists(&txt) {
            let quoted: Vec<String> = keys::split_strings(&key.record)
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect();
            let text = match published_at {
                Some(name) => format!(
                    "{name}.\tIN\tTXT\t( {} )  ; DKIM key slot {name}\n",
                    quoted.join("\n\t")
                ),
                None => format!(
                    "{selector}._domainkey\tIN\tTXT\t( {} )  ; DKIM key {selector} for {domain}\n",
                    quoted.join("\n\t")
                ),
            };
            self.write_file(&txt, &text, 0o644, Some(owner))?;
        }
        Ok(key.record)
    }

    /// Undo every change of this run from its journal, newest first, then
    /// bring the services back to how they were before the run, as
    /// `revert` does; returns what was restored and what the services were
    /// told, for the user, and the paths left alone.
    fn restore(&mut self, profile: &crate::distro::Profile) -> (String, Vec<String>) {
        let runner = self.ctx.runner;
        let mut run_undo = |argv: &[String]| services::run_checked(runner, argv);
        let done = journal::undo(
            &self.ctx.root,
            &self.journal.dir(),
            self.journal.records(),
            true,
            &mut run_undo,
        );
        let settled =
            crate::revert::settle_services(self.ctx, profile, &self.journal.past(), &done);
        let mut parts = Vec::new();
        if !done.is_empty() {
            parts.push(done.summary());
        }
        parts.extend(settled.done.iter().cloned());
        let summary = parts.join("; ");
        let services = if settled.warnings.is_empty() {
            String::new()
        } else {
            format!(
                "\nnot every service is back as it was before this run: {}",
                settled.warnings.join("; ")
            )
        };
        if !done.failed.is_empty() {
            let text = format!(
                "{}\ncould not undo: {}; the old files are in '{}/before' and '{}'{services}",
                if summary.is_empty() {
                    "nothing could be restored"
                } else {
                    &summary
                },
                done.failed.join("; "),
                self.journal.dir(),
                self.backup_dir
            );
            return (text, done.kept);
        }
        if parts.is_empty() {
            return (format!("nothing had been changed yet{services}"), done.kept);
        }
        if !services.is_empty() {
            return (
                format!("the files were put back: {summary}{services}"),
                done.kept,
            );
        }
        (format!("nothing was left half-done: {summary}"), done.kept)
    }
}

/// The command that takes back a changing command: `usermod -a -G GROUP
/// USER` is undone by `gpasswd -d USER GROUP`, `semanage port -a` by
/// `semanage port -d`.
fn undo_of(argv: &[String]) -> Option<Vec<String>> {
    if let Some(i) = argv.iter().position(|a| a == "-G") {
        let mut undo: Vec<String> = vec!["gpasswd".into()];
        if let Some(r) = argv.iter().position(|a| a == "--root") {
            undo.extend(["--root".into(), argv.get(r + 1)?.clone()]);
        }
        undo.extend([
            "-d".into(),
            argv.get(i + 2)?.clone(),
            argv.get(i + 1)?.clone(),
        ]);
        return Some(undo);
    }
    crate::selinux::undo(argv)
}

fn mark_failed(step: &mut Step) {
    match step {
        Step::Command { status, .. } | Step::Service { status, .. } => *status = Status::Failed,
        _ => {}
    }
}

/// The target path of the temporary name `path` is written under first.
fn tmp_target(path: &str) -> String {
    journal::tmp_name(Path::new(path)).display().to_string()
}

/// UTC time as `YYYYMMDDTHHMMSS.uuuuuuZ-PID`: sortable, and unique.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    // Microseconds, so that the ids of runs sort as they happened (the
    // process id alone does not: it wraps, and sorts as text).
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:06}Z-{}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_micros(),
        std::process::id()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_undone_by_their_opposite() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            undo_of(&words(&[
                "usermod", "--root", "/t", "-a", "-G", "opendkim", "postfix"
            ])),
            Some(words(&[
                "gpasswd", "--root", "/t", "-d", "postfix", "opendkim"
            ]))
        );
        assert_eq!(
            undo_of(&words(&["restorecon", "-R", "/etc/opendkim"])),
            None
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_425), (2025, 12, 3));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
