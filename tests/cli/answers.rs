//! Answers files (`wizard --save-answers FILE`, `wizard --answers FILE`) and
//! per-host selectors for fleets (`--selector-from-hostname`).

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A path in the test's scratch area, beside the tree (not under `--root`).
fn scratch(tree: &Tree, name: &str) -> PathBuf {
    tree.root().parent().unwrap().join(name)
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

/// The Debian 12 tree on a host whose Postfix `myhostname` is `host`.
fn tree_named(host: &str) -> Tree {
    let tree = Tree::debian12();
    tree.edit(
        "etc/postfix/main.cf",
        "myhostname = vm\n",
        &format!("myhostname = {host}\n"),
    );
    tree
}

/// The lines of an answers file that are not comments or blank.
fn settings(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn answers_saved_unattended_replay_to_the_same_files_on_a_fresh_tree() {
    let first = Tree::debian12();
    let file = scratch(&first, "answers.toml");
    first
        .wizard(&[
            "-d",
            "example.test",
            "-d",
            "Example.ORG",
            "-s",
            "mail",
            "--bits",
            "3072",
            "--socket",
            "inet:8892@localhost",
            "--trusted-host",
            "192.0.2.7/24",
            "--trusted-host",
            "mx2.example.test",
            "--report-address",
            "postmaster@example.test",
            "--save-answers",
            path_str(&file),
        ])
        .assert_ok()
        .assert_stderr_has(&format!("answers saved to '{}'", file.display()));

    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        settings(&text),
        [
            "domains = [\"example.test\", \"example.org\"]",
            "selector = \"mail\"",
            "bits = 3072",
            "socket = \"inet:8892@127.0.0.1\"",
            "trusted_hosts = [\"192.0.2.0/24\", \"mx2.example.test\"]",
            "report_address = \"postmaster@example.test\"",
            "selector_from_hostname = false",
        ],
        "{text}"
    );
    assert!(text.starts_with("# dkim-setup wizard answers"), "{text}");
    assert!(!text.contains("PRIVATE"), "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);

    let second = Tree::debian12();
    second
        .wizard(&["--answers", path_str(&file)])
        .assert_ok()
        .assert_output_has("DKIM signing is set up for example.test, example.org.");
    assert_same_setup(&first, &second);
    assert_eq!(
        second.stat("etc/opendkim/keys/example.org/mail.private"),
        (0o600, OPENDKIM_IDS.0, OPENDKIM_IDS.1)
    );

    // Replayed where they were saved, the answers change nothing.
    let before = first.snapshot();
    first
        .wizard(&["--answers", path_str(&file)])
        .assert_ok()
        .assert_output_has("Nothing to change");
    assert_same_tree(&before, &first.snapshot());
}

#[test]
fn a_saved_file_read_back_and_saved_again_is_the_same() {
    let tree = Tree::debian12();
    let a = scratch(&tree, "a.toml");
    let b = scratch(&tree, "b.toml");
    tree.wizard(&[
        "-d",
        "example.test",
        "--rotation",
        "cname",
        "--slot-host",
        "slots.example.net",
        "--dry-run",
        "--save-answers",
        path_str(&a),
    ])
    .assert_ok();
    tree.wizard(&[
        "--answers",
        path_str(&a),
        "--dry-run",
        "--save-answers",
        path_str(&b),
    ])
    .assert_ok();
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap());
    assert!(text.contains("rotation = \"cname\"\n"), "{text}");
    assert!(
        text.contains("slot_host = \"slots.example.net\"\n"),
        "{text}"
    );
    assert!(!text.contains("selector ="), "{text}");
}

#[test]
fn flags_given_on_the_command_line_override_the_files_values() {
    let tree = Tree::debian12();
    let file = scratch(&tree, "fleet.toml");
    std::fs::write(
        &file,
        "domains = [\"a.example\"]\nselector = \"mail\"\nbits = 3072\n\
         trusted_hosts = [\"192.0.2.0/24\"]\nreport_address = \"pm@a.example\"\n",
    )
    .unwrap();
    let out = tree.wizard(&[
        "--answers",
        path_str(&file),
        "-d",
        "b.example",
        "-d",
        "c.example",
        "-s",
        "edge",
        "--trusted-host",
        "198.51.100.7",
        "--json",
    ]);
    out.assert_ok();
    // Repeatable flags replace the file's lists; single ones its value.
    let signing = tree.read("etc/opendkim/SigningTable");
    assert_eq!(
        signing,
        "*@b.example edge._domainkey.b.example\n*@c.example edge._domainkey.c.example\n"
    );
    let trusted = tree.read("etc/opendkim/TrustedHosts");
    assert!(trusted.contains("198.51.100.7\n"), "{trusted}");
    assert!(!trusted.contains("192.0.2.0/24"), "{trusted}");
    // What no flag gave comes from the file.
    let doc = out.json();
    let key = step(&doc, "key", "/etc/opendkim/keys/b.example/edge.private").expect("key step");
    assert_eq!(key["bits"], 3072);
    let conf = tree.read("etc/opendkim.conf");
    assert_eq!(active_values(&conf, "ReportAddress"), ["pm@a.example"]);
}

#[test]
fn a_selector_flag_overrides_the_files_selector_from_hostname_and_back() {
    let tree = tree_named("mx1.example.test");
    let by_host = scratch(&tree, "by-host.toml");
    std::fs::write(
        &by_host,
        "domains = [\"example.test\"]\nselector_from_hostname = true\n",
    )
    .unwrap();
    tree.wizard(&["--answers", path_str(&by_host), "-s", "fixed"])
        .assert_ok();
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test fixed._domainkey.example.test\n"
    );

    let other = tree_named("mx1.example.test");
    let fixed = scratch(&other, "fixed.toml");
    std::fs::write(
        &fixed,
        "domains = [\"example.test\"]\nselector = \"fixed\"\n",
    )
    .unwrap();
    other
        .wizard(&["--answers", path_str(&fixed), "--selector-from-hostname"])
        .assert_ok();
    assert_eq!(
        other.read("etc/opendkim/SigningTable"),
        "*@example.test mx1._domainkey.example.test\n"
    );
}

