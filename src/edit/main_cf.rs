//! Reads and edits Postfix `main.cf` the way `postconf -e` does, as pure text.
//!
//! A parameter is a logical line: it starts at column 0 with `name = value`, and
//! every following line that starts with whitespace continues it. As Postfix's
//! own reader does (postconf(5): "Blank lines and comments are ignored"), blank
//! lines and lines whose first non-blank character is `#` are skipped *without*
//! ending the logical line: an indented line after a comment still continues the
//! parameter above the comment. The last definition wins, and Postfix only warns
//! about the earlier ones, so `set` replaces the first definition in place and
//! comments out the others instead of appending a duplicate (platform note P6).
//! Comment and blank lines inside a replaced definition stay where they are.
//!
//! Milter lists get their own merge (field cases B10, B11): the OpenDKIM address
//! is added once, ahead of an OpenDMARC milter or else at the front, and every
//! other entry (rspamd, clamav, `$name` indirections, `{ ... }` groups) is kept
//! in its order. A list that already holds our address is returned unchanged, so
//! a second run leaves `main.cf` byte-identical.
//!
//! "Our address" is any spelling Postfix connects to the same socket with
//! ([`Paths::same_milter`]): `local:` and `unix:` are synonyms, a unix path is
//! read from the queue directory (inside its chroot when smtpd or cleanup runs
//! chrooted), and loopback TCP names are one listener.

/// Value of the last definition of `name`, continuation lines joined with single
/// spaces, trimmed.
pub fn get(text: &str, name: &str) -> Option<String> {
    let lines = split_lines(text);
    let defs = logical_lines(&lines);
    let def = defs.iter().rev().find(|d| d.name == Some(name))?;
    Some(joined_value(&lines, def))
}

/// Sets `name = value` like `postconf -e` (see the module notes); text that already
/// has exactly one definition with this value comes back byte-identical.
pub fn set(text: &str, name: &str, value: &str) -> String {
    let value = value.trim();
    let lines = split_lines(text);
    let defs = logical_lines(&lines);
    let ours: Vec<&Definition> = defs.iter().filter(|d| d.name == Some(name)).collect();
    let Some(first) = ours.first() else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{name} = {value}\n"));
        return out;
    };
    if ours.len() == 1 && normalise(&joined_value(&lines, first)) == normalise(value) {
        return text.to_string();
    }
    let mut bodies: Vec<Option<String>> = lines.iter().map(|l| Some(l.body.to_string())).collect();
    bodies[first.start] = Some(format!("{name} = {value}"));
    for &line in &first.continuations {
        bodies[line] = None;
    }
    for def in &ours[1..] {
        for line in std::iter::once(def.start).chain(def.continuations.iter().copied()) {
            if let Some(body) = bodies[line].as_mut() {
                body.insert(0, '#');
            }
        }
    }
    let mut out = String::with_capacity(text.len() + value.len());
    for (line, body) in lines.iter().zip(bodies) {
        if let Some(body) = body {
            out.push_str(&body);
            out.push_str(line.eol);
        }
    }
    out
}

/// How Postfix's milter clients (smtpd for `smtpd_milters`, cleanup for
/// `non_smtpd_milters`) read a unix socket path: from the queue directory,
/// chrooted there or not (master.cf).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// `queue_directory`, absolute.
    pub queue_dir: String,
    /// True when smtpd or cleanup runs chrooted in the queue directory.
    pub chrooted: bool,
}

impl Paths {
    pub fn new(queue_dir: &str, chrooted: bool) -> Self {
        Paths {
            queue_dir: queue_dir.to_string(),
            chrooted,
        }
    }

