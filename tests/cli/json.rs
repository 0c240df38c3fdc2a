//! The `--json` document as the spec defines it, and what must never be printed.

use crate::common::*;

#[test]
fn json_document_follows_the_spec_schema() {
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    let doc = out.json();

    assert_eq!(doc["changed"], true);
    assert_eq!(doc["dry_run"], false);
    assert_eq!(
        doc["distro"],
        serde_json::json!({"family": "debian", "id": "debian", "version": "12"})
    );
    for s in steps(&doc) {
        let kind = s["kind"].as_str().expect("every step has a kind");
        match kind {
            "file" | "key" | "dir" | "attrs" => {
                let path = s["path"].as_str().expect("path");
                assert!(path.starts_with('/'), "{s}");
                let action = s["action"].as_str().unwrap();
                assert!(["create", "modify", "unchanged"].contains(&action), "{s}");
            }
            "command" | "service" => {
                assert!(s["argv"].is_array(), "{s}");
                let status = s["status"].as_str().unwrap();
                assert!(["planned", "done", "skipped"].contains(&status), "{s}");
            }
            "verify" => {
                assert!(s["what"].is_string(), "{s}");
                let status = s["status"].as_str().unwrap();
                assert!(["planned", "done", "skipped"].contains(&status), "{s}");
            }
            other => panic!("unknown step kind {other}: {s}"),
        }
    }
    let file = |p: &str| step(&doc, "file", p).unwrap_or_else(|| panic!("no step for {p}"));
    assert_eq!(file("/etc/opendkim.conf")["action"], "modify");
    assert_eq!(file("/etc/postfix/main.cf")["action"], "modify");
    assert_eq!(file("/etc/opendkim/KeyTable")["action"], "create");
    assert_eq!(file("/etc/opendkim/SigningTable")["action"], "create");
    assert_eq!(file("/etc/opendkim/TrustedHosts")["action"], "create");
    let key = step(&doc, "key", "/etc/opendkim/keys/example.test/key.private").unwrap();
    assert_eq!(key["action"], "create");
    assert_eq!(key["bits"], 2048);

    let records = doc["dns_records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["name"], "key._domainkey.example.test");
    assert_eq!(records[0]["type"], "TXT");
    let value = records[0]["value"].as_str().unwrap();
    assert!(
        value.starts_with(&format!("v=DKIM1; k=rsa; p={SPKI_2048_PREFIX}")),
        "{value}"
    );
}

#[test]
fn json_paths_never_carry_the_root_prefix() {
    let tree = Tree::debian12_with_checks();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    let doc = out.json();
    let root = tree.root_str();
    for s in steps(&doc) {
        if let Some(path) = s["path"].as_str() {
            assert!(!path.contains(&root), "root in path: {s}");
        }
    }
    // Only a chroot argv names the tree, right after "chroot".
    for s in steps(&doc) {
        if let Some(argv) = s["argv"].as_array() {
            for (i, a) in argv.iter().enumerate() {
                if a.as_str() == Some(root.as_str()) {
                    assert!(i > 0 && (argv[i - 1] == "chroot" || argv[i - 1] == "--root"));
                }
            }
        }
    }
    // Checks ran in the tree, and the JSON says so.
    let recorded = tree.recorded();
    assert_eq!(
        recorded,
        [
            vec![
                "chroot",
                &root,
                "opendkim",
                "-n",
                "-x",
                "/etc/opendkim.conf"
            ],
            vec!["chroot", &root, "postfix", "check"],
            vec!["chroot", &root, "postconf", "-n"],
        ]
    );
    let done: Vec<&serde_json::Value> = steps(&doc)
        .iter()
        .filter(|s| s["kind"] == "command")
        .collect();
    assert!(done.iter().all(|s| s["status"] == "done"), "{done:?}");
}

#[test]
fn json_stdout_is_one_document_and_human_text_goes_to_stderr() {
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    let doc = out.json();
    assert!(doc.is_object());
    assert!(!out.stdout.contains("Publish these DNS records"));
}

#[test]
fn private_key_never_appears_in_any_output() {
    let tree = Tree::debian12();
    let runs = [
        tree.wizard(&["-d", "example.test", "--json"]),
        tree.wizard(&["-d", "example.test"]),
        tree.wizard(&["-d", "example.test", "-v", "-v"]),
        tree.wizard(&["-d", "example.test", "--dry-run"]),
        tree.wizard(&["-d", "example.test", "--dry-run", "--json"]),
        tree.run(&["dns", "--format", "plain"]),
        tree.run(&["dns", "--format", "bind"]),
        tree.run(&["dns", "--format", "json"]),
    ];
    let pem = tree.read("etc/opendkim/keys/example.test/key.private");
    let body: Vec<&str> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    assert!(body.len() > 20, "unexpected key file:\n{pem}");
    for out in &runs {
        out.assert_ok();
        let all = out.all();
        assert!(!all.contains("PRIVATE KEY"), "key armour printed:\n{all}");
        for line in &body {
            assert!(!all.contains(line), "a line of the private key was printed");
        }
    }
}