/// The wizard with `--answers FILE` (FILE holding `text`) and a
/// `--save-answers` target: exit 2, stderr has every needle, nothing
/// written (the tree, the recorder, the save target).
#[track_caller]
fn assert_file_refused(text: &str, extra: &[&str], needles: &[&str]) {
    let tree = Tree::debian12_with_checks();
    let file = scratch(&tree, "answers.toml");
    let target = scratch(&tree, "saved.toml");
    std::fs::write(&file, text).unwrap();
    let before = tree.snapshot();
    let mut args = vec![
        "--answers",
        path_str(&file),
        "--save-answers",
        path_str(&target),
    ];
    args.extend(extra);
    let out = tree.wizard(&args);
    out.assert_code(2);
    for needle in needles {
        out.assert_stderr_has(needle);
    }
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());
    assert!(!target.exists(), "the answers were saved");
}

#[test]
fn a_malformed_answers_file_is_refused_naming_the_file_and_the_line() {
    let file = "answers.toml'";
    assert_file_refused(
        "domains = [\"example.test\"\nbits = 2048\n",
        &[],
        &[file, "is not valid TOML: line 2, column 1"],
    );
    assert_file_refused(
        "domains = [\"example.test\"]\nbits = 2048\nbits = 3072\n",
        &[],
        &[file, "not valid TOML: line 3", "duplicate key"],
    );
    assert_file_refused("domains: example.test\n", &[], &[file, "not valid TOML"]);
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    assert_file_refused(
        "domains = [\"example.test\"]\nselectr = \"mail\"\n",
        &[],
        &[
            "answers.toml', line 2: unknown key 'selectr'",
            "hint: did you mean 'selector'?",
        ],
    );
    assert_file_refused(
        "[wizard]\ndomains = [\"example.test\"]\n",
        &[],
        &["unknown key 'wizard'"],
    );
    // Run options are not answers.
    assert_file_refused(
        "domains = [\"example.test\"]\nno_restart = true\n",
        &[],
        &["unknown key 'no_restart'"],
    );
}

#[test]
fn a_bad_value_is_refused_naming_the_key_and_the_value() {
    assert_file_refused(
        "domains = [\"example.test\", \"exa mple.test\"]\n",
        &[],
        &["answers.toml', line 1, key 'domains': invalid domain 'exa mple.test'"],
    );
    assert_file_refused(
        "domains = [\"example.test\"]\nbits = \"2048\"\n",
        &[],
        &[
            "line 2, key 'bits': expected a whole number, not \"2048\"",
            "hint: write it as, for example: bits = 2048",
        ],
    );
    assert_file_refused(
        "domains = [\"example.test\"]\nselector = \"a b\"\n",
        &[],
        &["key 'selector': invalid selector 'a b'"],
    );
    assert_file_refused(
        "domains = [\"example.test\"]\ntrusted_hosts = [\"0.0.0.0/0\"]\n",
        &[],
        &["key 'trusted_hosts'", "'0.0.0.0/0'"],
    );
    assert_file_refused(
        "domains = [\"example.test\"]\nsocket = \"inet:8891@0.0.0.0\"\n",
        &[],
        &["key 'socket': invalid socket 'inet:8891@0.0.0.0'"],
    );
    assert_file_refused(
        "domains = [\"example.test\"]\nbits = 4096\n",
        &[],
        &["bits = 4096 in '", "allow_long_key = true"],
    );
    // No domain in the file and none on the command line.
    assert_file_refused(
        "bits = 2048\n",
        &[],
        &["missing answer", "--domain, or domains in '"],
    );
}

