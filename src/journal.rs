//! The journal: how to take back every change of a run, on disk before the
//! change is made.
//!
//! 1. The first change of a run creates `/var/lib/dkim-setup/runs/RUN/` (0700)
//!    and its `journal`: one JSON record a line, the first saying who started
//!    the run and which services were running then.
//! 2. Before a file is modified, its bytes go to `before/PATH` in the run's
//!    directory, and a record with its mode, owner and the hashes of the old
//!    and the new text is appended. Created files and directories, changed
//!    owners and modes, group memberships and service actions get a record
//!    too. Every record is flushed to the disk (`fsync`) before the change it
//!    describes, so a run killed at any moment can be undone.
//! 3. A run that ends appends `end` with its outcome (`complete`, or
//!    `rolled-back` after a failure was undone). A journal without `end`
//!    belongs to an interrupted run: the next run, or `revert`, undoes it
//!    first ([`recover_interrupted`]).
//! 4. Undoing ([`undo`]) walks the records backwards. It is idempotent: a
//!    file already back to its old bytes, or a created file already gone, is
//!    left as it is, so an undo that was itself interrupted can simply be run
//!    again. A file that is neither as the run left it nor as it was before
//!    has been changed since; `revert` refuses to touch it without `--force`.
//!
//! Hashes are SHA-256 of the bytes; a key a run creates never enters the
//! journal, only the fact that it was created and its hash. A key a run
//! deletes (a retired one) is kept under `before/`, root-only, so that
//! `revert` can bring it back (docs/limitations.md).

use crate::system::Root;
use anyhow::{Context, Result, bail};
use rsa::sha2::{Digest, Sha256};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Where the runs' journals live on the target.
pub const RUNS_DIR: &str = "/var/lib/dkim-setup/runs";
/// The lock that keeps two runs from changing the system at once (beside
/// the journals, which a run that changes something creates anyway).
pub const LOCK_FILE: &str = "/var/lib/dkim-setup/lock";

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Record {
    /// The run began: which command, and which services ran at that moment.
    Begin {
        run: String,
        pid: u32,
        started: u64,
        command: String,
        #[serde(default)]
        running: Vec<String>,
    },
    /// An existing file is about to be replaced; its old bytes are in
    /// `before` (relative to the run's directory).
    Modify {
        path: String,
        before: String,
        mode: u32,
        uid: u32,
        gid: u32,
        old_sha: String,
        new_sha: String,
    },
    /// A file is about to be created (`tmp`: the name it is written under
    /// first, removed by an undo if it was left behind).
    Create {
        path: String,
        new_sha: String,
        #[serde(default)]
        tmp: Option<String>,
    },
    /// A directory is about to be created.
    Mkdir { path: String },
    /// A file is about to be deleted; its bytes are in `before`.
    Delete {
        path: String,
        before: String,
        mode: u32,
        uid: u32,
        gid: u32,
        old_sha: String,
    },
    /// Owner and mode of an existing path are about to change.
    Attrs {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        new_mode: u32,
        new_uid: u32,
        new_gid: u32,
    },
    /// A command that changes the system is about to run; `undo` takes it
    /// back (`usermod -a -G` by `gpasswd -d`).
    Command {
        argv: Vec<String>,
        undo: Vec<String>,
    },
    /// A service action is about to be performed.
    Service {
        name: String,
        action: String,
        #[serde(default)]
        argv: Vec<String>,
    },
    /// The run ended.
    End {
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step was applied.
    Complete,
    /// A step failed and the run's changes were undone.
    RolledBack,
    /// The run was killed; a later run undid its changes.
    UndoneAfterInterrupt,
    /// `dkim-setup revert` undid it.
    Reverted,
}

/// A run as `revert --list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub started: u64,
    pub command: String,
    pub state: &'static str,
    pub changes: usize,
}

/// SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The journal of the run in progress. The directory and file are created
/// with the first record, so a run that changes nothing leaves nothing.
pub struct Journal {
    root: Root,
    run: String,
    begin: Record,
    file: Option<File>,
    records: Vec<Record>,
    faults: Faults,
}

