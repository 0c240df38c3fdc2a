//! RHEL-family systems: AlmaLinux 9, Rocky Linux 8 and Fedora 40 trees
//! (tests/fixtures/trees/{almalinux9,rocky8,fedora40}) with the opendkim
//! package's own defaults.
//!
//! What is checked: the repositories and packages a missing opendkim needs
//! (CRB or PowerTools, then EPEL, then the packages; nothing of that on
//! Fedora), SELinux port labels and file contexts, systemd service actions,
//! the files a run leaves, idempotence, the dry-run plan, a sysconfig that
//! points opendkim elsewhere, and which family every os-release maps to.
//!
//! `DKIM_SETUP_RECORD_FAIL="-q opendkim"` makes `rpm [--root TREE] -q
//! opendkim` and `... -q opendkim-tools` fail, so the tool sees opendkim as
//! not installed. Read-only probes (`rpm -q`, `semanage port -l`, ...) may be
//! recorded anywhere; [`changing`] leaves them out before sequences are
//! compared.

use crate::common::*;
use serde_json::Value;
use std::fs;

const KEY: &str = "etc/opendkim/keys/example.test/key.private";
const KEY_DIR: &str = "/etc/opendkim/keys/example.test";
const NOT_INSTALLED: &str = "-q opendkim";
const LIVE: (&str, &str) = ("DKIM_SETUP_RECORD_LIVE", "1");

const SHIPPED_CONF: &str = include_str!("../fixtures/trees/almalinux9/etc/opendkim.conf");
const SHIPPED_SYSCONFIG: &str = include_str!("../fixtures/trees/almalinux9/etc/sysconfig/opendkim");
const SHIPPED_KEY_TABLE: &str = include_str!("../fixtures/trees/almalinux9/etc/opendkim/KeyTable");
const SHIPPED_SIGNING_TABLE: &str =
    include_str!("../fixtures/trees/almalinux9/etc/opendkim/SigningTable");
const SHIPPED_TRUSTED_HOSTS: &str =
    include_str!("../fixtures/trees/almalinux9/etc/opendkim/TrustedHosts");

/// `wizard -y -d example.test --root TREE` followed by `extra`.
fn wizard_args<'a>(root: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["wizard", "-y", "-d", "example.test", "--root", root];
    args.extend(extra);
    args
}

/// The wizard with installing allowed, `fail` making matching recorded
/// commands fail, and extra environment `env`.
fn wizard(tree: &Tree, extra: &[&str], fail: Option<&str>, env: &[(&str, &str)]) -> Outcome {
    let root = tree.root_str();
    tree.run_raw_env(&wizard_args(&root, extra), fail, env)
}

/// The brief's run: `wizard -y -d example.test --root TREE --no-restart`.
fn wizard_no_restart(tree: &Tree, fail: Option<&str>) -> Outcome {
    wizard(tree, &["--no-restart"], fail, &[])
}

/// A read-only probe, which may appear anywhere in the record.
fn is_probe(argv: &[String]) -> bool {
    let has = |w: &str| argv.iter().any(|a| a == w);
    let rpm_query = has("rpm") && argv.iter().any(|a| a.starts_with("-q"));
    let semanage_list = has("semanage") && (has("-l") || has("--list"));
    let selinux_state = has("getenforce") || has("sestatus");
    let repo_query = (has("dnf") || has("yum")) && (has("repolist") || has("--dump"));
    let unit_state = has("systemctl") && (has("is-enabled") || has("is-active"));
    rpm_query || semanage_list || selinux_state || repo_query || unit_state
}

/// Every recorded command that is not a read-only probe, in order.
fn changing(tree: &Tree) -> Vec<Vec<String>> {
    tree.recorded()
        .into_iter()
        .filter(|a| !is_probe(a))
        .collect()
}

/// `chroot TREE WORDS...` as the tool records it.
fn chroot(tree: &Tree, words: &[&str]) -> Vec<String> {
    let mut argv = vec!["chroot".to_string(), tree.root_str()];
    argv.extend(words.iter().map(|w| w.to_string()));
    argv
}

