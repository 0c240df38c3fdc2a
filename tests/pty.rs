//! The interactive wizard driven through a real pseudo-terminal, as a person
//! at a terminal would use it: answer the domain prompt, accept defaults with
//! Enter, read the plan, confirm, and find the files and the DNS records.
//! Runs against a `--root` fixture tree with `--no-install --no-restart`;
//! commands are recorded, never run.

#[path = "common/mod.rs"]
mod common;

use common::{Tree, assert_same_tree};
use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};
use std::process::Command;

const DOWN: &str = "\x1b[B";

/// Flags answering every question, so that only the confirmation is asked.
const EVERY_ANSWER: &[&str] = &[
    "-d",
    "example.test",
    "-s",
    "key",
    "--bits",
    "2048",
    "--trusted-host",
    "192.0.2.0/24",
];

/// Start the wizard on `tree` in a pseudo-terminal.
fn wizard(tree: &Tree, extra: &[&str]) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dkim-setup"));
    cmd.args([
        "wizard",
        "--root",
        &tree.root_str(),
        "--no-install",
        "--no-restart",
    ])
    .args(extra)
    .env("TERM", "xterm")
    .env("DKIM_SETUP_RECORD", tree.record_path())
    .env_remove("DKIM_SETUP_RECORD_FAIL");
    spawn_command(cmd, Some(20_000)).expect("spawn in a pty")
}

fn exit_code(session: &mut PtySession) -> i32 {
    match session.process_mut().wait().expect("wait") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("the wizard did not exit normally: {other:?}"),
    }
}

fn enter(session: &mut PtySession) {
    session.send("\r").unwrap();
    session.flush().unwrap();
}

#[test]
fn enter_at_every_default_and_one_domain_sets_up_signing() {
    let tree = Tree::debian12();
    let mut s = wizard(&tree, &[]);
    s.exp_string("Postfix").unwrap();
    s.exp_string("Domains to sign for").unwrap();
    s.send_line("example.test").unwrap();
    s.exp_string("Selector").unwrap();
    enter(&mut s);
    s.exp_string("Key size").unwrap();
    enter(&mut s);
    s.exp_string("Other hosts or networks").unwrap();
    enter(&mut s);
    s.exp_string("The plan:").unwrap();
    s.exp_string("generate  /etc/opendkim/keys/example.test/key.private (2048-bit RSA)")
        .unwrap();
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_string("DKIM signing is set up for example.test.")
        .unwrap();
    s.exp_string("name:  key._domainkey.example.test").unwrap();
    s.exp_string("IN TXT ( \"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
        .unwrap();
    s.exp_string("DNS changes can take").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);

    assert!(
        tree.read("etc/opendkim/SigningTable")
            .contains("*@example.test key._domainkey.example.test")
    );
    assert_eq!(
        tree.stat("etc/opendkim/keys/example.test/key.private"),
        (0o600, 103, 107)
    );
    assert!(
        tree.read("etc/postfix/main.cf")
            .contains("smtpd_milters = inet:127.0.0.1:8891")
    );
}

#[test]
fn declining_at_the_confirmation_changes_nothing() {
    let tree = Tree::debian12();
    let before = tree.snapshot();
    let file = tree.root().parent().unwrap().join("answers.toml");
    let mut args = EVERY_ANSWER.to_vec();
    args.extend(["--save-answers", file.to_str().unwrap()]);
    let mut s = wizard(&tree, &args);
    s.exp_string("Apply these changes?").unwrap();
    s.send(DOWN).unwrap();
    s.send(DOWN).unwrap();
    s.flush().unwrap();
    enter(&mut s);
    s.exp_string("Nothing was changed.").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty());
    assert!(!file.exists(), "answers saved for a declined run");
}

#[test]
fn the_diffs_can_be_seen_before_confirming() {
    let tree = Tree::debian12();
    let mut s = wizard(&tree, EVERY_ANSWER);
    s.exp_string("Apply these changes?").unwrap();
    s.send(DOWN).unwrap();
    s.flush().unwrap();
    enter(&mut s);
    s.exp_string("+++ b/etc/opendkim.conf").unwrap();
    s.exp_string("+Socket").unwrap();
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_string("DKIM signing is set up").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert!(
        tree.read("etc/opendkim/TrustedHosts")
            .contains("192.0.2.0/24")
    );
}

#[test]
fn an_invalid_domain_is_refused_with_the_reason_and_asked_again() {
    let tree = Tree::debian12();
    let mut s = wizard(
        &tree,
        &["-s", "key", "--bits", "2048", "--trusted-host", "192.0.2.1"],
    );
    s.exp_string("Domains to sign for").unwrap();
    s.send_line("not_a domain").unwrap();
    s.exp_string("invalid domain 'not_a'").unwrap();
    s.exp_string("Domains to sign for").unwrap();
    // Clear the line dialoguer kept, then type a valid answer.
    s.send("\x15").unwrap();
    s.send_line("example.test").unwrap();
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert!(
        tree.read("etc/opendkim/KeyTable")
            .contains("key._domainkey.example.test")
    );
}