impl Journal {
    pub fn new(root: &Root, run: &str, command: &str, running: Vec<String>) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Journal {
            root: root.clone(),
            run: run.to_string(),
            begin: Record::Begin {
                run: run.to_string(),
                pid: std::process::id(),
                started,
                command: command.to_string(),
                running,
            },
            file: None,
            records: Vec::new(),
            faults: Faults::from_env(),
        }
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    /// The target path of this run's directory.
    pub fn dir(&self) -> String {
        format!("{RUNS_DIR}/{}", self.run)
    }

    /// The change records written so far (without `begin` and `end`).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// This run as `revert` reads a journal back (without its end).
    pub fn past(&self) -> Past {
        Past {
            id: self.run.clone(),
            begin: Some(self.begin.clone()),
            changes: self.records.clone(),
            end: None,
            damaged: None,
        }
    }

    /// True once the run has recorded a change.
    pub fn started(&self) -> bool {
        self.file.is_some()
    }

    fn open(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            let dir = self.root.path(&self.dir());
            fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the journal directory '{}'", self.dir()))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            let path = dir.join("journal");
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot write the journal '{}/journal'", self.dir()))?;
            write_line(&mut file, &self.begin)?;
            sync_dir(&dir);
            if let Some(parent) = dir.parent() {
                sync_dir(parent);
            }
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Append a record and flush it to the disk; only then may the change
    /// it describes be made. A fault point for the fault-injection tests.
    pub fn record(&mut self, record: Record) -> Result<()> {
        let file = self.open()?;
        write_line(file, &record)
            .with_context(|| format!("cannot write the journal '{}/journal'", self.dir()))?;
        if matches!(record, Record::End { .. }) {
            return Ok(());
        }
        self.records.push(record);
        self.faults.point()
    }

    /// Keep the old bytes of `path` in the run's directory; returns the name
    /// to put in the `modify` record.
    pub fn save_before(&mut self, path: &str, bytes: &[u8]) -> Result<String> {
        self.open()?;
        let rel = format!("before{path}");
        let dest = self.root.path(&format!("{}/{rel}", self.dir()));
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&dest)
            .with_context(|| format!("cannot keep the old '{path}' in the journal"))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(rel)
    }

    /// A fault point between two steps (fault-injection tests only).
    pub fn between_steps(&mut self) -> Result<()> {
        self.faults.point()
    }

    /// Close the journal with the run's outcome (nothing, if the run changed
    /// nothing).
    pub fn end(&mut self, outcome: Outcome, kept: Vec<String>) -> Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        self.record(Record::End { outcome, kept })
    }
}

