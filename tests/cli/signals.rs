//! A run stopped from outside while it applies (SIGTERM from `kill`,
//! SIGHUP from a dropped SSH session) restores every file, like Ctrl-C; a
//! run whose output nobody reads any more (a closed pipe) still finishes.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Start `wizard -y` with slow recorded commands, wait until the first
/// check runs (every file is written by then), send `signal`, and return
/// the exit code and what the run said.
fn stopped_midway(tree: &Tree, signal: nix::sys::signal::Signal) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dkim-setup"))
        .args(["--root", &tree.root_str(), "wizard", "-y", "--no-install"])
        .args(["--no-restart", "-d", "example.test"])
        .env("DKIM_SETUP_RECORD", tree.record_path())
        .env("DKIM_SETUP_RECORD_DELAY_MS", "1500")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dkim-setup");
    let mut said = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("opendkim -n") {
            break;
        }
    }
    assert!(said.contains("opendkim -n"), "the run ended early:\n{said}");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    for line in lines {
        said.push_str(&line.unwrap());
        said.push('\n');
    }
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), said)
}

#[test]
fn sigterm_while_applying_restores_every_file_and_exits_143() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let (code, said) = stopped_midway(&tree, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(code, 143, "{said}");
    assert!(said.contains("interrupted (SIGTERM)"), "{said}");
    assert!(said.contains("restored /etc/"), "{said}");
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn sighup_while_applying_restores_every_file_and_exits_129() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let (code, said) = stopped_midway(&tree, nix::sys::signal::Signal::SIGHUP);
    assert_eq!(code, 129, "{said}");
    assert!(said.contains("interrupted (SIGHUP)"), "{said}");
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn a_closed_output_pipe_does_not_stop_a_run_halfway() {
    let tree = Tree::debian12_with_checks();
    for stream in ["stdout", "stderr"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dkim-setup"));
        cmd.args(["--root", &tree.root_str(), "wizard", "-y", "--no-install"])
            .args(["--no-restart", "-d", "example.test"])
            .env("DKIM_SETUP_RECORD", tree.record_path());
        // A pipe whose reading end is closed at once, as `| head -1` does.
        if stream == "stdout" {
            cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("start dkim-setup");
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "with a closed {stream}");
    }
    assert!(tree.exists("etc/opendkim/keys/example.test/key.private"));
    assert!(
        tree.read("etc/postfix/main.cf")
            .contains("inet:127.0.0.1:8891"),
        "main.cf not wired"
    );
    let again = tree.wizard(&["-d", "example.test", "--json"]);
    again.assert_ok();
    assert_eq!(again.json()["changed"], false);
}
