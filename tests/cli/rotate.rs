//! Key rotation without a signing gap (`rotate`, `status`), against a test
//! DNS server whose answers change between the steps.

use crate::common::*;
use crate::dns_server::{Zone, serve};

const DAY: u64 = 86_400;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `dkim-setup --root TREE ARGS` with the clock at `at` (seconds).
fn at(tree: &Tree, at: u64, args: &[&str]) -> Outcome {
    let root = tree.root_str();
    let mut all = vec!["--root", root.as_str()];
    all.extend(args);
    tree.run_raw_env(&all, None, &[("DKIM_SETUP_TEST_NOW", &at.to_string())])
}

/// A server answering `name` with `value`, split as a zone file would be.
fn dns_with(name: &str, value: &str) -> String {
    let strings = value
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    serve(Zone::default().txt(name, vec![strings])).to_string()
}

fn dns_without_anything() -> String {
    serve(Zone::default()).to_string()
}

fn signing_line(tree: &Tree) -> String {
    tree.read("etc/opendkim/SigningTable")
        .lines()
        .find(|l| l.starts_with("*@example.test"))
        .unwrap()
        .to_string()
}

fn status_json(tree: &Tree, when: u64, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["status", "--json"];
    args.extend(extra);
    let out = at(tree, when, &args);
    out.json()
}

