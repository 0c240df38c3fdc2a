//! A failing check of the new configuration restores every file, removes
//! what the run created, exits 1 and says what was restored.

use crate::common::*;

/// The error line of a failed run.
/// The error and the lines after it (what was restored).
fn error_text(out: &Outcome) -> &str {
    let at = out
        .stderr
        .find("error:")
        .unwrap_or_else(|| panic!("no error line:\n{}", out.stderr));
    &out.stderr[at..]
}

#[test]
fn failing_opendkim_check_restores_the_fresh_tree() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = tree.wizard_failing(&["-d", "example.test"], Some("opendkim -n"));
    out.assert_code(1);
    assert_same_tree(&before, &tree.snapshot_without_backups());
    assert!(!tree.exists("etc/opendkim"), "created dir left behind");

    let root = tree.root_str();
    let check = vec![
        "chroot",
        &root,
        "opendkim",
        "-n",
        "-x",
        "/etc/opendkim.conf",
    ];
    assert_eq!(
        tree.recorded(),
        [check.clone(), check],
        "only the check may run, and once more on the restored files"
    );
    let error = error_text(&out);
    // The recorder fails the re-check too, so the problem predates the run.
    assert!(error.contains("was already there"), "{error}");
    assert!(error.contains("opendkim -n"), "{error}");
    // main.cf is written only once opendkim is up and answering (the
    // zero-outage order), so this failure came before it was touched.
    assert!(!error.contains("main.cf"), "{error}");
    for restored in ["/etc/opendkim.conf", "/etc/default/opendkim"] {
        assert!(
            error.contains(restored),
            "does not say {restored} was restored: {error}"
        );
    }
    assert!(error.contains("restored"), "{error}");
    assert!(error.contains("removed"), "{error}");
    assert!(
        error.contains("/etc/opendkim/keys/example.test/key.private"),
        "does not say the key was removed: {error}"
    );
}

#[test]
fn failing_postfix_check_restores_and_reports_in_json() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = tree.wizard_failing(&["-d", "example.test", "--json"], Some("postfix check"));
    out.assert_code(1);
    assert_same_tree(&before, &tree.snapshot_without_backups());
    let doc = out.json();
    let error = doc["error"].as_str().expect("an error field");
    assert!(error.contains("postfix check"), "{error}");
    assert!(error.contains("restored"), "{error}");
    let failed: Vec<&serde_json::Value> = steps(&doc)
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["argv"][3], "check");
}

#[test]
fn failing_check_on_a_second_domain_keeps_the_first_setup() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let before = tree.snapshot();
    let out = tree.wizard_failing(&["-d", "other.example"], Some("opendkim -n"));
    out.assert_code(1);
    let mut after = tree.snapshot();
    // Backups of the first run are kept; the failed run's may be added.
    after.retain(|p, _| !kept_by_the_tool(p) || before.contains_key(p));
    assert_same_tree(&before, &after);
    assert!(!tree.exists("etc/opendkim/keys/other.example"));
}

#[test]
fn failing_postconf_warning_restores_too() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = tree.wizard_failing(&["-d", "example.test"], Some("postconf -n"));
    out.assert_code(1);
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn failing_check_restores_the_mode_and_owner_of_a_fixed_key() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let key = "etc/opendkim/keys/example.test/key.private";
    tree.chown(key, 0, 0);
    tree.chmod(key, 0o644);
    let before = tree.snapshot();
    let out = tree.wizard_failing(&["-d", "example.test"], Some("opendkim -n"));
    out.assert_code(1);
    assert_eq!(tree.stat(key), (0o644, 0, 0));
    let mut after = tree.snapshot();
    after.retain(|p, _| !kept_by_the_tool(p) || before.contains_key(p));
    assert_same_tree(&before, &after);
    assert!(
        error_text(&out).contains("key.private (owner and mode)"),
        "{}",
        out.stderr
    );
}

#[test]
fn failing_check_takes_postfix_out_of_the_opendkim_group_again() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = tree.wizard_failing(
        &[
            "-d",
            "example.test",
            "--socket",
            "local:/var/spool/postfix/opendkim/opendkim.sock",
        ],
        Some("opendkim -n"),
    );
    out.assert_code(1);
    assert_same_tree(&before, &tree.snapshot_without_backups());
    let root = tree.root_str();
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(
        tree.recorded(),
        [
            argv(&[
                "usermod", "--root", &root, "-a", "-G", "opendkim", "postfix"
            ]),
            argv(&[
                "chroot",
                &root,
                "opendkim",
                "-n",
                "-x",
                "/etc/opendkim.conf"
            ]),
            argv(&["gpasswd", "--root", &root, "-d", "postfix", "opendkim"]),
            argv(&[
                "chroot",
                &root,
                "opendkim",
                "-n",
                "-x",
                "/etc/opendkim.conf"
            ]),
        ]
    );
    assert!(error_text(&out).contains("gpasswd"), "{}", out.stderr);
}
