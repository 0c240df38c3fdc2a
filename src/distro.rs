//! Which system this is, and the facts that differ between families.
//!
//! `/etc/os-release` is read from the root: `ID` first, then each word of
//! `ID_LIKE`, is matched against the supported families. Everything that
//! differs between Debian and RHEL (package names and the installer, paths,
//! users, the packaged default configuration) lives in one [`Profile`] per
//! family, so the rest of the program never asks which distribution it is on.

use crate::error::bad_hint;
use crate::system::Root;
use anyhow::Result;
use serde::Serialize;

/// The supported families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Debian,
    Rhel,
}

/// The detected system, as printed in `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Distro {
    pub family: Family,
    pub id: String,
    pub version: String,
    #[serde(skip)]
    pub pretty: String,
    /// `ID_LIKE`, lower-cased: which family a derivative follows.
    #[serde(skip)]
    pub like: String,
}

const DEBIAN_IDS: &[&str] = &["debian", "ubuntu", "linuxmint", "raspbian"];
const RHEL_IDS: &[&str] = &["rhel", "centos", "almalinux", "rocky", "ol", "fedora"];

/// Parse the text of an os-release file into its variables, unquoting values.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        vars.push((key.trim().to_string(), unquote(value.trim())));
    }
    vars
}

fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    let quoted = bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0];
    if !quoted {
        return value.to_string();
    }
    let inner = &value[1..value.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && bytes[0] == b'"' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Map os-release text to a supported distribution, or refuse naming what was found.
pub fn detect_text(text: &str) -> Result<Distro> {
    let vars = parse_os_release(text);
    let get = |k: &str| {
        vars.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let id = get("ID").unwrap_or_default().to_lowercase();
    let like = get("ID_LIKE").unwrap_or_default().to_lowercase();
    let family_of = |word: &str| {
        if DEBIAN_IDS.contains(&word) {
            Some(Family::Debian)
        } else if RHEL_IDS.contains(&word) {
            Some(Family::Rhel)
        } else {
            None
        }
    };
    let family = std::iter::once(id.as_str())
        .chain(like.split_whitespace())
        .find_map(family_of);
    let Some(family) = family else {
        let seen = if like.is_empty() {
            format!("'{id}'")
        } else {
            format!("'{id}' (like '{like}')")
        };
        return Err(bad_hint(
            format!("unsupported system {seen} in /etc/os-release"),
            format!(
                "supported: Debian family ({}) and RHEL family ({}), or any ID_LIKE of those",
                DEBIAN_IDS.join(", "),
                RHEL_IDS.join(", ")
            ),
        ));
    };
    Ok(Distro {
        family,
        id,
        version: get("VERSION_ID").unwrap_or_default(),
        pretty: get("PRETTY_NAME").unwrap_or_default(),
        like,
    })
}

/// Detect the distribution of the tree at `root`.
pub fn detect(root: &Root) -> Result<Distro> {
    let text = match root.read_opt("/etc/os-release")? {
        Some(text) => text,
        None => root.read_opt("/usr/lib/os-release")?.ok_or_else(|| {
            bad_hint(
                "cannot tell which system this is: no '/etc/os-release'",
                "dkim-setup supports Debian/Ubuntu and RHEL-family systems",
            )
        })?,
    };
    detect_text(&text)
}

/// Everything that differs between families.
#[derive(Debug, Clone)]
pub struct Profile {
    pub family: Family,
    /// Packages that provide opendkim and its tools.
    pub packages: &'static [&'static str],
    /// The package database entry proving a package is installed.
    pub package_db: PackageDb,
    pub opendkim_conf: &'static str,
    /// Files as the package ships them (path, text), used to plan before the
    /// package is installed.
    pub packaged: &'static [(&'static str, &'static str)],
    /// Files outside opendkim.conf that can override the socket.
    pub socket_overrides: &'static [SocketOverride],
    pub user: &'static str,
    pub group: &'static str,
    pub userid_value: &'static str,
    pub pid_file: &'static str,
    pub config_dir: &'static str,
    pub keys_dir: &'static str,
    pub opendkim_service: &'static str,
    pub postfix_service: &'static str,
    pub postfix_dir: &'static str,
    pub postfix_user: &'static str,
}

/// How to tell whether a package is installed without running anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageDb {
    /// `/var/lib/dpkg/status`
    Dpkg,
    /// `rpm -q` (run through the runner)
    Rpm,
}