#[test]
fn the_selector_scheme_goes_through_start_activate_retire_gated_on_dns() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let t0 = now();
    let old_record = {
        let out = tree.run(&["dns", "--format", "json"]);
        out.json()[0]["value"].as_str().unwrap().to_string()
    };

    // 1. A new key under key1; signing unchanged.
    let start = at(&tree, t0, &["rotate", "-d", "example.test", "--json"]);
    start.assert_ok();
    let doc = start.json();
    assert_eq!(doc["changed"], true);
    // The next command, as printed, acts on this tree, not on this machine.
    let next = format!(
        "dkim-setup --root {} rotate --domain example.test --activate",
        tree.root_str()
    );
    assert!(
        doc["messages"][0].as_str().unwrap().contains(&next),
        "{doc}"
    );
    let record = doc["dns_records"][0].clone();
    assert_eq!(record["name"], "key1._domainkey.example.test");
    let new_value = record["value"].as_str().unwrap().to_string();
    assert!(
        new_value.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{new_value}"
    );
    assert_ne!(new_value, old_record);
    assert_eq!(
        tree.stat("etc/opendkim/keys/example.test/key1.private").0,
        0o600
    );
    assert!(
        tree.read("etc/opendkim/KeyTable").contains(
            "key1._domainkey.example.test example.test:key1:/etc/opendkim/keys/example.test/key1.private"
        )
    );
    assert_eq!(
        signing_line(&tree),
        "*@example.test key._domainkey.example.test"
    );
    let status = status_json(&tree, t0 + 60, &[]);
    assert_eq!(status["domains"][0]["selector"], "key");
    assert_eq!(status["domains"][0]["pending"]["selector"], "key1");

    // Starting again is a no-op that shows the same record.
    let again = at(&tree, t0 + 60, &["rotate", "-d", "example.test", "--json"]);
    again.assert_ok();
    assert_eq!(again.json()["changed"], false);
    assert_eq!(again.json()["dns_records"][0]["value"], new_value.as_str());

    // 2. DNS lags: nothing published yet, then still the old key.
    let before = tree.snapshot_without_backups();
    for ns in [
        dns_without_anything(),
        dns_with("key1._domainkey.example.test", &old_record),
    ] {
        let out = at(
            &tree,
            t0 + 120,
            &[
                "rotate",
                "-d",
                "example.test",
                "--activate",
                "--nameserver",
                &ns,
            ],
        );
        out.assert_code(1);
        assert!(
            out.stderr
                .contains("DNS does not serve the new key at key1._domainkey.example.test yet"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("was not switched"), "{}", out.stderr);
        assert_same_tree(&before, &tree.snapshot_without_backups());
    }

    // DNS serves it now: signing switches, with a reload (never a restart).
    let ns = dns_with("key1._domainkey.example.test", &new_value);
    let activate = at(
        &tree,
        t0 + 180,
        &[
            "rotate",
            "-d",
            "example.test",
            "--activate",
            "--nameserver",
            &ns,
            "--json",
        ],
    );
    activate.assert_ok();
    assert_eq!(
        signing_line(&tree),
        "*@example.test key1._domainkey.example.test"
    );
    assert!(
        tree.read("etc/opendkim/KeyTable")
            .contains("key._domainkey.example.test"),
        "the old key must stay until it is retired"
    );
    let services: Vec<_> = steps(&activate.json())
        .iter()
        .filter(|s| s["kind"] == "service")
        .map(|s| s["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(services, ["reload"]);

    // 3. Retire: refused inside the retention period, done after it.
    let early = at(
        &tree,
        t0 + 3 * DAY,
        &["rotate", "-d", "example.test", "--retire"],
    );
    early.assert_code(1);
    assert!(
        early.stderr.contains("may still be needed"),
        "{}",
        early.stderr
    );
    assert!(tree.exists("etc/opendkim/keys/example.test/key.private"));

    let retire = at(
        &tree,
        t0 + 8 * DAY,
        &["rotate", "-d", "example.test", "--retire"],
    );
    retire.assert_ok();
    assert!(
        retire
            .stdout
            .contains("the DNS record key._domainkey.example.test may now be deleted"),
        "{}",
        retire.stdout
    );
    assert!(!tree.exists("etc/opendkim/keys/example.test/key.private"));
    assert!(!tree.exists("etc/opendkim/keys/example.test/key.txt"));
    assert_eq!(
        tree.read("etc/opendkim/KeyTable"),
        "key1._domainkey.example.test example.test:key1:/etc/opendkim/keys/example.test/key1.private\n"
    );
    let status = status_json(&tree, t0 + 8 * DAY, &[]);
    assert_eq!(status["domains"][0]["selector"], "key1");
    assert_eq!(status["domains"][0]["age_days"], 8);
    assert!(status["domains"][0]["pending"].is_null());
    assert!(status["domains"][0]["retiring"].is_null());

    // The next rotation alternates back to `key`.
    let next = at(
        &tree,
        t0 + 9 * DAY,
        &["rotate", "-d", "example.test", "--json"],
    );
    next.assert_ok();
    assert_eq!(
        next.json()["dns_records"][0]["name"],
        "key._domainkey.example.test"
    );
}

#[test]
fn force_activates_without_dns_and_retires_early_with_warnings() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let t0 = now();
    at(
        &tree,
        t0,
        &["rotate", "-d", "example.test", "--new-selector", "2026"],
    )
    .assert_ok();
    let ns = dns_without_anything();
    let out = at(
        &tree,
        t0,
        &[
            "rotate",
            "-d",
            "example.test",
            "--activate",
            "--force",
            "--nameserver",
            &ns,
        ],
    );
    out.assert_ok();
    assert!(
        out.stdout.contains("activating anyway (--force)"),
        "{}",
        out.stdout
    );
    assert_eq!(
        signing_line(&tree),
        "*@example.test 2026._domainkey.example.test"
    );

    let out = at(
        &tree,
        t0 + DAY,
        &["rotate", "-d", "example.test", "--retire", "--force"],
    );
    out.assert_ok();
    assert!(
        out.stdout.contains("before the retention period ends"),
        "{}",
        out.stdout
    );
    assert!(!tree.exists("etc/opendkim/keys/example.test/key.private"));

    // --after shortens the retention period without --force.
    at(&tree, t0 + DAY, &["rotate", "-d", "example.test"]).assert_ok();
    at(
        &tree,
        t0 + DAY,
        &[
            "rotate",
            "-d",
            "example.test",
            "--activate",
            "--force",
            "--nameserver",
            &ns,
        ],
    )
    .assert_ok();
    at(
        &tree,
        t0 + 2 * DAY,
        &["rotate", "-d", "example.test", "--retire", "--after", "3"],
    )
    .assert_code(1);
    at(
        &tree,
        t0 + 5 * DAY,
        &["rotate", "-d", "example.test", "--retire", "--after", "3"],
    )
    .assert_ok();
    assert_eq!(
        signing_line(&tree),
        "*@example.test key._domainkey.example.test"
    );
}

#[test]
fn rotation_refuses_what_makes_no_sense_and_changes_nothing() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let before = tree.snapshot_without_backups();
    let cases: [(&[&str], i32, &str); 7] = [
        (&["rotate"], 2, "give --domain DOMAIN"),
        (
            &["rotate", "-d", "other.test"],
            2,
            "'other.test' is not configured",
        ),
        (
            &["rotate", "-d", "example.test", "--new-selector", "key"],
            2,
            "is the one example.test signs with now",
        ),
        (
            &["rotate", "-d", "example.test", "--new-selector", "bad sel"],
            2,
            "invalid selector",
        ),
        (
            &["rotate", "-d", "example.test", "--activate"],
            1,
            "no rotation of example.test is pending",
        ),
        (
            &["rotate", "-d", "example.test", "--retire"],
            1,
            "no old key of example.test waits",
        ),
        (
            &["rotate", "-d", "example.test", "--activate", "--retire"],
            2,
            "two separate steps",
        ),
    ];
    for (args, code, needle) in cases {
        let out = tree.run(args);
        out.assert_code(code);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert_same_tree(&before, &tree.snapshot_without_backups());
    }

    tree.run(&["rotate", "-d", "example.test"]).assert_ok();
    let pending = tree.snapshot_without_backups();
    let out = tree.run(&["rotate", "-d", "example.test", "--retire"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("is not activated yet"),
        "{}",
        out.stderr
    );
    let out = tree.run(&["rotate", "-d", "example.test", "--new-selector", "other"]);
    out.assert_code(2);
    assert!(out.stderr.contains("already pending"), "{}", out.stderr);
    assert_same_tree(&pending, &tree.snapshot_without_backups());
}

#[test]
fn a_selector_in_use_is_refused() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    tree.write_mode("etc/opendkim/keys/example.test/old.private", "x", 0o600);
    let out = tree.run(&["rotate", "-d", "example.test", "--new-selector", "old"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("'old' of example.test is already in use"),
        "{}",
        out.stderr
    );
}

#[test]
fn status_marks_old_keys_due_and_fails_if_asked() {
    let tree = Tree::debian12_with_checks();
    tree.wizard(&["-d", "example.test", "-d", "second.test"])
        .assert_ok();
    let t0 = now();
    let fresh = at(&tree, t0, &["status", "--fail-if-due"]);
    fresh.assert_ok();
    assert!(fresh.stdout.contains("example.test"), "{}", fresh.stdout);
    assert!(fresh.stdout.contains("rsa-2048"), "{}", fresh.stdout);

    let late = at(&tree, t0 + 400 * DAY, &["status", "--fail-if-due"]);
    late.assert_code(1);
    assert!(late.stdout.contains("ROTATION DUE"), "{}", late.stdout);
    assert!(
        late.stderr.contains("example.test, second.test"),
        "{}",
        late.stderr
    );

    let doc = status_json(&tree, t0 + 400 * DAY, &["--max-age", "500"]);
    assert_eq!(doc["rotation_due"], false);
    let row = &doc["domains"][1];
    assert_eq!(row["domain"], "second.test");
    assert_eq!(row["key_type"], "rsa");
    assert_eq!(row["bits"], 2048);
    assert_eq!(row["scheme"], "selector");
    assert_eq!(row["age_days"], 400);
}

#[test]
fn a_rotation_step_is_journaled_and_can_be_reverted() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let before = tree.snapshot_without_backups();
    tree.run(&["rotate", "-d", "example.test"]).assert_ok();
    tree.run(&["revert"]).assert_ok();
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn rotate_all_covers_every_configured_domain() {
    let tree = Tree::debian12_with_checks();
    tree.wizard(&["-d", "example.test", "-d", "second.test"])
        .assert_ok();
    let out = tree.run(&["rotate", "--all", "--json"]);
    out.assert_ok();
    let names: Vec<String> = out.json()["dns_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "key1._domainkey.example.test",
            "key1._domainkey.second.test"
        ]
    );
}