fn write_line(file: &mut File, record: &Record) -> Result<()> {
    let mut line = serde_json::to_string(record)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The test-only switch `DKIM_SETUP_TEST_FAULT=fail:N` or `kill:N`: at the
/// N-th fault point (each journal record, and each boundary between steps)
/// the run fails there, or is killed with SIGKILL as a power cut would.
struct Faults {
    kill: bool,
    at: Option<u32>,
    seen: u32,
}

impl Faults {
    fn from_env() -> Self {
        let spec = std::env::var("DKIM_SETUP_TEST_FAULT").unwrap_or_default();
        let (kill, at) = match spec.split_once(':') {
            Some(("kill", n)) => (true, n.parse().ok()),
            Some(("fail", n)) => (false, n.parse().ok()),
            _ => (false, None),
        };
        Faults { kill, at, seen: 0 }
    }

    fn point(&mut self) -> Result<()> {
        self.seen += 1;
        if self.at != Some(self.seen) {
            return Ok(());
        }
        if self.kill {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        bail!("injected fault at point {}", self.seen)
    }
}

/// The journal of one run, read back.
#[derive(Debug, Clone)]
pub struct Past {
    pub id: String,
    pub begin: Option<Record>,
    pub changes: Vec<Record>,
    pub end: Option<Outcome>,
    /// Why the journal cannot be read, when it cannot: such a run is
    /// listed, never undone automatically.
    pub damaged: Option<String>,
}

impl Past {
    pub fn state(&self) -> &'static str {
        if self.damaged.is_some() {
            return "damaged";
        }
        match self.end {
            None => "interrupted",
            Some(Outcome::Complete) => "complete",
            Some(Outcome::RolledBack) => "rolled back",
            Some(Outcome::UndoneAfterInterrupt) => "interrupted, undone",
            Some(Outcome::Reverted) => "reverted",
        }
    }

    /// Names of the services that ran when the run began.
    pub fn running_before(&self) -> Vec<String> {
        match &self.begin {
            Some(Record::Begin { running, .. }) => running.clone(),
            _ => Vec::new(),
        }
    }

    pub fn info(&self) -> RunInfo {
        let (started, command) = match &self.begin {
            Some(Record::Begin {
                started, command, ..
            }) => (*started, command.clone()),
            _ => (0, String::new()),
        };
        RunInfo {
            id: self.id.clone(),
            started,
            command,
            state: self.state(),
            changes: self
                .changes
                .iter()
                .filter(|r| !matches!(r, Record::Service { .. }))
                .count(),
        }
    }
}

/// Every run with a journal, oldest first.
pub fn runs(root: &Root) -> Result<Vec<Past>> {
    let dir = root.path(RUNS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read '{RUNS_DIR}'")),
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("journal").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids
        .iter()
        .map(|id| {
            read(root, id).unwrap_or_else(|e| Past {
                id: id.clone(),
                begin: None,
                changes: Vec::new(),
                end: None,
                damaged: Some(format!("{e:#}")),
            })
        })
        .collect())
}

/// Read the journal of run `id`. A last line cut short by a crash is ignored.
pub fn read(root: &Root, id: &str) -> Result<Past> {
    let target = format!("{RUNS_DIR}/{id}/journal");
    let text = fs::read_to_string(root.path(&target))
        .with_context(|| format!("cannot read the journal '{target}'"))?;
    let mut past = Past {
        id: id.to_string(),
        begin: None,
        changes: Vec::new(),
        end: None,
        damaged: None,
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => bail!("the journal '{target}' is damaged at line {}: {e}", i + 1),
        };
        match record {
            Record::Begin { .. } => past.begin = Some(record),
            Record::End { outcome, .. } => past.end = Some(outcome),
            other => past.changes.push(other),
        }
    }
    Ok(past)
}

/// Append the outcome of an undo to run `id`'s journal.
pub fn close(root: &Root, id: &str, outcome: Outcome, kept: Vec<String>) -> Result<()> {
    let target = format!("{RUNS_DIR}/{id}/journal");
    let mut file = OpenOptions::new()
        .append(true)
        .open(root.path(&target))
        .with_context(|| format!("cannot write the journal '{target}'"))?;
    write_line(&mut file, &Record::End { outcome, kept })
}

/// What an undo did, for the user.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Undone {
    pub restored: Vec<String>,
    pub removed: Vec<String>,
    pub commands: Vec<Vec<String>>,
    /// Paths changed since the run, left as they are.
    pub kept: Vec<String>,
    /// Undo steps that failed, with the reason.
    pub failed: Vec<String>,
}

impl Undone {
    pub fn is_empty(&self) -> bool {
        self.restored.is_empty() && self.removed.is_empty() && self.commands.is_empty()
    }

    /// One sentence: "restored A, B; removed C".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.restored.is_empty() {
            parts.push(format!("restored {}", self.restored.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", self.removed.join(", ")));
        }
        for argv in &self.commands {
            parts.push(format!("ran '{}'", argv.join(" ")));
        }
        if parts.is_empty() {
            return "nothing had been changed yet".to_string();
        }
        parts.join("; ")
    }
}

/// How a path stands against a record.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    /// As the run left it: undo it.
    AsLeft,
    /// Already as before the run (or never changed): nothing to do.
    AsBefore,
    /// Changed by someone else since.
    Changed,
}

