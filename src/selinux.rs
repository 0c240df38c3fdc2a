//! SELinux: keep opendkim reachable and its files correctly labelled.
//!
//! Only when the target enforces SELinux is anything planned: on a running
//! system `/sys/fs/selinux/enforce` is 1 (what `getenforce` reads); an
//! offline tree has no /sys of its own, so there its `/etc/selinux/config`
//! (`SELINUX=enforcing`) tells how it will boot.
//!
//! 1. opendkim may only bind TCP ports labelled `milter_port_t`. The
//!    default policy labels 8890, 8891 and 8893; another port gets
//!    `semanage port -a -t milter_port_t -p tcp PORT` (undone on failure),
//!    unless `semanage port -l` shows it labelled already; a port the policy
//!    gives another type needs `-m` instead of `-a`. semanage comes from
//!    policycoreutils-python-utils, which minimal images lack
//!    ([`needs_semanage`]).
//! 2. Every path the run writes gets `restorecon -R`: new files and the
//!    files replaced by atomic renames would otherwise keep the label of
//!    where they were made.

use crate::plan::{Action, Purpose, Status, Step};
use crate::setup::Ctx;
use crate::system::runner::argv;
use crate::validate::Socket;
use anyhow::Result;

/// Ports the default policy labels `milter_port_t`.
pub const MILTER_PORTS: [u16; 3] = [8890, 8891, 8893];

/// The package that provides `semanage` on the RHEL family.
pub const SEMANAGE_PACKAGE: &str = "policycoreutils-python-utils";

/// True when the target enforces SELinux.
pub fn enforcing(ctx: &Ctx) -> bool {
    if let Some(flag) = ctx.root.read_opt("/sys/fs/selinux/enforce").ok().flatten() {
        return flag.trim() == "1";
    }
    if ctx.root.is_live() {
        return false;
    }
    let config = ctx.root.read_opt("/etc/selinux/config").ok().flatten();
    config.is_some_and(|text| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("SELINUX="))
            .next_back()
            .is_some_and(|v| v.trim().trim_matches('"') == "enforcing")
    })
}

/// True when `socket` needs a port label and the target has no `semanage`
/// to give it: its package is then installed with opendkim's.
pub fn needs_semanage(ctx: &Ctx, socket: &Socket) -> bool {
    let Socket::Inet { port, .. } = socket else {
        return false;
    };
    !MILTER_PORTS.contains(port)
        && enforcing(ctx)
        && !["/usr/sbin/semanage", "/sbin/semanage"]
            .iter()
            .any(|p| ctx.root.exists(p))
}

/// The `semanage` step a TCP socket needs, if any.
pub fn port_step(ctx: &Ctx, socket: &Socket) -> Result<Option<Step>> {
    let Socket::Inet { port, .. } = socket else {
        return Ok(None);
    };
    if MILTER_PORTS.contains(port) {
        return Ok(None);
    }
    let listed = ctx
        .runner
        .run(&ctx.target_argv(&["semanage", "port", "-l"]))?;
    if labelled(&listed.stdout, *port) {
        return Ok(None);
    }
    // A port the policy already gives another type (http_port_t, ...)
    // cannot be added again, only modified.
    let verb = if type_of(&listed.stdout, *port).is_some() {
        "-m"
    } else {
        "-a"
    };
    let port = port.to_string();
    Ok(Some(Step::Command {
        argv: ctx.target_argv(&[
            "semanage",
            "port",
            verb,
            "-t",
            "milter_port_t",
            "-p",
            "tcp",
            &port,
        ]),
        purpose: Purpose::Change,
        status: if ctx.dry_run {
            Status::Planned
        } else {
            Status::Done
        },
        reason: None,
    }))
}

/// True when `semanage port -l` output labels `port` as milter_port_t.
pub fn labelled(listing: &str, port: u16) -> bool {
    types_of(listing, port).any(|t| t == "milter_port_t")
}

/// Another type than milter_port_t that the listing gives TCP `port`.
pub fn type_of(listing: &str, port: u16) -> Option<&str> {
    types_of(listing, port).find(|t| *t != "milter_port_t")
}

