//! Answers files: `wizard --save-answers FILE` writes the answers of a run
//! as TOML, `wizard --answers FILE` replays them unattended.
//!
//! A file holds answers only: what to set up (domains, selector, key size,
//! socket, trusted hosts, report address, rotation scheme), never how to run
//! (`--no-install`, `--dry-run`, ...) and never key material. Every value is
//! checked when the file is read, by the validators the flags go through,
//! and a refusal names the file, the key and the value. Unknown keys are
//! refused, so that a typo cannot silently fall back to a default.
//!
//! A flag given on the command line replaces the file's value of the same
//! answer; a repeatable flag replaces the file's whole list.

use crate::cli::{Rotation, WizardArgs};
use crate::error::{BadInput, bad, bad_hint};
use crate::setup::{self, Answers};
use crate::validate;
use anyhow::Result;
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Every key a file may hold, in the order a saved file lists them, with an
/// example line for the hints.
const KEYS: &[(&str, &str)] = &[
    ("domains", "domains = [\"example.com\", \"example.org\"]"),
    ("selector", "selector = \"key\""),
    (
        "keep_configured_selectors",
        "keep_configured_selectors = true",
    ),
    ("bits", "bits = 2048"),
    ("allow_long_key", "allow_long_key = true"),
    ("socket", "socket = \"inet:8891@127.0.0.1\""),
    ("trusted_hosts", "trusted_hosts = [\"192.0.2.0/24\"]"),
    (
        "report_address",
        "report_address = \"postmaster@example.com\"",
    ),
    ("rotation", "rotation = \"selector\""),
    ("slot_host", "slot_host = \"mail.example.net\""),
    ("selector_from_hostname", "selector_from_hostname = true"),
];

/// Where the values a file gave came from, for messages that name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The file as given on the command line.
    pub path: String,
    /// The keys whose values were used (not overridden by a flag).
    pub keys: Vec<&'static str>,
    /// The selector is for domains not configured yet.
    pub keep_configured_selectors: bool,
}

impl Origin {
    pub fn gave(&self, key: &str) -> bool {
        self.keys.contains(&key)
    }
}

/// How an answer is named in a message: the flag, or the key in the file
/// when the file gave it.
pub fn named(args: &WizardArgs, key: &str, flag: &str, in_file: &str) -> String {
    match &args.from_file {
        Some(origin) if origin.gave(key) => format!("{in_file} in '{}'", origin.path),
        _ => flag.to_string(),
    }
}

/// What a file holds, each value checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAnswers {
    pub domains: Option<Vec<String>>,
    pub selector: Option<String>,
    pub keep_configured_selectors: bool,
    pub bits: Option<u32>,
    pub allow_long_key: bool,
    pub socket: Option<String>,
    pub trusted_hosts: Option<Vec<String>>,
    pub report_address: Option<String>,
    pub rotation: Option<Rotation>,
    pub slot_host: Option<String>,
    pub selector_from_hostname: bool,
}

fn shown_path(path: &Path) -> String {
    validate::shown(&path.to_string_lossy())
}

/// Read and check an answers file.
pub fn read(path: &Path) -> Result<FileAnswers> {
    let file = shown_path(path);
    let text = fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_string(),
            _ => e.to_string(),
        };
        bad_hint(
            format!("cannot read the answers file '{file}': {why}"),
            "give the file written by 'dkim-setup wizard --save-answers FILE'",
        )
    })?;
    parse(&file, &text)
}

/// The 1-based line on which `key` is set, for messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| l.strip_prefix(&format!("'{key}'")))
                .or_else(|| l.strip_prefix(&format!("[{key}]")).map(|_| "="));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The TOML text of a value, shortened for a message.
fn value_text(value: &toml::Value) -> String {
    // TOML's own form: strings quoted, control characters escaped.
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

fn example(key: &str) -> &'static str {
    KEYS.iter().find(|(k, _)| *k == key).map_or("", |(_, e)| *e)
}