    /// True when Postfix milter addresses `a` and `b` reach the same listener:
    /// equal; the same TCP port on loopback spelled differently
    /// (`inet:localhost:8891`, `inet:[::1]:8891`, `inet:127.0.0.1:8891`); or
    /// `unix:`/`local:` paths that name the same file as Postfix reads them.
    pub fn same_milter(&self, a: &str, b: &str) -> bool {
        let (a, b) = (a.trim(), b.trim());
        if a == b {
            return true;
        }
        if let (Some(pa), Some(pb)) = (self.unix_path(a), self.unix_path(b)) {
            return pa == pb;
        }
        let inet = |s: &str| {
            let rest = s.strip_prefix("inet:")?;
            let (host, port) = rest.rsplit_once(':')?;
            Some((
                host.trim_matches(|c| c == '[' || c == ']').to_string(),
                port.parse::<u16>().ok()?,
            ))
        };
        let loopback = |h: &str| matches!(h, "localhost" | "127.0.0.1" | "::1");
        match (inet(a), inet(b)) {
            (Some((ha, pa)), Some((hb, pb))) => pa == pb && loopback(&ha) && loopback(&hb),
            _ => false,
        }
    }

    /// The file a `unix:` or `local:` milter address names, as seen from
    /// outside the chroot; None for other types or an empty path. Postfix
    /// daemons work in the queue directory, so a relative path is below it;
    /// chrooted there, an absolute one is too (`..` stops at the chroot).
    pub fn unix_path(&self, address: &str) -> Option<String> {
        let path = address
            .strip_prefix("unix:")
            .or_else(|| address.strip_prefix("local:"))?;
        if path.is_empty() {
            return None;
        }
        let queue = lexical(&self.queue_dir);
        Some(match (self.chrooted, path.starts_with('/')) {
            (true, _) => {
                let inner = lexical(path);
                format!("{}{}", queue.trim_end_matches('/'), inner)
            }
            (false, true) => lexical(path),
            (false, false) => lexical(&format!("{queue}/{path}")),
        })
    }
}

/// `path` made absolute from `/`, without empty and `.` components, each
/// `..` taking the one before it away (never above `/`).
fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// opendkim's milter address as dkim-setup writes it, and how Postfix reads
/// paths, to know it under the user's other spellings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ours {
    pub address: String,
    pub paths: Paths,
}

impl Ours {
    pub fn new(address: &str, paths: Paths) -> Self {
        Ours {
            address: address.trim().to_string(),
            paths,
        }
    }

    /// True when milter `address` reaches opendkim ([`Paths::same_milter`]).
    pub fn is(&self, address: &str) -> bool {
        self.paths.same_milter(address, &self.address)
    }
}

/// The new milter list value with `ours` merged into `current` (see the module notes).
pub fn merge_milters(current: Option<&str>, ours: &Ours) -> String {
    let Some(current) = current.filter(|c| !c.trim().is_empty()) else {
        return ours.address.clone();
    };
    let mut entries = split_list(current);
    if entries.iter().any(|e| ours.is(&milter_address(e))) {
        return current.to_string();
    }
    let at = entries.iter().position(|e| is_opendmarc(e)).unwrap_or(0);
    entries.insert(at, ours.address.clone());
    entries.join(", ")
}

/// The new value of milter list `name` in `text`: [`merge_milters`] on its current
/// value, except that a list which already reaches `ours` through `$name`
/// references (`non_smtpd_milters = $smtpd_milters`) is returned unchanged.
pub fn merged_milter_value(text: &str, name: &str, ours: &Ours) -> String {
    let current = get(text, name);
    if let Some(current) = &current
        && effective_milters(text, name).iter().any(|a| ours.is(a))
    {
        return current.clone();
    }
    merge_milters(current.as_deref(), ours)
}

