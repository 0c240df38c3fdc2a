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
