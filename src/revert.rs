//! `dkim-setup revert`: take back a run from its journal, byte for byte.
//!
//! 1. Take the run lock, and finish undoing any run that was killed midway
//!    (the same happens at the start of every `wizard` run).
//! 2. Pick the run: the one named, or the newest run that completed.
//! 3. Refuse, changing nothing, when a path the run changed has been changed
//!    again since (by hand, or by a later run), naming each; `--force` puts
//!    those back as they were before the run too.
//! 4. Undo the run's records newest first: restore modified files with their
//!    old bytes, mode and owner, remove the files and directories it created,
//!    take back group memberships.
//! 5. Bring the services back to how they were before the run: Postfix is
//!    reloaded first, so that it no longer asks opendkim before opendkim
//!    goes; opendkim is restarted on its old configuration when it ran
//!    before, and stopped (and disabled, when the run enabled it) when the
//!    run had started it.

use crate::cli::{Global, RevertArgs};
use crate::distro::Profile;
use crate::error::BadInput;
use crate::journal::{self, Outcome, Past, RUNS_DIR, Record, Undone};
use crate::plan::ServiceAction;
use crate::services::{self, Init};
use crate::setup::Ctx;
use crate::system::runner::{self, argv as words};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

pub fn run(global: &Global, args: &RevertArgs) -> Result<u8> {
    let (root, distro) = crate::changing_root(global)?;
    let runner = runner::from_env();
    let ctx = Ctx {
        root,
        runner: runner.as_ref(),
        dry_run: global.dry_run,
    };
    let profile = distro.profile();

    if args.list {
        return list(global, &ctx);
    }
    // A named run must exist before anything is touched (bad input changes
    // nothing), and with no run at all there is nothing to lock for.
    let known = journal::runs(&ctx.root)?;
    if let Some(id) = &args.run
        && !known.iter().any(|p| &p.id == id)
    {
        let ids: Vec<&str> = known.iter().map(|p| p.id.as_str()).collect();
        return Err(BadInput::new(format!("no run '{id}' in '{RUNS_DIR}'"))
            .hint(if ids.is_empty() {
                "no run of dkim-setup has changed this system".to_string()
            } else {
                format!("the runs are: {}", ids.join(", "))
            })
            .into());
    }
    if known.is_empty() {
        bail!("nothing to revert: no run of dkim-setup has changed this system");
    }
    let _lock = if ctx.dry_run {
        None
    } else {
        Some(journal::lock(&ctx.root)?)
    };
    let recovered = if ctx.dry_run {
        Vec::new()
    } else {
        finish_interrupted(&ctx, profile)?
    };
    if args.run.is_none() && !recovered.is_empty() {
        // Undoing the interrupted run was the revert; the run before it is
        // taken back only when asked again.
        let ids = recovered.join(", ");
        if global.json {
            let doc = json!({"changed": true, "dry_run": false, "run": ids,
                "note": "the run was interrupted; undoing it was this revert"});
            outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        errln!(
            "reverted run {ids}, which was interrupted; nothing else was taken back (run \
             'dkim-setup revert' again for the run before it)"
        );
        return Ok(0);
    }

    let runs = journal::runs(&ctx.root)?;
    let target = match &args.run {
        Some(id) => match runs.iter().find(|p| &p.id == id) {
            Some(p) => p.clone(),
            None if recovered.iter().any(|r| r == id) => {
                return done_already(global, id, "it was interrupted and has just been undone");
            }
            None => {
                let known: Vec<&str> = runs.iter().map(|p| p.id.as_str()).collect();
                return Err(BadInput::new(format!("no run '{id}' in '{RUNS_DIR}'"))
                    .hint(if known.is_empty() {
                        "no run of dkim-setup has changed this system".to_string()
                    } else {
                        format!("the runs are: {}", known.join(", "))
                    })
                    .into());
            }
        },
        None => match runs.iter().rev().find(|p| p.end == Some(Outcome::Complete)) {
            Some(p) => p.clone(),
            None if !recovered.is_empty() => {
                return done_already(
                    global,
                    &recovered.join(", "),
                    "it was interrupted and has just been undone",
                );
            }
            None => bail!(
                "nothing to revert: no completed run of dkim-setup is recorded in '{RUNS_DIR}'"
            ),
        },
    };
    match target.end {
        Some(Outcome::Complete) => {}
        Some(Outcome::Reverted) => {
            return done_already(global, &target.id, "it was reverted before");
        }
        _ => {
            return done_already(
                global,
                &target.id,
                &format!("it is {}: its changes were undone then", target.state()),
            );
        }
    }

    let changed = journal::changed_since(&ctx.root, &target.changes)?;
    if !changed.is_empty() && !args.force {
        let list = changed
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let err = anyhow!(
            "{list} changed since run {}; nothing was reverted\nhint: look at the changes, \
             then run 'dkim-setup revert {} --force' to put them back as they were before \
             that run too",
            target.id,
            target.id
        );
        return fail(global, &target.id, err);
    }

    if ctx.dry_run {
        return show_dry_run(global, &target);
    }
    let saved = if args.force {
        save_changed(&ctx, &target.id, &changed)?
    } else {
        None
    };
    let dir = format!("{RUNS_DIR}/{}", target.id);
    let runner = ctx.runner;
    let mut run_undo = |argv: &[String]| services::run_checked(runner, argv);
    let undone = journal::undo(&ctx.root, &dir, &target.changes, args.force, &mut run_undo);
    if !undone.failed.is_empty() {
        let err = anyhow!(
            "could not undo all of run {}: {}; {} so far; the old files are in '{dir}/before'",
            target.id,
            undone.failed.join("; "),
            undone.summary()
        );
        return fail(global, &target.id, err);
    }
    journal::close(
        &ctx.root,
        &target.id,
        Outcome::Reverted,
        undone.kept.clone(),
    )?;

    // Out of order or forced, a revert can leave tables that no longer fit
    // together (a later run built on this one): then no service is pointed
    // at them, and the administrator is told what to do.
    let configured = ctx
        .root
        .read_opt(profile.opendkim_conf)?
        .is_some_and(|c| crate::edit::opendkim_conf::get(&c, "KeyTable").is_some());
    if configured {
        let euid_root = nix::unistd::geteuid().is_root();
        let problems = crate::check::written_problems(
            &ctx.root,
            profile,
            crate::check::Scope::Postfix,
            euid_root,
        )?;
        if !problems.is_empty() {
            let err = anyhow!(
                "run {} was reverted ({}), but what is left would not work: {}; no service was \
                 restarted or reloaded\nhint: take back the later runs too ('dkim-setup revert \
                 --list'), or run 'dkim-setup wizard' to repair the setup",
                target.id,
                undone.summary(),
                problems.join("; ")
            );
            return fail(global, &target.id, err);
        }
    }
    let settled = settle_services(&ctx, profile, &target, &undone);

    if global.json {
        let doc = json!({
            "changed": !undone.is_empty(),
            "dry_run": false,
            "run": target.id,
            "restored": undone.restored,
            "removed": undone.removed,
            "commands": undone.commands,
            "services": settled.done,
            "warnings": settled.warnings,
        });
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    for warning in &settled.warnings {
        errln!("warning: {warning}");
    }
    if let Some(place) = &saved {
        errln!("note: the files changed since that run were saved under '{place}' first");
    }
    for path in &undone.kept {
        errln!("warning: '{path}' holds files that are not the run's own; it was left in place");
    }
    if !global.quiet {
        errln!("reverted run {}: {}", target.id, undone.summary());
        for line in &settled.done {
            errln!("  {line}");
        }
    }
    Ok(0)
}

/// Before `--force` puts files back, keep what they hold now under
/// `/var/backups/dkim-setup/` (returned), so that no edit is lost.
fn save_changed(ctx: &Ctx, run: &str, changed: &[String]) -> Result<Option<String>> {
    let place = format!(
        "/var/backups/dkim-setup/{}-before-forced-revert-of-{run}",
        crate::apply::timestamp()
    );
    let mut any = false;
    for path in changed.iter().filter(|p| !p.ends_with('/')) {
        let Ok(bytes) = std::fs::read(ctx.root.path(path)) else {
            continue;
        };
        let dest = ctx.root.path(&format!("{place}{path}"));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create '{place}'"))?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("cannot save '{path}'"))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600))?;
        any = true;
    }
    if any {
        std::fs::set_permissions(
            ctx.root.path(&place),
            std::fs::Permissions::from_mode(0o700),
        )?;
    }
    Ok(any.then_some(place))
}

fn done_already(global: &Global, id: &str, why: &str) -> Result<u8> {
    if global.json {
        let doc = json!({"changed": false, "dry_run": global.dry_run, "run": id, "note": why});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    errln!("nothing to revert for run {id}: {why}");
    Ok(0)
}

fn fail(global: &Global, id: &str, err: anyhow::Error) -> Result<u8> {
    if global.json {
        let doc = json!({"changed": false, "dry_run": global.dry_run, "run": id,
            "error": format!("{err:#}")});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Err(crate::error::Reported(err).into());
    }
    Err(err)
}

fn list(global: &Global, ctx: &Ctx) -> Result<u8> {
    let runs = journal::runs(&ctx.root)?;
    let infos: Vec<journal::RunInfo> = runs.iter().map(Past::info).collect();
    if global.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "runs": infos })).unwrap_or_default()
        );
        return Ok(0);
    }
    if infos.is_empty() {
        outln!("No run of dkim-setup has changed this system.");
        return Ok(0);
    }
    // Run ids grow with the process id: the column fits the longest.
    let width = infos.iter().map(|i| i.id.len()).max().unwrap_or(0);
    outln!(
        "{:<width$} {:<20} {:<20} {:>7}  COMMAND",
        "RUN",
        "STARTED (UTC)",
        "STATE",
        "CHANGES"
    );
    for info in infos {
        outln!(
            "{:<width$} {:<20} {:<20} {:>7}  {}",
            info.id,
            utc(info.started),
            info.state,
            info.changes,
            info.command
        );
    }
    Ok(0)
}

