//! Helpers for the hermetic CLI tests: a throwaway copy of a fixture system
//! tree, the real `dkim-setup` binary run against it with `--root`, and
//! whole-tree snapshots to prove that nothing (or exactly what) changed.
//!
//! Every run records commands instead of starting them
//! (`DKIM_SETUP_RECORD`), so no test can install, start or restart anything.

#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The Debian 12 tree shipped with the tests.
pub fn debian12_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees/debian12")
}

/// The default wizard answers every test starts from.
pub const WIZARD: &[&str] = &["wizard", "-y", "--no-install", "--no-restart"];

/// The SPKI header of a 2048-bit RSA public key, base64 (field case B14).
pub const SPKI_2048_PREFIX: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A";

/// A system tree in a temporary directory, plus a scratch area outside it.
pub struct Tree {
    dir: tempfile::TempDir,
}

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout parsed as the `--json` document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// stdout and stderr together, for "the output mentions ..." checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0)
    }

    #[track_caller]
    pub fn assert_failed(&self) -> &Self {
        assert_ne!(
            self.code, 0,
            "expected a failure\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not mention {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_output_has(&self, needle: &str) -> &Self {
        assert!(
            self.all().contains(needle),
            "output does not mention {needle:?}:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// One entry of a tree snapshot: kind, mode, owner and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every path under a tree (relative, without the root) with its entry.
pub type Snapshot = BTreeMap<String, Entry>;

impl Tree {
    /// A fresh copy of the Debian 12 fixture.
    pub fn debian12() -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_tree(&debian12_fixture(), &dir.path().join("root"));
        Tree { dir }
    }

    /// The Debian 12 fixture with (empty) `opendkim`, `postfix` and
    /// `postconf` binaries, so that the checks are planned and go through
    /// the command recorder as `chroot TREE ...`.
    pub fn debian12_with_checks() -> Tree {
        let tree = Tree::debian12();
        for bin in ["opendkim", "postfix", "postconf"] {
            tree.write_mode(&format!("usr/sbin/{bin}"), "", 0o755);
        }
        tree
    }

    /// The system root (what `--root` gets).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The root as the binary prints it in argv (`chroot ROOT ...`).
    pub fn root_str(&self) -> String {
        self.root().display().to_string()
    }

    /// A path inside the tree, given relative to the root (`etc/passwd`).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    #[track_caller]
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    #[track_caller]
    pub fn read_bytes(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Write a file (parents created), mode 0644, owned by root.
    pub fn write(&self, rel: &str, text: &str) {
        self.write_mode(rel, text, 0o644);
    }

    pub fn write_mode(&self, rel: &str, text: &str, mode: u32) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        self.chmod(rel, mode);
    }

    /// Replace `from` with `to` in a file, which must contain `from`.
    #[track_caller]
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        fs::write(self.path(rel), text.replacen(from, to, 1)).unwrap();
    }

    pub fn mkdir(&self, rel: &str, mode: u32, uid: u32, gid: u32) {
        fs::create_dir_all(self.path(rel)).unwrap();
        self.chmod(rel, mode);
        self.chown(rel, uid, gid);
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn chown(&self, rel: &str, uid: u32, gid: u32) {
        std::os::unix::fs::chown(self.path(rel), Some(uid), Some(gid)).unwrap();
    }

    /// Mode (permission bits only), uid and gid of a path.
    #[track_caller]
    pub fn stat(&self, rel: &str) -> (u32, u32, u32) {
        let meta = fs::symlink_metadata(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        (meta.mode() & 0o7777, meta.uid(), meta.gid())
    }

    /// Every path, mode, owner and byte of the tree.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::new();
        walk(&self.root(), &self.root(), &mut snap);
        snap
    }

    /// The snapshot without what a run keeps for itself: the backups under
    /// /var/backups, the journals under /var/lib/dkim-setup, the run lock.
    pub fn snapshot_without_backups(&self) -> Snapshot {
        let mut snap = self.snapshot();
        snap.retain(|path, _| !kept_by_the_tool(path));
        snap
    }

    /// The file that records the commands the binary would have run.
    pub fn record_path(&self) -> PathBuf {
        self.dir.path().join("commands.jsonl")
    }

    /// Every command recorded so far, as argv lists.
    pub fn recorded(&self) -> Vec<Vec<String>> {
        match fs::read_to_string(self.record_path()) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).expect("recorded argv is JSON"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Run the binary with `args` exactly (no `--root` added).
    pub fn run_raw(&self, args: &[&str], fail: Option<&str>) -> Outcome {
        let mut cmd = Command::cargo_bin("dkim-setup").expect("binary built");
        cmd.args(args)
            .env("DKIM_SETUP_RECORD", self.record_path())
            .env_remove("DKIM_SETUP_RECORD_FAIL")
            .env_remove("DKIM_SETUP_LOG")
            .env("NO_COLOR", "1");
        if let Some(words) = fail {
            cmd.env("DKIM_SETUP_RECORD_FAIL", words);
        }
        let out = cmd.output().expect("run dkim-setup");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run `dkim-setup ARGS --root TREE`.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let root = self.root_str();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--root", root.as_str()]);
        self.run_raw(&all, None)
    }

    /// `dkim-setup wizard -y --no-install --no-restart --root TREE EXTRA...`
    pub fn wizard(&self, extra: &[&str]) -> Outcome {
        self.wizard_failing(extra, None)
    }

    /// The wizard with recorded commands containing `fail` failing.
    pub fn wizard_failing(&self, extra: &[&str], fail: Option<&str>) -> Outcome {
        let root = self.root_str();
        let mut all: Vec<&str> = WIZARD.to_vec();
        all.extend(["--root", root.as_str()]);
        all.extend(extra);
        self.run_raw(&all, fail)
    }

    /// The usual first run: sign for example.test; must succeed.
    #[track_caller]
    pub fn setup_example(&self) -> Outcome {
        let out = self.wizard(&["-d", "example.test"]);
        out.assert_ok();
        out
    }
}

impl Tree {
    /// A valid RSA key (PKCS#8 PEM) at `rel`, 0600 and owned by opendkim,
    /// in a directory 0700 owned by opendkim (Debian's `/etc/dkimkeys`);
    /// returns its bytes.
    pub fn write_opendkim_key(&self, rel: &str) -> Vec<u8> {
        let (uid, gid) = OPENDKIM_IDS;
        let dir = Path::new(rel)
            .parent()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        self.mkdir(&dir, 0o700, uid, gid);
        let key = dkim_setup::keys::generate(1024).expect("generate a key");
        self.write_mode(rel, &key.pem, 0o600);
        self.chown(rel, uid, gid);
        self.read_bytes(rel)
    }

    /// A hand-made single-key setup: `Domain DOMAIN`, `Selector mail` and
    /// `KeyFile /etc/dkimkeys/mail.private` appended to opendkim.conf, with a
    /// valid key there; returns the key's bytes.
    pub fn with_single_key(&self, domain: &str) -> Vec<u8> {
        let conf = self.read("etc/opendkim.conf");
        self.write(
            "etc/opendkim.conf",
            &format!(
                "{conf}Domain\t\t\t{domain}\nSelector\t\tmail\n\
                 KeyFile\t\t\t/etc/dkimkeys/mail.private\n"
            ),
        );
        self.write_opendkim_key("etc/dkimkeys/mail.private")
    }
}

/// Copy a directory tree, keeping modes (and owners, when running as root).
pub fn copy_tree(from: &Path, to: &Path) {
    let meta = fs::symlink_metadata(from).unwrap();
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from).unwrap(), to).unwrap();
        return;
    }
    if meta.is_dir() {
        fs::create_dir(to).unwrap();
        let mut names: Vec<_> = fs::read_dir(from)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            copy_tree(&from.join(&name), &to.join(&name));
        }
    } else {
        fs::copy(from, to).unwrap();
    }
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).unwrap();
    let _ = std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()));
}