fn file_sha(root: &Root, path: &str) -> Result<Option<String>> {
    match fs::read(root.path(path)) {
        Ok(bytes) => Ok(Some(sha256(&bytes))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read '{path}'")),
    }
}

fn standing(root: &Root, record: &Record) -> Result<Standing> {
    Ok(match record {
        Record::Modify {
            path,
            old_sha,
            new_sha,
            ..
        } => match file_sha(root, path)? {
            Some(sha) if &sha == new_sha => Standing::AsLeft,
            Some(sha) if &sha == old_sha => Standing::AsBefore,
            _ => Standing::Changed,
        },
        Record::Create { path, new_sha, .. } => match file_sha(root, path)? {
            None => Standing::AsBefore,
            Some(sha) if &sha == new_sha => Standing::AsLeft,
            Some(_) => Standing::Changed,
        },
        Record::Delete { path, old_sha, .. } => match file_sha(root, path)? {
            None => Standing::AsLeft,
            Some(sha) if &sha == old_sha => Standing::AsBefore,
            Some(_) => Standing::Changed,
        },
        Record::Mkdir { path } => match fs::read_dir(root.path(path)) {
            Err(e) if e.kind() == ErrorKind::NotFound => Standing::AsBefore,
            Err(e) => return Err(e).with_context(|| format!("cannot read '{path}'")),
            Ok(mut entries) => {
                if entries.next().is_none() {
                    Standing::AsLeft
                } else {
                    // Whatever the run created inside was undone before (the
                    // records go backwards), so what is left is someone else's.
                    Standing::Changed
                }
            }
        },
        Record::Attrs {
            path,
            mode,
            uid,
            gid,
            new_mode,
            new_uid,
            new_gid,
        } => match fs::symlink_metadata(root.path(path)) {
            Err(_) => Standing::AsBefore,
            Ok(meta) => {
                let now = (meta.mode() & 0o7777, meta.uid(), meta.gid());
                if now == (*new_mode, *new_uid, *new_gid) {
                    Standing::AsLeft
                } else if now == (*mode, *uid, *gid) {
                    Standing::AsBefore
                } else {
                    Standing::Changed
                }
            }
        },
        Record::Command { .. } => Standing::AsLeft,
        _ => Standing::AsBefore,
    })
}

/// The paths a run changed that have been changed again since, newest first.
/// Only files, directories and modes count: `revert` names these.
pub fn changed_since(root: &Root, changes: &[Record]) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    // A directory the run created is "changed" only when something outside
    // the run's own files is in it; check files first, directories after
    // their contents would have been undone.
    for record in changes.iter().rev() {
        if let Record::Mkdir { path } = record {
            // An entry is the run's own when the run created it or something below it.
            let ours = |name: &str| {
                changes.iter().any(|r| match r {
                    Record::Create { path: p, .. } | Record::Mkdir { path: p } => {
                        p == name || p.starts_with(&format!("{name}/"))
                    }
                    _ => false,
                })
            };
            let foreign = fs::read_dir(root.path(path)).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|entry| !ours(&format!("{path}/{}", entry.file_name().to_string_lossy())))
            });
            if foreign {
                changed.push(format!("{path}/"));
            }
            continue;
        }
        if standing(root, record)? == Standing::Changed
            && let Some(path) = record_path(record)
        {
            changed.push(path.to_string());
        }
    }
    Ok(changed)
}

fn record_path(record: &Record) -> Option<&str> {
    match record {
        Record::Modify { path, .. }
        | Record::Delete { path, .. }
        | Record::Create { path, .. }
        | Record::Mkdir { path }
        | Record::Attrs { path, .. } => Some(path),
        _ => None,
    }
}

