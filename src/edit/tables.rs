//! Merges our entries into OpenDKIM's KeyTable, SigningTable and TrustedHosts.
//!
//! These tables are plain text, one entry per line, `#` starting a comment.
//! Other domains may already live in them, so we never rewrite a table from
//! scratch: comments and foreign lines stay where they are, a line for one of
//! our names is replaced in place when its value differs, and missing entries
//! are appended. Along the way the two faults that make a `refile:` table
//! silently match nothing (CRLF line endings, trailing blanks) are repaired and
//! reported (field case B03). A line opendkim would choke on (a SigningTable
//! line without key name, a KeyTable value that is not `domain:selector:path`)
//! is refused with its line number instead of being carried forward.
//!
//! [`carry_single_key`] decides which entries keep the domains of a
//! single-key setup (`KeyFile`, `Selector`, `Domain` in opendkim.conf) signed
//! once those lines are commented out.

use std::fmt;

/// The new text of a file plus notices for the user (things fixed on the way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    pub notes: Vec<String>,
}

/// A line the tool refuses to merge into; the caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LineError {}

/// One KeyTable line: `NAME DOMAIN:SELECTOR:KEYPATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key name, by convention `SELECTOR._domainkey.DOMAIN`.
    pub name: String,
    pub domain: String,
    pub selector: String,
    pub key_path: String,
}

impl KeyEntry {
    /// The value column: `DOMAIN:SELECTOR:KEYPATH`.
    pub fn value(&self) -> String {
        format!("{}:{}:{}", self.domain, self.selector, self.key_path)
    }

    /// The whole table line, without line ending.
    pub fn line(&self) -> String {
        format!("{} {}", self.name, self.value())
    }
}

/// One SigningTable line: `PATTERN KEYNAME`, e.g. `*@example.test key._domainkey.example.test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningEntry {
    pub pattern: String,
    pub key_name: String,
}

impl SigningEntry {
    /// The whole table line, without line ending.
    pub fn line(&self) -> String {
        format!("{} {}", self.pattern, self.key_name)
    }
}

/// Parses every active KeyTable line; the first malformed line is an error.
pub fn parse_key_table(text: &str) -> Result<Vec<KeyEntry>, LineError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(entry) = parse_key_line(line, index + 1)? {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Parses every active SigningTable line; the first malformed line is an error.
pub fn parse_signing_table(text: &str) -> Result<Vec<SigningEntry>, LineError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(entry) = parse_signing_line(line, index + 1)? {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Key names that SigningTable lines refer to but KeyTable lacks, in order, each once.
///
/// A key name is compared without any `:signer` suffix and case-insensitively.
pub fn orphan_signing_entries(signing: &[SigningEntry], keys: &[KeyEntry]) -> Vec<String> {
    let mut orphans: Vec<String> = Vec::new();
    for entry in signing {
        let name = entry.key_name.split(':').next().unwrap_or_default();
        let known = keys.iter().any(|k| k.name.eq_ignore_ascii_case(name));
        let listed = orphans.iter().any(|o| o.eq_ignore_ascii_case(name));
        if !known && !listed {
            orphans.push(name.to_string());
        }
    }
    orphans
}

/// The entries that carry a single-key setup into the tables, and why the
/// domains left out are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    pub keys: Vec<KeyEntry>,
    pub signing: Vec<SigningEntry>,
    /// The domains that get entries, in order.
    pub carried: Vec<String>,
    /// Domains the run configures itself: its answer wins.
    pub run_wins: Vec<String>,
    /// Domains the tables have an entry for already: that entry wins.
    pub tables_win: Vec<String>,
}

/// For each of `domains` (signed with `key_file` under `selector`), the
/// KeyTable entry `SEL._domainkey.D D:SEL:KEYFILE` and the SigningTable entry
/// `*@D SEL._domainkey.D`, unless D is one of `run_domains` or the existing
/// tables (`keys`, `signing`) have an entry for D already.
pub fn carry_single_key(
    domains: &[String],
    selector: &str,
    key_file: &str,
    run_domains: &[String],
    keys: &[KeyEntry],
    signing: &[SigningEntry],
) -> Carried {
    let mut out = Carried::default();
    for domain in domains {
        let same = |d: &str| d.eq_ignore_ascii_case(domain);
        if run_domains.iter().any(|d| same(d)) {
            out.run_wins.push(domain.clone());
            continue;
        }
        let in_tables = keys.iter().any(|k| same(&k.domain))
            || signing.iter().any(|e| {
                let pattern = e.pattern.as_str();
                same(pattern.rsplit_once('@').map_or(pattern, |(_, d)| d))
            });
        if in_tables {
            out.tables_win.push(domain.clone());
            continue;
        }
        let name = format!("{selector}._domainkey.{domain}");
        out.keys.push(KeyEntry {
            name: name.clone(),
            domain: domain.clone(),
            selector: selector.to_string(),
            key_path: key_file.to_string(),
        });
        out.signing.push(SigningEntry {
            pattern: format!("*@{domain}"),
            key_name: name,
        });
        out.carried.push(domain.clone());
    }
    out
}

/// Merges `entries` into an existing KeyTable (see the module notes).
pub fn merge_key_table(old: &str, entries: &[KeyEntry]) -> Result<Edited, LineError> {
    let wanted: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| (e.name.clone(), e.value(), e.line()))
        .collect();
    merge_table(old, &wanted, "KeyTable", |line, number| {
        Ok(parse_key_line(line, number)?.map(|e| (e.name.clone(), e.value())))
    })
}