fn walk(root: &Path, path: &Path, snap: &mut Snapshot) {
    let meta = fs::symlink_metadata(path).unwrap();
    let content = if meta.file_type().is_symlink() {
        Content::Link(fs::read_link(path).unwrap())
    } else if meta.is_dir() {
        Content::Dir
    } else {
        Content::File(fs::read(path).unwrap())
    };
    let rel = path
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    snap.insert(
        rel,
        Entry {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            content,
        },
    );
    if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            walk(root, &entry.unwrap().path(), snap);
        }
    }
}

/// True for what a run keeps for itself (relative tree paths): backups,
/// journals, the run lock.
pub fn kept_by_the_tool(path: &str) -> bool {
    path.starts_with("var/backups")
        || path.starts_with("var/lib/dkim-setup")
        || path.starts_with("run/lock")
}

/// Assert two snapshots are equal, naming the paths that differ.
#[track_caller]
pub fn assert_same_tree(before: &Snapshot, after: &Snapshot) {
    let mut diffs = Vec::new();
    for (path, entry) in before {
        match after.get(path) {
            None => diffs.push(format!("removed: /{path}")),
            Some(e) if e != entry => diffs.push(format!(
                "changed: /{path} ({:04o} {}:{} -> {:04o} {}:{}{})",
                entry.mode,
                entry.uid,
                entry.gid,
                e.mode,
                e.uid,
                e.gid,
                if e.content != entry.content {
                    ", content differs"
                } else {
                    ""
                }
            )),
            Some(_) => {}
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            diffs.push(format!("created: /{path}"));
        }
    }
    assert!(diffs.is_empty(), "the tree changed:\n{}", diffs.join("\n"));
}