#[test]
fn ctrl_c_at_the_first_prompt_exits_130_and_changes_nothing() {
    let tree = Tree::debian12();
    let before = tree.snapshot();
    let mut s = wizard(&tree, &[]);
    s.exp_string("Domains to sign for").unwrap();
    s.send_control('c').unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 130);
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn ctrl_c_at_a_choice_exits_130_too() {
    let tree = Tree::debian12();
    let before = tree.snapshot();
    let mut s = wizard(&tree, &["-d", "example.test", "-s", "key"]);
    s.exp_string("Key size").unwrap();
    s.send_control('c').unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 130);
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn with_every_answer_as_a_flag_only_the_confirmation_is_asked() {
    let tree = Tree::debian12();
    let mut s = wizard(
        &tree,
        &[
            "-d",
            "example.test",
            "-s",
            "mail",
            "--bits",
            "3072",
            "--trusted-host",
            "192.0.2.0/24",
        ],
    );
    let before_confirm = s.exp_string("Apply these changes?").unwrap();
    for question in ["Domains to sign for", "Selector", "Key size", "Other hosts"] {
        assert!(
            !before_confirm.contains(question),
            "asked '{question}':\n{before_confirm}"
        );
    }
    enter(&mut s);
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert_eq!(
        tree.stat("etc/opendkim/keys/example.test/mail.private").0,
        0o600
    );
}

#[test]
fn without_a_terminal_no_prompt_and_no_escape_sequence_appears() {
    let tree = Tree::debian12();
    let out = tree.run(&[
        "wizard",
        "--no-install",
        "--no-restart",
        "-d",
        "example.test",
    ]);
    out.assert_ok();
    assert!(
        !out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'),
        "{out:?}"
    );
    assert!(!out.stderr.contains("Apply these changes?"));

    let missing = tree.run(&["wizard", "--no-install", "--no-restart"]);
    missing.assert_code(2).assert_stderr_has("--domain");
    assert!(!missing.stderr.contains('\x1b'));
}

#[test]
fn ctrl_c_during_apply_restores_every_file_and_exits_130() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dkim-setup"));
    cmd.args([
        "wizard",
        "--root",
        &tree.root_str(),
        "--no-install",
        "--no-restart",
    ])
    .args(["-d", "example.test", "-s", "key", "--bits", "2048"])
    .args(["--trusted-host", "192.0.2.0/24"])
    .env("TERM", "xterm")
    .env("DKIM_SETUP_RECORD", tree.record_path())
    .env("DKIM_SETUP_RECORD_DELAY_MS", "1500");
    let mut s = spawn_command(cmd, Some(20_000)).expect("spawn in a pty");
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    // The first check runs (slowly, through the recorder) after every file was written.
    s.exp_string("opendkim -n").unwrap();
    s.send_control('c').unwrap();
    s.exp_string("interrupted (Ctrl-C)").unwrap();
    s.exp_string("restored /etc/").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 130);
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn a_second_run_asks_only_what_matters_and_changes_nothing() {
    let tree = Tree::debian12();
    tree.setup_example().assert_ok();
    let before = tree.snapshot();
    let mut s = wizard(&tree, &[]);
    s.exp_string("example.test (selector key)").unwrap();
    // The configured domain is offered; Enter takes it.
    s.exp_string("Domains to sign for").unwrap();
    enter(&mut s);
    let asked = s.exp_string("Other hosts or networks").unwrap();
    assert!(
        !asked.contains("Selector") && !asked.contains("Key size"),
        "{asked}"
    );
    enter(&mut s);
    s.exp_string("Nothing to change").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn a_new_domain_beside_a_configured_one_keeps_the_old_selector() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "a.example", "-s", "mail"]).assert_ok();
    let mut s = wizard(&tree, &["--trusted-host", "192.0.2.1"]);
    s.exp_string("Domains to sign for").unwrap();
    s.send_line("a.example, b.example").unwrap();
    s.exp_string("Selector for the new domains").unwrap();
    enter(&mut s);
    s.exp_string("Key size").unwrap();
    enter(&mut s);
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    let signing = tree.read("etc/opendkim/SigningTable");
    assert!(
        signing.contains("*@a.example mail._domainkey.a.example"),
        "{signing}"
    );
    assert!(
        signing.contains("*@b.example key._domainkey.b.example"),
        "{signing}"
    );
}