#[test]
fn a_missing_answers_file_is_refused() {
    let tree = Tree::debian12();
    let before = tree.snapshot();
    let file = scratch(&tree, "nowhere.toml");
    let out = tree.wizard(&["--answers", path_str(&file)]);
    out.assert_code(2).assert_stderr_has(&format!(
        "cannot read the answers file '{}'",
        file.display()
    ));
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn a_dry_run_saves_the_answers_and_changes_nothing_else() {
    let tree = Tree::debian12();
    let file = scratch(&tree, "answers.toml");
    let before = tree.snapshot();
    tree.wizard(&[
        "-d",
        "example.test",
        "--dry-run",
        "--save-answers",
        path_str(&file),
    ])
    .assert_ok()
    .assert_output_has("Plan (dry run, nothing was changed)");
    assert_same_tree(&before, &tree.snapshot());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("domains = [\"example.test\"]\n"), "{text}");
    // Without -s nothing chose a selector: none is saved, so a replay keeps
    // each domain's configured selector (or key), as the run did.
    assert!(!text.contains("selector ="), "{text}");
}

#[test]
fn an_unwritable_save_target_is_refused_before_anything_changes() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let missing_dir = scratch(&tree, "no/such/dir/answers.toml");
    let out = tree.wizard(&[
        "-d",
        "example.test",
        "--save-answers",
        path_str(&missing_dir),
    ]);
    out.assert_code(2)
        .assert_stderr_has("cannot save the answers to '")
        .assert_stderr_has("does not exist");
    let dir = scratch(&tree, "");
    let out = tree.wizard(&["-d", "example.test", "--save-answers", path_str(&dir)]);
    out.assert_code(2).assert_stderr_has("it is a directory");
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty());
}

#[test]
fn saving_leaves_no_temporary_file_beside_the_answers() {
    let tree = Tree::debian12();
    let file = scratch(&tree, "answers.toml");
    tree.wizard(&[
        "-d",
        "example.test",
        "--dry-run",
        "--save-answers",
        path_str(&file),
    ])
    .assert_ok();
    let names: Vec<String> = std::fs::read_dir(scratch(&tree, ""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("answers"))
        .collect();
    assert_eq!(names, ["answers.toml"]);
}

#[test]
fn selector_from_hostname_signs_with_the_first_label_of_myhostname() {
    let tree = tree_named("mx1.example.test");
    let file = scratch(&tree, "fleet.toml");
    tree.wizard(&[
        "-d",
        "example.test",
        "--selector-from-hostname",
        "--save-answers",
        path_str(&file),
    ])
    .assert_ok()
    .assert_stderr_has("selector 'mx1', the first label of the host name 'mx1.example.test'");
    assert_eq!(
        tree.read("etc/opendkim/KeyTable"),
        "mx1._domainkey.example.test example.test:mx1:/etc/opendkim/keys/example.test/mx1.private\n"
    );
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test mx1._domainkey.example.test\n"
    );
    assert_eq!(
        tree.stat("etc/opendkim/keys/example.test/mx1.private").0,
        0o600
    );
    let dns = tree.run(&["dns"]);
    dns.assert_ok();
    assert!(
        dns.stdout
            .starts_with("mx1._domainkey.example.test TXT v=DKIM1; k=rsa; p="),
        "{}",
        dns.stdout
    );

    // The saved file names no selector: each server derives its own.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("selector_from_hostname = true\n"), "{text}");
    assert!(!text.contains("selector ="), "{text}");
    let mx2 = tree_named("mx2.example.test");
    mx2.wizard(&["--answers", path_str(&file)]).assert_ok();
    assert_eq!(
        mx2.read("etc/opendkim/SigningTable"),
        "*@example.test mx2._domainkey.example.test\n"
    );
    let dns = mx2.run(&["dns", "--format", "bind"]);
    assert!(
        dns.stdout
            .starts_with("mx2._domainkey.example.test. IN TXT"),
        "{}",
        dns.stdout
    );

    // A second run on the same host changes nothing.
    let before = tree.snapshot();
    tree.wizard(&["-d", "example.test", "--selector-from-hostname"])
        .assert_ok()
        .assert_output_has("Nothing to change");
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn selector_from_hostname_falls_back_to_etc_hostname() {
    let tree = Tree::debian12();
    tree.edit("etc/postfix/main.cf", "myhostname = vm\n", "");
    tree.write("etc/hostname", "Edge-3.example.test\n");
    tree.wizard(&["-d", "example.test", "--selector-from-hostname"])
        .assert_ok()
        .assert_stderr_has("(/etc/hostname)");
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test edge-3._domainkey.example.test\n"
    );
}