/// Undo `changes` (a run's records, in the order they were written),
/// newest first. With `force`, a path changed since the run is put back
/// as it was before the run anyway; without, it is left and listed in
/// `kept`. Commands are undone through `run_undo`.
pub fn undo(
    root: &Root,
    run_dir: &str,
    changes: &[Record],
    force: bool,
    run_undo: &mut dyn FnMut(&[String]) -> Result<()>,
) -> Undone {
    let mut done = Undone::default();
    for record in changes.iter().rev() {
        let result = undo_one(root, run_dir, record, force, run_undo, &mut done);
        if let Err(e) = result {
            tracing::debug!("could not undo {record:?}: {e:#}");
            done.failed.push(format!("{e:#}"));
        }
    }

    done
}

fn undo_one(
    root: &Root,
    run_dir: &str,
    record: &Record,
    force: bool,
    run_undo: &mut dyn FnMut(&[String]) -> Result<()>,
    done: &mut Undone,
) -> Result<()> {
    if let Record::Create {
        tmp: Some(tmp),
        path,
        ..
    } = record
    {
        remove_if_there(root, tmp).with_context(|| format!("cannot remove '{tmp}' ({path})"))?;
    }
    let standing = standing(root, record)?;
    if standing == Standing::AsBefore {
        return Ok(());
    }
    let is_dir = matches!(record, Record::Mkdir { .. });
    if standing == Standing::Changed && (!force || is_dir) {
        if let Some(path) = record_path(record) {
            done.kept
                .push(format!("{path}{}", if is_dir { "/" } else { "" }));
        }
        return Ok(());
    }
    match record {
        Record::Modify {
            path,
            before,
            mode,
            uid,
            gid,
            ..
        }
        | Record::Delete {
            path,
            before,
            mode,
            uid,
            gid,
            ..
        } => {
            let saved = format!("{run_dir}/{before}");
            let bytes = fs::read(root.path(&saved))
                .with_context(|| format!("cannot read the saved copy '{saved}' of '{path}'"))?;
            write_atomic(&root.path(path), &bytes, *mode, Some((*uid, *gid)))
                .with_context(|| format!("cannot restore '{path}'"))?;
            done.restored.push(path.clone());
        }
        Record::Create { path, .. } => {
            remove_if_there(root, path).with_context(|| format!("cannot remove '{path}'"))?;
            done.removed.push(path.clone());
        }
        Record::Mkdir { path } => {
            // Never recursively: what is still inside is not the run's own
            // (its files were undone before, the records go backwards), so
            // the directory stays, with them, even with --force.
            match fs::remove_dir(root.path(path)) {
                Ok(()) => done.removed.push(format!("{path}/")),
                Err(_) => done.kept.push(format!("{path}/")),
            }
        }
        Record::Attrs {
            path,
            mode,
            uid,
            gid,
            ..
        } => {
            let real = root.path(path);
            chown(&real, *uid, *gid)?;
            fs::set_permissions(&real, fs::Permissions::from_mode(*mode))
                .with_context(|| format!("cannot change the mode of '{path}'"))?;
            done.restored.push(format!("{path} (owner and mode)"));
        }
        Record::Command { undo, .. } if !undo.is_empty() => match run_undo(undo) {
            Ok(()) => done.commands.push(undo.clone()),
            // The command may never have run (the run was killed between
            // its record and the command, or the command failed): taking
            // back what is not there is done already.
            Err(e) if undone_already(root, undo, &format!("{e:#}")) => {
                tracing::debug!("'{}' needed no undo: {e:#}", undo.join(" "));
            }
            Err(e) => return Err(e),
        },
        _ => {}
    }
    Ok(())
}

/// True when a failed undo command finds its work done: `gpasswd -d USER
/// GROUP` when the tree's /etc/group does not list USER in GROUP, `semanage
/// port -d` when the port is not labelled.
fn undone_already(root: &Root, undo: &[String], error: &str) -> bool {
    let has = |w: &str| undo.iter().any(|a| a == w);
    if has("gpasswd")
        && let Some(i) = undo.iter().position(|a| a == "-d")
        && let (Some(user), Some(group)) = (undo.get(i + 1), undo.get(i + 2))
    {
        return match root.group(group) {
            Ok(Some(g)) => !g.members.contains(user),
            Ok(None) => true,
            Err(_) => false,
        };
    }
    has("semanage") && error.contains("is not defined")
}

