//! OpenDKIM's safety rules for private keys, as pure checks over a tree.
//!
//! opendkim (with `RequireSafeKeys`, the default) refuses a key that other
//! users could read or change, and it walks every directory from `/` down
//! to the key: a directory that someone other than root or opendkim can
//! write to makes the key "not secure" too. A group-readable key or a
//! group-writable directory is fine only while the group has no member
//! besides opendkim (platform note P2, field cases B04-B06). Setup uses
//! these rules to refuse or fix, `check` to report.

use crate::system::{Root, Stat};
use anyhow::Result;

/// The opendkim user and group, resolved in the tree.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// Who may not be in the group that owns a key or a key directory.
struct Group {
    gid: u32,
    others: bool,
}

fn opendkim_group(root: &Root, group: &str, user: &str) -> Result<Option<Group>> {
    let Some(g) = root.group(group)? else {
        return Ok(None);
    };
    let others = root
        .group_members(&g)?
        .iter()
        .any(|m| m != user && m != "root");
    Ok(Some(Group { gid: g.gid, others }))
}

/// True when opendkim has the permission (owner bit `user`, group bit `group`).
fn readable_by(st: &Stat, ids: Ids, user: u32, group: u32) -> bool {
    (st.uid == ids.uid && st.mode & user != 0) || (st.gid == ids.gid && st.mode & group != 0)
}

/// Why opendkim would refuse the key file itself, if it would.
pub fn key_problem(
    root: &Root,
    path: &str,
    ids: Ids,
    user: &str,
    group: &str,
) -> Result<Option<String>> {
    let Some(st) = root.stat(path)? else {
        return Ok(Some(format!("'{path}' does not exist")));
    };
    let g = opendkim_group(root, group, user)?;
    let shared_group = |st: &Stat| match &g {
        Some(g) if g.gid == st.gid => g.others,
        _ => st.gid != 0,
    };
    Ok(if st.uid != ids.uid && st.uid != 0 {
        Some(format!(
            "'{path}' is owned by uid {}, not by opendkim or root",
            st.uid
        ))
    } else if st.mode & 0o007 != 0 {
        Some(format!(
            "'{path}' (mode {:04o}) can be read or written by other users",
            st.mode
        ))
    } else if st.mode & 0o060 != 0 && shared_group(&st) {
        Some(format!(
            "'{path}' (mode {:04o}) is readable by its group, which has members other than \
             opendkim",
            st.mode
        ))
    } else if !readable_by(&st, ids, 0o400, 0o040) {
        Some(format!(
            "opendkim cannot read '{path}' (owner uid {}, mode {:04o})",
            st.uid, st.mode
        ))
    } else {
        None
    })
}

/// The first directory above `path` that would make opendkim refuse the
/// key, and why. `skip` names directories about to be fixed.
pub fn ancestor_problem(
    root: &Root,
    path: &str,
    ids: Ids,
    user: &str,
    group: &str,
    skip: &dyn Fn(&str) -> bool,
) -> Result<Option<(String, String)>> {
    let g = opendkim_group(root, group, user)?;
    let mut dir = std::path::Path::new(path).parent();
    while let Some(d) = dir {
        let shown = match d.to_string_lossy().to_string() {
            s if s.is_empty() => "/".to_string(),
            s => s,
        };
        dir = d.parent();
        let Some(st) = root.stat(&shown)? else {
            continue;
        };
        if skip(&shown) {
            continue;
        }
        let extra_members = match &g {
            Some(g) if g.gid == st.gid => g.others,
            _ => true,
        };
        let why = if st.mode & 0o002 != 0 {
            "any user can write to it".to_string()
        } else if st.mode & 0o020 != 0 && extra_members {
            "its group can write to it".to_string()
        } else if st.uid != 0 && st.uid != ids.uid {
            format!("it is owned by uid {}", st.uid)
        } else if !readable_by(&st, ids, 0o100, 0o010) && st.mode & 0o001 == 0 {
            "opendkim cannot enter it".to_string()
        } else {
            continue;
        };
        return Ok(Some((shown, why)));
    }
    Ok(None)
}