fn show_dry_run(global: &Global, past: &Past) -> Result<u8> {
    let lines: Vec<String> = past
        .changes
        .iter()
        .rev()
        .filter_map(|r| match r {
            Record::Modify { path, .. } => Some(format!("restore   {path}")),
            Record::Create { path, .. } => Some(format!("remove    {path}")),
            Record::Delete { path, .. } => Some(format!("restore   {path} (deleted by the run)")),
            Record::Mkdir { path } => Some(format!("remove    {path}/")),
            Record::Attrs { path, .. } => Some(format!("restore   {path} (owner and mode)")),
            Record::Command { undo, .. } if !undo.is_empty() => {
                Some(format!("run       {}", undo.join(" ")))
            }
            _ => None,
        })
        .collect();
    if global.json {
        let doc = json!({"changed": !lines.is_empty(), "dry_run": true, "run": past.id,
            "steps": lines});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        outln!(
            "Revert of run {} (dry run, nothing was changed):\n",
            past.id
        );
        for line in lines {
            outln!("{line}");
        }
    }
    Ok(0)
}

/// Before a run plans anything: a run killed midway is undone first, under
/// the lock (returned, to be held on), so that the new run plans against
/// the system as it was before that one. A dry run only warns.
pub fn undo_interrupted_first(
    ctx: &Ctx,
    profile: &Profile,
) -> Result<Option<crate::journal::Lock>> {
    let interrupted = journal::runs(&ctx.root)?
        .iter()
        .any(|p| p.end.is_none() && p.damaged.is_none());
    if !interrupted {
        return Ok(None);
    }
    if ctx.dry_run {
        errln!(
            "warning: an earlier run was interrupted; the next real run undoes it first, so \
             this plan may differ from what that run does"
        );
        return Ok(None);
    }
    let lock = journal::lock(&ctx.root)?;
    finish_interrupted(ctx, profile)?;
    Ok(Some(lock))
}

