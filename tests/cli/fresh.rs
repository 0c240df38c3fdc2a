//! A first run on a fresh Debian 12 tree, the second run, and more domains.

use crate::common::*;
use std::fs;

const OPENDKIM_UID: u32 = 103;
const OPENDKIM_GID: u32 = 107;
const KEY: &str = "etc/opendkim/keys/example.test/key.private";

#[test]
fn fresh_run_writes_a_complete_opendkim_conf() {
    let tree = Tree::debian12();
    tree.setup_example();
    let conf = tree.read("etc/opendkim.conf");

    assert_eq!(active_values(&conf, "Socket"), ["inet:8891@127.0.0.1"]);
    assert_eq!(active_values(&conf, "Mode"), ["sv"]);
    assert_eq!(active_values(&conf, "KeyTable"), ["/etc/opendkim/KeyTable"]);
    assert_eq!(
        active_values(&conf, "SigningTable"),
        ["refile:/etc/opendkim/SigningTable"]
    );
    assert_eq!(
        active_values(&conf, "InternalHosts"),
        ["refile:/etc/opendkim/TrustedHosts"]
    );
    assert_eq!(
        active_values(&conf, "ExternalIgnoreList"),
        ["refile:/etc/opendkim/TrustedHosts"]
    );
    assert_eq!(active_values(&conf, "UserID"), ["opendkim"]);
    assert_eq!(active_values(&conf, "UMask"), ["007"]);
    assert_eq!(
        active_values(&conf, "PidFile"),
        ["/run/opendkim/opendkim.pid"]
    );
    assert!(!conf.contains("RequireSafeKeys"), "{conf}");
    for key in ["KeyFile", "Selector", "Domain"] {
        assert!(
            active_values(&conf, key).is_empty(),
            "{key} active:\n{conf}"
        );
    }
    // The packaged comments and settings the tool does not own stay.
    for kept in [
        "# This is a basic configuration for signing and verifying.",
        "Canonicalization\trelaxed/simple",
        "OversignHeaders\t\tFrom",
        "#Socket\t\t\tinet:8891@localhost",
        "TrustAnchorFile\t\t/usr/share/dns/root.key",
    ] {
        assert!(conf.contains(kept), "lost {kept:?}:\n{conf}");
    }
}

#[test]
fn fresh_run_writes_the_three_tables() {
    let tree = Tree::debian12();
    tree.setup_example();
    assert_eq!(
        tree.read("etc/opendkim/KeyTable"),
        "key._domainkey.example.test \
         example.test:key:/etc/opendkim/keys/example.test/key.private\n"
    );
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test key._domainkey.example.test\n"
    );
    assert_eq!(
        tree.read("etc/opendkim/TrustedHosts"),
        "127.0.0.1\n::1\nlocalhost\n"
    );
    for table in ["KeyTable", "SigningTable", "TrustedHosts"] {
        assert_eq!(tree.stat(&format!("etc/opendkim/{table}")), (0o644, 0, 0));
    }
    assert_eq!(tree.stat("etc/opendkim"), (0o755, 0, 0));
}

#[test]
fn fresh_run_creates_a_private_key_owned_by_opendkim() {
    let tree = Tree::debian12();
    tree.setup_example();
    assert_eq!(tree.stat(KEY), (0o600, OPENDKIM_UID, OPENDKIM_GID));
    assert_eq!(
        tree.stat("etc/opendkim/keys"),
        (0o750, OPENDKIM_UID, OPENDKIM_GID)
    );
    assert_eq!(
        tree.stat("etc/opendkim/keys/example.test"),
        (0o700, OPENDKIM_UID, OPENDKIM_GID)
    );
    let pem = tree.read(KEY);
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    assert!(pem.trim_end().ends_with("-----END PRIVATE KEY-----"));

    // The record beside the key, in zone-file form, matches `dns`.
    let txt = tree.read("etc/opendkim/keys/example.test/key.txt");
    assert!(txt.starts_with("key._domainkey\tIN\tTXT\t( \""), "{txt}");
    let (mode, _, _) = tree.stat("etc/opendkim/keys/example.test/key.txt");
    assert_eq!(mode & 0o022, 0, "key.txt writable by others");
    let quoted: String = txt.split('"').skip(1).step_by(2).collect();
    let plain = tree.run(&["dns", "--format", "plain"]);
    plain.assert_ok();
    let value = plain.stdout.trim_end().splitn(3, ' ').nth(2).unwrap();
    assert_eq!(quoted, value);
}

#[test]
fn fresh_run_adds_the_four_milter_settings_to_main_cf() {
    let tree = Tree::debian12();
    let before = tree.read("etc/postfix/main.cf");
    tree.setup_example();
    let main = tree.read("etc/postfix/main.cf");
    assert!(main.starts_with(&before), "main.cf not kept as it was");
    assert_eq!(
        &main[before.len()..],
        "milter_default_action = accept\n\
         milter_protocol = 6\n\
         smtpd_milters = inet:127.0.0.1:8891\n\
         non_smtpd_milters = $smtpd_milters\n"
    );
}