/// Merges `entries` into an existing SigningTable (see the module notes).
pub fn merge_signing_table(old: &str, entries: &[SigningEntry]) -> Result<Edited, LineError> {
    let wanted: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| (e.pattern.clone(), e.key_name.clone(), e.line()))
        .collect();
    merge_table(old, &wanted, "SigningTable", |line, number| {
        Ok(parse_signing_line(line, number)?.map(|e| (e.pattern, e.key_name)))
    })
}

/// Removes the KeyTable entries named `names` (a retired key), keeping every
/// other line, comment and the order.
pub fn remove_key_entries(old: &str, names: &[String]) -> Result<Edited, LineError> {
    let (lines, notes) = normalise(old);
    let mut kept = Vec::new();
    for (index, line) in lines.into_iter().enumerate() {
        let named = parse_key_line(&line, index + 1)?
            .is_some_and(|e| names.iter().any(|n| n.eq_ignore_ascii_case(&e.name)));
        if !named {
            kept.push(line);
        }
    }
    Ok(Edited {
        text: join_lines(&kept),
        notes,
    })
}

/// Adds each host that TrustedHosts lacks (compared case-insensitively), keeping the rest.
pub fn merge_trusted_hosts(old: &str, hosts: &[String]) -> Edited {
    let (lines, notes) = normalise(old);
    let mut present: Vec<String> = lines
        .iter()
        .filter_map(|line| active_part(line))
        .map(str::to_ascii_lowercase)
        .collect();
    let mut out = lines;
    for host in hosts {
        let host = host.trim();
        if host.is_empty() || present.contains(&host.to_ascii_lowercase()) {
            continue;
        }
        present.push(host.to_ascii_lowercase());
        out.push(host.to_string());
    }
    Edited {
        text: join_lines(&out),
        notes,
    }
}

