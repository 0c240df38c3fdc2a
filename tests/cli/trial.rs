//! Defects a fresh user found by trying the tool, each kept as a test.

use crate::common::*;
use std::os::unix::fs::symlink;

const MAIN_CF: &str = "etc/postfix/main.cf";
const KEY_TABLE: &str = "etc/opendkim/KeyTable";
const SIGNING_TABLE: &str = "etc/opendkim/SigningTable";

#[test]
fn an_unsafe_key_of_another_domain_is_fixed_too() {
    let tree = Tree::debian12();
    tree.setup_example();
    tree.mkdir("etc/opendkim/keys/hand.test", 0o700, 103, 107);
    let pem = tree.read("etc/opendkim/keys/example.test/key.private");
    tree.write_mode("etc/opendkim/keys/hand.test/mail.private", &pem, 0o644);
    let keys = tree.read(KEY_TABLE);
    tree.write(
        KEY_TABLE,
        &format!(
            "{keys}mail._domainkey.hand.test hand.test:mail:/etc/opendkim/keys/hand.test/mail.private\n"
        ),
    );
    let signing = tree.read(SIGNING_TABLE);
    tree.write(
        SIGNING_TABLE,
        &format!("{signing}*@hand.test mail._domainkey.hand.test\n"),
    );

    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_ok().assert_stderr_has("hand.test/mail.private");
    assert_eq!(
        tree.stat("etc/opendkim/keys/hand.test/mail.private"),
        (0o600, 103, 107)
    );
}

#[test]
fn a_lost_key_is_regenerated_with_a_loud_warning() {
    let tree = Tree::debian12();
    tree.setup_example();
    std::fs::remove_file(tree.path("etc/opendkim/keys/example.test/key.private")).unwrap();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_ok()
        .assert_stderr_has("warning: the key for key._domainkey.example.test was missing");
    out.assert_stderr_has("NEW key");
}

#[test]
fn a_selector_switch_warns_to_publish_first() {
    let tree = Tree::debian12();
    tree.setup_example();
    let out = tree.wizard(&["-d", "example.test", "-s", "sel2"]);
    out.assert_ok().assert_stderr_has(
        "warning: signing for example.test switches from selector 'key' to 'sel2'",
    );
    assert!(
        tree.read(SIGNING_TABLE)
            .contains("*@example.test sel2._domainkey.example.test")
    );
}

#[test]
fn an_unpublishable_record_name_is_refused() {
    let tree = Tree::debian12();
    let label = "a".repeat(60);
    let domain = format!("{label}.{label}.{label}.{}.test", "b".repeat(50));
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", &domain, "-s", &"s".repeat(40)]);
    out.assert_code(2).assert_stderr_has("DNS allows 253");
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn bad_input_with_json_still_prints_one_json_document() {
    let tree = Tree::debian12();
    let out = tree.run(&["--json", "wizard", "-y", "--no-install", "-d", "bad domain"]);
    out.assert_code(2);
    let doc = out.json();
    assert_eq!(doc["changed"], false);
    assert!(
        doc["error"].as_str().unwrap().contains("bad domain"),
        "{doc}"
    );
}

#[test]
fn dns_prints_the_readable_records_and_names_the_missing_key() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "example.test", "-d", "second.test"])
        .assert_ok();
    std::fs::remove_file(tree.path("etc/opendkim/keys/second.test/key.private")).unwrap();
    let out = tree.run(&["dns"]);
    out.assert_code(1)
        .assert_stderr_has("second.test/key.private");
    assert!(
        out.stdout
            .contains("key._domainkey.example.test TXT v=DKIM1"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_symlinked_main_cf_stays_a_symlink() {
    let tree = Tree::debian12();
    std::fs::create_dir_all(tree.path("srv/postfix")).unwrap();
    std::fs::rename(tree.path(MAIN_CF), tree.path("srv/postfix/main.cf")).unwrap();
    symlink("/srv/postfix/main.cf", tree.path(MAIN_CF)).unwrap();
    tree.setup_example().assert_ok();
    let link = std::fs::symlink_metadata(tree.path(MAIN_CF)).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "main.cf was replaced by a file"
    );
    assert!(
        tree.read("srv/postfix/main.cf")
            .contains("smtpd_milters = inet:127.0.0.1:8891")
    );
}

#[test]
fn a_missing_root_directory_is_bad_input() {
    let tree = Tree::debian12();
    let missing = tree.path("no/such/dir");
    let out = tree.run_raw(
        &[
            "--root",
            missing.to_str().unwrap(),
            "wizard",
            "-y",
            "-d",
            "example.test",
        ],
        None,
    );
    out.assert_code(2).assert_stderr_has("does not exist");
}

#[test]
fn a_keys_directory_owned_by_another_user_is_taken_back() {
    let tree = Tree::debian12();
    tree.setup_example();
    tree.chown("etc/opendkim/keys", 1000, 1000);
    tree.wizard(&["-d", "example.test"]).assert_ok();
    assert_eq!(tree.stat("etc/opendkim/keys"), (0o750, 103, 107));
}