/// The active (non-comment) lines of a config file whose first word is `key`.
pub fn active_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(key)).then(|| words.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// The value of a main.cf parameter (last assignment wins, as in Postfix).
pub fn main_cf_value(text: &str, name: &str) -> Option<String> {
    let mut value = None;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) && !line.trim().is_empty() {
            if let Some(v) = current.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some(v) = current.take() {
            value = Some(v);
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == name
        {
            current = Some(v.trim().to_string());
        }
    }
    current.or(value)
}

/// The milters of a main.cf list, split on commas and blanks.
pub fn milters(text: &str, name: &str) -> Vec<String> {
    main_cf_value(text, name)
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `steps` array of a `--json` document.
#[track_caller]
pub fn steps(doc: &Value) -> &Vec<Value> {
    doc["steps"].as_array().expect("steps is an array")
}

/// The step of `kind` with `path`, if any.
pub fn step<'a>(doc: &'a Value, kind: &str, path: &str) -> Option<&'a Value> {
    steps(doc)
        .iter()
        .find(|s| s["kind"] == kind && s["path"] == path)
}

/// The `p=` value of a DKIM TXT record.
#[track_caller]
pub fn p_value(record: &str) -> String {
    record
        .split(';')
        .map(str::trim)
        .find_map(|t| t.strip_prefix("p="))
        .unwrap_or_else(|| panic!("no p= in {record:?}"))
        .to_string()
}

/// A RHEL-family tree shipped with the tests: `almalinux9`, `rocky8` or
/// `fedora40`.
pub fn rhel_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trees")
        .join(name)
}

/// The opendkim user's and group's ids in every fixture tree.
pub const OPENDKIM_IDS: (u32, u32) = (103, 107);