/// The common merge: `wanted` holds (key, value, full line) per entry; `parse` turns an
/// active line into its (key, value) or refuses it.
fn merge_table(
    old: &str,
    wanted: &[(String, String, String)],
    table: &str,
    parse: impl Fn(&str, usize) -> Result<Option<(String, String)>, LineError>,
) -> Result<Edited, LineError> {
    let (mut lines, mut notes) = normalise(old);
    let mut seen = vec![false; wanted.len()];
    for (index, line) in lines.iter_mut().enumerate() {
        let Some((key, value)) = parse(line, index + 1)? else {
            continue;
        };
        let Some(slot) = wanted.iter().position(|w| w.0.eq_ignore_ascii_case(&key)) else {
            continue;
        };
        let (_, our_value, our_line) = &wanted[slot];
        if seen[slot] {
            notes.push(format!(
                "commented out duplicate {table} entry for \"{key}\" on line {}",
                index + 1
            ));
            line.insert(0, '#');
        } else if value != *our_value {
            notes.push(format!(
                "replaced {table} entry for \"{key}\" (was \"{value}\", now \"{our_value}\")"
            ));
            *line = our_line.clone();
        }
        seen[slot] = true;
    }
    for (slot, (key, _, line)) in wanted.iter().enumerate() {
        let duplicate = wanted[..slot].iter().any(|w| w.0.eq_ignore_ascii_case(key));
        if !seen[slot] && !duplicate {
            lines.push(line.clone());
        }
    }
    Ok(Edited {
        text: join_lines(&lines),
        notes,
    })
}

/// Splits `old` into lines without CR or trailing blanks, noting each repair.
fn normalise(old: &str) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    if old.contains("\r\n") {
        notes.push("converted CRLF line endings to LF".to_string());
    }
    let mut trimmed = 0;
    let lines: Vec<String> = old
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .map(|line| {
            let kept = line.trim_end_matches([' ', '\t', '\r']);
            if kept.len() != line.len() {
                trimmed += 1;
            }
            kept.to_string()
        })
        .collect();
    // `split` yields one empty piece after a final newline (or for empty text).
    let mut lines = lines;
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    match trimmed {
        0 => {}
        1 => notes.push("removed trailing blanks from 1 line".to_string()),
        n => notes.push(format!("removed trailing blanks from {n} lines")),
    }
    (lines, notes)
}

fn join_lines(lines: &[String]) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The entry part of a table line: without comment and surrounding blanks; None when empty.
fn active_part(line: &str) -> Option<&str> {
    let data = match line.find('#') {
        Some(at) => &line[..at],
        None => line,
    };
    let data = data.trim();
    (!data.is_empty()).then_some(data)
}

fn parse_key_line(line: &str, number: usize) -> Result<Option<KeyEntry>, LineError> {
    let Some(data) = active_part(line) else {
        return Ok(None);
    };
    let error = |message: String| LineError {
        line: number,
        message,
    };
    let Some((name, value)) = data.split_once([' ', '\t']) else {
        return Err(error(format!(
            "KeyTable entry \"{data}\" has no value (expected NAME DOMAIN:SELECTOR:KEYPATH)"
        )));
    };
    let value = value.trim();
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() != 3 || fields.iter().any(|f| f.trim().is_empty()) {
        return Err(error(format!(
            "KeyTable value \"{value}\" for \"{name}\" is not DOMAIN:SELECTOR:KEYPATH \
             (three ':'-separated fields)"
        )));
    }
    Ok(Some(KeyEntry {
        name: name.to_string(),
        domain: fields[0].trim().to_string(),
        selector: fields[1].trim().to_string(),
        key_path: fields[2].trim().to_string(),
    }))
}

