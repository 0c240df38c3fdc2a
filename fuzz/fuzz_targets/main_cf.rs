//! `main_cf::set` and `setup::wire_milters` (the real main.cf milter wiring, for
//! opendkim at `inet:127.0.0.1:8891`, and at `unix:opendkim/opendkim.sock`
//! with Postfix chrooted in its queue directory or not) never panic and a
//! second run changes nothing; `set` leaves the value it set, and after the
//! wiring both `smtpd_milters` and `non_smtpd_milters` reach opendkim exactly
//! once, in any spelling (unless a value they reach holds an unclosed `{` or
//! `(`, which cannot be split back into the same entries, so
//! `main_cf::reach_once` leaves it).

#![no_main]

use dkim_setup::edit::main_cf::{Ours, Paths, effective_milters, get, reference, set, split_list};
use dkim_setup::setup::wire_milters;
use libfuzzer_sys::fuzz_target;

const OURS: &str = "inet:127.0.0.1:8891";
const OURS_UNIX: &str = "unix:opendkim/opendkim.sock";

/// True when a value that `list` reaches has an entry with an unclosed group.
fn reaches_unclosed(text: &str, list: &str) -> bool {
    let mut names = vec![list.to_string()];
    let mut i = 0;
    while i < names.len() {
        for entry in split_list(&get(text, &names[i]).unwrap_or_default()) {
            let mut depth = 0usize;
            for c in entry.chars() {
                match c {
                    '{' | '(' => depth += 1,
                    '}' | ')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            if depth > 0 {
                return true;
            }
            if let Some(name) = reference(&entry)
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
        i += 1;
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (name, value) in [
        ("milter_default_action", "accept"),
        ("milter_protocol", "6"),
    ] {
        let once = set(text, name, value);
        assert_eq!(
            set(&once, name, value),
            once,
            "a second set of {name} changed the text"
        );
        assert_eq!(get(&once, name).as_deref(), Some(value), "value of {name}");
    }
    let queue = "/var/spool/postfix";
    let wirings = [
        (
            Ours::new(OURS, Paths::new(queue, true)),
            vec![
                "inet:127.0.0.1:8892".to_string(),
                "unix:opendkim/opendkim.sock".to_string(),
            ],
        ),
        (
            Ours::new(OURS_UNIX, Paths::new(queue, true)),
            vec!["inet:127.0.0.1:8891".to_string()],
        ),
        (
            Ours::new(OURS_UNIX, Paths::new(queue, false)),
            vec!["unix:/run/opendkim/opendkim.sock".to_string()],
        ),
    ];
    for (ours, stale) in &wirings {
        for stale in [&[][..], &stale[..]] {
            let (once, _) = wire_milters(text, ours, stale);
            let (twice, notes) = wire_milters(&once, ours, stale);
            assert_eq!(twice, once, "a second wiring changed the text: {notes:?}");
            for list in ["smtpd_milters", "non_smtpd_milters"] {
                if reaches_unclosed(&once, list) {
                    continue;
                }
                let reached = effective_milters(&once, list);
                let count = reached.iter().filter(|a| ours.is(a)).count();
                assert_eq!(
                    count, 1,
                    "{list} reaches opendkim {count} times: {reached:?}"
                );
                if ours.address == OURS {
                    // TCP spellings other than ours are respelled.
                    assert!(reached.iter().any(|a| a == OURS), "{reached:?}");
                }
            }
        }
    }
});
