//! Never half-configured: the journal, `revert`, runs killed or failing at
//! every fault point, the run lock, and the zero-outage order of a run.

use crate::common::*;
use std::collections::BTreeSet;

/// The snapshot of what a run configures, with the key material (random
/// in every run) reduced to its mode and owner.
fn shape(tree: &Tree) -> Snapshot {
    let mut snap = configured(tree);
    for (path, entry) in snap.iter_mut() {
        if path.starts_with("etc/opendkim/keys/")
            && (path.ends_with(".private") || path.ends_with(".txt"))
        {
            entry.content = Content::File(b"(key material)".to_vec());
        }
    }
    snap
}

fn journal_states(tree: &Tree) -> Vec<String> {
    let out = tree.run(&["revert", "--list", "--json"]);
    out.assert_ok();
    out.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_run_that_changes_something_is_journaled_before_each_change() {
    let tree = Tree::debian12_with_checks();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    let id = out.json()["run"]
        .as_str()
        .expect("run id in JSON")
        .to_string();
    let journal = tree.read(&format!("var/lib/dkim-setup/runs/{id}/journal"));
    let ops: Vec<String> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["op"].to_string())
        .collect();
    assert_eq!(
        ops.first().map(String::as_str),
        Some("\"begin\""),
        "{journal}"
    );
    assert_eq!(ops.last().map(String::as_str), Some("\"end\""), "{journal}");
    for op in ["modify", "create", "mkdir"] {
        assert!(ops.contains(&format!("\"{op}\"")), "no {op} in {journal}");
    }
    // The old bytes of a modified file are kept; no key material is.
    let kept = tree.read(&format!(
        "var/lib/dkim-setup/runs/{id}/before/etc/opendkim.conf"
    ));
    assert_eq!(
        kept,
        std::fs::read_to_string(debian12_fixture().join("etc/opendkim.conf")).unwrap()
    );
    assert!(!journal.contains("PRIVATE KEY"), "{journal}");
    assert_eq!(tree.stat(&format!("var/lib/dkim-setup/runs/{id}")).0, 0o700);
    assert_eq!(
        tree.stat(&format!("var/lib/dkim-setup/runs/{id}/journal"))
            .0,
        0o600
    );

    // A second run changes nothing and so journals nothing.
    let again = tree.wizard(&["-d", "example.test", "--json"]);
    again.assert_ok();
    assert!(again.json().get("run").is_none(), "{}", again.stdout);
    assert_eq!(journal_states(&tree), ["complete"]);
}

