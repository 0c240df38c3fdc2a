//! The plan: every change a run will make, computed before anything is touched.
//!
//! A [`Plan`] is a list of [`Step`]s: files with their old and new text,
//! directories, ownership fixes, keys to generate, and commands (package
//! installs, checks, service actions). `--dry-run` prints it, `--json`
//! serialises it, and the apply step walks the very same value, so what is
//! shown is what is done.

use crate::distro::Distro;
use serde::Serialize;
use serde_json::{Value, json};
use similar::TextDiff;

/// What happens to a file, directory or key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Modify,
    Unchanged,
}

/// Where a command or service action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Planned,
    Done,
    Skipped,
    Failed,
}

/// Owner and group by name, resolved in the target tree when applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub group: String,
}

impl Owner {
    pub fn new(user: &str, group: &str) -> Self {
        Owner {
            user: user.to_string(),
            group: group.to_string(),
        }
    }
}

/// Why a command runs; decides how apply treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Installs packages (runs before files are planned in a real run).
    Install,
    /// Changes the system (e.g. group membership); undone on failure.
    Change,
    /// Reads the new configuration; failure restores everything.
    Check,
}

/// A service action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    Enable,
    Start,
    Restart,
    Reload,
}

/// One change of a plan.
#[derive(Debug, Clone)]
pub enum Step {
    File {
        path: String,
        action: Action,
        old: Option<String>,
        new: String,
        /// Mode and owner for a created file; a modified file keeps its own.
        mode: u32,
        owner: Option<Owner>,
    },
    Dir {
        path: String,
        action: Action,
        mode: u32,
        owner: Owner,
    },
    /// Fix the mode and owner of an existing path.
    Attrs {
        path: String,
        mode: u32,
        owner: Owner,
        why: String,
    },
    Key {
        path: String,
        action: Action,
        bits: u32,
        domain: String,
        selector: String,
        owner: Owner,
        /// Where its TXT record is published, when not at
        /// `SELECTOR._domainkey.DOMAIN` (a slot of the CNAME scheme).
        record: Option<String>,
    },
    Command {
        argv: Vec<String>,
        purpose: Purpose,
        status: Status,
        reason: Option<String>,
    },
    Service {
        name: String,
        action: ServiceAction,
        argv: Vec<String>,
        status: Status,
        reason: Option<String>,
    },
    /// Delete a file (a retired key); its bytes are kept in the journal.
    Remove { path: String, why: String },
    /// The run's own validation of the files as written (what `check`
    /// reports, without services or DNS); failure restores everything.
    Verify {
        scope: crate::check::Scope,
        status: Status,
        reason: Option<String>,
    },
}

impl Step {
    /// True when applying the step changes the machine.
    pub fn changes(&self) -> bool {
        match self {
            Step::File { action, .. } | Step::Dir { action, .. } | Step::Key { action, .. } => {
                *action != Action::Unchanged
            }
            Step::Attrs { .. } | Step::Remove { .. } => true,
            Step::Command {
                purpose, status, ..
            } => *purpose != Purpose::Check && *status != Status::Skipped,
            Step::Service { status, .. } => *status != Status::Skipped,
            Step::Verify { .. } => false,
        }
    }

    /// One line for humans, e.g. `modify  /etc/opendkim.conf`.
    pub fn summary(&self) -> String {
        match self {
            Step::File { path, action, .. } => format!("{:<9} {path}", word(*action)),
            Step::Dir { path, action, .. } => format!("{:<9} {path}/", word(*action)),
            Step::Attrs {
                path,
                mode,
                owner,
                why,
            } => {
                format!(
                    "fix       {path} ({}:{} {mode:04o}: {why})",
                    owner.user, owner.group
                )
            }
            Step::Key {
                path, action, bits, ..
            } => match action {
                Action::Unchanged => format!("keep      {path} (existing key)"),
                _ => format!("generate  {path} ({bits}-bit RSA)"),
            },
            Step::Command {
                argv,
                status,
                reason,
                ..
            } => with_reason(format!("run       {}", argv.join(" ")), *status, reason),
            Step::Service {
                name,
                action,
                status,
                reason,
                ..
            } => {
                let verb = serde_json::to_value(action).unwrap_or_default();
                let text = format!("{:<9} {name}", verb.as_str().unwrap_or(""));
                with_reason(text, *status, reason)
            }
            Step::Remove { path, why } => format!("remove    {path} ({why})"),
            Step::Verify {
                scope,
                status,
                reason,
            } => with_reason(format!("verify    {}", scope_text(*scope)), *status, reason),
        }
    }

