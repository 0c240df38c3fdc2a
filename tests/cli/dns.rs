//! `dkim-setup dns` in its three forms, against what the wizard printed.

use crate::common::*;
use base64ct::Encoding;

fn setup() -> (Tree, String) {
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    let value = out.json()["dns_records"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    (tree, value)
}

/// The quoted strings of a zone-file line.
fn quoted_strings(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

#[test]
fn dns_plain_prints_name_type_and_unquoted_value() {
    let (tree, value) = setup();
    let out = tree.run(&["dns", "--format", "plain"]);
    out.assert_ok();
    assert_eq!(
        out.stdout,
        format!("key._domainkey.example.test TXT {value}\n")
    );
    // plain is the default form.
    assert_eq!(tree.run(&["dns"]).stdout, out.stdout);
}

#[test]
fn b12_dns_bind_splits_the_value_into_strings_of_at_most_255_bytes() {
    let (tree, value) = setup();
    let out = tree.run(&["dns", "--format", "bind"]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with("key._domainkey.example.test. IN TXT ( \""),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("\" )"), "{}", lines[0]);
    let strings = quoted_strings(lines[0]);
    assert!(strings.len() >= 2, "a 2048-bit record needs two strings");
    for s in &strings {
        assert!(s.len() <= 255, "string of {} bytes", s.len());
    }
    assert_eq!(strings.concat(), value);
}

#[test]
fn dns_json_lists_name_type_value_and_strings() {
    let (tree, value) = setup();
    let out = tree.run(&["dns", "--format", "json"]);
    out.assert_ok();
    let doc = out.json();
    let list = doc.as_array().expect("a list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "key._domainkey.example.test");
    assert_eq!(list[0]["type"], "TXT");
    assert_eq!(list[0]["value"], value.as_str());
    let strings: Vec<&str> = list[0]["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(strings.iter().all(|s| s.len() <= 255));
    assert_eq!(strings.concat(), value);
    // --json selects the same document.
    assert_eq!(tree.run(&["dns", "--json"]).json(), doc);
}

#[test]
fn dns_output_matches_the_wizard_and_the_text_report() {
    let tree = Tree::debian12();
    let text = tree.setup_example();
    let plain = tree.run(&["dns", "--format", "plain"]);
    let bind = tree.run(&["dns", "--format", "bind"]);
    let value = plain.stdout.trim_end().splitn(3, ' ').nth(2).unwrap();
    assert!(
        text.stdout.contains(&format!("value: {value}\n")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(bind.stdout.as_str()),
        "{}",
        text.stdout
    );
}

#[test]
fn dns_with_domain_filters_and_unknown_domain_fails() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "a.example", "-d", "b.example"])
        .assert_ok();
    let out = tree.run(&["dns", "-d", "b.example"]);
    out.assert_ok();
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(
        out.stdout
            .starts_with("key._domainkey.b.example TXT v=DKIM1; k=rsa; p=")
    );

    let missing = tree.run(&["dns", "-d", "c.example"]);
    missing.assert_failed();
    missing.assert_stderr_has("c.example");
}

#[test]
fn dns_before_setup_fails_and_says_to_run_the_wizard() {
    let tree = Tree::debian12();
    let out = tree.run(&["dns"]);
    out.assert_failed();
    out.assert_stderr_has("wizard");
}

#[test]
fn b14_p_is_base64_of_an_rsa_subject_public_key_info() {
    let (_tree, value) = setup();
    let p = p_value(&value);
    assert!(p.starts_with(SPKI_2048_PREFIX), "{p}");
    assert!(!p.contains(char::is_whitespace));
    assert!(!p.contains("-----"));
    let der = base64ct::Base64::decode_vec(&p).expect("p= is valid base64");
    // SEQUENCE { SEQUENCE { OID rsaEncryption, NULL }, BIT STRING { ... } }
    let spki_header: [u8; 24] = [
        0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
        0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0f, 0x00,
    ];
    assert_eq!(&der[..24], &spki_header);
    assert_eq!(der.len(), 4 + 0x122, "DER length matches its header");
    // The BIT STRING holds an RSAPublicKey SEQUENCE with a 2048-bit modulus.
    assert_eq!(&der[24..28], &[0x30, 0x82, 0x01, 0x0a]);
    assert_eq!(&der[28..33], &[0x02, 0x82, 0x01, 0x01, 0x00]);
    assert_eq!(&der[der.len() - 5..], &[0x02, 0x03, 0x01, 0x00, 0x01]);
}