/// A file that can carry its own socket setting, and how to edit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketOverride {
    /// A shell file with `SOCKET=` (Debian `/etc/default/opendkim`).
    ShellVar(&'static str),
    /// A systemd drop-in whose `ExecStart` passes `-p SOCKET`.
    ExecStart(&'static str),
    /// A shell file whose `OPTIONS=` passes opendkim's flags (RHEL
    /// `/etc/sysconfig/opendkim`): `-p` is kept equal, and `-x` and `-P` must
    /// agree with opendkim.conf.
    Options(&'static str),
}

impl SocketOverride {
    pub fn path(&self) -> &'static str {
        match self {
            SocketOverride::ShellVar(p)
            | SocketOverride::ExecStart(p)
            | SocketOverride::Options(p) => p,
        }
    }
}

const DEBIAN: Profile = Profile {
    family: Family::Debian,
    packages: &["opendkim", "opendkim-tools"],
    package_db: PackageDb::Dpkg,
    opendkim_conf: "/etc/opendkim.conf",
    packaged: &[
        (
            "/etc/opendkim.conf",
            include_str!("../templates/debian/opendkim.conf"),
        ),
        (
            "/etc/default/opendkim",
            include_str!("../templates/debian/default-opendkim"),
        ),
    ],
    socket_overrides: &[
        SocketOverride::ShellVar("/etc/default/opendkim"),
        SocketOverride::ExecStart("/etc/systemd/system/opendkim.service.d/override.conf"),
    ],
    user: "opendkim",
    group: "opendkim",
    userid_value: "opendkim",
    pid_file: "/run/opendkim/opendkim.pid",
    config_dir: "/etc/opendkim",
    keys_dir: "/etc/opendkim/keys",
    opendkim_service: "opendkim",
    postfix_service: "postfix",
    postfix_dir: "/etc/postfix",
    postfix_user: "postfix",
};

const RHEL: Profile = Profile {
    family: Family::Rhel,
    packages: &["opendkim", "opendkim-tools"],
    package_db: PackageDb::Rpm,
    opendkim_conf: "/etc/opendkim.conf",
    packaged: &[
        (
            "/etc/opendkim.conf",
            include_str!("../templates/rhel/opendkim.conf"),
        ),
        (
            "/etc/sysconfig/opendkim",
            include_str!("../templates/rhel/sysconfig-opendkim"),
        ),
    ],
    socket_overrides: &[SocketOverride::Options("/etc/sysconfig/opendkim")],
    user: "opendkim",
    group: "opendkim",
    userid_value: "opendkim:opendkim",
    pid_file: "/run/opendkim/opendkim.pid",
    config_dir: "/etc/opendkim",
    keys_dir: "/etc/opendkim/keys",
    opendkim_service: "opendkim",
    postfix_service: "postfix",
    postfix_dir: "/etc/postfix",
    postfix_user: "postfix",
};

impl Profile {
    /// The text the package ships at `path`, if it ships one.
    pub fn packaged(&self, path: &str) -> Option<&'static str> {
        self.packaged
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, text)| *text)
    }
}

impl Distro {
    /// The major release number (`9` for `VERSION_ID="9.4"`), 0 when unknown.
    pub fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// Fedora or a derivative of Fedora alone (`ID_LIKE=fedora`, as Nobara
    /// says): opendkim comes from the distribution itself, with no EPEL and
    /// no CodeReady Builder. RHEL and Oracle Linux say `ID_LIKE=fedora`
    /// too, and the rebuilds name fedora beside rhel or centos: all EL.
    pub fn is_fedora_like(&self) -> bool {
        const EL: &[&str] = &["rhel", "centos", "almalinux", "rocky", "ol"];
        let like: Vec<&str> = self.like.split_whitespace().collect();
        self.id == "fedora"
            || (!EL.contains(&self.id.as_str())
                && like.contains(&"fedora")
                && !like.iter().any(|w| EL.contains(w)))
    }

    pub fn profile(&self) -> &'static Profile {
        match self.family {
            Family::Debian => &DEBIAN,
            Family::Rhel => &RHEL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_id_then_id_like() {
        let d = detect_text("ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        assert_eq!((d.family, d.version.as_str()), (Family::Debian, "12"));
        let d = detect_text("ID=pop\nID_LIKE=\"ubuntu debian\"\n").unwrap();
        assert_eq!(d.family, Family::Debian);
        let d = detect_text("ID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\n").unwrap();
        assert_eq!(d.family, Family::Rhel);
    }

    #[test]
    fn refuses_unknown_systems_naming_them() {
        let err = detect_text("ID=arch\n").unwrap_err();
        let bad = err.downcast_ref::<crate::error::BadInput>().unwrap();
        assert!(bad.message.contains("'arch'"), "{}", bad.message);
        assert!(bad.hint.as_deref().unwrap().contains("debian"));
    }

    #[test]
    fn unquotes_values() {
        let vars = parse_os_release("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nA='x y'\n");
        assert_eq!(vars[0].1, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(vars[1].1, "x y");
    }
}