#[test]
fn a_dumb_terminal_gets_plain_progress_lines() {
    let tree = Tree::debian12();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dkim-setup"));
    cmd.args([
        "wizard",
        "--root",
        &tree.root_str(),
        "--no-install",
        "--no-restart",
    ])
    .args(EVERY_ANSWER)
    .env("TERM", "dumb")
    .env("DKIM_SETUP_RECORD", tree.record_path());
    let mut s = spawn_command(cmd, Some(20_000)).expect("spawn in a pty");
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_string("editing /etc/opendkim.conf").unwrap();
    s.exp_string("DKIM signing is set up").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
}

#[test]
fn answers_saved_at_a_terminal_replay_unattended_to_the_same_files() {
    let first = Tree::debian12();
    let file = first.root().parent().unwrap().join("answers.toml");
    let mut s = wizard(&first, &["--save-answers", file.to_str().unwrap()]);
    s.exp_string("Domains to sign for").unwrap();
    s.send_line("example.test, example.org").unwrap();
    s.exp_string("Selector (the key's name in DNS)").unwrap();
    s.send_line("mail").unwrap();
    s.exp_string("Key size").unwrap();
    s.send(DOWN).unwrap();
    s.flush().unwrap();
    enter(&mut s);
    s.exp_string("Other hosts or networks").unwrap();
    s.send_line("192.0.2.0/24").unwrap();
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_string("answers saved to").unwrap();
    s.exp_string("DKIM signing is set up for example.test, example.org.")
        .unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);

    let text = std::fs::read_to_string(&file).unwrap();
    for line in [
        "domains = [\"example.test\", \"example.org\"]\n",
        "selector = \"mail\"\n",
        "bits = 3072\n",
        "trusted_hosts = [\"192.0.2.0/24\"]\n",
        "selector_from_hostname = false\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }

    let second = Tree::debian12();
    second
        .wizard(&["--answers", file.to_str().unwrap()])
        .assert_ok();
    common::assert_same_setup(&first, &second);
    for domain in ["example.test", "example.org"] {
        let key = format!("etc/opendkim/keys/{domain}/mail.private");
        assert_eq!(first.stat(&key), second.stat(&key));
        assert_eq!(second.stat(&key).0, 0o600);
    }
}

#[test]
fn the_selector_is_not_asked_when_it_comes_from_the_host_name() {
    let tree = Tree::debian12();
    tree.edit(
        "etc/postfix/main.cf",
        "myhostname = vm\n",
        "myhostname = mx1.example.test\n",
    );
    let mut s = wizard(&tree, &["--selector-from-hostname"]);
    s.exp_string("Selector  mx1, the first label of mx1.example.test")
        .unwrap();
    s.exp_string("Domains to sign for").unwrap();
    s.send_line("example.test").unwrap();
    let asked = s.exp_string("Key size").unwrap();
    assert!(!asked.contains("Selector (the key"), "{asked}");
    assert!(!asked.contains("Selector for the new"), "{asked}");
    enter(&mut s);
    s.exp_string("Other hosts or networks").unwrap();
    enter(&mut s);
    s.exp_string("generate  /etc/opendkim/keys/example.test/mx1.private")
        .unwrap();
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_string("name:  mx1._domainkey.example.test").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test mx1._domainkey.example.test\n"
    );
}

#[test]
fn an_answers_file_at_a_terminal_is_replayed_without_a_question() {
    let tree = Tree::debian12();
    let file = tree.root().parent().unwrap().join("answers.toml");
    std::fs::write(&file, "domains = [\"example.test\"]\n").unwrap();
    let mut s = wizard(&tree, &["--answers", file.to_str().unwrap()]);
    let all = s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    for question in ["Domains to sign for", "Key size", "Apply these changes?"] {
        assert!(!all.contains(question), "asked '{question}':\n{all}");
    }
    assert!(
        all.contains("DKIM signing is set up for example.test."),
        "{all}"
    );
}

#[test]
fn a_selector_for_new_domains_only_is_saved_as_such() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "a.example", "-s", "mail"]).assert_ok();
    let file = tree.root().parent().unwrap().join("answers.toml");
    let mut s = wizard(
        &tree,
        &[
            "--trusted-host",
            "192.0.2.1",
            "--save-answers",
            file.to_str().unwrap(),
        ],
    );
    s.exp_string("Domains to sign for").unwrap();
    s.send_line("a.example, b.example").unwrap();
    s.exp_string("Selector for the new domains").unwrap();
    enter(&mut s);
    s.exp_string("Key size").unwrap();
    enter(&mut s);
    s.exp_string("Apply these changes?").unwrap();
    enter(&mut s);
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&mut s), 0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("selector = \"key\"\nkeep_configured_selectors = true\n"),
        "{text}"
    );
    // Replayed here, a.example keeps its selector: nothing changes.
    let before = tree.snapshot();
    tree.wizard(&["--answers", file.to_str().unwrap()])
        .assert_ok()
        .assert_output_has("Nothing to change");
    assert_same_tree(&before, &tree.snapshot());
}