fn parse_signing_line(line: &str, number: usize) -> Result<Option<SigningEntry>, LineError> {
    let Some(data) = active_part(line) else {
        return Ok(None);
    };
    let columns: Vec<&str> = data.split_whitespace().collect();
    match columns[..] {
        [pattern, key_name] => Ok(Some(SigningEntry {
            pattern: pattern.to_string(),
            key_name: key_name.to_string(),
        })),
        [pattern] => Err(LineError {
            line: number,
            message: format!(
                "SigningTable entry \"{pattern}\" has no key name (expected PATTERN KEYNAME)"
            ),
        }),
        _ => Err(LineError {
            line: number,
            message: format!(
                "SigningTable entry \"{data}\" has more than two columns \
                 (expected PATTERN KEYNAME)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RHEL_KEY: &str = include_str!("../../tests/fixtures/edits/tables_rhel/KeyTable.before");
    const RHEL_KEY_AFTER: &str =
        include_str!("../../tests/fixtures/edits/tables_rhel/KeyTable.after");
    const RHEL_SIGNING: &str =
        include_str!("../../tests/fixtures/edits/tables_rhel/SigningTable.before");
    const RHEL_SIGNING_AFTER: &str =
        include_str!("../../tests/fixtures/edits/tables_rhel/SigningTable.after");
    const RHEL_HOSTS: &str =
        include_str!("../../tests/fixtures/edits/tables_rhel/TrustedHosts.before");
    const RHEL_HOSTS_AFTER: &str =
        include_str!("../../tests/fixtures/edits/tables_rhel/TrustedHosts.after");
    const CRLF_SIGNING: &str =
        include_str!("../../tests/fixtures/edits/tables_crlf/SigningTable.before");
    const CRLF_SIGNING_AFTER: &str =
        include_str!("../../tests/fixtures/edits/tables_crlf/SigningTable.after");
    const MIXED_KEY: &str = include_str!("../../tests/fixtures/edits/tables_mixed/KeyTable.before");
    const MIXED_KEY_AFTER: &str =
        include_str!("../../tests/fixtures/edits/tables_mixed/KeyTable.after");

    fn key(domain: &str, selector: &str) -> KeyEntry {
        KeyEntry {
            name: format!("{selector}._domainkey.{domain}"),
            domain: domain.to_string(),
            selector: selector.to_string(),
            key_path: format!("/etc/opendkim/keys/{domain}/{selector}.private"),
        }
    }

    fn signing(domain: &str, selector: &str) -> SigningEntry {
        SigningEntry {
            pattern: format!("*@{domain}"),
            key_name: format!("{selector}._domainkey.{domain}"),
        }
    }

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn line_error_displays_line_and_message() {
        let e = LineError {
            line: 7,
            message: "bad \"x\"".to_string(),
        };
        assert_eq!(e.to_string(), "line 7: bad \"x\"");
    }

    #[test]
    fn rhel_key_table_fixture_and_idempotence() {
        let entries = [key("example.test", "key")];
        let once = merge_key_table(RHEL_KEY, &entries).unwrap();
        assert_eq!(once.text, RHEL_KEY_AFTER);
        assert!(once.notes.is_empty(), "{:?}", once.notes);
        let twice = merge_key_table(&once.text, &entries).unwrap();
        assert_eq!(twice.text, once.text);
        assert!(twice.notes.is_empty());
    }

    #[test]
    fn rhel_signing_table_fixture_and_idempotence() {
        let entries = [signing("example.test", "key")];
        let once = merge_signing_table(RHEL_SIGNING, &entries).unwrap();
        assert_eq!(once.text, RHEL_SIGNING_AFTER);
        let twice = merge_signing_table(&once.text, &entries).unwrap();
        assert_eq!(twice.text, once.text);
        assert!(twice.notes.is_empty());
    }

    #[test]
    fn rhel_trusted_hosts_fixture_and_idempotence() {
        let wanted = hosts(&["127.0.0.1", "::1", "localhost", "192.0.2.10"]);
        let once = merge_trusted_hosts(RHEL_HOSTS, &wanted);
        assert_eq!(once.text, RHEL_HOSTS_AFTER);
        let twice = merge_trusted_hosts(&once.text, &wanted);
        assert_eq!(twice.text, once.text);
        assert!(twice.notes.is_empty());
    }

    #[test]
    fn crlf_signing_table_fixture_is_normalised_and_noted() {
        assert!(
            CRLF_SIGNING.contains("\r\n"),
            "fixture must keep its CRLF endings"
        );
        let entries = [signing("example.test", "key")];
        let once = merge_signing_table(CRLF_SIGNING, &entries).unwrap();
        assert_eq!(once.text, CRLF_SIGNING_AFTER);
        assert!(!once.text.contains('\r'));
        assert!(
            once.notes
                .contains(&"converted CRLF line endings to LF".to_string())
        );
        let twice = merge_signing_table(&once.text, &entries).unwrap();
        assert_eq!(twice.text, once.text);
        assert!(twice.notes.is_empty());
    }

    #[test]
    fn mixed_key_table_fixture_replaces_in_place_and_keeps_others() {
        let entries = [key("example.test", "key"), key("example.org", "key")];
        let once = merge_key_table(MIXED_KEY, &entries).unwrap();
        assert_eq!(once.text, MIXED_KEY_AFTER);
        assert!(
            once.notes
                .iter()
                .any(|n| n.contains("replaced KeyTable entry"))
        );
        assert!(once.notes.iter().any(|n| n.contains("trailing blanks")));
        let twice = merge_key_table(&once.text, &entries).unwrap();
        assert_eq!(twice.text, once.text);
        assert!(twice.notes.is_empty());
    }

    #[test]
    fn empty_tables_get_just_the_entries() {
        let k = merge_key_table("", &[key("example.test", "key")]).unwrap();
        assert_eq!(
            k.text,
            "key._domainkey.example.test \
             example.test:key:/etc/opendkim/keys/example.test/key.private\n"
        );
        let s = merge_signing_table("", &[signing("example.test", "key")]).unwrap();
        assert_eq!(s.text, "*@example.test key._domainkey.example.test\n");
        let h = merge_trusted_hosts("", &hosts(&["127.0.0.1", "::1"]));
        assert_eq!(h.text, "127.0.0.1\n::1\n");
        assert!(k.notes.is_empty() && s.notes.is_empty() && h.notes.is_empty());
    }

    #[test]
    fn empty_entries_leave_a_clean_table_alone() {
        let text = "# c\n*@a.test key._domainkey.a.test\n";
        assert_eq!(merge_signing_table(text, &[]).unwrap().text, text);
    }

    #[test]
    fn missing_final_newline_is_added_before_appending() {
        let old = "*@a.test key._domainkey.a.test";
        let out = merge_signing_table(old, &[signing("b.test", "key")]).unwrap();
        assert_eq!(
            out.text,
            "*@a.test key._domainkey.a.test\n*@b.test key._domainkey.b.test\n"
        );
    }

    #[test]
    fn one_column_signing_line_is_refused_with_its_line_number() {
        let old = "# SigningTable\n\n*@example.test\n";
        let err = merge_signing_table(old, &[signing("example.test", "key")]).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("SigningTable"), "{err}");
        assert!(err.message.contains("\"*@example.test\""), "{err}");
        assert_eq!(parse_signing_table(old).unwrap_err().line, 3);
    }

    #[test]
    fn three_column_signing_line_is_refused() {
        let err = parse_signing_table("*@a.test k._domainkey.a.test extra\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("more than two columns"));
    }

    #[test]
    fn malformed_key_table_values_are_refused() {
        for (text, line) in [
            ("k._domainkey.a.test a.test:k\n", 1),
            ("# x\nk._domainkey.a.test a.test:k:/p:extra\n", 2),
            ("k._domainkey.a.test a.test::/p\n", 1),
            ("\n\n\nk._domainkey.a.test\n", 4),
            ("k._domainkey.a.test :k:/p\n", 1),
        ] {
            let err = parse_key_table(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            assert!(err.message.contains("KeyTable"), "{err}");
            assert!(merge_key_table(text, &[key("b.test", "key")]).is_err());
        }
    }

    #[test]
    fn modoboa_style_numeric_key_name_parses_but_is_an_orphan() {
        // Debian 12 report: `could not find valid key record "1" in KeyTable`.
        let signing = parse_signing_table("*@example.test 1\n").unwrap();
        let keys = parse_key_table(
            "mail._domainkey.example.test example.test:mail:/etc/opendkim/keys/m.private\n",
        )
        .unwrap();
        assert_eq!(
            orphan_signing_entries(&signing, &keys),
            vec!["1".to_string()]
        );
    }

    #[test]
    fn orphans_are_listed_once_in_order() {
        let keys = [key("a.test", "key")];
        let signing = [
            signing("a.test", "key"),
            signing("a.test", "sel2024"),
            signing("b.test", "key"),
            SigningEntry {
                pattern: "x@a.test".to_string(),
                key_name: "sel2024._domainkey.a.test".to_string(),
            },
        ];
        assert_eq!(
            orphan_signing_entries(&signing, &keys),
            vec![
                "sel2024._domainkey.a.test".to_string(),
                "key._domainkey.b.test".to_string()
            ]
        );
        assert!(orphan_signing_entries(&signing[..1], &keys).is_empty());
    }

    #[test]
    fn parse_skips_comments_and_inline_comments() {
        let text = "# comment\n  \nk._domainkey.a.test a.test:k:/p # note\n  # indented\n";
        let keys = parse_key_table(text).unwrap();
        assert_eq!(
            keys,
            vec![KeyEntry {
                name: "k._domainkey.a.test".to_string(),
                domain: "a.test".to_string(),
                selector: "k".to_string(),
                key_path: "/p".to_string(),
            }]
        );
        let signing = parse_signing_table("*@a.test\tk._domainkey.a.test\r\n").unwrap();
        assert_eq!(
            signing,
            vec![SigningEntry {
                pattern: "*@a.test".to_string(),
                key_name: "k._domainkey.a.test".to_string(),
            }]
        );
    }

    #[test]
    fn existing_line_with_our_value_is_kept_byte_for_byte() {
        let old = "*@a.test\t\tkey._domainkey.a.test   # ours\n";
        let out = merge_signing_table(old, &[signing("a.test", "key")]).unwrap();
        assert_eq!(out.text, old);
        assert!(out.notes.is_empty());
    }

    #[test]
    fn changed_value_is_replaced_in_place_with_a_note() {
        let old = "# top\n*@a.test old._domainkey.a.test\n*@c.test key._domainkey.c.test\n";
        let out = merge_signing_table(old, &[signing("a.test", "key")]).unwrap();
        assert_eq!(
            out.text,
            "# top\n*@a.test key._domainkey.a.test\n*@c.test key._domainkey.c.test\n"
        );
        assert_eq!(out.notes.len(), 1);
        assert!(out.notes[0].contains("\"*@a.test\""));
        assert!(out.notes[0].contains("\"old._domainkey.a.test\""));
    }

    #[test]
    fn duplicate_existing_lines_for_our_name_are_commented_out() {
        let old = "*@a.test key._domainkey.a.test\n*@a.test other._domainkey.a.test\n";
        let out = merge_signing_table(old, &[signing("a.test", "key")]).unwrap();
        assert_eq!(
            out.text,
            "*@a.test key._domainkey.a.test\n#*@a.test other._domainkey.a.test\n"
        );
        assert!(out.notes[0].contains("duplicate"));
        let again = merge_signing_table(&out.text, &[signing("a.test", "key")]).unwrap();
        assert_eq!(again.text, out.text);
        assert!(again.notes.is_empty());
    }

    #[test]
    fn duplicate_wanted_entries_are_written_once() {
        let entries = [signing("a.test", "key"), signing("a.test", "key")];
        let out = merge_signing_table("", &entries).unwrap();
        assert_eq!(out.text, "*@a.test key._domainkey.a.test\n");
    }

    #[test]
    fn names_compare_case_insensitively() {
        let old = "KEY._domainkey.A.test a.test:key:/etc/opendkim/keys/a.test/key.private\n";
        let out = merge_key_table(old, &[key("a.test", "key")]).unwrap();
        assert_eq!(out.text, old);
    }

    #[test]
    fn trailing_blank_note_counts_lines() {
        let out = merge_trusted_hosts("127.0.0.1 \n::1\t\n", &hosts(&["127.0.0.1"]));
        assert_eq!(out.text, "127.0.0.1\n::1\n");
        assert_eq!(
            out.notes,
            vec!["removed trailing blanks from 2 lines".to_string()]
        );
        let one = merge_trusted_hosts("::1 \n", &[]);
        assert_eq!(
            one.notes,
            vec!["removed trailing blanks from 1 line".to_string()]
        );
    }

    #[test]
    fn trusted_hosts_compare_case_insensitively_and_skip_commented_ones() {
        let old = "LocalHost\n#192.0.2.1\n";
        let out = merge_trusted_hosts(old, &hosts(&["localhost", "192.0.2.1", "192.0.2.1"]));
        assert_eq!(out.text, "LocalHost\n#192.0.2.1\n192.0.2.1\n");
        assert!(out.notes.is_empty());
    }

    #[test]
    fn lone_cr_at_line_end_counts_as_trailing_blank() {
        let out = merge_trusted_hosts("127.0.0.1\r\r\n", &[]);
        assert_eq!(out.text, "127.0.0.1\n");
        assert!(out.notes.iter().any(|n| n.contains("CRLF")));
        assert!(out.notes.iter().any(|n| n.contains("trailing blanks")));
    }

    #[test]
    fn a_retired_key_entry_is_removed_and_nothing_else() {
        let old = "# keys\nkey._domainkey.a.test a.test:key:/k/a/key.private\n\
                   key1._domainkey.a.test a.test:key1:/k/a/key1.private\n\
                   key._domainkey.b.test b.test:key:/k/b/key.private\n";
        let names = ["KEY._domainkey.a.test".to_string()];
        let once = remove_key_entries(old, &names).unwrap().text;
        assert_eq!(
            once,
            "# keys\nkey1._domainkey.a.test a.test:key1:/k/a/key1.private\n\
             key._domainkey.b.test b.test:key:/k/b/key.private\n"
        );
        assert_eq!(remove_key_entries(&once, &names).unwrap().text, once);
    }

    #[test]
    fn a_single_key_setup_is_carried_unless_the_run_or_the_tables_have_its_domain() {
        let keys = parse_key_table("key._domainkey.kept.example kept.example:key:/k\n").unwrap();
        let signing = parse_signing_table("*@signed.example other._domainkey.x\n").unwrap();
        let domains: Vec<String> = [
            "new.example",
            "run.example",
            "kept.example",
            "signed.example",
        ]
        .map(String::from)
        .to_vec();
        let carry = carry_single_key(
            &domains,
            "mail",
            "/etc/dkimkeys/mail.private",
            &["RUN.example".to_string()],
            &keys,
            &signing,
        );
        assert_eq!(carry.carried, vec!["new.example"]);
        assert_eq!(carry.run_wins, vec!["run.example"]);
        assert_eq!(carry.tables_win, vec!["kept.example", "signed.example"]);
        let lines: Vec<String> = carry.keys.iter().map(KeyEntry::line).collect();
        assert_eq!(
            lines,
            vec!["mail._domainkey.new.example new.example:mail:/etc/dkimkeys/mail.private"]
        );
        let lines: Vec<String> = carry.signing.iter().map(SigningEntry::line).collect();
        assert_eq!(lines, vec!["*@new.example mail._domainkey.new.example"]);

        // Merged twice, the tables stay as they are.
        let once = merge_key_table("", &carry.keys).unwrap().text;
        assert_eq!(merge_key_table(&once, &carry.keys).unwrap().text, once);
    }
}