/// `chroot TREE dnf install -y opendkim opendkim-tools`
fn install_opendkim(tree: &Tree) -> Vec<String> {
    chroot(
        tree,
        &["dnf", "install", "-y", "opendkim", "opendkim-tools"],
    )
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// A command that touches repositories or packages.
fn is_package_command(argv: &[String]) -> bool {
    argv.iter()
        .any(|a| ["dnf", "yum", "yum-config-manager"].contains(&a.as_str()))
}

/// A command that enables, starts, restarts or reloads a service.
fn is_service_command(argv: &[String]) -> bool {
    let has = |w: &str| argv.iter().any(|a| a == w);
    let postfix_itself = argv.len() >= 2
        && argv[argv.len() - 2] == "postfix"
        && ["start", "stop", "restart", "reload"].contains(&argv[argv.len() - 1].as_str());
    !is_probe(argv) && (has("systemctl") || has("service") || postfix_itself)
}

fn is_semanage(argv: &[String]) -> bool {
    argv.iter().any(|a| a == "semanage")
}

fn is_restorecon(argv: &[String]) -> bool {
    argv.iter().any(|a| a == "restorecon")
}

/// The position of the first command equal to `argv`.
#[track_caller]
fn position(cmds: &[Vec<String>], argv: &[String]) -> usize {
    cmds.iter()
        .position(|a| a == argv)
        .unwrap_or_else(|| panic!("{argv:?} not recorded in:\n{cmds:#?}"))
}

/// The argv of a JSON command or service step, as strings.
fn step_argv(step: &Value) -> Vec<String> {
    step["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| w.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Assert that the package commands, in the order recorded, are exactly
/// `expected`, and that they come before every other changing command.
#[track_caller]
fn assert_package_sequence(tree: &Tree, expected: &[Vec<String>]) {
    let cmds = changing(tree);
    let packages: Vec<Vec<String>> = cmds
        .iter()
        .filter(|a| is_package_command(a))
        .cloned()
        .collect();
    assert_eq!(packages, expected, "all recorded:\n{:#?}", tree.recorded());
    assert_eq!(
        &cmds[..expected.len()],
        expected,
        "package commands are not the first changes:\n{cmds:#?}"
    );
}

// --- installing opendkim -------------------------------------------------

#[test]
fn almalinux9_enables_crb_and_epel_then_installs_opendkim() {
    let tree = Tree::almalinux9();
    wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
    assert_package_sequence(
        &tree,
        &[
            chroot(&tree, &["dnf", "config-manager", "--set-enabled", "crb"]),
            chroot(&tree, &["dnf", "install", "-y", "epel-release"]),
            install_opendkim(&tree),
        ],
    );
}

#[test]
fn almalinux9_installs_dnf_plugins_core_first_when_config_manager_is_missing() {
    let tree = Tree::almalinux9();
    // "-q " fails every `rpm -q`: opendkim, opendkim-tools and dnf-plugins-core.
    wizard_no_restart(&tree, Some("-q ")).assert_ok();
    assert_package_sequence(
        &tree,
        &[
            chroot(&tree, &["dnf", "install", "-y", "dnf-plugins-core"]),
            chroot(&tree, &["dnf", "config-manager", "--set-enabled", "crb"]),
            chroot(&tree, &["dnf", "install", "-y", "epel-release"]),
            install_opendkim(&tree),
        ],
    );
}

#[test]
fn rocky8_enables_powertools_and_epel_then_installs_opendkim() {
    let tree = Tree::rocky8();
    wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
    assert_package_sequence(
        &tree,
        &[
            chroot(
                &tree,
                &["dnf", "config-manager", "--set-enabled", "powertools"],
            ),
            chroot(&tree, &["dnf", "install", "-y", "epel-release"]),
            install_opendkim(&tree),
        ],
    );
}

#[test]
fn fedora40_installs_opendkim_without_epel_or_crb() {
    let tree = Tree::fedora40();
    wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
    assert_package_sequence(&tree, &[install_opendkim(&tree)]);
}

/// The AlmaLinux 9 tree made to say it is RHEL 9 (the os-release fixture),
/// with the repositories a subscribed RHEL host has.
fn rhel9_tree() -> Tree {
    let tree = Tree::almalinux9();
    tree.write(
        "etc/os-release",
        &fs::read_to_string(os_release_dir().join("rhel-9")).unwrap(),
    );
    for entry in fs::read_dir(tree.path("etc/yum.repos.d")).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    tree.write(
        "etc/yum.repos.d/redhat.repo",
        "[rhel-9-for-x86_64-baseos-rpms]\nname=BaseOS\nenabled=1\n\n\
         [codeready-builder-for-rhel-9-x86_64-rpms]\nname=CRB\nenabled=0\n",
    );
    tree
}

#[test]
fn rhel9_enables_codeready_builder_and_installs_epel_from_the_epel_project() {
    let tree = rhel9_tree();
    wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
    let packages: Vec<Vec<String>> = changing(&tree)
        .into_iter()
        .filter(|a| is_package_command(a) || a.contains(&"subscription-manager".to_string()))
        .collect();
    let epel = "https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm";
    assert_eq!(packages.len(), 3, "{packages:#?}");
    assert!(
        packages[0].contains(&"subscription-manager".to_string()),
        "{packages:#?}"
    );
    assert!(
        packages[0]
            .iter()
            .any(|w| w.starts_with("codeready-builder-for-rhel-9-"))
    );
    assert_eq!(packages[1], chroot(&tree, &["dnf", "install", "-y", epel]));
    assert_eq!(packages[2], install_opendkim(&tree));
}

#[test]
fn rhel9_with_codeready_builder_on_enables_no_repository_for_it() {
    let tree = rhel9_tree();
    tree.edit("etc/yum.repos.d/redhat.repo", "enabled=0", "enabled=1");
    wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
    let cmds = changing(&tree);
    assert!(
        !cmds
            .iter()
            .any(|a| a.contains(&"subscription-manager".to_string())),
        "{cmds:#?}"
    );
}

#[test]
fn a_fedora_derivative_installs_opendkim_without_epel_or_crb() {
    let tree = Tree::fedora40();
    tree.write(
        "etc/os-release",
        "NAME=\"Nobara Linux\"\nID=nobara\nID_LIKE=\"fedora\"\nVERSION_ID=40\n",
    );
    wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
    assert_package_sequence(&tree, &[install_opendkim(&tree)]);
}

#[test]
fn a_tree_with_yum_and_without_dnf_installs_with_yum() {
    let tree = Tree::fedora40();
    fs::remove_file(tree.path("usr/bin/dnf")).unwrap();
    tree.write_mode("usr/bin/yum", "", 0o755);
    wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
    assert_package_sequence(
        &tree,
        &[chroot(
            &tree,
            &["yum", "install", "-y", "opendkim", "opendkim-tools"],
        )],
    );
}

#[test]
fn enabled_epel_and_crb_need_no_repository_commands() {
    for (name, section, file) in [
        ("almalinux9", "crb", "almalinux-crb.repo"),
        ("rocky8", "powertools", "Rocky-PowerTools.repo"),
    ] {
        let tree = Tree::rhel(name);
        let repo = format!("etc/yum.repos.d/{file}");
        // The first `enabled=0` is the [crb] / [powertools] section's own.
        assert!(tree.read(&repo).contains(&format!("[{section}]\n")));
        tree.edit(&repo, "enabled=0", "enabled=1");
        tree.write(
            "etc/yum.repos.d/epel.repo",
            "[epel]\nname=Extra Packages for Enterprise Linux $releasever\n\
             metalink=https://mirrors.fedoraproject.org/metalink?repo=epel-$releasever\n\
             enabled=1\ngpgcheck=1\n",
        );
        wizard_no_restart(&tree, Some(NOT_INSTALLED)).assert_ok();
        assert_package_sequence(&tree, &[install_opendkim(&tree)]);
    }
}

#[test]
fn installed_opendkim_means_no_package_command_at_all() {
    for name in ["almalinux9", "rocky8", "fedora40"] {
        let tree = Tree::rhel(name);
        wizard_no_restart(&tree, None).assert_ok();
        let packages: Vec<Vec<String>> = changing(&tree)
            .into_iter()
            .filter(|a| is_package_command(a))
            .collect();
        assert!(packages.is_empty(), "{name}: {packages:#?}");
    }
}

#[test]
fn dry_run_json_plans_repositories_and_install_in_order_and_changes_nothing() {
    let tree = Tree::almalinux9();
    let before = tree.snapshot();
    let out = wizard(
        &tree,
        &["--no-restart", "--dry-run", "--json"],
        Some(NOT_INSTALLED),
        &[],
    );
    out.assert_ok();
    assert_same_tree(&before, &tree.snapshot());
    assert!(changing(&tree).is_empty(), "{:#?}", tree.recorded());

    let doc = out.json();
    assert_eq!(doc["dry_run"], true);
    let planned: Vec<&Value> = steps(&doc)
        .iter()
        .filter(|s| s["kind"] == "command" && is_package_command(&step_argv(s)))
        .collect();
    let argvs: Vec<Vec<String>> = planned.iter().map(|s| step_argv(s)).collect();
    assert_eq!(
        argvs,
        [
            chroot(&tree, &["dnf", "config-manager", "--set-enabled", "crb"]),
            chroot(&tree, &["dnf", "install", "-y", "epel-release"]),
            install_opendkim(&tree),
        ],
        "{doc:#}"
    );
    for s in &planned {
        assert_eq!(s["status"], "planned", "{s}");
    }
    for s in steps(&doc) {
        assert_ne!(s["status"], "done", "dry run did something: {s}");
    }
}

// --- SELinux --------------------------------------------------------------

#[test]
fn selinux_default_port_needs_no_semanage_but_created_paths_get_restorecon() {
    let tree = Tree::almalinux9()
        .with_check_binaries()
        .with_selinux_enforce("1");
    let out = wizard(&tree, &["--no-restart", "--json"], None, &[]);
    out.assert_ok();
    let cmds = changing(&tree);
    assert!(!cmds.iter().any(|a| is_semanage(a)), "{cmds:#?}");
    position(&cmds, &chroot(&tree, &["restorecon", "-R", KEY_DIR]));

    // Every created path is covered by a `restorecon -R` of it or of a
    // created parent, and that step comes after the step that created it.
    let doc = out.json();
    let all = steps(&doc);
    let restorecons: Vec<(usize, String)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| is_restorecon(&step_argv(s)))
        .map(|(i, s)| {
            let argv = step_argv(s);
            assert_eq!(argv[..4], chroot(&tree, &["restorecon", "-R"])[..], "{s}");
            (i, argv[4].clone())
        })
        .collect();
    let created: Vec<(usize, &str)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| s["action"] == "create")
        .filter_map(|(i, s)| s["path"].as_str().map(|p| (i, p)))
        .collect();
    assert!(
        created.iter().any(|(_, p)| *p == KEY_DIR),
        "{KEY_DIR} not created: {doc:#}"
    );
    for (made, path) in &created {
        let covered = restorecons.iter().any(|(i, target)| {
            i > made && (*path == target.as_str() || path.starts_with(&format!("{target}/")))
        });
        assert!(
            covered,
            "{path} has no restorecon -R after it: {restorecons:?}"
        );
    }
    // Every write of a path comes before the restorecon that labels it
    // (main.cf is written late, once opendkim answers, and labelled after).
    for (i, target) in &restorecons {
        let last_write = all
            .iter()
            .rposition(|s| {
                ["file", "key", "dir", "attrs"].contains(&s["kind"].as_str().unwrap())
                    && s["path"].as_str().is_some_and(|p| {
                        p == target.as_str() || p.starts_with(&format!("{target}/"))
                    })
            })
            .unwrap_or_else(|| panic!("restorecon {target} labels nothing written"));
        assert!(
            *i > last_write,
            "restorecon {target} before the last write of it"
        );
    }
}

#[test]
fn selinux_other_port_is_labelled_before_the_checks_and_services() {
    let tree = Tree::almalinux9()
        .with_check_binaries()
        .with_selinux_enforce("1");
    wizard(&tree, &["--socket", "inet:8895@127.0.0.1"], None, &[]).assert_ok();
    let cmds = changing(&tree);
    let semanage = chroot(
        &tree,
        &[
            "semanage",
            "port",
            "-a",
            "-t",
            "milter_port_t",
            "-p",
            "tcp",
            "8895",
        ],
    );
    let at = position(&cmds, &semanage);
    assert_eq!(
        cmds.iter().filter(|a| is_semanage(a)).count(),
        1,
        "{cmds:#?}"
    );
    let check = chroot(&tree, &["opendkim", "-n", "-x", "/etc/opendkim.conf"]);
    assert!(at < position(&cmds, &check), "{cmds:#?}");
    let services: Vec<usize> = cmds
        .iter()
        .enumerate()
        .filter(|(_, a)| is_service_command(a))
        .map(|(i, _)| i)
        .collect();
    assert!(!services.is_empty(), "no service command: {cmds:#?}");
    assert!(services.iter().all(|i| at < *i), "{cmds:#?}");
    position(&cmds, &chroot(&tree, &["restorecon", "-R", KEY_DIR]));
}

#[test]
fn selinux_without_semanage_installs_it_from_the_base_repositories_first() {
    let tree = Tree::almalinux9()
        .with_check_binaries()
        .with_selinux_enforce("1");
    wizard(
        &tree,
        &["--socket", "inet:8895@127.0.0.1", "--no-restart"],
        None,
        &[],
    )
    .assert_ok();
    let cmds = changing(&tree);
    let install = chroot(
        &tree,
        &["dnf", "install", "-y", "policycoreutils-python-utils"],
    );
    let packages: Vec<&Vec<String>> = cmds.iter().filter(|a| is_package_command(a)).collect();
    // opendkim is installed: no EPEL, no CRB, only semanage's package.
    assert_eq!(packages, [&install], "{cmds:#?}");
    assert!(position(&cmds, &install) < cmds.iter().position(|a| is_semanage(a)).unwrap());

    // With semanage there, nothing is installed.
    let tree = Tree::almalinux9()
        .with_check_binaries()
        .with_selinux_enforce("1");
    tree.write_mode("usr/sbin/semanage", "", 0o755);
    wizard(
        &tree,
        &["--socket", "inet:8895@127.0.0.1", "--no-restart"],
        None,
        &[],
    )
    .assert_ok();
    let cmds = changing(&tree);
    assert!(!cmds.iter().any(|a| is_package_command(a)), "{cmds:#?}");
}

#[test]
fn an_offline_tree_whose_selinux_config_enforces_gets_its_paths_labelled() {
    let tree = Tree::almalinux9().with_check_binaries();
    tree.write(
        "etc/selinux/config",
        "# This file controls the state of SELinux on the system.\nSELINUX=enforcing\n\
         SELINUXTYPE=targeted\n",
    );
    wizard(&tree, &["--no-restart"], None, &[]).assert_ok();
    let cmds = changing(&tree);
    position(&cmds, &chroot(&tree, &["restorecon", "-R", KEY_DIR]));

    let tree = Tree::almalinux9().with_check_binaries();
    tree.write("etc/selinux/config", "SELINUX=permissive\n");
    wizard(&tree, &["--no-restart"], None, &[]).assert_ok();
    assert!(!changing(&tree).iter().any(|a| is_restorecon(a)));
}

#[test]
fn selinux_not_enforcing_never_labels_anything() {
    for enforce in [None, Some("0")] {
        let tree = Tree::almalinux9().with_check_binaries();
        if let Some(value) = enforce {
            tree.write("sys/fs/selinux/enforce", value);
        }
        let out = wizard(
            &tree,
            &["--no-restart", "--json", "--socket", "inet:8895@127.0.0.1"],
            None,
            &[],
        );
        out.assert_ok();
        let recorded = tree.recorded();
        assert!(
            !recorded.iter().any(|a| is_semanage(a) || is_restorecon(a)),
            "enforce {enforce:?}: {recorded:#?}"
        );
        let doc = out.json();
        assert!(
            !steps(&doc)
                .iter()
                .any(|s| is_semanage(&step_argv(s)) || is_restorecon(&step_argv(s))),
            "enforce {enforce:?}: {doc:#}"
        );
    }
}

// --- services ---------------------------------------------------------------

/// Needs a test host where neither opendkim nor Postfix's master runs: the
/// tool looks at this host's processes to decide start versus restart.
#[test]
fn live_systemd_host_enables_and_starts_opendkim_and_starts_postfix() {
    let tree = Tree::almalinux9()
        .with_check_binaries()
        .with_systemd_running();
    wizard(&tree, &[], None, &[LIVE]).assert_ok();
    let cmds = changing(&tree);
    let services: Vec<Vec<String>> = cmds
        .iter()
        .filter(|a| is_service_command(a))
        .cloned()
        .collect();
    assert_eq!(
        services.first(),
        Some(&strings(&["systemctl", "enable", "--now", "opendkim"])),
        "{cmds:#?}"
    );
    let opendkim: Vec<&Vec<String>> = services
        .iter()
        .filter(|a| a.iter().any(|w| w == "opendkim"))
        .collect();
    assert_eq!(opendkim.len(), 1, "opendkim started twice: {services:#?}");
    let postfix: Vec<&Vec<String>> = services
        .iter()
        .filter(|a| a.iter().any(|w| w == "postfix"))
        .collect();
    assert_eq!(postfix.len(), 1, "{services:#?}");
    let verbs = ["start", "reload", "restart"];
    assert!(
        postfix[0].len() == 3
            && postfix[0][0] == "systemctl"
            && verbs.contains(&postfix[0][1].as_str())
            && postfix[0][2] == "postfix",
        "postfix not started or reloaded via systemctl: {services:#?}"
    );
    let root = tree.root_str();
    assert!(
        !services.iter().flatten().any(|w| *w == root),
        "a live service action names the tree: {services:#?}"
    );
    // The check runs in the tree or on the host; either way, before services.
    let check_tail = strings(&["opendkim", "-n", "-x", "/etc/opendkim.conf"]);
    let check = cmds
        .iter()
        .position(|a| a.ends_with(&check_tail))
        .unwrap_or_else(|| panic!("no opendkim -n check: {cmds:#?}"));
    let enable = position(&cmds, &services[0]);
    assert!(check < enable, "services before the checks: {cmds:#?}");
}

#[test]
fn offline_tree_only_enables_opendkim_in_the_tree_and_skips_restarts() {
    let tree = Tree::almalinux9()
        .with_check_binaries()
        .with_systemd_running();
    let out = wizard(&tree, &["--json"], None, &[]);
    out.assert_ok();
    let root = tree.root_str();
    let services: Vec<Vec<String>> = changing(&tree)
        .into_iter()
        .filter(|a| is_service_command(a))
        .collect();
    assert_eq!(
        services,
        [strings(&[
            "systemctl",
            "--root",
            &root,
            "enable",
            "opendkim"
        ])]
    );
    let doc = out.json();
    let skipped: Vec<&Value> = steps(&doc)
        .iter()
        .filter(|s| s["kind"] == "service" && s["status"] == "skipped")
        .collect();
    let names: Vec<&str> = skipped.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        names.contains(&"opendkim") && names.contains(&"postfix"),
        "{doc:#}"
    );
}

