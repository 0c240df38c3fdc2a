//! Help output: every command shows examples, and everything fits 80
//! columns. The commands come from the clap definition itself, so a new
//! subcommand is covered without touching this test.

use assert_cmd::Command;
use clap::CommandFactory;
use dkim_setup::cli::Cli;

/// Every subcommand path below the top command (`["wizard"]`, ...), nested
/// ones included; clap's own `help` is not one of ours.
fn subcommands(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_string());
        subcommands(sub, &path, out);
        out.push(path);
    }
}

/// The help text with the terminal width `columns` (unset: none known, as
/// in a pipe); it must fit 80 columns whatever the width.
fn help_at(args: &[&str], columns: Option<&str>) -> String {
    let mut cmd = Command::cargo_bin("dkim-setup").unwrap();
    cmd.args(args).env_remove("LINES").env("NO_COLOR", "1");
    match columns {
        Some(c) => cmd.env("COLUMNS", c),
        None => cmd.env_remove("COLUMNS"),
    };
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "dkim-setup {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_help_shows_examples_and_fits_80_columns() {
    let mut paths = Vec::new();
    subcommands(&Cli::command(), &[], &mut paths);
    assert!(paths.len() >= 6, "{paths:?}");
    let mut runs: Vec<Vec<String>> = vec![vec!["--help".into()], vec!["help".into()]];
    for path in &paths {
        for flag in ["--help", "-h"] {
            let mut args = path.clone();
            args.push(flag.into());
            runs.push(args);
        }
        let mut args = vec!["help".to_string()];
        args.extend(path.iter().cloned());
        runs.push(args);
    }
    let mut problems = Vec::new();
    for args in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = help_at(&args, None);
        for columns in ["80", "200"] {
            assert_eq!(
                help_at(&args, Some(columns)),
                text,
                "COLUMNS={columns} {args:?}"
            );
        }
        let shown = format!("dkim-setup {}", args.join(" "));
        if !text.lines().any(|l| l == "Examples:") {
            problems.push(format!("{shown}: no \"Examples:\" section"));
        }
        let examples = text.split("Examples:\n").nth(1).unwrap_or_default();
        if !examples
            .lines()
            .any(|l| l.trim_start().starts_with("dkim-setup "))
        {
            problems.push(format!("{shown}: no example command"));
        }
        for line in text.lines() {
            let width = line.chars().count();
            if width > 80 {
                problems.push(format!("{shown}: {width} columns: {line}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
