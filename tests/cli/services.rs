//! Services in an offline tree (`--root`): never started, restarted or
//! reloaded; the steps say why they were skipped.

use crate::common::*;

/// A recorded command that would start, stop or reload a service.
fn service_action(argv: &[String]) -> bool {
    let words = ["start", "restart", "reload", "stop"];
    argv.iter().any(|a| words.contains(&a.as_str()))
}

#[test]
fn offline_tree_never_starts_or_restarts_services() {
    let tree = Tree::debian12_with_checks();
    let root = tree.root_str();
    let out = tree.run(&[
        "wizard",
        "-y",
        "-d",
        "example.test",
        "--no-install",
        "--json",
    ]);
    out.assert_ok();
    assert!(
        !tree.recorded().iter().any(|a| service_action(a)),
        "{:?}",
        tree.recorded()
    );
    assert_eq!(tree.recorded().len(), 3, "{:?}", tree.recorded());
    assert!(
        tree.recorded()
            .iter()
            .all(|a| a[0] == "chroot" && a[1] == root)
    );
    let doc = out.json();
    let services: Vec<&serde_json::Value> = steps(&doc)
        .iter()
        .filter(|s| s["kind"] == "service")
        .collect();
    assert!(!services.is_empty(), "no service steps in {doc}");
    for s in &services {
        assert_eq!(s["status"], "skipped", "{s}");
        assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{s}");
    }
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"opendkim") && names.contains(&"postfix"),
        "{names:?}"
    );
}

#[test]
fn second_run_plans_no_service_action_at_all() {
    let tree = Tree::debian12_with_checks();
    tree.run(&["wizard", "-y", "-d", "example.test", "--no-install"])
        .assert_ok();
    let out = tree.run(&[
        "wizard",
        "-y",
        "-d",
        "example.test",
        "--no-install",
        "--json",
    ]);
    out.assert_ok();
    let doc = out.json();
    assert!(
        !steps(&doc).iter().any(|s| s["kind"] == "service"),
        "a no-op run plans service actions: {doc}"
    );
}

#[test]
fn offline_systemd_tree_gets_opendkim_enabled_but_not_started() {
    let tree = Tree::debian12();
    tree.write(
        "lib/systemd/system/opendkim.service",
        "[Unit]\nDescription=OpenDKIM\n",
    );
    tree.mkdir("etc/systemd/system", 0o755, 0, 0);
    tree.mkdir("run/systemd/system", 0o755, 0, 0);
    tree.run(&["wizard", "-y", "-d", "example.test", "--no-install"])
        .assert_ok();
    let recorded = tree.recorded();
    assert!(!recorded.iter().any(|a| service_action(a)), "{recorded:?}");
    let root = tree.root_str();
    let enabled = recorded.iter().any(|a| {
        a.contains(&"enable".to_string())
            && a.contains(&"opendkim".to_string())
            && a.iter().any(|w| w.contains(&root))
    });
    assert!(enabled, "opendkim not enabled in the tree: {recorded:?}");
}

/// A live systemd tree whose opendkim unit has the generate script's
/// drop-in (platform note P5), with opendkim's unit shipped.
fn systemd_tree_with_override() -> (Tree, &'static str) {
    let tree = Tree::debian12_with_checks();
    let rel = "etc/systemd/system/opendkim.service.d/override.conf";
    tree.write(
        rel,
        "[Service]\nExecStart=\nExecStart=/usr/sbin/opendkim -P /run/opendkim/opendkim.pid \
         -p local:/run/opendkim/opendkim.sock\n",
    );
    tree.write(
        "lib/systemd/system/opendkim.service",
        "[Unit]\nDescription=OpenDKIM\n",
    );
    tree.mkdir("run/systemd/system", 0o755, 0, 0);
    (tree, rel)
}

fn position(recorded: &[Vec<String>], words: &[&str]) -> Option<usize> {
    recorded
        .iter()
        .position(|a| words.iter().all(|w| a.iter().any(|x| x == w)))
}

#[test]
fn a_changed_systemd_drop_in_is_reloaded_before_opendkim_starts() {
    let (tree, rel) = systemd_tree_with_override();
    live_wizard(&tree, None, &[], &[]).assert_ok();
    assert!(tree.read(rel).contains("-p inet:8891@127.0.0.1"));
    let recorded = tree.recorded();
    let reload = position(&recorded, &["systemctl", "daemon-reload"])
        .unwrap_or_else(|| panic!("no daemon-reload: {recorded:?}"));
    let start = recorded
        .iter()
        .position(|a| a[0] == "systemctl" && a.contains(&"opendkim".to_string()))
        .unwrap_or_else(|| panic!("opendkim not started: {recorded:?}"));
    assert!(
        reload < start,
        "daemon-reload after the start: {recorded:?}"
    );

    // Nothing changes the second time: no daemon-reload either.
    let before = tree.recorded().len();
    live_wizard(&tree, None, &[], &[]).assert_ok();
    let again = &tree.recorded()[before..];
    assert!(
        position(again, &["daemon-reload"]).is_none(),
        "a no-op run reloaded systemd: {again:?}"
    );
}

#[test]
fn a_drop_in_put_back_by_a_failed_run_is_reloaded_too() {
    let (tree, rel) = systemd_tree_with_override();
    let before = tree.read(rel);
    let out = live_wizard(&tree, Some("postfix check"), &[], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(tree.read(rel), before);
    let recorded = tree.recorded();
    let reloads: Vec<usize> = recorded
        .iter()
        .enumerate()
        .filter(|(_, a)| a.iter().any(|w| w == "daemon-reload"))
        .map(|(i, _)| i)
        .collect();
    let check = position(&recorded, &["postfix", "check"]).unwrap();
    assert_eq!(reloads.len(), 2, "{recorded:?}");
    assert!(
        reloads[1] > check,
        "no daemon-reload after the restore: {recorded:?}"
    );
}