// --- the files a run leaves ----------------------------------------------

#[test]
fn almalinux9_run_turns_the_packaged_conf_into_a_signing_conf() {
    let tree = Tree::almalinux9();
    wizard_no_restart(&tree, None).assert_ok();
    let conf = tree.read("etc/opendkim.conf");

    // `Mode v` becomes `Mode sv` where it was, under its own comment.
    assert_eq!(active_values(&conf, "Mode"), ["sv"], "{conf}");
    let lines: Vec<&str> = conf.lines().collect();
    let mode_comment = "##  messages.";
    let at = lines
        .iter()
        .position(|l| *l == mode_comment)
        .expect("the Mode comment is kept");
    assert_eq!(
        active_values(lines[at + 1], "Mode"),
        ["sv"],
        "Mode not replaced in place:\n{conf}"
    );
    assert_eq!(active_values(&conf, "Socket"), ["inet:8891@127.0.0.1"]);
    assert_eq!(active_values(&conf, "UserID"), ["opendkim:opendkim"]);
    assert!(!conf.contains("TrustAnchorFile"), "{conf}");
    for (key, value) in [
        ("KeyFile", "/etc/opendkim/keys/default.private"),
        ("Selector", "default"),
    ] {
        assert!(
            active_values(&conf, key).is_empty(),
            "{key} active:\n{conf}"
        );
        let commented = conf.lines().any(|l| {
            l.strip_prefix('#')
                .is_some_and(|rest| active_values(rest, key) == [value])
        });
        assert!(commented, "{key} not commented out:\n{conf}");
    }
    assert_eq!(active_values(&conf, "KeyTable"), ["/etc/opendkim/KeyTable"]);
    assert_eq!(
        active_values(&conf, "SigningTable"),
        ["refile:/etc/opendkim/SigningTable"]
    );
    // The packaged settings the tool does not own stay.
    for kept in [
        "Canonicalization\trelaxed/relaxed",
        "OversignHeaders\tFrom",
        "MinimumKeyBits\t1024",
        "## BASIC OPENDKIM CONFIGURATION FILE",
    ] {
        assert!(conf.contains(kept), "lost {kept:?}:\n{conf}");
    }
}