/// Splits a milter list at commas and whitespace; a `{ ... }` group, `$name` and
/// `${name}` are single entries.
pub fn split_list(value: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && (c == ',' || c.is_whitespace()) {
            if !current.is_empty() {
                entries.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        entries.push(current);
    }
    entries
}

/// The milter address of a list entry: the entry itself, or the first item of a
/// `{ address, option=value, ... }` group.
pub fn milter_address(entry: &str) -> String {
    let entry = entry.trim();
    match entry.strip_prefix('{').and_then(|e| e.strip_suffix('}')) {
        Some(inner) => split_list(inner).into_iter().next().unwrap_or_default(),
        None => entry.to_string(),
    }
}

/// True for an entry that looks like OpenDMARC: "opendmarc" in it, or port 8893.
pub fn is_opendmarc(entry: &str) -> bool {
    let address = milter_address(entry);
    address.to_ascii_lowercase().contains("opendmarc") || address.ends_with(":8893")
}

/// The milter addresses `name` ends up with, following `$name` and `${name}`
/// references through `text` (a parameter that is not defined counts as empty,
/// which is the Postfix default of every milter list).
pub fn effective_milters(text: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut visiting = vec![name.to_string()];
    expand_into(text, name, &mut visiting, &mut out);
    out
}

/// The value that makes list `name` reach `ours` only once, or None when it
/// already does (or never does). The first entry that reaches `ours` stays and
/// every other milter keeps its place: a later literal `ours` goes, and a later
/// `$name` reference that reaches `ours` again gives way to its own entries,
/// treated the same way (`$a, $a` with `a = ours` becomes `$a`). A reference
/// whose value holds an unclosed `{` group, which Postfix refuses, stays.
pub fn reach_once(text: &str, name: &str, ours: &Ours) -> Option<String> {
    let reached = effective_milters(text, name);
    if reached.iter().filter(|a| ours.is(a)).count() < 2 {
        return None;
    }
    let entries = split_list(&get(text, name)?);
    let mut out = Vec::new();
    let mut seen = false;
    let mut path = vec![name.to_string()];
    once_into(text, ours, entries.clone(), &mut path, &mut seen, &mut out);
    (out != entries).then(|| out.join(", "))
}

/// [`reach_once`] over `entries`, met below the references in `path` (the list
/// itself first); `seen` tells whether an earlier entry reached `ours`.
fn once_into(
    text: &str,
    ours: &Ours,
    entries: Vec<String>,
    path: &mut Vec<String>,
    seen: &mut bool,
    out: &mut Vec<String>,
) {
    for entry in entries {
        let Some(inner) = reference(&entry).map(str::to_string) else {
            let is_ours = ours.is(&milter_address(&entry));
            if !(is_ours && *seen) {
                *seen |= is_ours;
                out.push(entry);
            }
            continue;
        };
        if path.contains(&inner) {
            // A loop reaches nothing here; spliced into the list, it would.
            if path.len() == 1 {
                out.push(entry);
            }
            continue;
        }
        // What the reference reaches once it stands in the list itself.
        let mut reached = Vec::new();
        let mut visiting = vec![path[0].clone(), inner.clone()];
        expand_into(text, &inner, &mut visiting, &mut reached);
        let count = reached.iter().filter(|a| ours.is(a)).count();
        let own = split_list(&get(text, &inner).unwrap_or_default());
        if count == 0 || (count == 1 && !*seen) || !own.iter().all(|e| is_closed(e)) {
            *seen |= count > 0;
            out.push(entry);
            continue;
        }
        path.push(inner);
        once_into(text, ours, own, path, seen, out);
        path.pop();
    }
}

/// False for an entry with a `{` or `(` that is never closed; split_list makes
/// it swallow every entry after it.
fn is_closed(entry: &str) -> bool {
    let mut depth = 0usize;
    for c in entry.chars() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth == 0
}

fn expand_into(text: &str, name: &str, visiting: &mut Vec<String>, out: &mut Vec<String>) {
    let Some(value) = get(text, name) else {
        return;
    };
    for entry in split_list(&value) {
        match reference(&entry) {
            Some(inner) if !visiting.iter().any(|v| v == inner) => {
                visiting.push(inner.to_string());
                expand_into(text, inner, visiting, out);
                visiting.pop();
            }
            Some(_) => {}
            None => out.push(milter_address(&entry)),
        }
    }
}

/// The parameter name of a plain `$name` or `${name}` / `$(name)` entry.
/// The parameter a `$name`, `${name}` or `$(name)` list entry refers to.
pub fn reference(entry: &str) -> Option<&str> {
    let rest = entry.strip_prefix('$')?;
    let inner = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .or_else(|| rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')))
        .unwrap_or(rest);
    let plain = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then_some(inner)
}

fn normalise(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Line<'a> {
    body: &'a str,
    eol: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|piece| {
            let body = piece
                .strip_suffix("\r\n")
                .or_else(|| piece.strip_suffix('\n'))
                .unwrap_or(piece);
            Line {
                body,
                eol: &piece[body.len()..],
            }
        })
        .collect()
}

/// One logical line: its first line and its continuation lines (comments and
/// blank lines in between are not part of it).
struct Definition<'a> {
    /// The parameter name, or None for a line without `=`.
    name: Option<&'a str>,
    start: usize,
    continuations: Vec<usize>,
}

