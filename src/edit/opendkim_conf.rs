//! Edits `/etc/opendkim.conf` in place, keeping everything we do not own.
//!
//! The file is a list of `Key<whitespace>value` lines (keys case-insensitive,
//! `#` lines are comments, see opendkim.conf(5)), and opendkim silently uses the
//! last line when a key repeats. So appending a `Socket` line while Debian's
//! default is still active leaves two and the wrong one may win (platform note
//! P6). Instead, the first active line of each key we own gets its value
//! replaced in place, keeping its spelling and spacing, and every later one is
//! commented out. A key with no active line is added right below the package's
//! commented-out example (Debian's `#Mode sv`), or else in one block at the end
//! headed `# Added by dkim-setup`. Settings that fight the tables (`KeyFile`,
//! `Selector`, `Domain`) are commented out, never deleted. Owned values are
//! what fix field cases B01/B02 (`SigningTable refile:`, a bare `KeyTable`).
//! A line that already holds the wanted value is left alone, so a second run
//! returns the same bytes.
//!
//! Before those lines go, [`single_key`] reads the signing they did: without
//! a KeyTable, opendkim signs the domains of `Domain` with the key of
//! `KeyFile` under `Selector`, and the setup carries that into the tables.

/// The comment line that heads the block of keys we had to append.
pub const ADDED_MARKER: &str = "# Added by dkim-setup";

/// The column where values of lines we write start (tab stops of 8).
const VALUE_COLUMN: usize = 24;

/// Value of the last active line for `key` (the one opendkim uses), trimmed.
pub fn get(text: &str, key: &str) -> Option<String> {
    get_all(text, key).pop()
}

/// Values of all active lines for `key`, in file order, trimmed.
pub fn get_all(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(parse_active)
        .filter(|line| line.key.eq_ignore_ascii_case(key))
        .map(|line| line.value.trim().to_string())
        .collect()
}

/// The signing of a single-key setup: the key of `KeyFile`, under
/// `Selector`, for every domain of `Domain` (lower-cased, each once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleKey {
    pub key_file: String,
    pub selector: String,
    pub domains: Vec<String>,
}

/// Why a single-key setup cannot be carried into the tables as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCarried {
    /// The active lines concerned, each as `Key value`.
    pub lines: Vec<String>,
    pub why: String,
}

/// The single-key signing `text` configures, if opendkim uses it.
///
/// opendkim ignores `KeyFile`, `Selector` and `Domain` beside a `KeyTable`,
/// and signs nothing without `Domain` (RHEL's packaged file has only
/// `KeyFile` and `Selector`): both give `Ok(None)`. `Domain` must be a
/// literal list of domains separated by commas or blanks; a data set (a
/// path, `file:`, `refile:`, `csl:`, ...), a missing `KeyFile` or
/// `Selector`, or a value the tables cannot hold is refused, not guessed.
pub fn single_key(text: &str) -> Result<Option<SingleKey>, NotCarried> {
    if get(text, "KeyTable").is_some() {
        return Ok(None);
    }
    let Some(domain) = get(text, "Domain") else {
        return Ok(None);
    };
    let key_file = get(text, "KeyFile").filter(|v| !v.is_empty());
    let selector = get(text, "Selector").filter(|v| !v.is_empty());
    let lines: Vec<String> = [
        ("KeyFile", &key_file),
        ("Selector", &selector),
        ("Domain", &Some(domain.clone())),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key} {v}")))
    .collect();
    let refuse = |why: String| NotCarried {
        lines: lines.clone(),
        why,
    };
    let (Some(key_file), Some(selector)) = (&key_file, &selector) else {
        let missing: Vec<&str> = [("KeyFile", &key_file), ("Selector", &selector)]
            .into_iter()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key)
            .collect();
        return Err(refuse(format!(
            "'Domain' needs 'KeyFile' and 'Selector' to sign, and '{}' is missing",
            missing.join("' and '")
        )));
    };
    let items: Vec<&str> = domain
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if domain.contains(':') || items.iter().any(|s| s.starts_with('/')) {
        return Err(refuse(format!(
            "'Domain {domain}' is a data set, not a list of domains"
        )));
    }
    if items.is_empty() {
        return Err(refuse("'Domain' names no domain".to_string()));
    }
    let mut domains: Vec<String> = Vec::new();
    for item in items {
        let valid =
            crate::validate::domain(&item.to_lowercase()).map_err(|e| refuse(format!("{e:#}")))?;
        if !domains.contains(&valid) {
            domains.push(valid);
        }
    }
    let selector = crate::validate::selector(selector).map_err(|e| refuse(format!("{e:#}")))?;
    for domain in &domains {
        crate::validate::record_name(&selector, domain).map_err(|e| refuse(format!("{e:#}")))?;
    }
    if !key_file.starts_with('/') || key_file.contains(|c: char| c.is_whitespace() || c == ':') {
        return Err(refuse(format!(
            "'KeyFile {key_file}' is not an absolute path a KeyTable can name"
        )));
    }
    Ok(Some(SingleKey {
        key_file: key_file.clone(),
        selector,
        domains,
    }))
}