#[test]
fn almalinux9_run_leaves_sysconfig_unchanged_and_in_agreement_with_the_conf() {
    let tree = Tree::almalinux9();
    wizard_no_restart(&tree, None).assert_ok();
    let sysconfig = tree.read("etc/sysconfig/opendkim");
    assert_eq!(sysconfig, SHIPPED_SYSCONFIG);
    let conf = tree.read("etc/opendkim.conf");
    let options = sysconfig
        .lines()
        .find_map(|l| l.strip_prefix("OPTIONS="))
        .unwrap()
        .trim_matches('"');
    let words: Vec<&str> = options.split_whitespace().collect();
    let arg = |flag: &str| {
        let at = words.iter().position(|w| *w == flag).unwrap();
        words[at + 1]
    };
    assert_eq!(arg("-x"), "/etc/opendkim.conf");
    // /var/run is a symlink to /run on every EL release the tool supports.
    let canonical = |p: &str| p.replacen("/var/run/", "/run/", 1);
    let pid_files: Vec<String> = active_values(&conf, "PidFile")
        .iter()
        .map(|p| canonical(p))
        .collect();
    assert_eq!(pid_files, [canonical(arg("-P"))], "{conf}");
}

#[test]
fn almalinux9_run_creates_the_key_and_keeps_the_keys_directory_as_packaged() {
    let tree = Tree::almalinux9();
    wizard_no_restart(&tree, None).assert_ok();
    let (uid, gid) = OPENDKIM_IDS;
    assert_eq!(tree.stat(KEY), (0o600, uid, gid));
    assert_eq!(tree.stat("etc/opendkim/keys"), (0o750, 0, gid));
    let pem = tree.read(KEY);
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
}

