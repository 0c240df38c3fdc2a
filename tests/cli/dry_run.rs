//! `--dry-run` shows the whole plan and changes nothing at all.

use crate::common::*;

#[test]
fn dry_run_changes_nothing_and_prints_unified_diffs() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test", "--dry-run"]);
    out.assert_ok();
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());

    for header in [
        "--- a/etc/opendkim.conf\n+++ b/etc/opendkim.conf\n",
        "--- a/etc/postfix/main.cf\n+++ b/etc/postfix/main.cf\n",
        "--- a/etc/default/opendkim\n+++ b/etc/default/opendkim\n",
        "+++ b/etc/opendkim/KeyTable\n",
        "+++ b/etc/opendkim/SigningTable\n",
    ] {
        assert!(
            out.stdout.contains(header),
            "no {header:?} in:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .contains("\n-Socket\t\t\tlocal:/run/opendkim/opendkim.sock\n")
    );
    assert!(out.stdout.contains("\n+Socket\t\t\tinet:8891@127.0.0.1\n"));
    assert!(
        out.stdout
            .contains("\n+smtpd_milters = inet:127.0.0.1:8891\n")
    );
    assert!(
        out.stdout
            .contains("generate  /etc/opendkim/keys/example.test/key.private (2048-bit RSA)"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("PRIVATE KEY"));
}

#[test]
fn dry_run_json_plans_every_step_and_changes_nothing() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test", "--dry-run", "--json"]);
    out.assert_ok();
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());

    let doc = out.json();
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["changed"], true);
    let conf = step(&doc, "file", "/etc/opendkim.conf").expect("conf step");
    assert_eq!(conf["action"], "modify");
    let diff = conf["diff"].as_str().unwrap();
    assert!(diff.starts_with("--- a/etc/opendkim.conf\n+++ b/etc/opendkim.conf\n"));
    let key = step(&doc, "key", "/etc/opendkim/keys/example.test/key.private").unwrap();
    assert_eq!(key["action"], "create");
    assert_eq!(key["bits"], 2048);

    let commands: Vec<&serde_json::Value> = steps(&doc)
        .iter()
        .filter(|s| s["kind"] == "command")
        .collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    for c in &commands {
        assert_eq!(c["status"], "planned", "{c}");
    }
    let root = tree.root_str();
    let argvs: Vec<Vec<&str>> = commands
        .iter()
        .map(|c| {
            c["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        argvs,
        [
            vec![
                "chroot",
                &root,
                "opendkim",
                "-n",
                "-x",
                "/etc/opendkim.conf"
            ],
            vec!["chroot", &root, "postfix", "check"],
            vec!["chroot", &root, "postconf", "-n"],
        ]
    );
    for s in steps(&doc) {
        assert_ne!(s["status"], "done", "dry run did something: {s}");
    }
}

#[test]
fn dry_run_after_setup_shows_nothing_to_do() {
    let tree = Tree::debian12();
    tree.setup_example();
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test", "--dry-run", "--json"]);
    out.assert_ok();
    assert_same_tree(&before, &tree.snapshot());
    let doc = out.json();
    assert_eq!(doc["changed"], false);
    assert_eq!(doc["dry_run"], true);
    // Existing keys already have their records.
    assert_eq!(doc["dns_records"].as_array().unwrap().len(), 1);
}

#[test]
fn dry_run_does_not_need_the_packages() {
    let tree = Tree::debian12();
    tree.write(
        "var/lib/dpkg/status",
        "Package: postfix\nStatus: install ok installed\nVersion: 3.7.11-0+deb12u1\n",
    );
    let before = tree.snapshot();
    let out = tree.run(&["wizard", "-y", "-d", "example.test", "--dry-run", "--json"]);
    out.assert_ok();
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());
    let doc = out.json();
    let install = steps(&doc)
        .iter()
        .find(|s| s["kind"] == "command" && s["argv"].to_string().contains("apt-get"))
        .expect("an install step");
    assert_eq!(install["status"], "planned");
    assert_eq!(
        install["argv"],
        serde_json::json!([
            "chroot",
            tree.root_str(),
            "apt-get",
            "install",
            "-y",
            "opendkim",
            "opendkim-tools"
        ])
    );
}
