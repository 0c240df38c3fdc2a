//! Writing to the user without dying of it, and with commands that fit.
//!
//! `println!` and `eprintln!` panic when the other end is gone: a pipe
//! into `head` that closed, a terminal that hung up. A panic in the middle
//! of an apply would skip the restore and leave a half-configured server, so
//! every line the tool prints goes through these macros, which drop what
//! cannot be written. The run goes on and ends as it would have.
//!
//! Messages name the commands to run next (`dkim-setup rotate --domain D
//! --activate`). After a run on another tree (`--root DIR`), such a command
//! pasted as printed would act on this machine's own /etc; so every line
//! printed names the same `--root` in each command it holds ([`for_root`]).

use std::sync::OnceLock;

/// `--root DIR` as a shell word, when the run is on another tree.
static ROOT: OnceLock<String> = OnceLock::new();

/// The subcommands a message may tell the user to run.
const COMMANDS: [&str; 6] = ["wizard", "check", "rotate", "revert", "dns", "status"];

/// From now on, commands in printed lines carry `--root ROOT`.
pub fn set_root(root: &str) {
    let _ = ROOT.set(crate::edit::default_file::shell_quote(root));
}

/// `text` with `--root ROOT` in each command it names, once a root is set.
pub fn for_root(text: String) -> String {
    match ROOT.get() {
        Some(root) => insert_root(&text, root),
        None => text,
    }
}

/// `text` with `--root ROOT` after each `dkim-setup` that starts one of
/// our commands.
fn insert_root(text: &str, root: &str) -> String {
    const ME: &str = "dkim-setup ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(ME) {
        let after = &rest[at + ME.len()..];
        out.push_str(&rest[..at + ME.len()]);
        let word = after.split(|c: char| !c.is_ascii_alphanumeric()).next();
        if word.is_some_and(|w| COMMANDS.contains(&w)) {
            out.push_str(&format!("--root {root} "));
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Like `print!`, but a closed stdout is not an error.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(
            ::std::io::stdout(),
            "{}",
            $crate::say::for_root(::std::format!($($arg)*))
        );
    }};
}

/// Like `println!`, but a closed stdout is not an error.
#[macro_export]
macro_rules! outln {
    () => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(
            ::std::io::stdout(),
            "{}",
            $crate::say::for_root(::std::format!($($arg)*))
        );
    }};
}

/// Like `eprintln!`, but a closed stderr is not an error.
#[macro_export]
macro_rules! errln {
    () => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr());
    }};
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(
            ::std::io::stderr(),
            "{}",
            $crate::say::for_root(::std::format!($($arg)*))
        );
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_get_the_root_and_nothing_else_does() {
        let root = crate::edit::default_file::shell_quote("/srv/my image");
        assert_eq!(
            insert_root(
                "run 'dkim-setup rotate --domain d --activate', then dkim-setup status",
                &root
            ),
            "run 'dkim-setup --root '/srv/my image' rotate --domain d --activate', then \
             dkim-setup --root '/srv/my image' status"
        );
        assert_eq!(
            insert_root("dkim-setup: DKIM signing", &root),
            "dkim-setup: DKIM signing"
        );
        assert_eq!(
            insert_root("dkim-setup completions", &root),
            "dkim-setup completions"
        );
    }
}