/// The edit distance of two short ASCII words, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Check the text of an answers file; `file` names it in messages.
pub fn parse(file: &str, text: &str) -> Result<FileAnswers> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let place = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: ")
        });
        let message = e.message().trim().replace('\n', "; ");
        bad_hint(
            format!(
                "the answers file '{file}' is not valid TOML: {}{message}",
                place.unwrap_or_default()
            ),
            "fix that line, or write the file again with 'dkim-setup wizard --save-answers FILE'",
        )
    })?;

    let at =
        |key: &str| line_of(text, key).map_or_else(String::new, |line| format!(", line {line}"));
    let mut found = FileAnswers::default();
    for (key, value) in &table {
        let Some(&(key, _)) = KEYS.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            let near = known
                .iter()
                .map(|k| (distance(key, k), *k))
                .min()
                .filter(|(d, _)| *d <= 2 || key.len() > 4 && *d <= 3);
            let hint = match near {
                Some((_, k)) => format!("did you mean '{k}'? The keys are: {}", known.join(", ")),
                None => format!("the keys are: {}", known.join(", ")),
            };
            return Err(bad_hint(
                format!(
                    "answers file '{file}'{}: unknown key '{}'",
                    at(key),
                    validate::shown(key)
                ),
                hint,
            ));
        };
        let refuse = |e: anyhow::Error| -> anyhow::Error {
            let (message, hint) = match e.downcast::<BadInput>() {
                Ok(b) => (b.message, b.hint),
                Err(e) => (format!("{e:#}"), None),
            };
            BadInput {
                message: format!("answers file '{file}'{}, key '{key}': {message}", at(key)),
                hint,
            }
            .into()
        };
        let wrong_type = |expected: &str| -> anyhow::Error {
            bad_hint(
                format!(
                    "answers file '{file}'{}, key '{key}': expected {expected}, not {}",
                    at(key),
                    value_text(value)
                ),
                format!("write it as, for example: {}", example(key)),
            )
        };
        let string = || value.as_str().ok_or_else(|| wrong_type("a quoted string"));
        let boolean = || value.as_bool().ok_or_else(|| wrong_type("true or false"));
        let strings = || -> Result<Vec<&str>> {
            let list = value
                .as_array()
                .ok_or_else(|| wrong_type("a list of quoted strings"))?;
            list.iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| wrong_type("a list of quoted strings"))
                })
                .collect()
        };
        match key {
            "domains" => {
                let mut domains = Vec::new();
                for d in strings()? {
                    let d = validate::domain(d).map_err(refuse)?;
                    if !domains.contains(&d) {
                        domains.push(d);
                    }
                }
                if domains.is_empty() {
                    return Err(refuse(bad_hint(
                        "the list names no domain",
                        "name at least one: domains = [\"example.com\"]",
                    )));
                }
                found.domains = Some(domains);
            }
            "selector" => found.selector = Some(validate::selector(string()?).map_err(refuse)?),
            "keep_configured_selectors" => found.keep_configured_selectors = boolean()?,
            "bits" => {
                let n = value
                    .as_integer()
                    .ok_or_else(|| wrong_type("a whole number"))?;
                let n = u32::try_from(n)
                    .map_err(|_| refuse(bad(format!("invalid key size '{n}'"))))
                    .and_then(|n| validate::bits(n, true).map_err(refuse))?;
                found.bits = Some(n);
            }
            "allow_long_key" => found.allow_long_key = boolean()?,
            "socket" => {
                let socket = validate::socket(string()?).map_err(refuse)?;
                found.socket = Some(socket.opendkim());
            }
            "trusted_hosts" => {
                let hosts = strings()?
                    .into_iter()
                    .map(validate::trusted_host)
                    .collect::<Result<Vec<_>>>()
                    .map_err(refuse)?;
                found.trusted_hosts = Some(hosts);
            }
            "report_address" => {
                found.report_address = Some(setup::report_address(string()?).map_err(refuse)?);
            }
            "rotation" => {
                found.rotation = Some(match string()? {
                    "selector" => Rotation::Selector,
                    "cname" => Rotation::Cname,
                    other => {
                        return Err(refuse(bad_hint(
                            format!("invalid rotation scheme '{}'", validate::shown(other)),
                            "use rotation = \"selector\" or rotation = \"cname\"",
                        )));
                    }
                });
            }
            "slot_host" => {
                let host = validate::domain(string()?).map_err(refuse)?;
                validate::record_name("dkim_a", &host).map_err(refuse)?;
                found.slot_host = Some(host);
            }
            "selector_from_hostname" => found.selector_from_hostname = boolean()?,
            _ => unreachable!("every key in KEYS is handled"),
        }
    }

    // Answers that contradict each other within the file.
    let both = |a: &str, b: &str, hint: &str| {
        bad_hint(
            format!("answers file '{file}': '{a}' and '{b}' cannot both be given"),
            hint.to_string(),
        )
    };
    if found.selector.is_some() && found.selector_from_hostname {
        return Err(both(
            "selector",
            "selector_from_hostname",
            "keep one of them: a fixed selector, or each server's own from its host name",
        ));
    }
    if found.keep_configured_selectors && found.selector.is_none() {
        return Err(bad_hint(
            format!("answers file '{file}': 'keep_configured_selectors' needs a 'selector'"),
            "add selector = \"key\" (the selector for new domains), or remove the key",
        ));
    }
    Ok(found)
}