    /// The unified diff of a file step (empty for anything else).
    pub fn diff(&self) -> String {
        match self {
            Step::File { path, old, new, .. } => {
                let old = old.as_deref().unwrap_or("");
                if old == new {
                    return String::new();
                }
                TextDiff::from_lines(old, new)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("a{path}"), &format!("b{path}"))
                    .to_string()
            }
            _ => String::new(),
        }
    }

    /// The step as the spec's JSON object.
    pub fn to_json(&self) -> Value {
        match self {
            Step::File { path, action, .. } => {
                json!({"kind": "file", "path": path, "action": action, "diff": self.diff()})
            }
            Step::Dir {
                path,
                action,
                mode,
                owner,
            } => json!({
                "kind": "dir", "path": path, "action": action,
                "mode": format!("{mode:04o}"), "owner": format!("{}:{}", owner.user, owner.group),
            }),
            Step::Attrs {
                path,
                mode,
                owner,
                why,
            } => json!({
                "kind": "attrs", "path": path, "action": "modify", "reason": why,
                "mode": format!("{mode:04o}"), "owner": format!("{}:{}", owner.user, owner.group),
            }),
            Step::Key {
                path,
                action,
                bits,
                domain,
                selector,
                ..
            } => json!({
                "kind": "key", "path": path, "action": action, "bits": bits,
                "domain": domain, "selector": selector,
            }),
            Step::Command {
                argv,
                status,
                reason,
                ..
            } => {
                let mut v = json!({"kind": "command", "argv": argv, "status": status});
                if let Some(r) = reason {
                    v["reason"] = json!(r);
                }
                v
            }
            Step::Service {
                name,
                action,
                argv,
                status,
                reason,
            } => {
                let mut v = json!({
                    "kind": "service", "name": name, "action": action, "argv": argv,
                    "status": status,
                });
                if let Some(r) = reason {
                    v["reason"] = json!(r);
                }
                v
            }
            Step::Remove { path, why } => {
                json!({"kind": "remove", "path": path, "reason": why})
            }
            Step::Verify {
                scope,
                status,
                reason,
            } => {
                let mut v = json!({"kind": "verify", "what": scope_text(*scope),
                    "status": status});
                if let Some(r) = reason {
                    v["reason"] = json!(r);
                }
                v
            }
        }
    }
}

/// What a verify step looks at, in words.
pub fn scope_text(scope: crate::check::Scope) -> &'static str {
    match scope {
        crate::check::Scope::Opendkim => "opendkim.conf, the tables and the keys as written",
        crate::check::Scope::Postfix => "opendkim's socket against Postfix's milters",
    }
}

fn word(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Modify => "modify",
        Action::Unchanged => "unchanged",
    }
}

fn with_reason(text: String, status: Status, reason: &Option<String>) -> String {
    match (status, reason) {
        (Status::Skipped, Some(r)) => format!("{text} (skipped: {r})"),
        (Status::Skipped, None) => format!("{text} (skipped)"),
        (Status::Failed, _) => format!("{text} (failed)"),
        _ => text,
    }
}

/// A DNS record to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// Everything one run will do, or did.
#[derive(Debug, Clone)]
pub struct Plan {
    pub distro: Distro,
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
    /// Things the administrator must act on (printed as `warning:`).
    pub warnings: Vec<String>,
    pub dns_records: Vec<DnsRecord>,
}

impl Plan {
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.changes() && !is_skipped(s))
    }

    /// The spec's JSON document.
    pub fn to_json(&self, dry_run: bool) -> Value {
        json!({
            "changed": self.changed(),
            "dry_run": dry_run,
            "distro": self.distro,
            "steps": self.steps.iter().map(Step::to_json).collect::<Vec<_>>(),
            "dns_records": self.dns_records,
            "notes": self.notes,
            "warnings": self.warnings,
        })
    }

    /// The dry-run text: one line per step, then every diff.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            out.push_str(&step.summary());
            out.push('\n');
        }
        for step in &self.steps {
            let diff = step.diff();
            if !diff.is_empty() {
                out.push('\n');
                out.push_str(&diff);
            }
        }
        out
    }
}

fn is_skipped(step: &Step) -> bool {
    matches!(
        step,
        Step::Command {
            status: Status::Skipped,
            ..
        } | Step::Service {
            status: Status::Skipped,
            ..
        } | Step::Verify {
            status: Status::Skipped,
            ..
        }
    )
}