#[test]
fn almalinux9_run_adds_our_lines_to_the_tables_and_keeps_their_comments() {
    let tree = Tree::almalinux9();
    wizard_no_restart(&tree, None).assert_ok();
    assert_eq!(
        tree.read("etc/opendkim/KeyTable"),
        format!(
            "{SHIPPED_KEY_TABLE}key._domainkey.example.test \
             example.test:key:/etc/opendkim/keys/example.test/key.private\n"
        )
    );
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        format!("{SHIPPED_SIGNING_TABLE}*@example.test key._domainkey.example.test\n")
    );
    assert_eq!(
        tree.read("etc/opendkim/TrustedHosts"),
        format!("{SHIPPED_TRUSTED_HOSTS}localhost\n")
    );
}

#[test]
fn almalinux9_run_keeps_the_tables_mode_and_owner_as_packaged() {
    // Not in the brief in so many words: the packaged tables are 0640
    // opendkim:opendkim and an edit in place has no reason to change that.
    let tree = Tree::almalinux9();
    wizard_no_restart(&tree, None).assert_ok();
    let (uid, gid) = OPENDKIM_IDS;
    for table in ["KeyTable", "SigningTable", "TrustedHosts"] {
        assert_eq!(
            tree.stat(&format!("etc/opendkim/{table}")),
            (0o640, uid, gid),
            "{table}"
        );
    }
}