/// A server for the two-slot scheme: each domain's CNAMEs, and the slot
/// TXT records given.
fn slot_dns(domains: &[&str], slots: &[(&str, &str)]) -> String {
    let mut zone = Zone::default();
    for d in domains {
        zone = zone
            .cname(&format!("key._domainkey.{d}"), "dkim_a.mail.example.net")
            .cname(&format!("key1._domainkey.{d}"), "dkim_b.mail.example.net");
    }
    for (name, value) in slots {
        let strings = value
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        zone = zone.txt(name, vec![strings]);
    }
    serve(zone).to_string()
}

fn records(tree: &Tree) -> Vec<(String, String, String)> {
    let out = tree.run(&["dns", "--format", "json"]);
    out.assert_ok();
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["type"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_two_slot_cname_scheme_rotates_every_domain_at_once() {
    let tree = Tree::debian12_with_checks();
    let domains = ["example.test", "second.test"];
    tree.wizard(&[
        "--rotation",
        "cname",
        "--slot-host",
        "mail.example.net",
        "-d",
        "example.test",
        "-d",
        "second.test",
    ])
    .assert_ok();
    let slot_a = "etc/opendkim/keys/slots/a.private";
    assert_eq!(tree.stat(slot_a).0, 0o600);
    assert_eq!(tree.stat("etc/opendkim/keys/slots").0, 0o700);
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test key._domainkey.example.test\n*@second.test key._domainkey.second.test\n"
    );
    let published = records(&tree);
    let kinds: Vec<(&str, &str)> = published
        .iter()
        .map(|(n, t, _)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("key._domainkey.example.test", "CNAME"),
            ("key1._domainkey.example.test", "CNAME"),
            ("key._domainkey.second.test", "CNAME"),
            ("key1._domainkey.second.test", "CNAME"),
            ("dkim_a.mail.example.net", "TXT"),
        ]
    );
    assert_eq!(published[1].2, "dkim_b.mail.example.net");
    let key_a = published[4].2.clone();
    let bind = tree.run(&["dns", "--format", "bind"]).stdout;
    assert!(
        bind.contains("key1._domainkey.second.test. IN CNAME dkim_b.mail.example.net.\n"),
        "{bind}"
    );
    // A second run changes nothing.
    let again = tree.wizard(&["-d", "example.test", "-d", "second.test", "--json"]);
    again.assert_ok();
    assert_eq!(again.json()["changed"], false, "{}", again.stdout);

    // Per-domain rotation is refused: the key is shared.
    let out = tree.run(&["rotate", "-d", "example.test"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "dkim-setup --root {} rotate --all",
            tree.root_str()
        )),
        "{}",
        out.stderr
    );

    // 1. One new key, into slot b, one TXT record to publish.
    let t0 = now();
    let start = at(&tree, t0, &["rotate", "--all", "--json"]);
    start.assert_ok();
    let doc = start.json();
    let new = doc["dns_records"].as_array().unwrap();
    assert_eq!(new.len(), 1, "{doc:#}");
    assert_eq!(new[0]["name"], "dkim_b.mail.example.net");
    let key_b = new[0]["value"].as_str().unwrap().to_string();
    assert!(tree.exists("etc/opendkim/keys/slots/b.private"));
    assert!(tree.read("etc/opendkim/KeyTable").contains(
        "key1._domainkey.second.test second.test:key1:/etc/opendkim/keys/slots/b.private"
    ));
    let status = status_json(&tree, t0, &[]);
    assert_eq!(status["domains"][0]["scheme"], "cname");
    assert_eq!(status["domains"][1]["pending"]["selector"], "key1");

    // 2. Refused while dkim_b still serves nothing, or second.test's CNAME is missing.
    let before = tree.snapshot_without_backups();
    let lagging = [
        slot_dns(&domains, &[("dkim_a.mail.example.net", &key_a)]),
        slot_dns(
            &["example.test"],
            &[
                ("dkim_a.mail.example.net", &key_a),
                ("dkim_b.mail.example.net", &key_b),
            ],
        ),
    ];
    for ns in &lagging {
        let out = at(
            &tree,
            t0,
            &["rotate", "--all", "--activate", "--nameserver", ns],
        );
        out.assert_code(1);
        assert!(
            out.stderr.contains("no domain was switched"),
            "{}",
            out.stderr
        );
        assert_same_tree(&before, &tree.snapshot_without_backups());
    }
    let second = at(
        &tree,
        t0,
        &["rotate", "--all", "--activate", "--nameserver", &lagging[1]],
    );
    assert!(
        second.stderr.contains("key1._domainkey.second.test"),
        "{}",
        second.stderr
    );

    let ns = slot_dns(
        &domains,
        &[
            ("dkim_a.mail.example.net", &key_a),
            ("dkim_b.mail.example.net", &key_b),
        ],
    );
    at(
        &tree,
        t0 + 60,
        &["rotate", "--all", "--activate", "--nameserver", &ns],
    )
    .assert_ok();
    assert_eq!(
        tree.read("etc/opendkim/SigningTable"),
        "*@example.test key1._domainkey.example.test\n*@second.test key1._domainkey.second.test\n"
    );

    // 3. Retire slot a after the retention period; its TXT may go, the CNAMEs stay.
    at(&tree, t0 + DAY, &["rotate", "--all", "--retire"]).assert_code(1);
    let retire = at(&tree, t0 + 8 * DAY, &["rotate", "--all", "--retire"]);
    retire.assert_ok();
    assert!(
        retire
            .stdout
            .contains("the TXT record dkim_a.mail.example.net may now be deleted"),
        "{}",
        retire.stdout
    );
    assert!(!tree.exists(slot_a));
    assert!(
        !tree
            .read("etc/opendkim/KeyTable")
            .contains("slots/a.private")
    );
    let after: Vec<String> = records(&tree).into_iter().map(|r| r.0).collect();
    assert!(
        after.contains(&"key._domainkey.example.test".to_string()),
        "{after:?}"
    );
    assert!(
        !after.contains(&"dkim_a.mail.example.net".to_string()),
        "{after:?}"
    );

    // The next rotation fills slot a again.
    let next = at(&tree, t0 + 9 * DAY, &["rotate", "--all", "--json"]);
    next.assert_ok();
    assert_eq!(
        next.json()["dns_records"][0]["name"],
        "dkim_a.mail.example.net"
    );
}