fn remove_if_there(root: &Root, path: &str) -> Result<()> {
    match fs::remove_file(root.path(path)) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Change the owner when running as root (a test tree as a normal user
/// keeps the user's own ids).
pub fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot change the owner of '{}'", path.display()))?;
    }
    Ok(())
}

/// Write `bytes` to `path` through a temporary file in the same directory,
/// then rename it into place: the file is whole, old or new, at any moment.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, ids: Option<(u32, u32)>) -> Result<()> {
    let tmp = tmp_name(path);
    let result = (|| -> Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if let Some((uid, gid)) = ids {
            chown(&tmp, uid, gid)?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            sync_dir(parent);
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temporary name a file is written under before the rename.
pub fn tmp_name(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.dkim-setup-tmp"))
}

/// Holds the run lock; the kernel releases it when the process ends, even
/// by SIGKILL.
pub struct Lock {
    _file: nix::fcntl::Flock<File>,
}

/// Take the lock, or say which process holds it.
pub fn lock(root: &Root) -> Result<Lock> {
    use nix::fcntl::{Flock, FlockArg};
    let path = root.path(LOCK_FILE);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create '{LOCK_FILE}'"))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open the lock '{LOCK_FILE}'"))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(Lock { _file: locked }),
        Err(_) => bail!(
            "another dkim-setup run is changing this system (it holds '{LOCK_FILE}'); wait for \
             it to finish"
        ),
    }
}