#[test]
fn almalinux9_run_wires_the_milter_into_main_cf() {
    let tree = Tree::almalinux9();
    let before = tree.read("etc/postfix/main.cf");
    wizard_no_restart(&tree, None).assert_ok();
    let main = tree.read("etc/postfix/main.cf");
    assert!(main.starts_with(&before), "main.cf not kept as it was");
    assert_eq!(milters(&main, "smtpd_milters"), ["inet:127.0.0.1:8891"]);
    assert_eq!(milters(&main, "non_smtpd_milters"), ["$smtpd_milters"]);
    assert_eq!(
        main_cf_value(&main, "milter_default_action").as_deref(),
        Some("accept")
    );
    assert_eq!(
        main_cf_value(&main, "milter_protocol").as_deref(),
        Some("6")
    );
    // master.cf is not the tool's business.
    assert_eq!(
        tree.read("etc/postfix/master.cf"),
        fs::read_to_string(rhel_fixture("almalinux9").join("etc/postfix/master.cf")).unwrap()
    );
}

#[test]
fn almalinux9_json_reports_the_distribution() {
    let tree = Tree::almalinux9();
    let out = wizard(&tree, &["--no-restart", "--json"], None, &[]);
    out.assert_ok();
    assert_eq!(
        out.json()["distro"],
        serde_json::json!({"family": "rhel", "id": "almalinux", "version": "9.4"})
    );
}