#[test]
fn revert_restores_the_tree_byte_for_byte_and_removes_what_it_created() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    tree.setup_example();
    assert!(tree.exists("etc/opendkim/keys/example.test/key.private"));

    let out = tree.run(&["revert"]);
    out.assert_ok();
    assert!(out.stderr.contains("reverted run"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("restored /etc/postfix/main.cf, /etc/default/opendkim, /etc/opendkim.conf"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("removed"), "{}", out.stderr);
    assert_same_tree(&before, &tree.snapshot_without_backups());
    assert_eq!(journal_states(&tree), ["reverted"]);

    // Nothing is left to revert, and saying so is not a failure to undo.
    let again = tree.run(&["revert"]);
    again.assert_code(1);
    assert!(
        again.stderr.contains("nothing to revert"),
        "{}",
        again.stderr
    );
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn revert_takes_back_the_last_run_then_the_one_before() {
    let tree = Tree::debian12_with_checks();
    let original = tree.snapshot();
    tree.setup_example();
    let after_first = tree.snapshot_without_backups();
    tree.wizard(&["-d", "example.test", "-d", "second.test"])
        .assert_ok();
    assert!(tree.read("etc/opendkim/KeyTable").contains("second.test"));

    tree.run(&["revert"]).assert_ok();
    assert_same_tree(&after_first, &tree.snapshot_without_backups());
    tree.run(&["revert"]).assert_ok();
    assert_same_tree(&original, &tree.snapshot_without_backups());
    assert_eq!(journal_states(&tree), ["reverted", "reverted"]);
}

#[test]
fn revert_refuses_a_file_changed_since_the_run_unless_forced() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    tree.setup_example();
    tree.edit(
        "etc/postfix/main.cf",
        "milter_protocol = 6",
        "milter_protocol = 6\n# mine",
    );
    let edited = tree.snapshot_without_backups();

    let out = tree.run(&["revert"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("'/etc/postfix/main.cf' changed since run"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_same_tree(&edited, &tree.snapshot_without_backups());

    let forced = tree.run(&["revert", "--force"]);
    forced.assert_ok();
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn revert_of_an_unknown_run_is_bad_input_naming_the_runs() {
    let tree = Tree::debian12_with_checks();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    let id = out.json()["run"].as_str().unwrap().to_string();
    let bad = tree.run(&["revert", "20000101T000000Z-1"]);
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("no run '20000101T000000Z-1'"),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains(&id), "{}", bad.stderr);

    let dry = tree.run(&["revert", &id, "--dry-run"]);
    dry.assert_ok();
    assert!(
        dry.stdout.contains("restore   /etc/opendkim.conf"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("remove    /etc/opendkim/keys/example.test/key.private"),
        "{}",
        dry.stdout
    );
    assert_eq!(journal_states(&tree), ["complete"]);
}

/// The clock of every run of the fault tests, so that the rotation state
/// of two trees can be compared byte for byte.
const CLOCK: &str = "1800000000";

/// A kind of run that the fault tests break at each of its fault points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `wizard -y --no-install --no-restart -d example.test`, inet socket.
    Offline,
    /// The same without `--no-restart` on a booted systemd tree taken for a
    /// live host (`DKIM_SETUP_RECORD_LIVE=1`): opendkim is enabled and
    /// started, Postfix started.
    LiveServices,
    /// A unix socket in Postfix's spool: postfix joins the opendkim group.
    /// The recorder leaves the tree's /etc/group as it is, where postfix is
    /// no member, so `gpasswd -d` fails as it would on that group: an undo
    /// must take that as already done (a run killed between journaling
    /// `usermod` and running it).
    UnixSocket,
    /// `rotate -d example.test` (the start of a rotation) after a setup.
    RotateStart,
}

impl Variant {
    /// A fresh tree for one run of this variant.
    fn tree(self) -> Tree {
        let tree = Tree::debian12_with_checks();
        match self {
            Variant::LiveServices => tree.mkdir("run/systemd/system", 0o755, 0, 0),
            Variant::RotateStart => {
                let root = tree.root_str();
                let mut args = vec!["--root", root.as_str()];
                args.extend(WIZARD);
                args.extend(["-d", "example.test"]);
                tree.run_raw_env(&args, None, &[("DKIM_SETUP_TEST_NOW", CLOCK)])
                    .assert_ok();
                std::fs::remove_file(tree.record_path()).unwrap();
            }
            Variant::Offline | Variant::UnixSocket => {}
        }
        tree
    }

    /// Run this variant, with the fault switch at `fault` when given.
    fn run(self, tree: &Tree, fault: Option<&str>) -> Outcome {
        let root = tree.root_str();
        let mut args: Vec<&str> = vec!["--root", &root];
        match self {
            Variant::RotateStart => args.extend(["rotate", "-d", "example.test"]),
            _ => args.extend(["wizard", "-y", "--no-install", "-d", "example.test"]),
        }
        match self {
            Variant::Offline => args.push("--no-restart"),
            Variant::UnixSocket => args.extend([
                "--no-restart",
                "--socket",
                "local:/var/spool/postfix/opendkim/opendkim.sock",
            ]),
            Variant::LiveServices | Variant::RotateStart => {}
        }
        let mut env = vec![("DKIM_SETUP_TEST_NOW", CLOCK)];
        if self == Variant::LiveServices {
            env.push(("DKIM_SETUP_RECORD_LIVE", "1"));
        }
        if let Some(fault) = fault {
            env.push(("DKIM_SETUP_TEST_FAULT", fault));
        }
        tree.run_raw_env(&args, self.failing(), &env)
    }

    /// How many runs the fresh tree has journaled already.
    fn runs_before(self) -> usize {
        usize::from(self == Variant::RotateStart)
    }

    /// Recorded commands that fail in this variant.
    fn failing(self) -> Option<&'static str> {
        (self == Variant::UnixSocket).then_some("gpasswd")
    }

    /// `revert` on this variant's tree.
    fn revert(self, tree: &Tree) -> Outcome {
        let root = tree.root_str();
        let mut env = vec![("DKIM_SETUP_TEST_NOW", CLOCK)];
        if self == Variant::LiveServices {
            env.push(("DKIM_SETUP_RECORD_LIVE", "1"));
        }
        tree.run_raw_env(&["--root", &root, "revert"], self.failing(), &env)
    }
}

/// What a run configures: the tree without the backups, the journals and
/// the lock, but with the rotation state.
fn configured(tree: &Tree) -> Snapshot {
    let mut snap = tree.snapshot();
    snap.retain(|p, _| !kept_by_the_tool(p) || p == "var/lib/dkim-setup/rotation.json");
    snap
}

/// The services and group memberships as the recorded commands left them,
/// replayed in order: opendkim started, opendkim enabled, postfix in the
/// opendkim group.
fn recorded_state(tree: &Tree) -> (bool, bool, bool) {
    let (mut started, mut enabled, mut member) = (false, false, false);
    for argv in tree.recorded() {
        let has = |w: &str| argv.iter().any(|a| a == w);
        if has("usermod") && has("-G") {
            member = true;
        } else if has("gpasswd") && has("-d") {
            member = false;
        } else if has("opendkim") && (has("systemctl") || has("service")) {
            if has("enable") {
                enabled = true;
                started |= has("--now");
            } else if has("disable") {
                enabled = false;
            } else if has("start") || has("restart") {
                started = true;
            } else if has("stop") {
                started = false;
            }
        }
    }
    (started, enabled, member)
}

/// Runs `variant` with the fault switch at point 1, 2, ... (each on a fresh
/// tree, `check` given the tree as it was before) until a run passes every
/// point; returns how many points there were.
fn for_every_fault_point(
    variant: Variant,
    kind: &str,
    mut check: impl FnMut(u32, &Tree, &Snapshot, &Outcome),
) -> u32 {
    for n in 1..300 {
        let tree = variant.tree();
        let before = configured(&tree);
        let out = variant.run(&tree, Some(&format!("{kind}:{n}")));
        if out.code == 0 {
            return n - 1;
        }
        check(n, &tree, &before, &out);
    }
    panic!("the run never got past its fault points");
}

/// A failure at each fault point: exit 1, every file as it was, the journal
/// rolled back, services and groups as before.
fn fails_cleanly_everywhere(variant: Variant) -> u32 {
    let points = for_every_fault_point(variant, "fail", |n, tree, before, out| {
        assert_eq!(out.code, 1, "{variant:?} point {n}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("injected fault at point {n}")),
            "{variant:?} point {n}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("could not undo"),
            "{variant:?} point {n}: {}",
            out.stderr
        );
        assert_same_tree(before, &configured(tree));
        let states = journal_states(tree);
        let (earlier, this) = states.split_at(variant.runs_before());
        assert!(
            earlier.iter().all(|s| s == "complete") && (this.is_empty() || this == ["rolled back"]),
            "{variant:?} point {n}: {states:?}"
        );
        assert_eq!(
            recorded_state(tree),
            (false, false, false),
            "{variant:?} point {n}: {:#?}",
            tree.recorded()
        );
    });
    eprintln!("{variant:?} fail: {points} fault points exercised");
    points
}

/// A kill at each fault point, then the same run again: it undoes the
/// killed run first and ends where an uninterrupted run ends.
fn killed_runs_converge_everywhere(variant: Variant) -> u32 {
    let reference = variant.tree();
    variant.run(&reference, None).assert_ok();
    let expected = shape(&reference);
    let expected_state = recorded_state(&reference);

    let points = for_every_fault_point(variant, "kill", |n, tree, _, out| {
        // Killed by SIGKILL: no exit code, no end record.
        assert_ne!(out.code, 0, "{variant:?} point {n}");
        assert_ne!(
            out.code, 1,
            "{variant:?} point {n}: not killed: {}",
            out.stderr
        );
        let states = journal_states(tree);
        assert!(
            states
                .last()
                .is_none_or(|s| s == "interrupted" || s == "complete"),
            "{variant:?} point {n}: {states:?}"
        );
        let interrupted = states.last().is_some_and(|s| s == "interrupted");
        // Reading commands work on the half-done state.
        tree.run(&["status"]).assert_ok();

        let next = variant.run(tree, None);
        next.assert_ok();
        assert_eq!(
            next.stderr.contains("was interrupted before it finished"),
            interrupted,
            "{variant:?} point {n}: {}",
            next.stderr
        );
        assert_same_tree(&expected, &shape(tree));
        assert_eq!(
            recorded_state(tree),
            expected_state,
            "{variant:?} point {n}: {:#?}",
            tree.recorded()
        );
        let states = journal_states(tree);
        assert_eq!(
            states.last().map(String::as_str),
            Some("complete"),
            "{variant:?} point {n}"
        );
        if interrupted {
            assert_eq!(
                states[states.len() - 2],
                "interrupted, undone",
                "{variant:?} point {n}"
            );
        }
    });
    eprintln!("{variant:?} kill, then run again: {points} fault points exercised");
    points
}

/// A kill at each fault point, then `revert`: the tree as before the run.
fn killed_runs_revert_everywhere(variant: Variant) -> u32 {
    let points = for_every_fault_point(variant, "kill", |n, tree, before, out| {
        assert_ne!(
            out.code, 1,
            "{variant:?} point {n}: not killed: {}",
            out.stderr
        );
        let states = journal_states(tree);
        let interrupted = states.len() > variant.runs_before()
            && states.last().is_some_and(|s| s == "interrupted");
        if !interrupted && variant.runs_before() == 0 {
            // Killed before the first record: nothing to undo.
            variant.revert(tree).assert_code(1);
        } else if interrupted {
            let revert = variant.revert(tree);
            revert.assert_ok();
            assert!(
                revert.stderr.contains("was interrupted before it finished"),
                "{variant:?} point {n}: {}",
                revert.stderr
            );
            assert_eq!(
                journal_states(tree).last().map(String::as_str),
                Some("interrupted, undone"),
                "{variant:?} point {n}"
            );
        }
        assert_same_tree(before, &configured(tree));
        assert_eq!(
            recorded_state(tree),
            (false, false, false),
            "{variant:?} point {n}: {:#?}",
            tree.recorded()
        );
    });
    eprintln!("{variant:?} kill, then revert: {points} fault points exercised");
    points
}

#[test]
fn a_failure_at_any_fault_point_leaves_every_file_as_it_was() {
    let points = fails_cleanly_everywhere(Variant::Offline);
    assert!(points >= 20, "only {points} fault points");
}

#[test]
fn a_run_killed_at_any_fault_point_is_undone_by_the_next_run_which_converges() {
    let points = killed_runs_converge_everywhere(Variant::Offline);
    assert!(points >= 20, "only {points} fault points");
}

#[test]
fn a_run_killed_at_any_fault_point_can_be_reverted_to_the_original_tree() {
    let points = killed_runs_revert_everywhere(Variant::Offline);
    assert!(points >= 20, "only {points} fault points");
}

/// Needs a test host where neither opendkim nor Postfix's master runs.
#[test]
fn a_live_run_failing_at_any_fault_point_leaves_files_and_services_as_they_were() {
    let points = fails_cleanly_everywhere(Variant::LiveServices);
    assert!(points >= 20, "only {points} fault points");
}

/// Needs a test host where neither opendkim nor Postfix's master runs.
#[test]
fn a_live_run_killed_at_any_fault_point_converges_on_the_next_run() {
    let points = killed_runs_converge_everywhere(Variant::LiveServices);
    assert!(points >= 20, "only {points} fault points");
}

/// Needs a test host where neither opendkim nor Postfix's master runs.
#[test]
fn a_live_run_killed_at_any_fault_point_can_be_reverted() {
    let points = killed_runs_revert_everywhere(Variant::LiveServices);
    assert!(points >= 20, "only {points} fault points");
}

#[test]
fn a_unix_socket_run_failing_at_any_fault_point_leaves_files_and_groups_as_they_were() {
    let points = fails_cleanly_everywhere(Variant::UnixSocket);
    assert!(points >= 20, "only {points} fault points");
}

#[test]
fn a_unix_socket_run_killed_at_any_fault_point_converges_on_the_next_run() {
    let points = killed_runs_converge_everywhere(Variant::UnixSocket);
    assert!(points >= 20, "only {points} fault points");
}

#[test]
fn a_unix_socket_run_killed_at_any_fault_point_can_be_reverted() {
    let points = killed_runs_revert_everywhere(Variant::UnixSocket);
    assert!(points >= 20, "only {points} fault points");
}

#[test]
fn a_rotation_failing_at_any_fault_point_leaves_every_file_as_it_was() {
    let points = fails_cleanly_everywhere(Variant::RotateStart);
    assert!(points >= 5, "only {points} fault points");
}

#[test]
fn a_rotation_killed_at_any_fault_point_converges_on_the_next_rotation() {
    let points = killed_runs_converge_everywhere(Variant::RotateStart);
    assert!(points >= 5, "only {points} fault points");
}

#[test]
fn a_rotation_killed_at_any_fault_point_can_be_reverted() {
    let points = killed_runs_revert_everywhere(Variant::RotateStart);
    assert!(points >= 5, "only {points} fault points");
}

#[test]
fn a_second_run_waits_for_no_one_it_refuses_while_the_lock_is_held() {
    use nix::fcntl::{Flock, FlockArg};
    let tree = Tree::debian12_with_checks();
    tree.mkdir(
        "var/lib/dkim-setup",
        0o755,
        nix::unistd::getuid().as_raw(),
        0,
    );
    tree.write("var/lib/dkim-setup/lock", "");
    let file = std::fs::File::open(tree.path("var/lib/dkim-setup/lock")).unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
    let before = tree.snapshot();

    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("another dkim-setup run is changing this system"),
        "{}",
        out.stderr
    );
    assert_same_tree(&before, &tree.snapshot());
    drop(held);
    tree.setup_example();
}

#[test]
fn opendkim_is_up_and_probed_before_postfix_is_pointed_at_it() {
    let tree = Tree::debian12_with_checks();
    let root = tree.root_str();
    let out = tree.run_raw_env(
        &[
            "--root",
            &root,
            "wizard",
            "-y",
            "--no-install",
            "-d",
            "example.test",
            "--json",
        ],
        None,
        &[("DKIM_SETUP_RECORD_LIVE", "1")],
    );
    out.assert_ok();
    let doc = out.json();
    let at = |what: &dyn Fn(&serde_json::Value) -> bool| -> usize {
        steps(&doc)
            .iter()
            .position(what)
            .unwrap_or_else(|| panic!("step not found in {doc:#}"))
    };
    let argv_has = |s: &serde_json::Value, word: &str| {
        s["argv"]
            .as_array()
            .is_some_and(|a| a.iter().any(|w| w == word))
    };
    let opendkim_conf = at(&|s| s["path"] == "/etc/opendkim.conf");
    let opendkim_check = at(&|s| s["kind"] == "command" && argv_has(s, "opendkim"));
    let opendkim_start = at(&|s| s["kind"] == "service" && s["name"] == "opendkim");
    let main_cf = at(&|s| s["path"] == "/etc/postfix/main.cf");
    let postfix_check = at(&|s| s["kind"] == "command" && argv_has(s, "check"));
    let postfix_service = at(&|s| s["kind"] == "service" && s["name"] == "postfix");
    let order = [
        opendkim_conf,
        opendkim_check,
        opendkim_start,
        main_cf,
        postfix_check,
        postfix_service,
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "steps out of the zero-outage order {order:?}: {doc:#}"
    );
    // Postfix is reloaded or started, never restarted.
    let verbs: BTreeSet<String> = steps(&doc)
        .iter()
        .filter(|s| s["name"] == "postfix")
        .map(|s| s["action"].as_str().unwrap().to_string())
        .collect();
    assert!(!verbs.contains("restart"), "{verbs:?}");
}

#[test]
fn the_runs_own_validation_catches_what_opendkim_n_lets_through() {
    // opendkim -n accepts a KeyTable naming a file that is no key at all
    // (platform note P12); the run must not restart opendkim into it.
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    tree.mkdir("etc/opendkim/keys/other.test", 0o755, 0, 0);
    tree.write_mode("etc/opendkim/keys/other.test/k.private", "garbage\n", 0o600);
    let key_table = tree.read("etc/opendkim/KeyTable")
        + "k._domainkey.other.test other.test:k:/etc/opendkim/keys/other.test/k.private\n";
    tree.write("etc/opendkim/KeyTable", &key_table);
    let signing = tree.read("etc/opendkim/SigningTable") + "*@other.test k._domainkey.other.test\n";
    tree.write("etc/opendkim/SigningTable", &signing);
    let before = tree.snapshot_without_backups();
    std::fs::remove_file(tree.record_path()).unwrap();

    let out = tree.wizard(&["-d", "example.test", "-d", "second.test"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("the files as written would not work"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("/etc/opendkim/keys/other.test/k.private is not an RSA private key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("nothing was left half-done"),
        "{}",
        out.stderr
    );
    assert_same_tree(&before, &tree.snapshot_without_backups());
    // The validation ran first: no check command and no service was reached.
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());
}

#[test]
fn a_file_edited_while_the_run_applies_is_never_overwritten() {
    let tree = Tree::debian12_with_checks();
    let root = tree.root_str();
    let before = tree.snapshot();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("dkim-setup"))
        .args([
            "--root",
            &root,
            "wizard",
            "-y",
            "--no-install",
            "--no-restart",
        ])
        .args(["-d", "example.test"])
        .env("DKIM_SETUP_RECORD", tree.record_path())
        .env("DKIM_SETUP_RECORD_DELAY_MS", "1500")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // While `opendkim -n` runs, main.cf (written after it) is edited by hand.
    let start = std::time::Instant::now();
    while !tree.recorded().iter().any(|a| a.iter().any(|w| w == "-n")) {
        assert!(
            start.elapsed().as_secs() < 30,
            "the run never reached opendkim -n"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tree.edit(
        "etc/postfix/main.cf",
        "smtpd_relay_restrictions",
        "# by hand\nsmtpd_relay_restrictions",
    );
    let edited = tree.read("etc/postfix/main.cf");

    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("'/etc/postfix/main.cf' changed while this run was being planned"),
        "{stderr}"
    );
    assert_eq!(tree.read("etc/postfix/main.cf"), edited);
    let mut now = tree.snapshot_without_backups();
    let mut expected = before.clone();
    now.remove("etc/postfix/main.cf");
    expected.remove("etc/postfix/main.cf");
    assert_same_tree(&expected, &now);
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// The recorded commands after the one that ends with `tail`.
#[track_caller]
fn recorded_after(tree: &Tree, tail: &[&str]) -> Vec<Vec<String>> {
    let cmds = tree.recorded();
    let tail = words(tail);
    let at = cmds
        .iter()
        .position(|a| a.ends_with(&tail))
        .unwrap_or_else(|| panic!("{tail:?} was not run: {cmds:#?}"));
    cmds[at + 1..].to_vec()
}

/// Needs a test host where opendkim does not run (the tool looks at this
/// host's processes to decide start versus restart).
#[test]
fn a_failed_run_stops_and_disables_the_opendkim_it_enabled_and_started() {
    let tree = Tree::debian12_with_checks();
    tree.mkdir("run/systemd/system", 0o755, 0, 0);
    let before = tree.snapshot();
    let out = live_wizard(&tree, Some("postfix check"), &[], &[]);
    out.assert_code(1);
    assert_same_tree(&before, &tree.snapshot_without_backups());
    let cmds = tree.recorded();
    assert!(
        cmds.contains(&words(&["systemctl", "enable", "--now", "opendkim"])),
        "{cmds:#?}"
    );
    let after = recorded_after(&tree, &["postfix", "check"]);
    let stop = words(&["systemctl", "stop", "opendkim"]);
    let disable = words(&["systemctl", "disable", "opendkim"]);
    let (s, d) = (
        after.iter().position(|a| *a == stop),
        after.iter().position(|a| *a == disable),
    );
    assert!(
        s.is_some() && d.is_some() && s < d,
        "opendkim not stopped, then disabled, after the failure: {after:#?}"
    );
    out.assert_stderr_has("nothing was left half-done")
        .assert_stderr_has("ran 'systemctl stop opendkim'")
        .assert_stderr_has("ran 'systemctl disable opendkim'");
    assert_eq!(journal_states(&tree), ["rolled back"]);
}

/// Needs a test host where opendkim does not run.
#[test]
fn a_failed_run_stops_the_opendkim_it_started_with_the_init_script() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = live_wizard(&tree, Some("postfix check"), &[], &[]);
    out.assert_code(1);
    assert_same_tree(&before, &tree.snapshot_without_backups());
    assert!(
        tree.recorded()
            .contains(&words(&["service", "opendkim", "start"])),
        "{:#?}",
        tree.recorded()
    );
    let after = recorded_after(&tree, &["postfix", "check"]);
    assert!(
        after.contains(&words(&["service", "opendkim", "stop"])),
        "opendkim not stopped after the failure: {after:#?}"
    );
    assert!(
        !after.iter().any(|a| a.iter().any(|w| w == "disable")),
        "{after:#?}"
    );
    out.assert_stderr_has("ran 'service opendkim stop'");
}