impl Tree {
    /// A fresh copy of a RHEL-family fixture (see its README.md), with what
    /// git cannot keep set as the opendkim RPM installs it: `/etc/opendkim`
    /// root:opendkim, an empty `/etc/opendkim/keys` 0750 root:opendkim, and
    /// the three tables 0640 opendkim:opendkim. The fixture's README.md is
    /// not part of the system and is left out.
    pub fn rhel(name: &str) -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_tree(&rhel_fixture(name), &dir.path().join("root"));
        let tree = Tree { dir };
        fs::remove_file(tree.path("README.md")).expect("the fixture has a README.md");
        normalize_modes(&tree.root());
        let (uid, gid) = OPENDKIM_IDS;
        tree.chown("etc/opendkim", 0, gid);
        tree.mkdir("etc/opendkim/keys", 0o750, 0, gid);
        for table in ["KeyTable", "SigningTable", "TrustedHosts"] {
            let rel = format!("etc/opendkim/{table}");
            tree.chmod(&rel, 0o640);
            tree.chown(&rel, uid, gid);
        }
        tree
    }

    /// AlmaLinux 9: CRB disabled, no EPEL, dnf present.
    pub fn almalinux9() -> Tree {
        Tree::rhel("almalinux9")
    }

    /// Rocky Linux 8: PowerTools disabled, no EPEL, dnf present.
    pub fn rocky8() -> Tree {
        Tree::rhel("rocky8")
    }

    /// Fedora 40: the Fedora repositories only, dnf present.
    pub fn fedora40() -> Tree {
        Tree::rhel("fedora40")
    }

    /// Add (empty) `opendkim`, `postfix` and `postconf` binaries, so that the
    /// checks are planned and recorded as `chroot TREE ...`.
    pub fn with_check_binaries(self) -> Tree {
        for bin in ["opendkim", "postfix", "postconf"] {
            self.write_mode(&format!("usr/sbin/{bin}"), "", 0o755);
        }
        self
    }

    /// Mark the tree as a booted systemd system (`/run/systemd/system`).
    pub fn with_systemd_running(self) -> Tree {
        self.mkdir("run/systemd/system", 0o755, 0, 0);
        self
    }

    /// SELinux as the tree's `/sys/fs/selinux/enforce` says: `"1"` enforcing.
    pub fn with_selinux_enforce(self, value: &str) -> Tree {
        self.write("sys/fs/selinux/enforce", value);
        self
    }

    /// Run the binary with `args` exactly (no `--root` added), recorded
    /// commands containing `fail` failing, and extra environment `env`
    /// (such as `DKIM_SETUP_RECORD_LIVE=1`).
    pub fn run_raw_env(&self, args: &[&str], fail: Option<&str>, env: &[(&str, &str)]) -> Outcome {
        let mut cmd = Command::cargo_bin("dkim-setup").expect("binary built");
        cmd.args(args)
            .env("DKIM_SETUP_RECORD", self.record_path())
            .env_remove("DKIM_SETUP_RECORD_FAIL")
            .env_remove("DKIM_SETUP_RECORD_LIVE")
            .env_remove("DKIM_SETUP_LOG")
            .env("NO_COLOR", "1");
        if let Some(words) = fail {
            cmd.env("DKIM_SETUP_RECORD_FAIL", words);
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().expect("run dkim-setup");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Directories 0755, files 0644 (0755 when executable): a checkout made with
/// umask 002 must not leave group-writable directories in a system tree.
fn normalize_modes(path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap();
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = if meta.is_dir() || meta.mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            normalize_modes(&entry.unwrap().path());
        }
    }
}

/// The files a wizard run writes whose bytes do not depend on the key.
pub const SETUP_FILES: &[&str] = &[
    "etc/opendkim.conf",
    "etc/opendkim/KeyTable",
    "etc/opendkim/SigningTable",
    "etc/opendkim/TrustedHosts",
    "etc/default/opendkim",
    "etc/postfix/main.cf",
];

/// Assert that two trees set up with the same answers hold the same setup:
/// the tables, opendkim.conf and main.cf byte for byte, and every other
/// path with the same kind, mode and owner, its bytes alike too except
/// under the keys directory (each run generates its own keys).
#[track_caller]
pub fn assert_same_setup(a: &Tree, b: &Tree) {
    for rel in SETUP_FILES {
        assert_eq!(a.read(rel), b.read(rel), "/{rel} differs");
    }
    let without_key_bytes = |tree: &Tree| {
        let mut snap = tree.snapshot_without_backups();
        for (path, entry) in snap.iter_mut() {
            if path.starts_with("etc/opendkim/keys/") && matches!(entry.content, Content::File(_)) {
                entry.content = Content::File(Vec::new());
            }
        }
        snap
    };
    assert_same_tree(&without_key_bytes(a), &without_key_bytes(b));
}

/// `--root TREE wizard -y --no-install -d example.test` on a tree taken for
/// a live host (`DKIM_SETUP_RECORD_LIVE=1`), recorded commands containing
/// `fail` failing.
pub fn live_wizard(
    tree: &Tree,
    fail: Option<&str>,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Outcome {
    let root = tree.root_str();
    let mut args: Vec<&str> = vec![
        "--root",
        &root,
        "wizard",
        "-y",
        "--no-install",
        "-d",
        "example.test",
    ];
    args.extend(extra);
    let mut all_env = vec![("DKIM_SETUP_RECORD_LIVE", "1")];
    all_env.extend(env);
    tree.run_raw_env(&args, fail, &all_env)
}