#[test]
fn second_run_changes_nothing() {
    for name in ["almalinux9", "rocky8", "fedora40"] {
        let tree = Tree::rhel(name);
        wizard_no_restart(&tree, None).assert_ok();
        let before = tree.snapshot();
        let out = wizard(&tree, &["--no-restart", "--json"], None, &[]);
        out.assert_ok();
        assert_eq!(out.json()["changed"], false, "{name}: {}", out.stdout);
        assert_same_tree(&before, &tree.snapshot());
    }
}

#[test]
fn selinux_second_run_relabels_nothing() {
    let tree = Tree::almalinux9()
        .with_check_binaries()
        .with_selinux_enforce("1");
    wizard_no_restart(&tree, None).assert_ok();
    fs::remove_file(tree.record_path()).unwrap();
    let before = tree.snapshot();
    let out = wizard(&tree, &["--no-restart", "--json"], None, &[]);
    out.assert_ok();
    assert_eq!(out.json()["changed"], false, "{}", out.stdout);
    assert_same_tree(&before, &tree.snapshot());
    let recorded = tree.recorded();
    assert!(
        !recorded.iter().any(|a| is_semanage(a) || is_restorecon(a)),
        "{recorded:#?}"
    );
}

#[test]
fn shipped_conf_in_the_tree_is_the_packaged_default() {
    // The fixture trees must stay in step with each other.
    for name in ["rocky8", "fedora40"] {
        let dir = rhel_fixture(name);
        let read = |rel: &str| fs::read_to_string(dir.join(rel)).unwrap();
        assert_eq!(read("etc/opendkim.conf"), SHIPPED_CONF, "{name}");
        assert_eq!(read("etc/sysconfig/opendkim"), SHIPPED_SYSCONFIG, "{name}");
    }
    assert_eq!(active_values(SHIPPED_CONF, "Mode"), ["v"]);
}

// --- refusals ---------------------------------------------------------------