/// Undo every run that was killed midway, telling the user; returns their
/// ids. Called under the run lock by `wizard` and `revert`.
pub fn finish_interrupted(ctx: &Ctx, profile: &Profile) -> Result<Vec<String>> {
    let runner = ctx.runner;
    let mut run_undo = |argv: &[String]| services::run_checked(runner, argv);
    let recovered = journal::recover_interrupted(&ctx.root, &mut run_undo)?;
    let mut ids = Vec::new();
    for (past, undone) in recovered {
        errln!(
            "note: run {} was interrupted before it finished; its changes were undone first: {}",
            past.id,
            undone.summary()
        );
        for path in &undone.kept {
            errln!(
                "warning: '{path}' changed after run {} was interrupted; it was left as it is",
                past.id
            );
        }
        let settled = settle_services(ctx, profile, &past, &undone);
        for warning in settled.warnings {
            errln!("warning: {warning}");
        }
        ids.push(past.id);
    }
    Ok(ids)
}

/// What bringing the services back did.
#[derive(Debug, Default)]
pub struct Settled {
    pub done: Vec<String>,
    pub warnings: Vec<String>,
}

/// After an undo, bring opendkim and Postfix back to how they were before
/// the run (only the services the run acted on): Postfix reloaded when
/// main.cf was put back; opendkim restarted on its old configuration when
/// it ran before, stopped when it did not run before (or the run started
/// it), and disabled when the run enabled it. Used by `revert`, by the
/// recovery of an interrupted run and by the rollback of a failing one.
pub fn settle_services(ctx: &Ctx, profile: &Profile, past: &Past, undone: &Undone) -> Settled {
    let mut settled = Settled::default();
    let init = services::init_system(&ctx.root);

    // systemd reads a unit's drop-ins only on daemon-reload: one put back
    // is not in force before that, whatever else the run did.
    let unit_file = |p: &String| p.starts_with("/etc/systemd/");
    if ctx.services_live()
        && init == Init::Systemd
        && (undone.restored.iter().any(unit_file) || undone.removed.iter().any(unit_file))
    {
        run_noting(ctx, &words(&["systemctl", "daemon-reload"]), &mut settled);
    }
    let acted: Vec<(&str, &str, &[String])> = past
        .changes
        .iter()
        .filter_map(|r| match r {
            Record::Service { name, action, argv } => {
                Some((name.as_str(), action.as_str(), argv.as_slice()))
            }
            _ => None,
        })
        .collect();
    if acted.is_empty() {
        return settled;
    }
    let opendkim = profile.opendkim_service;
    let postfix = profile.postfix_service;
    let enabled_by_run = acted
        .iter()
        .any(|(n, _, argv)| *n == opendkim && argv.iter().any(|a| a == "enable"));

    if !ctx.services_live() {
        // An offline tree: only the enablement can be taken back.
        if enabled_by_run {
            let base = ctx.root.base().display().to_string();
            let argv = words(&["systemctl", "--root", &base, "disable", opendkim]);
            run_noting(ctx, &argv, &mut settled);
        }
        return settled;
    }

    let before = past.running_before();
    let ran_before = before.iter().any(|s| s == opendkim);
    // Started by the run: a start (`enable --now` too) of a service that
    // did not run when the run began. Commands only recorded (tests) leave
    // no process to see, so this, not the process table, says it runs.
    let started_by_run = !ran_before
        && acted
            .iter()
            .any(|(n, action, _)| *n == opendkim && *action == "start");
    let main_cf = format!("{}/main.cf", profile.postfix_dir);
    if services::postfix_running() && undone.restored.iter().any(|p| p == &main_cf) {
        let argv = services::argv(init, postfix, ServiceAction::Reload);
        run_noting(ctx, &argv, &mut settled);
    }
    let running = !services::opendkim_pids().is_empty();
    if ran_before {
        let conf = ctx.root.read_opt(profile.opendkim_conf).ok().flatten();
        let socket = conf
            .as_deref()
            .and_then(|t| crate::edit::opendkim_conf::get(t, "Socket"))
            .and_then(|s| crate::validate::socket(&s).ok());
        let action = if running {
            ServiceAction::Restart
        } else {
            ServiceAction::Start
        };
        let argv = services::argv(init, opendkim, action);
        match socket {
            Some(socket) => {
                match services::perform(
                    ctx.runner, &ctx.root, init, opendkim, action, &argv, &socket,
                ) {
                    Ok(()) => settled.done.push(format!("ran '{}'", argv.join(" "))),
                    Err(e) => settled.warnings.push(format!(
                        "opendkim did not come back up on its old configuration: {e:#}"
                    )),
                }
            }
            None => run_noting(ctx, &argv, &mut settled),
        }
    } else if running || started_by_run {
        let argv = match init {
            Init::Systemd => words(&["systemctl", "stop", opendkim]),
            Init::SysV => words(&["service", opendkim, "stop"]),
        };
        match ctx.runner.run(&argv) {
            Ok(out) if out.success() => settled.done.push(format!("ran '{}'", argv.join(" "))),
            // An init script's stop fails when nothing runs (the start
            // failed): what matters is that no process is left.
            Ok(_) if !running && !ctx.runner.is_recording() => {
                settled.done.push(format!("ran '{}'", argv.join(" ")))
            }
            Ok(out) => settled.warnings.push(format!(
                "'{}' failed (exit {}): {}",
                argv.join(" "),
                out.status,
                out.said()
            )),
            Err(e) => settled.warnings.push(format!("{e:#}")),
        }
        let start = std::time::Instant::now();
        while !services::opendkim_pids().is_empty() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !services::opendkim_pids().is_empty() && !ctx.runner.is_recording() {
            settled.warnings.push(format!(
                "opendkim did not stop within 20 seconds (pids {:?})",
                services::opendkim_pids()
            ));
        }
    }
    if enabled_by_run {
        let argv = match init {
            Init::Systemd => words(&["systemctl", "disable", opendkim]),
            Init::SysV => words(&["update-rc.d", opendkim, "disable"]),
        };
        run_noting(ctx, &argv, &mut settled);
    }
    settled
}

fn run_noting(ctx: &Ctx, argv: &[String], settled: &mut Settled) {
    match services::run_checked(ctx.runner, argv) {
        Ok(()) => settled.done.push(format!("ran '{}'", argv.join(" "))),
        Err(e) => settled.warnings.push(format!("{e:#}")),
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS`.
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::apply::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
