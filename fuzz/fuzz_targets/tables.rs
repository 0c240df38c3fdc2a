//! Merging setup's entries into a KeyTable, SigningTable or TrustedHosts never
//! panics; a merge that succeeds gives a table that merging again leaves as it
//! is (same text, no notes) and that holds each of our entries exactly once.
//! A refused table (an error with its line number) is fine.

#![no_main]

use dkim_setup::edit::tables::{
    KeyEntry, SigningEntry, merge_key_table, merge_signing_table, merge_trusted_hosts,
    parse_key_table, parse_signing_table,
};
use libfuzzer_sys::fuzz_target;

const DOMAINS: [&str; 2] = ["example.test", "example.org"];
const HOSTS: [&str; 4] = ["127.0.0.1", "::1", "localhost", "192.0.2.10"];

fn key_entries() -> Vec<KeyEntry> {
    DOMAINS
        .iter()
        .map(|domain| KeyEntry {
            name: format!("key._domainkey.{domain}"),
            domain: domain.to_string(),
            selector: "key".to_string(),
            key_path: format!("/etc/opendkim/keys/{domain}/key.private"),
        })
        .collect()
}

fn signing_entries() -> Vec<SigningEntry> {
    DOMAINS
        .iter()
        .map(|domain| SigningEntry {
            pattern: format!("*@{domain}"),
            key_name: format!("key._domainkey.{domain}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let keys = key_entries();
    if let Ok(once) = merge_key_table(text, &keys) {
        let twice = merge_key_table(&once.text, &keys).expect("our own KeyTable is refused");
        assert_eq!(
            twice.text, once.text,
            "a second KeyTable merge changed the text"
        );
        assert!(
            twice.notes.is_empty(),
            "second KeyTable merge: {:?}",
            twice.notes
        );
        let parsed = parse_key_table(&once.text).expect("our own KeyTable does not parse");
        for entry in &keys {
            let found: Vec<_> = parsed
                .iter()
                .filter(|e| e.name.eq_ignore_ascii_case(&entry.name))
                .collect();
            assert_eq!(found.len(), 1, "KeyTable lines for {}", entry.name);
            assert_eq!(
                found[0].value(),
                entry.value(),
                "KeyTable value of {}",
                entry.name
            );
        }
    }

    let signing = signing_entries();
    if let Ok(once) = merge_signing_table(text, &signing) {
        let twice =
            merge_signing_table(&once.text, &signing).expect("our own SigningTable is refused");
        assert_eq!(
            twice.text, once.text,
            "a second SigningTable merge changed the text"
        );
        assert!(
            twice.notes.is_empty(),
            "second SigningTable merge: {:?}",
            twice.notes
        );
        let parsed = parse_signing_table(&once.text).expect("our own SigningTable does not parse");
        for entry in &signing {
            let found: Vec<_> = parsed
                .iter()
                .filter(|e| e.pattern.eq_ignore_ascii_case(&entry.pattern))
                .collect();
            assert_eq!(found.len(), 1, "SigningTable lines for {}", entry.pattern);
            assert_eq!(
                found[0].key_name, entry.key_name,
                "SigningTable key of {}",
                entry.pattern
            );
        }
    }

    let hosts: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    let once = merge_trusted_hosts(text, &hosts);
    let twice = merge_trusted_hosts(&once.text, &hosts);
    assert_eq!(
        twice.text, once.text,
        "a second TrustedHosts merge changed the text"
    );
    assert!(
        twice.notes.is_empty(),
        "second TrustedHosts merge: {:?}",
        twice.notes
    );
});