#[track_caller]
fn assert_host_refused(tree: &Tree, needles: &[&str]) {
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test", "--selector-from-hostname"]);
    out.assert_code(2);
    for needle in needles {
        out.assert_stderr_has(needle);
    }
    out.assert_stderr_has("hint: ");
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty());
}

#[test]
fn an_unusable_host_name_is_refused_naming_it() {
    assert_host_refused(
        &tree_named("mx_1.example.test"),
        &[
            "cannot derive a selector from the host name 'mx_1.example.test' (myhostname in \
             /etc/postfix/main.cf)",
            "'mx_1'",
        ],
    );
    assert_host_refused(
        &tree_named("localhost.localdomain"),
        &["host name 'localhost.localdomain'", "share one selector"],
    );
    let nameless = Tree::debian12();
    nameless.edit("etc/postfix/main.cf", "myhostname = vm\n", "");
    assert_host_refused(&nameless, &["found no host name", "/etc/hostname"]);
}

#[test]
fn selector_from_hostname_conflicts_are_refused() {
    let refused = |tree: &Tree, args: &[&str], needle: &str| {
        let before = tree.snapshot();
        let out = tree.wizard(args);
        out.assert_code(2).assert_stderr_has(needle);
        assert_same_tree(&before, &tree.snapshot());
    };
    let tree = tree_named("mx1.example.test");
    refused(
        &tree,
        &[
            "-d",
            "example.test",
            "--selector-from-hostname",
            "-s",
            "key",
        ],
        "--selector",
    );
    refused(
        &tree,
        &[
            "-d",
            "example.test",
            "--selector-from-hostname",
            "--rotation",
            "cname",
            "--slot-host",
            "slots.example.net",
        ],
        "--selector-from-hostname cannot be used with --rotation cname",
    );

    let file = scratch(&tree, "fleet.toml");
    std::fs::write(
        &file,
        "domains = [\"example.test\"]\nselector_from_hostname = true\n",
    )
    .unwrap();
    refused(
        &tree,
        &[
            "--answers",
            path_str(&file),
            "--rotation",
            "cname",
            "--slot-host",
            "slots.example.net",
        ],
        &format!(
            "selector_from_hostname in '{}' cannot be used with --rotation cname",
            file.display()
        ),
    );
    std::fs::write(
        &file,
        "domains = [\"example.test\"]\nselector = \"key\"\nselector_from_hostname = true\n",
    )
    .unwrap();
    refused(
        &tree,
        &["--answers", path_str(&file)],
        "'selector' and 'selector_from_hostname' cannot both be given",
    );

    // A system already on the two-slot scheme has fixed selectors.
    tree.wizard(&[
        "-d",
        "example.test",
        "--rotation",
        "cname",
        "--slot-host",
        "slots.example.net",
    ])
    .assert_ok();
    refused(
        &tree,
        &["-d", "example.test", "--selector-from-hostname"],
        "two-slot CNAME scheme",
    );
}

#[test]
fn a_system_on_the_two_slot_scheme_saves_it_with_the_answers() {
    let tree = Tree::debian12();
    tree.wizard(&[
        "-d",
        "a.example",
        "--rotation",
        "cname",
        "--slot-host",
        "slots.example.net",
    ])
    .assert_ok();
    let file = scratch(&tree, "answers.toml");
    tree.wizard(&["-d", "a.example", "--save-answers", path_str(&file)])
        .assert_ok();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("rotation = \"cname\"\n"), "{text}");
    assert!(
        text.contains("slot_host = \"slots.example.net\"\n"),
        "{text}"
    );

    let other = Tree::debian12();
    other.wizard(&["--answers", path_str(&file)]).assert_ok();
    assert_same_setup(&tree, &other);
}