#[test]
fn fresh_run_makes_etc_default_opendkim_agree_with_the_socket() {
    let tree = Tree::debian12();
    tree.setup_example();
    let conf = tree.read("etc/opendkim.conf");
    let default = tree.read("etc/default/opendkim");
    let sockets: Vec<&str> = default
        .lines()
        .filter_map(|l| l.strip_prefix("SOCKET="))
        .collect();
    assert_eq!(sockets, active_values(&conf, "Socket"));
    assert!(
        default.contains("#SOCKET=inet:12345@localhost"),
        "{default}"
    );
}

#[test]
fn fresh_run_backs_up_every_file_it_modifies() {
    let tree = Tree::debian12();
    let fixture = debian12_fixture();
    tree.setup_example();
    let runs: Vec<_> = fs::read_dir(tree.path("var/backups/dkim-setup"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    let meta = fs::metadata(run).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o077, 0, "backup dir readable by others");
    for modified in [
        "etc/opendkim.conf",
        "etc/default/opendkim",
        "etc/postfix/main.cf",
    ] {
        let backup =
            fs::read(run.join(modified)).unwrap_or_else(|e| panic!("no backup of {modified}: {e}"));
        assert_eq!(
            backup,
            fs::read(fixture.join(modified)).unwrap(),
            "{modified}"
        );
    }
    // Created files need no backup.
    assert!(!run.join("etc/opendkim/KeyTable").exists());
}

#[test]
fn fresh_run_prints_the_record_and_how_to_check_it() {
    let tree = Tree::debian12();
    let out = tree.setup_example();
    let plain = tree.run(&["dns", "--format", "plain"]);
    let value = plain
        .stdout
        .trim_end()
        .splitn(3, ' ')
        .nth(2)
        .unwrap()
        .to_string();
    assert!(out.stdout.contains("key._domainkey.example.test"));
    assert!(out.stdout.contains(&value), "{}", out.stdout);
    // The exact command, with the same --root: it checks this tree.
    let check = format!(
        "dkim-setup --root {} check --domain example.test",
        tree.root_str()
    );
    assert!(out.stdout.contains(&check), "{}", out.stdout);
}

#[test]
fn second_run_changes_nothing_and_says_so() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let commands = tree.recorded().len();
    let before = tree.snapshot();

    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    assert_same_tree(&before, &tree.snapshot());
    assert_eq!(tree.recorded().len(), commands, "second run ran commands");

    let doc = out.json();
    assert_eq!(doc["changed"], false);
    for step in steps(&doc) {
        let unchanged = step["action"] == "unchanged";
        let skipped = step["status"] == "skipped";
        assert!(unchanged || skipped, "step changes something: {step}");
    }
    assert_eq!(doc["dns_records"].as_array().unwrap().len(), 1);

    let text = tree.wizard(&["-d", "example.test"]);
    text.assert_ok();
    assert!(text.stdout.contains("Nothing to change"), "{}", text.stdout);
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn two_domains_in_one_run_get_their_own_keys_and_lines() {
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "a.example", "-d", "B.Example", "--json"]);
    out.assert_ok();
    assert_eq!(
        tree.read("etc/opendkim/KeyTable"),
        "key._domainkey.a.example a.example:key:/etc/opendkim/keys/a.example/key.private\n\
         key._domainkey.b.example b.example:key:/etc/opendkim/keys/b.example/key.private\n"
    );
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@a.example key._domainkey.a.example\n*@b.example key._domainkey.b.example\n"
    );
    for d in ["a.example", "b.example"] {
        let key = format!("etc/opendkim/keys/{d}/key.private");
        assert_eq!(tree.stat(&key), (0o600, OPENDKIM_UID, OPENDKIM_GID));
    }
    assert_ne!(
        tree.read("etc/opendkim/keys/a.example/key.private"),
        tree.read("etc/opendkim/keys/b.example/key.private"),
        "two domains share one key"
    );
    let doc = out.json();
    let names: Vec<&str> = doc["dns_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["key._domainkey.a.example", "key._domainkey.b.example"]
    );
    let main = tree.read("etc/postfix/main.cf");
    assert_eq!(main.matches("8891").count(), 1, "{main}");
}