/// Undo every interrupted run (a journal without `end`), newest first, and
/// close each journal. Returns one line per run for the user.
pub fn recover_interrupted(
    root: &Root,
    run_undo: &mut dyn FnMut(&[String]) -> Result<()>,
) -> Result<Vec<(Past, Undone)>> {
    let mut recovered = Vec::new();
    for past in runs(root)?.into_iter().rev() {
        if let Some(why) = &past.damaged {
            errln!(
                "warning: {why}; run {} is left as it is: look at it, then move \
                 '{RUNS_DIR}/{}' aside",
                past.id,
                past.id
            );
            continue;
        }
        if past.end.is_some() {
            continue;
        }
        let dir = format!("{RUNS_DIR}/{}", past.id);
        let done = undo(root, &dir, &past.changes, false, run_undo);
        if !done.failed.is_empty() {
            bail!(
                "the interrupted run {} could not be undone: {}; its old files are in \
                 '{dir}/before'",
                past.id,
                done.failed.join("; ")
            );
        }
        close(
            root,
            &past.id,
            Outcome::UndoneAfterInterrupt,
            done.kept.clone(),
        )?;
        recovered.push((past, done));
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        let root = Root::new(dir.path());
        (dir, root)
    }

    fn no_commands(_: &[String]) -> Result<()> {
        Ok(())
    }

    #[test]
    fn a_membership_that_is_not_there_needs_no_undo() {
        let (dir, root) = tree();
        let gpasswd: Vec<String> = ["gpasswd", "-d", "postfix", "opendkim"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        fs::write(dir.path().join("etc/group"), "opendkim:x:107:postfix\n").unwrap();
        assert!(!undone_already(&root, &gpasswd, "exit 3"));
        fs::write(dir.path().join("etc/group"), "opendkim:x:107:\n").unwrap();
        assert!(undone_already(&root, &gpasswd, "exit 3"));
        let semanage: Vec<String> = ["semanage", "port", "-d", "-t", "milter_port_t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(undone_already(
            &root,
            &semanage,
            "ValueError: Port tcp/8895 is not defined"
        ));
        assert!(!undone_already(&root, &semanage, "Permission denied"));
    }

    #[test]
    fn records_round_trip_as_one_json_line_each() {
        let record = Record::Modify {
            path: "/etc/a".into(),
            before: "before/etc/a".into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            old_sha: sha256(b"old"),
            new_sha: sha256(b"new"),
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(
            line.starts_with(r#"{"op":"modify","path":"/etc/a""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), record);
    }

    #[test]
    fn a_journal_is_undone_backwards_and_undoing_twice_changes_nothing() {
        let (_dir, root) = tree();
        fs::write(root.path("/etc/a"), "old\n").unwrap();
        let mut journal = Journal::new(&root, "r1", "wizard", Vec::new());

        let before = journal.save_before("/etc/a", b"old\n").unwrap();
        journal
            .record(Record::Modify {
                path: "/etc/a".into(),
                before,
                mode: 0o640,
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
                old_sha: sha256(b"old\n"),
                new_sha: sha256(b"new\n"),
            })
            .unwrap();
        fs::write(root.path("/etc/a"), "new\n").unwrap();
        journal
            .record(Record::Mkdir {
                path: "/etc/d".into(),
            })
            .unwrap();
        fs::create_dir(root.path("/etc/d")).unwrap();
        journal
            .record(Record::Create {
                path: "/etc/d/f".into(),
                new_sha: sha256(b"f"),
                tmp: None,
            })
            .unwrap();
        fs::write(root.path("/etc/d/f"), "f").unwrap();

        let past = read(&root, "r1").unwrap();
        assert_eq!(past.state(), "interrupted");
        assert_eq!(past.changes.len(), 3);
        let done = undo(
            &root,
            &journal.dir(),
            &past.changes,
            false,
            &mut no_commands,
        );
        assert_eq!(done.restored, ["/etc/a"]);
        assert_eq!(done.removed, ["/etc/d/f", "/etc/d/"]);
        assert_eq!(fs::read_to_string(root.path("/etc/a")).unwrap(), "old\n");
        let mode = fs::metadata(root.path("/etc/a")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert!(!root.exists("/etc/d"));

        let again = undo(
            &root,
            &journal.dir(),
            &past.changes,
            false,
            &mut no_commands,
        );
        assert!(again.is_empty() && again.kept.is_empty(), "{again:?}");
    }

    #[test]
    fn a_file_changed_since_the_run_is_kept_unless_forced() {
        let (_dir, root) = tree();
        let mut journal = Journal::new(&root, "r2", "wizard", Vec::new());
        let before = journal.save_before("/etc/a", b"old").unwrap();
        let modify = Record::Modify {
            path: "/etc/a".into(),
            before,
            mode: 0o644,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            old_sha: sha256(b"old"),
            new_sha: sha256(b"new"),
        };
        journal.record(modify.clone()).unwrap();
        fs::write(root.path("/etc/a"), "edited by hand").unwrap();

        let changes = vec![modify];
        assert_eq!(changed_since(&root, &changes).unwrap(), ["/etc/a"]);
        let done = undo(&root, &journal.dir(), &changes, false, &mut no_commands);
        assert_eq!(done.kept, ["/etc/a"]);
        assert_eq!(
            fs::read_to_string(root.path("/etc/a")).unwrap(),
            "edited by hand"
        );
        let forced = undo(&root, &journal.dir(), &changes, true, &mut no_commands);
        assert_eq!(forced.restored, ["/etc/a"]);
        assert_eq!(fs::read_to_string(root.path("/etc/a")).unwrap(), "old");
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_ignored() {
        let (_dir, root) = tree();
        let mut journal = Journal::new(&root, "r3", "wizard", Vec::new());
        journal
            .record(Record::Mkdir {
                path: "/etc/x".into(),
            })
            .unwrap();
        let path = root.path(&format!("{}/journal", journal.dir()));
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(br#"{"op":"create","pa"#).unwrap();
        let past = read(&root, "r3").unwrap();
        assert_eq!(
            past.changes,
            [Record::Mkdir {
                path: "/etc/x".into()
            }]
        );
    }

    #[test]
    fn a_run_that_changes_nothing_leaves_no_journal() {
        let (_dir, root) = tree();
        let mut journal = Journal::new(&root, "r4", "wizard", Vec::new());
        journal.end(Outcome::Complete, Vec::new()).unwrap();
        assert!(!root.exists(RUNS_DIR));
        assert!(runs(&root).unwrap().is_empty());
    }
}
