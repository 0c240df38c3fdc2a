//! Every process dkim-setup starts goes through a [`Runner`].
//!
//! The real runner starts the program with a clean locale and captures what
//! it prints in unlinked temporary files rather than pipes: daemons started by
//! init scripts inherit the output handles, and a pipe they keep open would
//! hang the tool forever.
//!
//! The recording runner, chosen with the `DKIM_SETUP_RECORD=FILE` environment
//! variable (for tests), starts nothing: it appends each argv to FILE as one
//! JSON line and answers success. `DKIM_SETUP_RECORD_FAIL=WORDS` makes a
//! recorded command whose joined argv contains WORDS fail, so tests can drive
//! the restore paths without a real failing daemon, and
//! `DKIM_SETUP_RECORD_DELAY_MS=N` makes each recorded command take N ms, so
//! a test can press Ctrl-C while one runs.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// What a finished command left behind.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The command's own words, for error messages: stderr, else stdout, trimmed.
    pub fn said(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        text.trim().to_string()
    }
}

/// Starts processes.
pub trait Runner {
    /// Run `argv` with extra environment `env`, wait, and return its output.
    /// A program that cannot be started at all is an error.
    fn run_env(&self, argv: &[String], env: &[(&str, &str)]) -> Result<Output>;

    fn run(&self, argv: &[String]) -> Result<Output> {
        self.run_env(argv, &[])
    }

    /// True when commands are only recorded (tests).
    fn is_recording(&self) -> bool {
        false
    }
}

/// Build an argv from string slices.
pub fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The runner for this process: recording when `DKIM_SETUP_RECORD` is set.
pub fn from_env() -> Box<dyn Runner> {
    match std::env::var_os("DKIM_SETUP_RECORD") {
        Some(path) => Box::new(RecordingRunner {
            log: path.into(),
            fail: std::env::var("DKIM_SETUP_RECORD_FAIL")
                .ok()
                .filter(|s| !s.is_empty()),
            delay: std::env::var("DKIM_SETUP_RECORD_DELAY_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map(std::time::Duration::from_millis),
        }),
        None => Box::new(RealRunner),
    }
}

/// Starts real processes.
pub struct RealRunner;

impl Runner for RealRunner {
    fn run_env(&self, argv: &[String], env: &[(&str, &str)]) -> Result<Output> {
        tracing::debug!(?argv, "running");
        let (mut out, mut err) = (scratch_file()?, scratch_file()?);
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .env("LC_ALL", "C")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            // Its own process group: Ctrl-C at the terminal reaches only
            // dkim-setup, which stops between steps and restores, instead of
            // killing a package manager or an init script halfway.
            .process_group(0)
            .stdout(out.try_clone()?)
            .stderr(err.try_clone()?)
            .status()
            .with_context(|| format!("cannot run '{}'", argv[0]))?;
        let output = Output {
            status: status.code().unwrap_or(128),
            stdout: read_back(&mut out)?,
            stderr: read_back(&mut err)?,
        };
        tracing::debug!(status = output.status, stderr = %output.stderr.trim(), "finished");
        Ok(output)
    }
}

fn scratch_file() -> Result<File> {
    let dir = std::env::temp_dir();
    for n in 0..100u32 {
        let path = dir.join(format!("dkim-setup-out-{}-{n}", std::process::id()));
        if let Ok(file) = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            let _ = std::fs::remove_file(&path);
            return Ok(file);
        }
    }
    anyhow::bail!("cannot create a scratch file in '{}'", dir.display())
}

fn read_back(file: &mut File) -> Result<String> {
    let mut text = String::new();
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(text)
}

/// Records commands instead of starting them.
pub struct RecordingRunner {
    pub log: std::path::PathBuf,
    pub fail: Option<String>,
    pub delay: Option<std::time::Duration>,
}

impl Runner for RecordingRunner {
    fn run_env(&self, argv: &[String], _env: &[(&str, &str)]) -> Result<Output> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open the command record '{}'", self.log.display()))?;
        writeln!(log, "{}", serde_json::to_string(argv)?)?;
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
        let fails = self
            .fail
            .as_ref()
            .is_some_and(|f| argv.join(" ").contains(f.as_str()));
        Ok(Output {
            status: if fails { 1 } else { 0 },
            stdout: String::new(),
            stderr: if fails {
                "recorded failure".into()
            } else {
                String::new()
            },
        })
    }

    fn is_recording(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_runner_captures_output_and_status() {
        let out = RealRunner
            .run(&argv(&["sh", "-c", "echo hi; echo oops >&2; exit 3"]))
            .unwrap();
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (3, "hi\n", "oops\n")
        );
        assert_eq!(out.said(), "oops");
    }

    #[test]
    fn recording_runner_writes_argv_lines_and_fails_on_request() {
        let dir = std::env::temp_dir().join(format!("dkim-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let runner = RecordingRunner {
            log: dir.join("log"),
            fail: Some("restart".into()),
            delay: None,
        };
        assert!(runner.run(&argv(&["postfix", "reload"])).unwrap().success());
        assert!(
            !runner
                .run(&argv(&["service", "opendkim", "restart"]))
                .unwrap()
                .success()
        );
        let log = std::fs::read_to_string(dir.join("log")).unwrap();
        assert_eq!(
            log,
            "[\"postfix\",\"reload\"]\n[\"service\",\"opendkim\",\"restart\"]\n"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