#[test]
fn the_cname_scheme_needs_a_valid_slot_host_and_no_selector() {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--rotation", "cname", "-d", "example.test"],
            "needs --slot-host",
        ),
        (
            &["--slot-host", "mail.example.net", "-d", "example.test"],
            "--slot-host goes with --rotation cname",
        ),
        (
            &[
                "--rotation",
                "cname",
                "--slot-host",
                "bad host",
                "-d",
                "example.test",
            ],
            "invalid slot host 'bad host'",
        ),
        (
            &[
                "--rotation",
                "cname",
                "--slot-host",
                "mail.example.net",
                "-s",
                "sel",
                "-d",
                "example.test",
            ],
            "--selector cannot be chosen",
        ),
    ];
    for (args, needle) in cases {
        let out = tree.wizard(args);
        out.assert_code(2);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert_same_tree(&before, &tree.snapshot());
    }
}

#[test]
fn moving_a_domain_to_the_slot_scheme_warns_that_its_key_changes() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let out = tree.wizard(&[
        "--rotation",
        "cname",
        "--slot-host",
        "mail.example.net",
        "-d",
        "example.test",
    ]);
    out.assert_ok();
    assert!(
        out.stderr.contains(
            "warning: signing for example.test switches from the key \
             '/etc/opendkim/keys/example.test/key.private'"
        ),
        "{}",
        out.stderr
    );
    assert!(
        tree.read("etc/opendkim/KeyTable")
            .contains("example.test:key:/etc/opendkim/keys/slots/a.private")
    );
}