#[test]
fn adding_a_domain_later_keeps_the_first_domain_unchanged() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "a.example"]).assert_ok();
    let key_a = "etc/opendkim/keys/a.example/key.private";
    let pem = tree.read_bytes(key_a);
    let key_table = tree.read("etc/opendkim/KeyTable");
    let signing = tree.read("etc/opendkim/SigningTable");
    let conf = tree.read("etc/opendkim.conf");
    let main = tree.read("etc/postfix/main.cf");

    let out = tree.wizard(&["-d", "b.example", "--json"]);
    out.assert_ok();
    assert_eq!(tree.read_bytes(key_a), pem, "first key rewritten");
    assert_eq!(tree.stat(key_a), (0o600, OPENDKIM_UID, OPENDKIM_GID));
    assert_eq!(
        tree.read("etc/opendkim/KeyTable"),
        format!(
            "{key_table}key._domainkey.b.example \
             b.example:key:/etc/opendkim/keys/b.example/key.private\n"
        )
    );
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        format!("{signing}*@b.example key._domainkey.b.example\n")
    );
    assert_eq!(tree.read("etc/opendkim.conf"), conf);
    assert_eq!(tree.read("etc/postfix/main.cf"), main);
    let doc = out.json();
    assert_eq!(
        step(&doc, "file", "/etc/opendkim.conf").unwrap()["action"],
        "unchanged"
    );
    assert_eq!(
        step(&doc, "file", "/etc/postfix/main.cf").unwrap()["action"],
        "unchanged"
    );

    // And both domains are published.
    let dns = tree.run(&["dns", "--format", "plain"]);
    dns.assert_ok();
    let names: Vec<&str> = dns
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["key._domainkey.a.example", "key._domainkey.b.example"]
    );
}

#[test]
fn repeated_domain_is_signed_once() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "example.test", "-d", "EXAMPLE.test"])
        .assert_ok();
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test key._domainkey.example.test\n"
    );
}

#[test]
fn selector_and_trusted_hosts_are_written() {
    let tree = Tree::debian12();
    tree.wizard(&[
        "-d",
        "example.test",
        "-s",
        "mail2024",
        "--trusted-host",
        "192.0.2.0/24",
        "--trusted-host",
        "relay.example.test",
    ])
    .assert_ok();
    assert_eq!(
        tree.read("etc/opendkim/KeyTable"),
        "mail2024._domainkey.example.test \
         example.test:mail2024:/etc/opendkim/keys/example.test/mail2024.private\n"
    );
    assert_eq!(
        tree.read("etc/opendkim/TrustedHosts"),
        "127.0.0.1\n::1\nlocalhost\n192.0.2.0/24\nrelay.example.test\n"
    );
    assert!(tree.exists("etc/opendkim/keys/example.test/mail2024.private"));
    // A second run without -s keeps the configured selector.
    let before = tree.snapshot();
    tree.wizard(&["-d", "example.test"]).assert_ok();
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn systemd_override_from_the_generate_script_gets_the_same_socket() {
    let tree = Tree::debian12();
    let rel = "etc/systemd/system/opendkim.service.d/override.conf";
    tree.write(
        rel,
        "[Service]\nExecStart=\nExecStart=/usr/sbin/opendkim -P /run/opendkim/opendkim.pid \
         -p inet:8891@localhost \n",
    );
    tree.setup_example();
    let text = tree.read(rel);
    assert!(
        text.contains("-p inet:8891@127.0.0.1"),
        "override.conf still disagrees:\n{text}"
    );
    assert!(!text.contains("@localhost"), "{text}");
}

#[test]
fn idn_domain_is_written_as_a_label() {
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "Bücher.Example", "--json"]);
    out.assert_ok();
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@xn--bcher-kva.example key._domainkey.xn--bcher-kva.example\n"
    );
    assert!(tree.exists("etc/opendkim/keys/xn--bcher-kva.example/key.private"));
    assert_eq!(
        out.json()["dns_records"][0]["name"],
        "key._domainkey.xn--bcher-kva.example"
    );
}

#[test]
fn report_address_is_written_to_opendkim_conf() {
    let tree = Tree::debian12();
    tree.wizard(&[
        "-d",
        "example.test",
        "--report-address",
        "postmaster@example.test",
    ])
    .assert_ok();
    assert_eq!(
        active_values(&tree.read("etc/opendkim.conf"), "ReportAddress"),
        ["postmaster@example.test"]
    );
}

#[test]
fn conflicting_keyfile_selector_and_domain_are_commented_out() {
    let tree = Tree::debian12();
    tree.edit(
        "etc/opendkim.conf",
        "#Domain\t\t\texample.com\n#Selector\t\t2020\n#KeyFile\t\t/etc/dkimkeys/example.private\n",
        "Domain\t\t\texample.com\nSelector\t\t2020\nKeyFile\t\t/etc/dkimkeys/example.private\n",
    );
    tree.write_opendkim_key("etc/dkimkeys/example.private");
    tree.setup_example();
    let conf = tree.read("etc/opendkim.conf");
    for key in ["Domain", "Selector", "KeyFile"] {
        assert!(
            active_values(&conf, key).is_empty(),
            "{key} still active:\n{conf}"
        );
    }
    assert!(
        conf.contains("example.com"),
        "the old value was deleted:\n{conf}"
    );
    assert!(conf.contains("/etc/dkimkeys/example.private"), "{conf}");
}