#[test]
fn sysconfig_pointing_opendkim_at_another_conf_is_refused() {
    let tree = Tree::almalinux9();
    tree.edit(
        "etc/sysconfig/opendkim",
        "-x /etc/opendkim.conf",
        "-x /etc/other.conf",
    );
    let before = tree.snapshot();
    let out = wizard_no_restart(&tree, None);
    out.assert_failed();
    out.assert_stderr_has("/etc/sysconfig/opendkim");
    assert_same_tree(&before, &tree.snapshot());
    assert!(changing(&tree).is_empty(), "{:#?}", tree.recorded());
}

#[test]
fn a_refused_sysconfig_is_refused_before_anything_is_installed() {
    let tree = Tree::almalinux9();
    tree.edit(
        "etc/sysconfig/opendkim",
        "-x /etc/opendkim.conf",
        "-x /etc/other.conf",
    );
    let before = tree.snapshot();
    let out = wizard_no_restart(&tree, Some(NOT_INSTALLED));
    out.assert_failed()
        .assert_stderr_has("/etc/sysconfig/opendkim");
    assert_same_tree(&before, &tree.snapshot());
    assert!(changing(&tree).is_empty(), "{:#?}", tree.recorded());
}

#[test]
fn the_stray_default_key_is_named_as_unused() {
    let tree = Tree::almalinux9();
    tree.write_mode("etc/opendkim/keys/default.private", "not a key\n", 0o600);
    let out = wizard_no_restart(&tree, None);
    out.assert_ok().assert_stderr_has(
        "'/etc/opendkim/keys/default.private' (made by opendkim-default-keygen) signs nothing",
    );
    assert!(
        !active_values(&tree.read("etc/opendkim.conf"), "KeyFile")
            .iter()
            .any(|_| true)
    );
}

#[test]
fn a_unix_socket_needs_no_spool_path_on_el_where_smtpd_is_not_chrooted() {
    let tree = Tree::almalinux9();
    let out = wizard(
        &tree,
        &["--socket", "local:/run/opendkim/opendkim.sock"],
        None,
        &[],
    );
    out.assert_ok();
    let main = tree.read("etc/postfix/main.cf");
    assert!(
        main.contains("smtpd_milters = unix:/run/opendkim/opendkim.sock"),
        "{main}"
    );
}

// --- detection ----------------------------------------------------------------

/// Every os-release fixture: family, ID and VERSION_ID.
const OS_RELEASES: &[(&str, &str, &str, &str)] = &[
    ("almalinux-8", "rhel", "almalinux", "8.10"),
    ("almalinux-9", "rhel", "almalinux", "9.4"),
    ("centos-stream-9", "rhel", "centos", "9"),
    ("debian-11", "debian", "debian", "11"),
    ("debian-12", "debian", "debian", "12"),
    ("debian-13", "debian", "debian", "13"),
    ("fedora-40", "rhel", "fedora", "40"),
    ("fedora-41", "rhel", "fedora", "41"),
    ("ol-9", "rhel", "ol", "9.4"),
    ("rhel-8", "rhel", "rhel", "8.10"),
    ("rhel-9", "rhel", "rhel", "9.4"),
    ("rocky-8", "rhel", "rocky", "8.10"),
    ("rocky-9", "rhel", "rocky", "9.4"),
    ("ubuntu-22.04", "debian", "ubuntu", "22.04"),
    ("ubuntu-24.04", "debian", "ubuntu", "24.04"),
];

fn os_release_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/os-release")
}

#[test]
fn every_os_release_fixture_is_listed() {
    let mut names: Vec<String> = fs::read_dir(os_release_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let listed: Vec<&str> = OS_RELEASES.iter().map(|(n, ..)| *n).collect();
    assert_eq!(names, listed);
}

#[test]
fn every_os_release_maps_to_its_family_and_version() {
    for (name, family, id, version) in OS_RELEASES {
        let tree = Tree::debian12();
        let text = fs::read_to_string(os_release_dir().join(name)).unwrap();
        tree.write("etc/os-release", &text);
        let out = tree.run(&["wizard", "-y", "-d", "example.test", "--dry-run", "--json"]);
        assert_eq!(out.code, 0, "{name}: {}", out.all());
        assert_eq!(
            out.json()["distro"],
            serde_json::json!({"family": family, "id": id, "version": version}),
            "{name}"
        );
    }
}

#[test]
fn an_unsupported_os_release_is_bad_input() {
    let tree = Tree::debian12();
    tree.write(
        "etc/os-release",
        "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n",
    );
    let before = tree.snapshot();
    let out = tree.run(&["wizard", "-y", "-d", "example.test", "--dry-run", "--json"]);
    out.assert_code(2);
    out.assert_output_has("arch");
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());
}