/// The command line's answers over the file's: a flag given replaces the
/// file's value of the same answer, a repeatable flag the whole list.
pub fn merge(cli: &WizardArgs, path: &Path, file: FileAnswers) -> WizardArgs {
    let mut args = cli.clone();
    let mut origin = Origin {
        path: shown_path(path),
        ..Origin::default()
    };
    let mut take = |key: &'static str| origin.keys.push(key);
    if args.domains.is_empty()
        && let Some(d) = file.domains
    {
        args.domains = d;
        take("domains");
    }
    // The selector is one answer, given in one of two ways.
    let mut keep_configured = false;
    if args.selector.is_none() && !args.selector_from_hostname {
        if let Some(s) = file.selector {
            args.selector = Some(s);
            take("selector");
            keep_configured = file.keep_configured_selectors;
        }
        if file.selector_from_hostname {
            args.selector_from_hostname = true;
            take("selector_from_hostname");
        }
    }
    if args.bits.is_none()
        && let Some(b) = file.bits
    {
        args.bits = Some(b);
        take("bits");
    }
    if !args.allow_long_key && file.allow_long_key {
        args.allow_long_key = true;
        take("allow_long_key");
    }
    if args.socket.is_none()
        && let Some(s) = file.socket
    {
        args.socket = Some(s);
        take("socket");
    }
    if args.trusted_hosts.is_empty()
        && let Some(h) = file.trusted_hosts
    {
        args.trusted_hosts = h;
        take("trusted_hosts");
    }
    if args.report_address.is_none()
        && let Some(r) = file.report_address
    {
        args.report_address = Some(r);
        take("report_address");
    }
    // The slot host belongs to the file's scheme: a flag choosing the
    // selector scheme drops it with the file's rotation.
    let cli_rotation = args.rotation;
    if cli_rotation.is_none()
        && let Some(r) = file.rotation
    {
        args.rotation = Some(r);
        take("rotation");
    }
    if args.slot_host.is_none()
        && cli_rotation != Some(Rotation::Selector)
        && let Some(h) = file.slot_host
    {
        args.slot_host = Some(h);
        take("slot_host");
    }
    origin.keep_configured_selectors = keep_configured;
    args.from_file = Some(origin);
    args
}