fn is_ignored(body: &str) -> bool {
    let trimmed = body.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#')
}

fn logical_lines<'a>(lines: &[Line<'a>]) -> Vec<Definition<'a>> {
    let mut defs: Vec<Definition<'a>> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if is_ignored(line.body) {
            continue;
        }
        if line.body.starts_with([' ', '\t']) {
            // A continuation before any logical line belongs to nothing.
            if let Some(def) = defs.last_mut() {
                def.continuations.push(index);
            }
            continue;
        }
        let name = line.body.split_once('=').map(|(n, _)| n.trim());
        defs.push(Definition {
            name,
            start: index,
            continuations: Vec::new(),
        });
    }
    defs
}

fn joined_value(lines: &[Line<'_>], def: &Definition<'_>) -> String {
    let first = lines[def.start].body.split_once('=').map_or("", |(_, v)| v);
    std::iter::once(first)
        .chain(def.continuations.iter().map(|&i| lines[i].body))
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../../tests/fixtures/edits/main_cf_debian12/before.cf");
    const DEBIAN_AFTER: &str = include_str!("../../tests/fixtures/edits/main_cf_debian12/after.cf");
    const DMARC: &str = include_str!("../../tests/fixtures/edits/main_cf_dmarc_clamav/before.cf");
    const DMARC_AFTER: &str =
        include_str!("../../tests/fixtures/edits/main_cf_dmarc_clamav/after.cf");

    const OURS: &str = "inet:127.0.0.1:8891";

    fn ours() -> Ours {
        Ours::new(OURS, Paths::new("/var/spool/postfix", false))
    }

    /// What the wizard does to main.cf: the two milter settings and both lists.
    fn wire(text: &str) -> String {
        let text = set(text, "milter_default_action", "accept");
        let text = set(&text, "milter_protocol", "6");
        let smtpd = merged_milter_value(&text, "smtpd_milters", &ours());
        let text = set(&text, "smtpd_milters", &smtpd);
        let non_smtpd = match get(&text, "non_smtpd_milters") {
            None => "$smtpd_milters".to_string(),
            Some(_) => merged_milter_value(&text, "non_smtpd_milters", &ours()),
        };
        set(&text, "non_smtpd_milters", &non_smtpd)
    }

    #[test]
    fn debian_default_fixture() {
        let once = wire(DEBIAN);
        assert_eq!(once, DEBIAN_AFTER);
        assert_eq!(wire(&once), once, "second pass must change nothing");
        assert_eq!(get(&once, "smtpd_milters").as_deref(), Some(OURS));
        assert_eq!(
            get(&once, "non_smtpd_milters").as_deref(),
            Some("$smtpd_milters")
        );
        assert_eq!(
            effective_milters(&once, "non_smtpd_milters"),
            vec![OURS.to_string()]
        );
    }

    #[test]
    fn dmarc_and_clamav_fixture_with_continuation_lines() {
        assert_eq!(
            get(DMARC, "smtpd_milters").as_deref(),
            Some("inet:127.0.0.1:8893, unix:clamav/clamav-milter.ctl")
        );
        let once = wire(DMARC);
        assert_eq!(once, DMARC_AFTER);
        assert_eq!(wire(&once), once, "second pass must change nothing");
        assert_eq!(
            split_list(&get(&once, "smtpd_milters").unwrap()),
            vec![OURS, "inet:127.0.0.1:8893", "unix:clamav/clamav-milter.ctl"]
        );
        assert_eq!(once.matches(":8891").count(), 2);
    }

    #[test]
    fn merge_puts_opendkim_before_opendmarc() {
        assert_eq!(
            merge_milters(Some("inet:127.0.0.1:8893"), &ours()),
            "inet:127.0.0.1:8891, inet:127.0.0.1:8893"
        );
        assert_eq!(
            merge_milters(
                Some("inet:localhost:11332 unix:opendmarc/opendmarc.sock"),
                &ours()
            ),
            "inet:localhost:11332, inet:127.0.0.1:8891, unix:opendmarc/opendmarc.sock"
        );
        assert_eq!(
            merge_milters(Some("$dkim_milter,inet:[::1]:8893"), &ours()),
            "$dkim_milter, inet:127.0.0.1:8891, inet:[::1]:8893"
        );
    }

    #[test]
    fn merge_puts_opendkim_first_without_opendmarc() {
        assert_eq!(
            merge_milters(Some("inet:localhost:11332"), &ours()),
            "inet:127.0.0.1:8891, inet:localhost:11332"
        );
        assert_eq!(
            merge_milters(Some("unix:clamav/clamav-milter.ctl"), &ours()),
            "inet:127.0.0.1:8891, unix:clamav/clamav-milter.ctl"
        );
        assert_eq!(
            merge_milters(Some("$smtpd_milters"), &ours()),
            "inet:127.0.0.1:8891, $smtpd_milters"
        );
    }

    #[test]
    fn merge_of_empty_is_ours() {
        assert_eq!(merge_milters(None, &ours()), OURS);
        assert_eq!(merge_milters(Some("  "), &ours()), OURS);
    }

    #[test]
    fn merge_is_a_no_op_when_already_present() {
        for current in [
            "inet:127.0.0.1:8891",
            "inet:127.0.0.1:8891,inet:127.0.0.1:8893",
            "inet:localhost:11332   inet:127.0.0.1:8891",
            "{ inet:127.0.0.1:8891, connect_timeout=10s, default_action=accept }, $x",
        ] {
            assert_eq!(merge_milters(Some(current), &ours()), current);
        }
        let once = merge_milters(Some("inet:127.0.0.1:8893"), &ours());
        assert_eq!(merge_milters(Some(&once), &ours()), once);
    }

    #[test]
    fn merge_keeps_groups_whole() {
        let current = "{ inet:127.0.0.1:8893, default_action = tempfail }";
        assert_eq!(
            merge_milters(Some(current), &ours()),
            "inet:127.0.0.1:8891, { inet:127.0.0.1:8893, default_action = tempfail }"
        );
    }

    #[test]
    fn split_list_handles_separators_groups_and_references() {
        assert_eq!(
            split_list(" a, b  c,,\n\td ${x}, $y { e, f=1 },{g}"),
            vec!["a", "b", "c", "d", "${x}", "$y", "{ e, f=1 }", "{g}"]
        );
        assert!(split_list("").is_empty());
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn milter_address_and_opendmarc_detection() {
        assert_eq!(
            milter_address("{ inet:h:1, connect_timeout=10s }"),
            "inet:h:1"
        );
        assert_eq!(milter_address("unix:x"), "unix:x");
        assert!(is_opendmarc("unix:/run/OpenDMARC/opendmarc.sock"));
        assert!(is_opendmarc("{ inet:127.0.0.1:8893 }"));
        assert!(!is_opendmarc("inet:127.0.0.1:88930"));
        assert!(!is_opendmarc("inet:127.0.0.1:8891"));
    }

    #[test]
    fn get_follows_last_definition_and_continuations() {
        let text = "a = 1\n# a = 2\nb = x\n  y\n\n  # note\n\tz\na=3\nc =\n";
        assert_eq!(get(text, "a").as_deref(), Some("3"));
        assert_eq!(get(text, "b").as_deref(), Some("x y z"));
        assert_eq!(get(text, "c").as_deref(), Some(""));
        assert_eq!(get(text, "d"), None);
        assert_eq!(get(text, "A"), None, "names are case-sensitive");
    }

    #[test]
    fn set_leaves_equal_value_byte_identical() {
        let text = "smtpd_milters =\n    inet:127.0.0.1:8891,\n    inet:127.0.0.1:8893\n";
        assert_eq!(
            set(
                text,
                "smtpd_milters",
                "inet:127.0.0.1:8891, inet:127.0.0.1:8893"
            ),
            text
        );
        let spaced = "milter_protocol=6   \n";
        assert_eq!(set(spaced, "milter_protocol", "6"), spaced);
    }

    #[test]
    fn set_replaces_first_definition_and_comments_out_later_ones() {
        let text = "x = 1\nmilter_protocol = 2\n  (old)\nmid = 1\nmilter_protocol = 6\n  more\n";
        let out = set(text, "milter_protocol", "6");
        assert_eq!(
            out,
            "x = 1\nmilter_protocol = 6\nmid = 1\n#milter_protocol = 6\n#  more\n"
        );
        assert_eq!(set(&out, "milter_protocol", "6"), out);
        assert_eq!(get(&out, "milter_protocol").as_deref(), Some("6"));
    }

    #[test]
    fn set_keeps_comments_inside_a_replaced_definition() {
        let text = "smtpd_milters =\n  inet:a:1,\n# keep me\n\n  inet:b:2\nnext = 1\n";
        let out = set(text, "smtpd_milters", "inet:c:3");
        assert_eq!(out, "smtpd_milters = inet:c:3\n# keep me\n\nnext = 1\n");
    }

    #[test]
    fn set_appends_when_missing() {
        assert_eq!(set("", "a", "1"), "a = 1\n");
        assert_eq!(set("x = 1", "a", "1"), "x = 1\na = 1\n");
        assert_eq!(set("x = 1\n#a = 1\n", "a", "1"), "x = 1\n#a = 1\na = 1\n");
    }

    #[test]
    fn set_does_not_match_prefix_names() {
        let text = "smtpd_milters_x = 1\n";
        assert_eq!(
            set(text, "smtpd_milters", "2"),
            "smtpd_milters_x = 1\nsmtpd_milters = 2\n"
        );
    }

    #[test]
    fn set_keeps_crlf_endings_of_other_lines() {
        let text = "a = 1\r\nb = 2\r\n";
        assert_eq!(set(text, "a", "3"), "a = 3\r\nb = 2\r\n");
    }

    #[test]
    fn orphan_continuation_at_top_is_ignored() {
        let text = "  stray\na = 1\n";
        assert_eq!(get(text, "a").as_deref(), Some("1"));
        assert_eq!(set(text, "a", "2"), "  stray\na = 2\n");
    }

    #[test]
    fn merged_value_sees_through_references() {
        let text = "smtpd_milters = inet:127.0.0.1:8891\nnon_smtpd_milters = $smtpd_milters\n";
        assert_eq!(
            merged_milter_value(text, "non_smtpd_milters", &ours()),
            "$smtpd_milters"
        );
        assert_eq!(merged_milter_value(text, "smtpd_milters", &ours()), OURS);
        // A reference that does not reach us is kept, and we go in front.
        let text = "smtpd_milters = inet:localhost:11332\nnon_smtpd_milters = $smtpd_milters\n";
        assert_eq!(
            merged_milter_value(text, "non_smtpd_milters", &ours()),
            "inet:127.0.0.1:8891, $smtpd_milters"
        );
        assert_eq!(merged_milter_value("", "smtpd_milters", &ours()), OURS);
        // Plain merge_milters cannot see through `$smtpd_milters`: that is why this exists.
        assert_eq!(
            merge_milters(Some("$smtpd_milters"), &ours()),
            "inet:127.0.0.1:8891, $smtpd_milters"
        );
    }

    #[test]
    fn reach_once_keeps_the_first_reference_and_splices_later_ones() {
        let text = "a = inet:127.0.0.1:8891\nsmtpd_milters = $a $a\n";
        assert_eq!(
            reach_once(text, "smtpd_milters", &ours()).as_deref(),
            Some("$a")
        );
        let text = "a = inet:127.0.0.1:8891\nb = unix:rspamd, ${a}\n\
                    smtpd_milters = $a, $b, inet:127.0.0.1:8893\n";
        assert_eq!(
            reach_once(text, "smtpd_milters", &ours()).as_deref(),
            Some("$a, unix:rspamd, inet:127.0.0.1:8893")
        );
        // Once, never, or only through a loop: nothing to do.
        assert_eq!(reach_once(text, "b", &ours()), None);
        assert_eq!(
            reach_once("smtpd_milters = unix:x\n", "smtpd_milters", &ours()),
            None
        );
        assert_eq!(
            reach_once("smtpd_milters = $smtpd_milters\n", "smtpd_milters", &ours()),
            None
        );
        // An unclosed group cannot be spliced in.
        let text = "a = inet:127.0.0.1:8891\nb = inet:127.0.0.1:8891 {x\nm = $a $b\n";
        assert_eq!(reach_once(text, "m", &ours()), None);
    }

    /// opendkim at /var/spool/postfix/opendkim/opendkim.sock, as the wizard
    /// writes it for Postfix, with smtpd chrooted or not.
    fn unix_ours(chrooted: bool) -> Ours {
        Ours::new(
            "unix:opendkim/opendkim.sock",
            Paths::new("/var/spool/postfix", chrooted),
        )
    }

    #[test]
    fn same_milter_in_the_chroot_reads_every_path_from_the_queue_directory() {
        let chroot = Paths::new("/var/spool/postfix", true);
        for spelling in [
            "unix:/opendkim/opendkim.sock",
            "local:opendkim/opendkim.sock",
            "local:/opendkim/opendkim.sock",
            "unix:./opendkim//opendkim.sock",
            "unix:/../opendkim/opendkim.sock",
            " unix:opendkim/x/../opendkim.sock ",
        ] {
            assert!(
                chroot.same_milter(spelling, "unix:opendkim/opendkim.sock"),
                "{spelling}"
            );
            assert!(unix_ours(true).is(spelling), "{spelling}");
        }
        for other in [
            // Inside the chroot, this is /var/spool/postfix/var/spool/postfix/...
            "unix:/var/spool/postfix/opendkim/opendkim.sock",
            "unix:/run/opendkim/opendkim.sock",
            "unix:opendkim/opendkim.sock.old",
            "unix:opendkim",
            "unix:",
            "inet:127.0.0.1:8891",
            "opendkim/opendkim.sock",
        ] {
            assert!(!unix_ours(true).is(other), "{other}");
        }
        assert_eq!(
            chroot.unix_path("local:/opendkim/opendkim.sock").as_deref(),
            Some("/var/spool/postfix/opendkim/opendkim.sock")
        );
        let trailing = Paths::new("/var/spool/postfix/", true);
        assert!(trailing.same_milter("unix:/a.sock", "unix:a.sock"));
        assert_eq!(
            trailing.unix_path("unix:a.sock").as_deref(),
            Some("/var/spool/postfix/a.sock")
        );
    }

    #[test]
    fn same_milter_without_chroot_reads_relative_paths_from_the_queue_directory() {
        let plain = Paths::new("/var/spool/postfix", false);
        for spelling in [
            "unix:/var/spool/postfix/opendkim/opendkim.sock",
            "local:/var/spool/postfix/opendkim/opendkim.sock",
            "local:opendkim/opendkim.sock",
            "unix:/var/spool//postfix/./opendkim/opendkim.sock",
        ] {
            assert!(unix_ours(false).is(spelling), "{spelling}");
        }
        // Absolute means absolute outside a chroot.
        assert!(!unix_ours(false).is("unix:/opendkim/opendkim.sock"));
        assert!(plain.same_milter(
            "local:/run/opendkim/opendkim.sock",
            "unix:/run/opendkim/opendkim.sock"
        ));
        assert!(!plain.same_milter(
            "unix:run/opendkim/opendkim.sock",
            "unix:/run/opendkim/opendkim.sock"
        ));
    }

    #[test]
    fn same_milter_keeps_loopback_tcp_spellings_and_nothing_else() {
        for chrooted in [false, true] {
            let paths = Paths::new("/var/spool/postfix", chrooted);
            for spelling in [
                OURS,
                "inet:localhost:8891",
                "inet:[::1]:8891",
                "inet:::1:8891",
            ] {
                assert!(paths.same_milter(spelling, OURS), "{spelling}");
            }
            for other in [
                "inet:127.0.0.1:8892",
                "inet:192.0.2.1:8891",
                "inet:localhost:x",
                "unix:127.0.0.1:8891",
                "inet6:127.0.0.1:8891",
            ] {
                assert!(!paths.same_milter(other, OURS), "{other}");
            }
        }
    }

    #[test]
    fn a_unix_spelling_of_ours_is_neither_merged_again_nor_rewritten() {
        let ours = unix_ours(true);
        for current in [
            "unix:/opendkim/opendkim.sock",
            "local:opendkim/opendkim.sock, inet:127.0.0.1:8893",
            "{ local:/opendkim/opendkim.sock, default_action=accept }",
        ] {
            assert_eq!(merge_milters(Some(current), &ours), current);
        }
        let text = "smtpd_milters = unix:/opendkim/opendkim.sock\n\
                    non_smtpd_milters = $smtpd_milters\n";
        assert_eq!(
            merged_milter_value(text, "non_smtpd_milters", &ours),
            "$smtpd_milters"
        );
        assert_eq!(
            merged_milter_value(text, "smtpd_milters", &ours),
            "unix:/opendkim/opendkim.sock"
        );
        // Without the chroot, that path is another socket: ours goes in front.
        assert_eq!(
            merged_milter_value(text, "smtpd_milters", &unix_ours(false)),
            "unix:opendkim/opendkim.sock, unix:/opendkim/opendkim.sock"
        );
    }

    #[test]
    fn reach_once_counts_every_spelling_of_a_unix_socket() {
        let ours = unix_ours(true);
        let text = "a = unix:/opendkim/opendkim.sock\n\
                    smtpd_milters = $a, local:opendkim/opendkim.sock, unix:rspamd\n";
        assert_eq!(
            reach_once(text, "smtpd_milters", &ours).as_deref(),
            Some("$a, unix:rspamd")
        );
        let text = "a = unix:/opendkim/opendkim.sock\nsmtpd_milters = $a\n";
        assert_eq!(reach_once(text, "smtpd_milters", &ours), None);
    }

    #[test]
    fn effective_milters_follow_references_and_stop_at_loops() {
        let text = "dkim = inet:127.0.0.1:8891\nsmtpd_milters = ${dkim}, { unix:r, x=1 }\n\
                    non_smtpd_milters = $smtpd_milters $non_smtpd_milters\n";
        assert_eq!(
            effective_milters(text, "non_smtpd_milters"),
            vec!["inet:127.0.0.1:8891".to_string(), "unix:r".to_string()]
        );
        assert!(effective_milters(text, "milters").is_empty());
    }
}
