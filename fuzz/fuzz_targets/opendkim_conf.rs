//! `opendkim_conf::edit` with the keys and values setup owns never panics, a
//! second edit changes nothing, and afterwards every owned key has exactly one
//! active line, holding its value, while KeyFile, Selector and Domain have none.

#![no_main]

use dkim_setup::edit::opendkim_conf::{edit, get, get_all};
use libfuzzer_sys::fuzz_target;

/// What setup owns with an inet socket, when it also sets UserID and PidFile.
const FULL: &[(&str, &str)] = &[
    ("Mode", "sv"),
    ("Socket", "inet:8891@127.0.0.1"),
    ("UMask", "007"),
    ("KeyTable", "/etc/opendkim/KeyTable"),
    ("SigningTable", "refile:/etc/opendkim/SigningTable"),
    ("ExternalIgnoreList", "refile:/etc/opendkim/TrustedHosts"),
    ("InternalHosts", "refile:/etc/opendkim/TrustedHosts"),
    ("UserID", "opendkim"),
    ("PidFile", "/run/opendkim/opendkim.pid"),
];

/// What setup owns with a unix socket, when UserID and PidFile are kept.
const LEAN: &[(&str, &str)] = &[
    ("Mode", "sv"),
    ("Socket", "local:/run/opendkim/opendkim.sock"),
    ("UMask", "007"),
    ("KeyTable", "/etc/opendkim/KeyTable"),
    ("SigningTable", "refile:/etc/opendkim/SigningTable"),
    ("ExternalIgnoreList", "refile:/etc/opendkim/TrustedHosts"),
    ("InternalHosts", "refile:/etc/opendkim/TrustedHosts"),
];

const COMMENT_OUT: &[&str] = &["KeyFile", "Selector", "Domain"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for owned in [FULL, LEAN] {
        let once = edit(text, owned, COMMENT_OUT);
        let twice = edit(&once, owned, COMMENT_OUT);
        assert_eq!(twice, once, "a second edit changed the text");
        for &(key, value) in owned {
            assert_eq!(get_all(&once, key), [value], "active lines of {key}");
            assert_eq!(get(&once, key).as_deref(), Some(value), "value of {key}");
        }
        for key in COMMENT_OUT {
            assert!(get_all(&once, key).is_empty(), "{key} is still active");
        }
    }
});