/// Sets each owned key to its value and comments out the keys in `comment_out`.
///
/// See the module notes for where lines go; the result of a second call on the
/// output is identical to the output.
pub fn edit(old: &str, owned: &[(&str, &str)], comment_out: &[&str]) -> String {
    let mut lines = split_lines(old);
    let mut appended: Vec<String> = Vec::new();
    for &(key, value) in owned {
        if let Some(line) = set_key(&mut lines, key, value.trim()) {
            appended.push(line);
        }
    }
    for &key in comment_out {
        if owned.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            continue;
        }
        for line in lines.iter_mut() {
            if parse_active(&line.body).is_some_and(|l| l.key.eq_ignore_ascii_case(key)) {
                line.body.insert(0, '#');
            }
        }
    }
    if !appended.is_empty() {
        append_block(&mut lines, appended);
    }
    lines
        .iter()
        .map(|l| format!("{}{}", l.body, l.eol))
        .collect()
}

/// Formats a new `Key<tabs>value` line whose value starts at column 24 when the key
/// is short enough, with at least one tab.
pub fn format_line(key: &str, value: &str) -> String {
    format!("{key}{}{value}", padding(key.chars().count()))
}

/// Tabs that take a line from column `width` to the value column (at least one).
fn padding(width: usize) -> String {
    let mut tabs = String::from("\t");
    let mut column = (width / 8 + 1) * 8;
    while column < VALUE_COLUMN {
        tabs.push('\t');
        column += 8;
    }
    tabs
}

struct Line {
    body: String,
    eol: &'static str,
}

/// Splits text into lines, remembering each ending ("\n", "\r\n" or none at the end).
fn split_lines(text: &str) -> Vec<Line> {
    text.split_inclusive('\n')
        .map(|piece| {
            if let Some(body) = piece.strip_suffix("\r\n") {
                Line {
                    body: body.to_string(),
                    eol: "\r\n",
                }
            } else if let Some(body) = piece.strip_suffix('\n') {
                Line {
                    body: body.to_string(),
                    eol: "\n",
                }
            } else {
                Line {
                    body: piece.to_string(),
                    eol: "",
                }
            }
        })
        .collect()
}

/// The parts of an active (not comment, not blank) line.
struct Active<'a> {
    /// Leading whitespace, key and the whitespace after it: kept on rewrite.
    head_len: usize,
    key: &'a str,
    value: &'a str,
}

fn parse_active(body: &str) -> Option<Active<'_>> {
    let indent = body.len() - body.trim_start().len();
    let rest = &body[indent..];
    if rest.trim().is_empty() || rest.starts_with('#') {
        return None;
    }
    let key_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let after_key = &rest[key_len..];
    let gap = after_key.len() - after_key.trim_start().len();
    Some(Active {
        head_len: indent + key_len + gap,
        key: &rest[..key_len],
        value: &after_key[gap..],
    })
}

/// True for a commented-out setting of `key`: one `#`, optional blanks, the key,
/// blanks, then a value (`#Mode\t\t\tsv`, `# KeyTable\t/etc/opendkim/KeyTable`).
/// `##` prose lines of the RHEL file never match.
fn is_commented_setting(body: &str, key: &str) -> bool {
    let Some(rest) = body.trim_start().strip_prefix('#') else {
        return false;
    };
    let rest = rest.trim_start();
    if rest.starts_with('#') {
        return false;
    }
    parse_active(rest).is_some_and(|l| l.key.eq_ignore_ascii_case(key) && !l.value.is_empty())
}

