//! `main_cf::set` and `setup::wire_milters` (the real main.cf milter wiring, for
//! opendkim at `inet:127.0.0.1:8891`) never panic and a second run changes
//! nothing; `set` leaves the value it set, and after the wiring both
//! `smtpd_milters` and `non_smtpd_milters` reach opendkim exactly once.

#![no_main]

use dkim_setup::edit::main_cf::{effective_milters, get, set};
use dkim_setup::setup::wire_milters;
use libfuzzer_sys::fuzz_target;

const OURS: &str = "inet:127.0.0.1:8891";

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
    let stale = [
        "inet:127.0.0.1:8892".to_string(),
        "unix:opendkim/opendkim.sock".to_string(),
    ];
    for stale in [&[][..], &stale[..]] {
        let (once, _) = wire_milters(text, OURS, stale);
        let (twice, notes) = wire_milters(&once, OURS, stale);
        assert_eq!(twice, once, "a second wiring changed the text: {notes:?}");
        for list in ["smtpd_milters", "non_smtpd_milters"] {
            let reached = effective_milters(&once, list);
            let count = reached.iter().filter(|a| *a == OURS).count();
            assert_eq!(
                count, 1,
                "{list} reaches opendkim {count} times: {reached:?}"
            );
        }
    }
});