/// The types `semanage port -l` gives TCP `port`, singly or in a range.
fn types_of(listing: &str, port: u16) -> impl Iterator<Item = &str> {
    listing.lines().filter_map(move |line| {
        let mut words = line.split_whitespace();
        let kind = words.next()?;
        let names_port = words.next() == Some("tcp")
            && words.any(|w| {
                let w = w.trim_end_matches(',');
                match w.split_once('-') {
                    Some((lo, hi)) => {
                        lo.parse::<u16>().is_ok_and(|lo| lo <= port)
                            && hi.parse::<u16>().is_ok_and(|hi| port <= hi)
                    }
                    None => w.parse::<u16>() == Ok(port),
                }
            });
        names_port.then_some(kind)
    })
}

/// `restorecon -R` for every path the plan writes, outermost paths only.
pub fn restorecon_steps(ctx: &Ctx, steps: &[Step]) -> Vec<Step> {
    let mut written: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            Step::File { path, action, .. } | Step::Dir { path, action, .. }
                if *action != Action::Unchanged =>
            {
                Some(path.as_str())
            }
            Step::Key {
                path,
                action: Action::Create,
                ..
            } => Some(path.as_str()),
            Step::Attrs { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    written.sort();
    written.dedup();
    let outermost: Vec<&str> = written
        .iter()
        .filter(|p| {
            !written
                .iter()
                .any(|q| q != *p && p.starts_with(&format!("{q}/")))
        })
        .copied()
        .collect();
    outermost
        .into_iter()
        .map(|path| Step::Command {
            argv: ctx.target_argv(&["restorecon", "-R", path]),
            purpose: Purpose::Change,
            status: if ctx.dry_run {
                Status::Planned
            } else {
                Status::Done
            },
            reason: None,
        })
        .collect()
}

/// How to take back a change this module planned.
pub fn undo(argv_: &[String]) -> Option<Vec<String>> {
    let at = argv_.iter().position(|a| a == "semanage")?;
    let mut undo: Vec<String> = argv_[..at].to_vec();
    undo.extend(argv(&["semanage", "port", "-d"]));
    undo.extend(argv_[at + 3..].iter().cloned());
    // `-d` drops the local entry: an added port loses its label, a
    // modified one goes back to the policy's own type.
    let verb = argv_.get(at + 2).map(String::as_str);
    (verb == Some("-a") || verb == Some("-m")).then_some(undo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_semanage_listings() {
        let listing = "milter_port_t                  tcp      8890, 8891, 8893\n\
                       mysqld_port_t                  tcp      1186, 3306, 63132-63164\n";
        assert!(labelled(listing, 8891));
        assert!(!labelled(listing, 8895));
        assert!(!labelled(listing, 3306));
        assert!(labelled("milter_port_t tcp 9000-9010, 8891\n", 9005));
    }

    #[test]
    fn a_port_of_another_type_is_told_apart() {
        let listing = "http_port_t tcp 80, 81, 443, 8008, 8009, 8443\n\
                       milter_port_t tcp 8890, 8891, 8893\n";
        assert_eq!(type_of(listing, 8443), Some("http_port_t"));
        assert_eq!(type_of(listing, 8891), None);
        assert_eq!(type_of(listing, 8895), None);
    }

    #[test]
    fn semanage_modify_is_undone_by_delete_too() {
        let modify = argv(&[
            "semanage",
            "port",
            "-m",
            "-t",
            "milter_port_t",
            "-p",
            "tcp",
            "8443",
        ]);
        assert_eq!(
            undo(&modify).unwrap(),
            argv(&[
                "semanage",
                "port",
                "-d",
                "-t",
                "milter_port_t",
                "-p",
                "tcp",
                "8443"
            ])
        );
    }

    #[test]
    fn semanage_add_is_undone_by_delete() {
        let add = argv(&[
            "chroot",
            "/t",
            "semanage",
            "port",
            "-a",
            "-t",
            "milter_port_t",
            "-p",
            "tcp",
            "8895",
        ]);
        assert_eq!(
            undo(&add).unwrap(),
            argv(&[
                "chroot",
                "/t",
                "semanage",
                "port",
                "-d",
                "-t",
                "milter_port_t",
                "-p",
                "tcp",
                "8895"
            ])
        );
    }
}