/// Applies one owned key; returns the line to append when there is no place for it.
fn set_key(lines: &mut Vec<Line>, key: &str, value: &str) -> Option<String> {
    let mut found = false;
    for line in lines.iter_mut() {
        let Some(active) = parse_active(&line.body) else {
            continue;
        };
        if !active.key.eq_ignore_ascii_case(key) {
            continue;
        }
        if found {
            line.body.insert(0, '#');
            continue;
        }
        found = true;
        if active.value.trim() != value {
            let head = if active.head_len == active.key.len() {
                // A bare key without value: give it our spacing.
                format!("{}{}", active.key, padding(active.key.chars().count()))
            } else {
                line.body[..active.head_len].to_string()
            };
            line.body = format!("{head}{value}");
        }
    }
    if found {
        return None;
    }
    let new_line = format_line(key, value);
    let Some(at) = lines
        .iter()
        .rposition(|l| is_commented_setting(&l.body, key))
    else {
        return Some(new_line);
    };
    let eol = line_ending(lines);
    if lines[at].eol.is_empty() {
        lines[at].eol = eol;
    }
    lines.insert(
        at + 1,
        Line {
            body: new_line,
            eol,
        },
    );
    None
}

/// The line ending the file mostly uses (CRLF only if its first line has one).
fn line_ending(lines: &[Line]) -> &'static str {
    match lines.first() {
        Some(first) if first.eol == "\r\n" => "\r\n",
        _ => "\n",
    }
}