/// Refuse a `--save-answers` path that cannot be written, before anything
/// is asked or changed.
pub fn check_target(path: &Path) -> Result<()> {
    let file = shown_path(path);
    if path.is_dir() {
        return Err(bad_hint(
            format!("cannot save the answers to '{file}': it is a directory"),
            "give a file name, e.g. --save-answers fleet.toml",
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(bad_hint(
            format!(
                "cannot save the answers to '{file}': the directory '{}' does not exist",
                shown_path(dir)
            ),
            "create the directory first, or give another path",
        ));
    }
    Ok(())
}

/// The answers as a saved file lists them.
#[derive(Serialize)]
struct Saved<'a> {
    domains: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keep_configured_selectors: bool,
    bits: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    allow_long_key: bool,
    socket: String,
    trusted_hosts: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    report_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot_host: Option<&'a str>,
    selector_from_hostname: bool,
}

/// The TOML text of a run's answers. `args` are the final ones (flags,
/// file and questions); `answers` the checked values; `slots` the slot host
/// of a two-slot scheme an earlier run set up, which a replay elsewhere
/// needs as much as the flags. A selector derived from the host name is not
/// saved: each server derives its own.
pub fn render(args: &WizardArgs, answers: &Answers, slots: Option<&str>) -> String {
    let selector = if args.selector_from_hostname {
        None
    } else {
        answers.selector.as_deref()
    };
    let saved = Saved {
        domains: &answers.domains,
        selector,
        keep_configured_selectors: selector.is_some() && answers.selector_for_new_only,
        bits: answers.bits,
        allow_long_key: answers.bits == 4096,
        socket: answers.socket.opendkim(),
        trusted_hosts: &answers.trusted_hosts,
        report_address: answers.report_address.as_deref(),
        rotation: match (args.rotation, slots) {
            (Some(Rotation::Selector), None) => Some("selector"),
            (Some(Rotation::Cname), _) | (_, Some(_)) => Some("cname"),
            (None, None) => None,
        },
        slot_host: answers.slot_host.as_deref().or(slots),
        selector_from_hostname: args.selector_from_hostname,
    };
    let body = toml::to_string(&saved).unwrap_or_default();
    format!(
        "# dkim-setup wizard answers, written by --save-answers. No secrets: keys\n\
         # never leave the server. Replay on this or another server with\n\
         #   dkim-setup wizard --answers FILE\n\
         # A flag given on the command line overrides the value here.\n\n{body}"
    )
}

/// Write the answers file, 0644, through a temporary name in the same
/// directory, so that a reader never sees half a file.
pub fn write(path: &Path, text: &str) -> Result<()> {
    let file = shown_path(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "answers.toml".into());
    let tmp = dir.join(format!(".{name}.dkim-setup-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        out.set_permissions(fs::Permissions::from_mode(0o644))?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::anyhow!("cannot save the answers to '{file}': {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> (String, Option<String>) {
        let e = parse("a.toml", text).unwrap_err();
        let b = e.downcast::<BadInput>().expect("bad input");
        (b.message, b.hint)
    }

    #[test]
    fn every_key_is_read_and_checked() {
        let found = parse(
            "a.toml",
            "domains = [\"Example.COM\", \"example.com\", \"b.example\"]\n\
             selector = \"Mail\"\nkeep_configured_selectors = true\nbits = 4096\n\
             allow_long_key = true\nsocket = \"inet:8892@localhost\"\n\
             trusted_hosts = [\"192.0.2.7/24\"]\nreport_address = \"pm@example.com\"\n\
             rotation = \"selector\"\n",
        )
        .unwrap();
        assert_eq!(
            found.domains.as_deref(),
            Some(&["example.com".to_string(), "b.example".to_string()][..])
        );
        assert_eq!(found.selector.as_deref(), Some("mail"));
        assert!(found.keep_configured_selectors && found.allow_long_key);
        assert_eq!(found.bits, Some(4096));
        assert_eq!(found.socket.as_deref(), Some("inet:8892@127.0.0.1"));
        assert_eq!(
            found.trusted_hosts.as_deref(),
            Some(&["192.0.2.0/24".to_string()][..])
        );
        assert_eq!(found.rotation, Some(Rotation::Selector));
        assert_eq!(parse("a.toml", "").unwrap(), FileAnswers::default());
    }

    #[test]
    fn an_unknown_key_is_named_with_a_suggestion() {
        let (message, hint) = refused("domains = [\"example.com\"]\nselectr = \"key\"\n");
        assert_eq!(
            message,
            "answers file 'a.toml', line 2: unknown key 'selectr'"
        );
        assert!(hint.unwrap().starts_with("did you mean 'selector'?"));
        let (message, _) = refused("[wizard]\nbits = 2048\n");
        assert!(message.contains("unknown key 'wizard'"), "{message}");
    }

    #[test]
    fn bad_values_name_the_file_the_key_and_the_value() {
        let (message, _) = refused("selector = \"bad sel\"\n");
        assert!(
            message.starts_with(
                "answers file 'a.toml', line 1, key 'selector': invalid selector 'bad sel'"
            ),
            "{message}"
        );
        let (message, hint) = refused("\nbits = \"2048\"\n");
        assert_eq!(
            message,
            "answers file 'a.toml', line 2, key 'bits': expected a whole number, not \"2048\""
        );
        assert_eq!(hint.unwrap(), "write it as, for example: bits = 2048");
        let (message, _) = refused("bits = 1000\n");
        assert!(message.contains("invalid key size '1000'"), "{message}");
        let (message, _) = refused("trusted_hosts = [\"0.0.0.0/0\"]\n");
        assert!(message.contains("key 'trusted_hosts'"), "{message}");
        let (message, _) = refused("domains = []\n");
        assert!(message.contains("names no domain"), "{message}");
        let (message, _) = refused("rotation = \"dns\"\n");
        assert!(
            message.contains("invalid rotation scheme 'dns'"),
            "{message}"
        );
        let (message, _) = refused("domains = \"example.com\"\n");
        assert!(
            message.contains("expected a list of quoted strings"),
            "{message}"
        );
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let (message, _) = refused("domains = [\"example.com\"]\nbits = = 2048\n");
        assert!(
            message.starts_with("the answers file 'a.toml' is not valid TOML: line 2, column"),
            "{message}"
        );
        assert!(!message.contains('\n'));
        let (message, _) = refused("bits = 2048\nbits = 3072\n");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn contradictions_within_a_file_are_refused() {
        let (message, _) = refused("selector = \"key\"\nselector_from_hostname = true\n");
        assert!(message.contains("'selector' and 'selector_from_hostname'"));
        let (message, _) = refused("keep_configured_selectors = true\n");
        assert!(message.contains("needs a 'selector'"));
    }

    #[test]
    fn distances() {
        assert_eq!(distance("selectr", "selector"), 1);
        assert_eq!(distance("bits", "bits"), 0);
        assert_eq!(distance("domain", "domains"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}
