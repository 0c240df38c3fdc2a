//! The packaged assets, through the real binary: `dkim-setup completions
//! SHELL` names every subcommand for every shell, bash and fish really
//! complete them, zsh finds its completion function, and `dkim-setup manpage` is a page that documents every subcommand
//! and that `man -l` renders without a warning. The list of subcommands
//! comes from the clap definitions, so a new subcommand is covered at once.
//!
//! `man` (man-db), fish and zsh are installed by scripts/test; without one
//! of them its test says "skipped" and passes, except when CI is set.

use dkim_setup::assets::visible_subcommands;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dkim_setup(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_dkim-setup"))
        .args(args)
        .output()
        .expect("could not run dkim-setup");
    assert!(
        out.status.success(),
        "dkim-setup {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn names() -> Vec<String> {
    let names: Vec<String> = visible_subcommands()
        .iter()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(names.len() >= 7, "too few subcommands: {names:?}");
    names
}

fn find_command(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn skip(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what}: scripts/test installs it on Debian");
    }
    let _ = std::io::stderr().write_all(format!("\nskipped: {what}\n\n").as_bytes());
}

#[test]
fn completions_for_every_shell_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = String::from_utf8(dkim_setup(&["completions", shell]).stdout).unwrap();
        assert!(script.contains("dkim-setup"), "{shell}: {script}");
        for name in names() {
            assert!(script.contains(&name), "{shell} completions lack '{name}'");
        }
    }
}

#[test]
fn an_unknown_shell_is_bad_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_dkim-setup"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

#[test]
fn bash_completes_every_subcommand_and_a_wizard_flag() {
    let Some(bash) = find_command("bash") else {
        return skip("bash not found");
    };
    let script = dkim_setup(&["completions", "bash"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dkim-setup.bash");
    std::fs::write(&file, script).unwrap();
    // What bash's programmable completion does on Tab: the function the
    // script registered with `complete`, called with the words so far.
    let complete = |words: &str| -> Vec<String> {
        let out = Command::new(&bash)
            .arg("--norc")
            .arg("-c")
            .arg(format!(
                "source '{}'\n\
                 f=$(complete -p dkim-setup | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\n\
                 COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
                 \"$f\" dkim-setup \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"\n\
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bash: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    };
    let offered = complete("dkim-setup ''");
    for name in names() {
        assert!(
            offered.contains(&name),
            "Tab after 'dkim-setup ' does not offer '{name}': {offered:?}"
        );
    }
    assert!(!offered.contains(&"manpage".to_string()), "{offered:?}");
    assert_eq!(complete("dkim-setup wiz"), ["wizard"]);
    assert!(complete("dkim-setup wizard --non").contains(&"--non-interactive".to_string()));
    assert_eq!(
        complete("dkim-setup dns --format ''"),
        ["plain", "bind", "json"]
    );
}

#[test]
fn fish_completes_every_subcommand_and_a_wizard_flag() {
    let Some(fish) = find_command("fish") else {
        return skip("fish not found");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dkim-setup.fish");
    std::fs::write(&file, dkim_setup(&["completions", "fish"]).stdout).unwrap();
    let complete = |line: &str| -> Vec<String> {
        let out = Command::new(&fish)
            .arg("--no-config")
            .arg("-c")
            .arg(format!("source '{}'; complete -C '{line}'", file.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fish: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Each candidate is "WORD<TAB>description".
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    };
    let offered = complete("dkim-setup ");
    for name in names() {
        assert!(
            offered.contains(&name),
            "fish offers no '{name}': {offered:?}"
        );
    }
    assert!(!offered.contains(&"manpage".to_string()), "{offered:?}");
    assert_eq!(complete("dkim-setup wiz"), ["wizard"]);
    assert!(complete("dkim-setup wizard --non").contains(&"--non-interactive".to_string()));
}

#[test]
fn zsh_finds_the_completion_function_by_its_file_name() {
    let Some(zsh) = find_command("zsh") else {
        return skip("zsh not found");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("_dkim-setup");
    std::fs::write(&file, dkim_setup(&["completions", "zsh"]).stdout).unwrap();
    let syntax = Command::new(&zsh).arg("-n").arg(&file).output().unwrap();
    assert!(
        syntax.status.success(),
        "zsh -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // compinit reads the #compdef line of every file on $fpath, as it does
    // for the packaged /usr/share/zsh/vendor-completions/_dkim-setup.
    let out = Command::new(&zsh)
        .arg("-fc")
        .arg(format!(
            "fpath=('{}' $fpath); autoload -Uz compinit; compinit -u -D; print -r -- $_comps[dkim-setup]",
            dir.path().display()
        ))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "_dkim-setup",
        "zsh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_man_page_documents_every_subcommand() {
    let page = String::from_utf8(dkim_setup(&["manpage"]).stdout).unwrap();
    assert!(page.contains(".TH DKIM-SETUP 1"), "{page}");
    for name in names() {
        assert!(
            page.contains(&format!(".SS \"dkim-setup {name}\"")),
            "the man page has no section for '{name}'"
        );
    }
}

#[test]
fn man_renders_the_page_without_warnings() {
    let Some(man) = find_command("man") else {
        return skip("man not found (package man-db)");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dkim-setup.1");
    std::fs::write(&file, dkim_setup(&["manpage"]).stdout).unwrap();
    let text = render(&man, &file);
    for name in names() {
        assert!(
            text.contains(&format!("dkim-setup {name}")),
            "the rendered page does not show 'dkim-setup {name}':\n{text}"
        );
    }
    for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS"] {
        assert!(
            text.lines().any(|l| l == heading),
            "no {heading} heading:\n{text}"
        );
    }
    // The header and footer fields land where man expects them.
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains("User Commands"), "header: {first}");
}

/// `man -l --warnings` at 80 columns: the plain text, and no warning at all.
fn render(man: &Path, file: &Path) -> String {
    let out = Command::new(man)
        .args(["--warnings", "-E", "UTF-8", "-l"])
        .arg(file)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env_remove("MAN_KEEP_FORMATTING")
        .env_remove("MANOPT")
        .output()
        .expect("could not run man");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l failed: {stderr}");
    assert!(stderr.trim().is_empty(), "man -l warned:\n{stderr}");
    // Without a terminal man-db prints plain text, but strip any overstrike.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}