/// Appends lines to the `# Added by dkim-setup` block, creating it when missing.
fn append_block(lines: &mut Vec<Line>, new_lines: Vec<String>) {
    let eol = line_ending(lines);
    if let Some(last) = lines.last_mut()
        && last.eol.is_empty()
    {
        last.eol = eol;
    }
    let marker = lines.iter().position(|l| l.body.trim_end() == ADDED_MARKER);
    let at = match marker {
        Some(start) => {
            let mut end = start + 1;
            while end < lines.len() && !lines[end].body.trim().is_empty() {
                end += 1;
            }
            end
        }
        None => {
            if lines.last().is_some_and(|l| !l.body.trim().is_empty()) {
                lines.push(Line {
                    body: String::new(),
                    eol,
                });
            }
            lines.push(Line {
                body: ADDED_MARKER.to_string(),
                eol,
            });
            lines.len()
        }
    };
    for (offset, body) in new_lines.into_iter().enumerate() {
        lines.insert(at + offset, Line { body, eol });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str =
        include_str!("../../tests/fixtures/edits/opendkim_conf_debian12/before.conf");
    const DEBIAN_AFTER: &str =
        include_str!("../../tests/fixtures/edits/opendkim_conf_debian12/after.conf");
    const RHEL: &str = include_str!("../../tests/fixtures/edits/opendkim_conf_rhel/before.conf");
    const RHEL_AFTER: &str =
        include_str!("../../tests/fixtures/edits/opendkim_conf_rhel/after.conf");
    const TABLES: &str =
        include_str!("../../tests/fixtures/edits/opendkim_conf_b01_b02/before.conf");
    const TABLES_AFTER: &str =
        include_str!("../../tests/fixtures/edits/opendkim_conf_b01_b02/after.conf");

    const OWNED: &[(&str, &str)] = &[
        ("Mode", "sv"),
        ("Socket", "inet:8891@127.0.0.1"),
        ("UserID", "opendkim"),
        ("UMask", "007"),
        ("PidFile", "/run/opendkim/opendkim.pid"),
        ("KeyTable", "/etc/opendkim/KeyTable"),
        ("SigningTable", "refile:/etc/opendkim/SigningTable"),
        ("ExternalIgnoreList", "refile:/etc/opendkim/TrustedHosts"),
        ("InternalHosts", "refile:/etc/opendkim/TrustedHosts"),
    ];
    const COMMENT_OUT: &[&str] = &["KeyFile", "Selector", "Domain"];

    fn run(text: &str) -> String {
        edit(text, OWNED, COMMENT_OUT)
    }

    /// Asserts the fixture result and that a second pass is byte-identical.
    fn check_fixture(before: &str, after: &str) -> String {
        let once = run(before);
        assert_eq!(once, after);
        assert_eq!(run(&once), once, "second edit must change nothing");
        once
    }

    fn assert_owned_values(text: &str) {
        for (key, value) in OWNED {
            assert_eq!(get_all(text, key), vec![value.to_string()], "{key}");
        }
        for key in COMMENT_OUT {
            assert!(get_all(text, key).is_empty(), "{key}");
        }
    }

    #[test]
    fn debian_default_fixture() {
        let out = check_fixture(DEBIAN, DEBIAN_AFTER);
        assert_owned_values(&out);
        // Settings we do not own survive.
        assert_eq!(
            get(&out, "TrustAnchorFile").as_deref(),
            Some("/usr/share/dns/root.key")
        );
        assert_eq!(get(&out, "OversignHeaders").as_deref(), Some("From"));
        assert!(out.contains("#Socket\t\t\tlocal:/var/spool/postfix/opendkim/opendkim.sock\n"));
        assert!(out.contains("#Mode\t\t\tsv\nMode\t\t\tsv\n"));
    }

    #[test]
    fn rhel_default_fixture() {
        let out = check_fixture(RHEL, RHEL_AFTER);
        assert_owned_values(&out);
        assert!(out.contains("\nMode\tsv\n"));
        assert!(out.contains("\n#KeyFile\t/etc/opendkim/keys/default.private\n"));
        assert!(out.contains("\n#Selector\tdefault\n"));
        // The original key spelling is kept.
        assert!(out.contains("\nUmask\t007\n"));
        assert_eq!(get(&out, "MinimumKeyBits").as_deref(), Some("1024"));
    }

    #[test]
    fn b01_b02_table_dataset_types_fixture() {
        assert_eq!(
            get(TABLES, "SigningTable").as_deref(),
            Some("/etc/opendkim/SigningTable")
        );
        assert_eq!(
            get(TABLES, "KeyTable").as_deref(),
            Some("refile:/etc/opendkim/KeyTable")
        );
        let out = check_fixture(TABLES, TABLES_AFTER);
        assert_eq!(
            get(&out, "SigningTable").as_deref(),
            Some("refile:/etc/opendkim/SigningTable")
        );
        assert_eq!(
            get(&out, "KeyTable").as_deref(),
            Some("/etc/opendkim/KeyTable")
        );
    }

    #[test]
    fn file_prefixed_signing_table_becomes_refile() {
        let old = "SigningTable  file:/etc/opendkim/SigningTable\n";
        let out = edit(
            old,
            &[("SigningTable", "refile:/etc/opendkim/SigningTable")],
            &[],
        );
        assert_eq!(out, "SigningTable  refile:/etc/opendkim/SigningTable\n");
    }

    #[test]
    fn two_active_socket_lines_become_one() {
        let old = "Socket\t\t\tlocal:/run/opendkim/opendkim.sock\nUMask 007\n\
                   Socket inet:8891@localhost\n";
        let out = edit(old, &[("Socket", "inet:8891@127.0.0.1")], &[]);
        assert_eq!(
            out,
            "Socket\t\t\tinet:8891@127.0.0.1\nUMask 007\n#Socket inet:8891@localhost\n"
        );
        assert_eq!(
            get_all(&out, "socket"),
            vec!["inet:8891@127.0.0.1".to_string()]
        );
        assert_eq!(edit(&out, &[("Socket", "inet:8891@127.0.0.1")], &[]), out);
    }

    #[test]
    fn right_value_on_first_line_still_comments_out_later_ones() {
        let old = "Socket inet:8891@127.0.0.1\nSocket local:/x\n";
        let out = edit(old, &[("Socket", "inet:8891@127.0.0.1")], &[]);
        assert_eq!(out, "Socket inet:8891@127.0.0.1\n#Socket local:/x\n");
    }

    #[test]
    fn keys_match_case_insensitively_and_keep_their_spelling() {
        let old = "  socket   local:/x   \n";
        let out = edit(old, &[("Socket", "inet:8891@127.0.0.1")], &[]);
        assert_eq!(out, "  socket   inet:8891@127.0.0.1\n");
    }

    #[test]
    fn line_with_right_value_and_trailing_blanks_is_untouched() {
        let old = "Mode\tsv  \n";
        assert_eq!(edit(old, &[("Mode", "sv")], &[]), old);
    }

    #[test]
    fn inline_comment_is_part_of_the_value_and_gets_replaced() {
        let old = "SigningTable  /etc/opendkim/SigningTable        # no refile:\n";
        assert_eq!(
            get(old, "SigningTable").as_deref(),
            Some("/etc/opendkim/SigningTable        # no refile:")
        );
        let out = edit(
            old,
            &[("SigningTable", "refile:/etc/opendkim/SigningTable")],
            &[],
        );
        assert_eq!(out, "SigningTable  refile:/etc/opendkim/SigningTable\n");
    }

    #[test]
    fn missing_key_goes_after_last_commented_example() {
        let old = "# Socket for the MTA\n#Socket inet:1@a\nX 1\n#Socket\tlocal:/b\n\nY 2\n";
        let out = edit(old, &[("Socket", "inet:8891@127.0.0.1")], &[]);
        assert_eq!(
            out,
            "# Socket for the MTA\n#Socket inet:1@a\nX 1\n#Socket\tlocal:/b\n\
             Socket\t\t\tinet:8891@127.0.0.1\n\nY 2\n"
        );
    }

    #[test]
    fn double_hash_prose_is_not_an_example() {
        let old = "##  Mode selects operating modes\nX 1\n";
        let out = edit(old, &[("Mode", "sv")], &[]);
        assert_eq!(
            out,
            "##  Mode selects operating modes\nX 1\n\n# Added by dkim-setup\nMode\t\t\tsv\n"
        );
    }

    #[test]
    fn missing_keys_are_appended_in_one_block_that_is_reused() {
        let old = "Syslog yes";
        let out = edit(
            old,
            &[("KeyTable", "/k"), ("SigningTable", "refile:/s")],
            &[],
        );
        assert_eq!(
            out,
            "Syslog yes\n\n# Added by dkim-setup\nKeyTable\t\t/k\nSigningTable\t\trefile:/s\n"
        );
        let more = format!("{out}\n# user's own\nLogWhy yes\n");
        let out2 = edit(&more, &[("ExternalIgnoreList", "refile:/t")], &[]);
        assert_eq!(
            out2,
            "Syslog yes\n\n# Added by dkim-setup\nKeyTable\t\t/k\nSigningTable\t\trefile:/s\n\
             ExternalIgnoreList\trefile:/t\n\n# user's own\nLogWhy yes\n"
        );
        assert_eq!(
            edit(&out2, &[("ExternalIgnoreList", "refile:/t")], &[]),
            out2
        );
    }

    #[test]
    fn empty_file_gets_only_the_block() {
        let out = edit("", &[("Mode", "sv")], &[]);
        assert_eq!(out, "# Added by dkim-setup\nMode\t\t\tsv\n");
    }

    #[test]
    fn comment_out_only_touches_active_lines() {
        let old = "KeyFile /a\n#KeyFile /b\nselector s\nDomainKeys x\n";
        let out = edit(old, &[], &["KeyFile", "Selector", "Domain"]);
        assert_eq!(out, "#KeyFile /a\n#KeyFile /b\n#selector s\nDomainKeys x\n");
        assert_eq!(edit(&out, &[], &["KeyFile", "Selector", "Domain"]), out);
    }

    #[test]
    fn owned_key_wins_over_comment_out() {
        let out = edit("Mode v\n", &[("Mode", "sv")], &["Mode"]);
        assert_eq!(out, "Mode sv\n");
    }

    #[test]
    fn bare_key_without_value_gets_a_value() {
        assert_eq!(edit("Mode\n", &[("Mode", "sv")], &[]), "Mode\t\t\tsv\n");
    }

    #[test]
    fn crlf_file_keeps_its_endings() {
        let old = "Mode v\r\n#Socket inet:1\r\n";
        let out = edit(
            old,
            &[("Mode", "sv"), ("Socket", "inet:2"), ("UMask", "007")],
            &[],
        );
        assert_eq!(
            out,
            "Mode sv\r\n#Socket inet:1\r\nSocket\t\t\tinet:2\r\n\r\n# Added by dkim-setup\r\n\
             UMask\t\t\t007\r\n"
        );
    }

    #[test]
    fn format_line_aligns_values_at_column_24() {
        assert_eq!(format_line("Mode", "sv"), "Mode\t\t\tsv");
        assert_eq!(format_line("KeyTable", "/k"), "KeyTable\t\t/k");
        assert_eq!(format_line("SigningTable", "/s"), "SigningTable\t\t/s");
        assert_eq!(format_line("InternalHosts", "/t"), "InternalHosts\t\t/t");
        assert_eq!(
            format_line("ExternalIgnoreList", "/t"),
            "ExternalIgnoreList\t/t"
        );
        assert_eq!(
            format_line("AVeryLongKeyNameIndeed12", "x"),
            "AVeryLongKeyNameIndeed12\tx"
        );
    }

    #[test]
    fn get_returns_last_active_value() {
        let text = "Socket a\n#Socket b\n  Socket   c  \nSocketX d\n";
        assert_eq!(get(text, "SOCKET").as_deref(), Some("c"));
        assert_eq!(
            get_all(text, "socket"),
            vec!["a".to_string(), "c".to_string()]
        );
        assert_eq!(get(text, "Mode"), None);
    }

    fn single(text: &str) -> Option<SingleKey> {
        single_key(text).expect("carried")
    }

    #[test]
    fn single_key_reads_a_literal_domain_list() {
        let text = "Domain\tOther.org, b.example  c.example,other.org\nSelector Mail\n\
                    KeyFile\t/etc/dkimkeys/mail.private\n";
        assert_eq!(
            single(text),
            Some(SingleKey {
                key_file: "/etc/dkimkeys/mail.private".to_string(),
                selector: "mail".to_string(),
                domains: vec!["other.org".into(), "b.example".into(), "c.example".into()],
            })
        );
        // The last active line is the one opendkim uses; comments do not count.
        let text =
            "Domain a.example\nDomain b.example\n#Domain c.example\nSelector s\nKeyFile /k\n";
        assert_eq!(single(text).unwrap().domains, vec!["b.example"]);
    }

    #[test]
    fn single_key_is_nothing_without_domain_or_beside_a_key_table() {
        // RHEL's packaged file: KeyFile and Selector sign nothing without Domain.
        assert_eq!(single(RHEL), None);
        assert_eq!(single(DEBIAN), None);
        assert_eq!(single("KeyFile /k\nSelector s\n"), None);
        // opendkim ignores the three beside a KeyTable.
        assert_eq!(
            single("KeyTable /etc/opendkim/KeyTable\nDomain a.example\n"),
            None
        );
        // Once commented out (a second run), there is nothing left to carry.
        let out = run("Domain a.example\nSelector s\nKeyFile /k\n");
        assert_eq!(single(&out), None);
    }

    #[test]
    fn single_key_refuses_what_it_would_have_to_guess() {
        let refused = |text: &str| single_key(text).expect_err(text);
        for domain in [
            "/etc/opendkim/domains",
            "file:/etc/opendkim/domains",
            "refile:/etc/opendkim/domains",
            "csl:a.example,b.example",
            "a.example, /etc/more",
        ] {
            let e = refused(&format!("Domain {domain}\nSelector s\nKeyFile /k\n"));
            assert!(e.why.contains("data set"), "{domain}: {e:?}");
            assert_eq!(
                e.lines,
                vec!["KeyFile /k", "Selector s", &format!("Domain {domain}")]
            );
        }
        let e = refused("Domain a.example\nKeyFile /k\n");
        assert_eq!(e.lines, vec!["KeyFile /k", "Domain a.example"]);
        assert!(e.why.contains("'Selector' is missing"), "{e:?}");
        let e = refused("Domain a.example\n");
        assert!(
            e.why.contains("'KeyFile' and 'Selector' is missing"),
            "{e:?}"
        );
        let e = refused("Domain\nSelector s\nKeyFile /k\n");
        assert!(e.why.contains("names no domain"), "{e:?}");
        let e = refused("Domain localhost\nSelector s\nKeyFile /k\n");
        assert!(e.why.contains("invalid domain 'localhost'"), "{e:?}");
        let e = refused("Domain a.example\nSelector s\nKeyFile keys/k\n");
        assert!(e.why.contains("'KeyFile keys/k'"), "{e:?}");
        let e = refused("Domain a.example\nSelector s.\nKeyFile /k\n");
        assert!(e.why.contains("invalid selector"), "{e:?}");
    }
}
