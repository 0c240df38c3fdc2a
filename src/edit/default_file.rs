//! Keeps the other places that can override opendkim's socket in line with it.
//!
//! On Debian, `/etc/default/opendkim` sets `SOCKET=`, which the SysV init script
//! turns into `-p $SOCKET`, and which `opendkim.service.generate` copies into a
//! systemd drop-in as `ExecStart=... -p VALUE` (platform note P5). A `-p` on the
//! command line beats the `Socket` line of opendkim.conf, so a stale value there
//! points Postfix and opendkim at different places. These edits change only the
//! socket value in those lines and leave every other byte alone; when a file
//! sets no socket, it is returned unchanged (nothing there can disagree). The
//! RHEL counterpart, `OPTIONS=` in `/etc/sysconfig/opendkim`, gets the same
//! treatment for a `-p` it may carry.

/// Gives every active `SOCKET=` assignment the value `socket` (quoted only when
/// the shell needs it); an assignment that already holds it is left as it is.
pub fn set_socket_var(old: &str, socket: &str) -> String {
    map_lines(old, |body| {
        let (start, rest) = assignment(body, "SOCKET")?;
        let (current, len) = shell_word(rest);
        if current == socket {
            return None;
        }
        Some(format!(
            "{}{}{}",
            &body[..start],
            shell_quote(socket),
            &rest[len..]
        ))
    })
}

/// In `ExecStart=` lines that pass `-p VALUE` (or `-pVALUE`), replaces VALUE with
/// `socket`; other lines, and ExecStart lines without `-p`, are unchanged.
pub fn set_exec_start_socket(old: &str, socket: &str) -> String {
    map_lines(old, |body| {
        let indent = body.len() - body.trim_start().len();
        let rest = body[indent..].strip_prefix("ExecStart=")?;
        let head = body.len() - rest.len();
        let new = replace_p_option(rest, socket)?;
        Some(format!("{}{new}", &body[..head]))
    })
}

/// In RHEL's `/etc/sysconfig/opendkim`, replaces the value of a `-p` option inside
/// an active `OPTIONS=` assignment with `socket`; otherwise the text is unchanged.
pub fn set_options_socket(old: &str, socket: &str) -> String {
    map_lines(old, |body| {
        let (start, rest) = assignment(body, "OPTIONS")?;
        let new = replace_p_option(rest, socket)?;
        Some(format!("{}{new}", &body[..start]))
    })
}

/// The flags of the last active `OPTIONS=` assignment, as (flag, value)
/// pairs: `OPTIONS="-x /etc/opendkim.conf -P /run/x.pid"` gives
/// `[("-x", "/etc/opendkim.conf"), ("-P", "/run/x.pid")]`. A flag written
/// joined to its value (`-P/run/x.pid`) is split the same way.
pub fn options_flags(text: &str) -> Vec<(String, String)> {
    let mut value = None;
    for line in text.lines() {
        if let Some((_, rest)) = assignment(line, "OPTIONS") {
            value = Some(shell_word(rest).0);
        }
    }
    let Some(value) = value else {
        return Vec::new();
    };
    let words: Vec<&str> = value.split_whitespace().collect();
    let mut flags = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if let Some(flag) = w.strip_prefix('-').filter(|f| !f.is_empty()) {
            let (letter, glued) = flag.split_at(flag.chars().next().map_or(0, char::len_utf8));
            let name = format!("-{letter}");
            if !glued.is_empty() {
                flags.push((name, glued.to_string()));
            } else if let Some(next) = words.get(i + 1).filter(|n| !n.starts_with('-')) {
                flags.push((name, next.to_string()));
                i += 1;
            } else {
                flags.push((name, String::new()));
            }
        }
        i += 1;
    }
    flags
}

/// Runs `edit` on each line body (without its line ending); None keeps the line.
fn map_lines(old: &str, edit: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(old.len() + 32);
    for piece in old.split_inclusive('\n') {
        let body = piece
            .strip_suffix("\r\n")
            .or_else(|| piece.strip_suffix('\n'))
            .unwrap_or(piece);
        match edit(body) {
            Some(new) if new != body => {
                out.push_str(&new);
                out.push_str(&piece[body.len()..]);
            }
            _ => out.push_str(piece),
        }
    }
    out
}

/// For an active `NAME=...` line (optionally after `export `), the byte offset
/// where the value starts and the text from there on.
fn assignment<'a>(body: &'a str, name: &str) -> Option<(usize, &'a str)> {
    let trimmed = body.trim_start();
    let statement = match trimmed.strip_prefix("export") {
        Some(after) if after.starts_with([' ', '\t']) => after.trim_start(),
        _ => trimmed,
    };
    let rest = statement.strip_prefix(name)?.strip_prefix('=')?;
    Some((body.len() - rest.len(), rest))
}

