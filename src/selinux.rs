//! SELinux: keep opendkim reachable and its files correctly labelled.
//!
//! Only when the target enforces SELinux (`/sys/fs/selinux/enforce` is 1,
//! what `getenforce` reads) is anything planned:
//!
//! 1. opendkim may only bind TCP ports labelled `milter_port_t`. The
//!    default policy labels 8890, 8891 and 8893; another port gets
//!    `semanage port -a -t milter_port_t -p tcp PORT` (undone on failure),
//!    unless `semanage port -l` shows it labelled already.
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

/// True when the target enforces SELinux.
pub fn enforcing(ctx: &Ctx) -> bool {
    ctx.root
        .read_opt("/sys/fs/selinux/enforce")
        .ok()
        .flatten()
        .is_some_and(|t| t.trim() == "1")
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
    let port = port.to_string();
    Ok(Some(Step::Command {
        argv: ctx.target_argv(&[
            "semanage",
            "port",
            "-a",
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
    listing.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("milter_port_t")
            && words.next() == Some("tcp")
            && words.any(|w| {
                let w = w.trim_end_matches(',');
                match w.split_once('-') {
                    Some((lo, hi)) => {
                        lo.parse::<u16>().is_ok_and(|lo| lo <= port)
                            && hi.parse::<u16>().is_ok_and(|hi| port <= hi)
                    }
                    None => w.parse::<u16>() == Ok(port),
                }
            })
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
    (argv_.get(at + 2).map(String::as_str) == Some("-a")).then_some(undo)
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