#[test]
fn b03_a_crlf_signing_table_is_repaired_by_a_rotation_step() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let crlf = tree.read("etc/opendkim/SigningTable").replace('\n', "\r\n");
    tree.write("etc/opendkim/SigningTable", &crlf);
    tree.run(&["rotate", "-d", "example.test"]).assert_ok();
    assert!(!tree.read("etc/opendkim/SigningTable").contains('\r'));
    assert_eq!(
        signing_line(&tree),
        "*@example.test key._domainkey.example.test"
    );
}

#[test]
fn status_and_a_refused_activation_say_what_dns_returned() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let t0 = now();
    let old_record = tree.run(&["dns", "--format", "json"]).json()[0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    at(&tree, t0, &["rotate", "--domain", "example.test"]).assert_ok();

    // Not asked: status says so instead of keeping silent.
    let plain = at(&tree, t0, &["status"]);
    plain.assert_ok();
    assert!(
        plain.stdout.contains("DNS not asked (--nameserver)"),
        "{}",
        plain.stdout
    );
    let doc = status_json(&tree, t0, &[]);
    assert!(doc["domains"][0]["pending"]["dns_seen"].is_null(), "{doc}");

    // key1 serves the old key (a record pasted twice): "another key", and
    // the refusal quotes what DNS returned.
    let ns = dns_with("key1._domainkey.example.test", &old_record);
    let plain = at(&tree, t0, &["status", "--nameserver", &ns]);
    assert!(
        plain.stdout.contains("DNS serves another key"),
        "{}",
        plain.stdout
    );
    let doc = status_json(&tree, t0, &["--nameserver", &ns]);
    let pending = &doc["domains"][0]["pending"];
    assert_eq!(pending["dns_seen"], false, "{doc}");
    let start = &old_record[..30];
    assert!(
        pending["dns"]
            .as_str()
            .unwrap()
            .contains(&format!("DNS returned \"{start}")),
        "{doc}"
    );
    let refused = at(
        &tree,
        t0,
        &[
            "rotate",
            "--domain",
            "example.test",
            "--activate",
            "--nameserver",
            &ns,
        ],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("DNS returned \"{start}")),
        "{}",
        refused.stderr
    );
}