/// Reads one shell word at the start of `text`: its literal value (quotes
/// removed, `$` left unexpanded) and how many bytes it spans.
fn shell_word(text: &str) -> (String, usize) {
    let mut value = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() || c == ';' || c == '&' || c == '|' => return (value, at),
            '\'' => {
                chars.next();
                for (_, q) in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    value.push(q);
                }
                continue;
            }
            '"' => {
                chars.next();
                while let Some((_, q)) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(&(_, next)) = chars.peek()
                                && matches!(next, '"' | '\\' | '$' | '`')
                            {
                                value.push(next);
                                chars.next();
                            } else {
                                value.push('\\');
                            }
                        }
                        _ => value.push(q),
                    }
                }
                continue;
            }
            '\\' => {
                chars.next();
                if let Some((_, next)) = chars.next() {
                    value.push(next);
                }
                continue;
            }
            _ => value.push(c),
        }
        chars.next();
    }
    (value, text.len())
}

/// `value` as a shell word: bare when every character is plain, else single-quoted.
pub(crate) fn shell_quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+,-./:=_".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Replaces the argument of every `-p` option among the words of `args` (words end
/// at whitespace and quote characters); None when there is no `-p` argument.
fn replace_p_option(args: &str, socket: &str) -> Option<String> {
    let is_break = |c: char| c.is_whitespace() || c == '"' || c == '\'';
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (at, c) in args.char_indices() {
        match (is_break(c), start) {
            (true, Some(s)) => {
                words.push((s, at));
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, args.len()));
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut words = words.into_iter();
    while let Some((s, e)) = words.next() {
        let word = &args[s..e];
        if word == "-p" {
            // The next word is the argument, whatever it looks like (`-p -px`).
            if let Some(next) = words.next() {
                spans.push(next);
            }
        } else if let Some(glued) = word.strip_prefix("-p")
            && !glued.is_empty()
        {
            spans.push((s + 2, e));
        }
    }
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(args.len() + socket.len());
    let mut copied = 0;
    for (s, e) in spans {
        out.push_str(&args[copied..s]);
        out.push_str(socket);
        copied = e;
    }
    out.push_str(&args[copied..]);
    Some(out)
}

#[cfg(test)]
mod options_tests {
    use super::*;

    #[test]
    fn options_flags_are_read_from_the_rhel_default() {
        let text = "# Set the necessary startup options\n\
                    OPTIONS=\"-x /etc/opendkim.conf -P /var/run/opendkim/opendkim.pid\"\n";
        assert_eq!(
            options_flags(text),
            vec![
                ("-x".to_string(), "/etc/opendkim.conf".to_string()),
                (
                    "-P".to_string(),
                    "/var/run/opendkim/opendkim.pid".to_string()
                )
            ]
        );
        assert_eq!(options_flags("OPTIONS=-P/run/a.pid\n")[0].1, "/run/a.pid");
        assert!(options_flags("#OPTIONS=\"-x /x\"\n").is_empty());
    }

    #[test]
    fn options_flag_with_a_non_ascii_letter_is_read_whole() {
        // Found by fuzzing (`OPTIONS=-\u{7f0}`): a flag whose letter is not
        // ASCII was cut inside that letter.
        assert_eq!(
            options_flags("OPTIONS=-\u{7f0}"),
            vec![("-\u{7f0}".to_string(), String::new())]
        );
        assert_eq!(
            options_flags("OPTIONS=\"-é -ü/x -P /p\"\n"),
            vec![
                ("-é".to_string(), String::new()),
                ("-ü".to_string(), "/x".to_string()),
                ("-P".to_string(), "/p".to_string())
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../tests/fixtures/edits/default_debian12/before");
    const DEFAULT_AFTER: &str = include_str!("../../tests/fixtures/edits/default_debian12/after");
    const OVERRIDE: &str = include_str!("../../tests/fixtures/edits/override_debian12/before.conf");
    const OVERRIDE_AFTER: &str =
        include_str!("../../tests/fixtures/edits/override_debian12/after.conf");
    const SYSCONFIG: &str = include_str!("../../tests/fixtures/edits/sysconfig_rhel/before");

    const SOCKET: &str = "inet:8891@127.0.0.1";

    #[test]
    fn debian_default_file_fixture() {
        let once = set_socket_var(DEFAULT, SOCKET);
        assert_eq!(once, DEFAULT_AFTER);
        assert_eq!(set_socket_var(&once, SOCKET), once);
        // Commented examples stay as they were.
        assert!(once.contains("\n#SOCKET=inet:12345@localhost\n"));
    }

    #[test]
    fn debian_override_fixture() {
        let once = set_exec_start_socket(OVERRIDE, SOCKET);
        assert_eq!(once, OVERRIDE_AFTER);
        assert_eq!(set_exec_start_socket(&once, SOCKET), once);
        // The trailing blank written by opendkim.service.generate is kept.
        assert!(once.ends_with(&format!("-p {SOCKET} \n")));
    }

    #[test]
    fn rhel_sysconfig_without_p_is_unchanged() {
        assert_eq!(set_options_socket(SYSCONFIG, SOCKET), SYSCONFIG);
        assert_eq!(set_socket_var(SYSCONFIG, SOCKET), SYSCONFIG);
    }

    #[test]
    fn options_with_p_get_the_new_socket() {
        let old = "OPTIONS=\"-x /etc/opendkim.conf -p inet:8891@localhost\"\n";
        let out = set_options_socket(old, SOCKET);
        assert_eq!(
            out,
            "OPTIONS=\"-x /etc/opendkim.conf -p inet:8891@127.0.0.1\"\n"
        );
        assert_eq!(set_options_socket(&out, SOCKET), out);
        let commented = "#OPTIONS=\"-p inet:1\"\n";
        assert_eq!(set_options_socket(commented, SOCKET), commented);
    }

    #[test]
    fn no_active_socket_line_means_unchanged() {
        let old = "#SOCKET=inet:54321\nRUNDIR=/run/opendkim\nSOCKETS=x\n";
        assert_eq!(set_socket_var(old, SOCKET), old);
        assert_eq!(set_socket_var("", SOCKET), "");
    }

    #[test]
    fn every_active_socket_line_is_set() {
        let old = "SOCKET=local:/a\n  export SOCKET=\"inet:1@h\" # old\nSOCKET='x y';X=1";
        let out = set_socket_var(old, SOCKET);
        assert_eq!(
            out,
            "SOCKET=inet:8891@127.0.0.1\n  export SOCKET=inet:8891@127.0.0.1 # old\n\
             SOCKET=inet:8891@127.0.0.1;X=1"
        );
        assert_eq!(set_socket_var(&out, SOCKET), out);
    }

    #[test]
    fn quoted_socket_with_the_right_value_is_untouched() {
        for old in [
            "SOCKET=\"inet:8891@127.0.0.1\"\n",
            "SOCKET='inet:8891@127.0.0.1'\r\n",
            "SOCKET=inet:8891@\"127.0.0.1\"\n",
        ] {
            assert_eq!(set_socket_var(old, SOCKET), old);
        }
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(
            set_socket_var("SOCKET=x\n", "local:/a b"),
            "SOCKET='local:/a b'\n"
        );
        assert_eq!(set_socket_var("SOCKET=x\n", "it's"), "SOCKET='it'\\''s'\n");
        assert_eq!(
            set_socket_var("SOCKET=x\n", "local:$RUNDIR/s"),
            "SOCKET='local:$RUNDIR/s'\n"
        );
        assert_eq!(
            set_socket_var("SOCKET=x\n", "inet6:8891@[::1]"),
            "SOCKET='inet6:8891@[::1]'\n"
        );
        let quoted = set_socket_var("SOCKET=x\n", "local:/a b");
        assert_eq!(set_socket_var(&quoted, "local:/a b"), quoted);
    }

    #[test]
    fn shell_word_reads_quotes_and_escapes() {
        assert_eq!(
            shell_word("a\"b c\"'d'\\ e rest"),
            ("ab cd e".to_string(), 12)
        );
        assert_eq!(shell_word("\"a\\\"b\\x\""), ("a\"b\\x".to_string(), 8));
        assert_eq!(shell_word(""), (String::new(), 0));
    }

    #[test]
    fn exec_start_variants() {
        let old = "[Service]\nExecStart=\nExecStart=/usr/sbin/opendkim -P /p.pid -p local:/x\n";
        assert_eq!(
            set_exec_start_socket(old, SOCKET),
            "[Service]\nExecStart=\nExecStart=/usr/sbin/opendkim -P /p.pid -p inet:8891@127.0.0.1\n"
        );
        let glued = "ExecStart=/usr/sbin/opendkim -pinet:1@h -x /etc/opendkim.conf\n";
        assert_eq!(
            set_exec_start_socket(glued, SOCKET),
            "ExecStart=/usr/sbin/opendkim -pinet:8891@127.0.0.1 -x /etc/opendkim.conf\n"
        );
        let without = "ExecStart=/usr/sbin/opendkim -P /run/p.pid\nExecStartPre=/bin/x -p 1\n";
        assert_eq!(set_exec_start_socket(without, SOCKET), without);
        let dangling = "ExecStart=/usr/sbin/opendkim -p\n";
        assert_eq!(set_exec_start_socket(dangling, SOCKET), dangling);
    }

    #[test]
    fn p_whose_argument_starts_with_p_is_one_option() {
        // Found by fuzzing: `-p` followed by a word starting with `-p` gave
        // overlapping spans and a slice panic.
        let old = "ExecStart=/usr/sbin/opendkim -p -px\n";
        let out = set_exec_start_socket(old, SOCKET);
        assert_eq!(out, "ExecStart=/usr/sbin/opendkim -p inet:8891@127.0.0.1\n");
        assert_eq!(set_exec_start_socket(&out, SOCKET), out);
        let twice = "OPTIONS=\"-p -p local:/x\"\n";
        assert_eq!(
            set_options_socket(twice, SOCKET),
            "OPTIONS=\"-p inet:8891@127.0.0.1 local:/x\"\n"
        );
    }
}
