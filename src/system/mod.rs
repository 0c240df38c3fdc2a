//! The one door to the machine: every path goes through a [`Root`], every
//! process through a [`runner::Runner`].
//!
//! A `Root` is `/` on a live server or another directory holding a system
//! tree (`--root DIR`). Paths in the rest of the program are written as they
//! are on the target (`/etc/opendkim.conf`) and resolved here, so the same
//! code plans against a live server, an offline image, or a test fixture.
//! Users and groups are read from the tree's own `/etc/passwd` and
//! `/etc/group`, never from the host's.

pub mod runner;

use anyhow::{Context, Result};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The system tree the tool acts on.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    /// True when acting on the running system (`/`).
    pub fn is_live(&self) -> bool {
        self.base == Path::new("/")
    }

    /// The directory of the tree on this machine.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Resolve a target path (absolute, as on the target system) under the
    /// root, following symlinks as the target system would: an absolute link
    /// points inside the root, never at this machine's own files.
    pub fn path(&self, target: &str) -> PathBuf {
        self.base.join(self.resolve(target).trim_start_matches('/'))
    }

    /// The target path with every symlink on it followed (at most 16).
    pub fn resolve(&self, target: &str) -> String {
        let mut pending: Vec<String> = target
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let here = self.base.join(done.join("/"));
            let Ok(link) = fs::read_link(&here) else {
                continue;
            };
            links += 1;
            if links > 16 {
                break;
            }
            done.pop();
            let link = link.to_string_lossy().to_string();
            if link.starts_with('/') {
                done.clear();
            }
            pending.extend(
                link.split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(String::from),
            );
        }
        format!("/{}", done.join("/"))
    }

    /// The text of a target file, or `None` when it does not exist.
    pub fn read_opt(&self, target: &str) -> Result<Option<String>> {
        match fs::read_to_string(self.path(target)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read '{target}'")),
        }
    }

    /// The names of the entries of a target directory, sorted; empty when
    /// the directory does not exist.
    pub fn list_dir(&self, target: &str) -> Result<Vec<String>> {
        let entries = match fs::read_dir(self.path(target)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list '{target}'")),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list '{target}'"))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    pub fn exists(&self, target: &str) -> bool {
        self.path(target).exists()
    }

    /// Mode bits, uid and gid of a target path (not following a final symlink).
    pub fn stat(&self, target: &str) -> Result<Option<Stat>> {
        match fs::symlink_metadata(self.path(target)) {
            Ok(m) => Ok(Some(Stat {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                is_dir: m.is_dir(),
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot stat '{target}'")),
        }
    }

    /// Look up a user by name in the tree's `/etc/passwd`.
    pub fn user(&self, name: &str) -> Result<Option<Account>> {
        let text = self.read_opt("/etc/passwd")?.unwrap_or_default();
        Ok(parse_passwd(&text).into_iter().find(|a| a.name == name))
    }

    /// Look up a group by name in the tree's `/etc/group`.
    pub fn group(&self, name: &str) -> Result<Option<Group>> {
        let text = self.read_opt("/etc/group")?.unwrap_or_default();
        Ok(parse_group(&text).into_iter().find(|g| g.name == name))
    }

    /// Every account whose primary group is `gid` or who is listed in it.
    pub fn group_members(&self, group: &Group) -> Result<Vec<String>> {
        let text = self.read_opt("/etc/passwd")?.unwrap_or_default();
        let mut members = group.members.clone();
        for account in parse_passwd(&text) {
            if account.gid == group.gid && !members.contains(&account.name) {
                members.push(account.name);
            }
        }
        Ok(members)
    }
}

/// What `stat` says of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub is_dir: bool,
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(Account {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_target_paths_under_the_root() {
        let root = Root::new("/tmp/tree");
        assert_eq!(
            root.path("/etc/opendkim.conf"),
            PathBuf::from("/tmp/tree/etc/opendkim.conf")
        );
        assert!(!root.is_live());
        assert_eq!(Root::new("/").path("/etc/x"), PathBuf::from("/etc/x"));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("dkim-root-{}", std::process::id()));
        fs::create_dir_all(dir.join("etc/postfix")).unwrap();
        fs::create_dir_all(dir.join("srv/conf")).unwrap();
        std::os::unix::fs::symlink("/srv/conf/main.cf", dir.join("etc/postfix/main.cf")).unwrap();
        std::os::unix::fs::symlink("../srv/conf", dir.join("etc/conf")).unwrap();
        let root = Root::new(&dir);
        assert_eq!(root.resolve("/etc/postfix/main.cf"), "/srv/conf/main.cf");
        assert_eq!(root.resolve("/etc/conf/x"), "/srv/conf/x");
        assert_eq!(
            root.path("/etc/postfix/main.cf"),
            dir.join("srv/conf/main.cf")
        );
        assert_eq!(root.resolve("/etc/opendkim.conf"), "/etc/opendkim.conf");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn parses_passwd_and_group() {
        let users =
            parse_passwd("root:x:0:0:root:/root:/bin/bash\nopendkim:x:103:107::/:/bin/false\n");
        assert_eq!(
            users[1],
            Account {
                name: "opendkim".into(),
                uid: 103,
                gid: 107
            }
        );
        let groups = parse_group("opendkim:x:107:postfix\nmail:x:8:\n");
        assert_eq!(groups[0].members, vec!["postfix".to_string()]);
        assert!(groups[1].members.is_empty());
    }
}
