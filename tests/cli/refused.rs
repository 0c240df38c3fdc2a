//! "Input that must be refused": exit 2, the value named, nothing written.

use crate::common::*;

/// Run the wizard with `args` on a fresh tree and check the refusal:
/// exit 2, stderr contains every needle, and the tree is byte-identical.
#[track_caller]
fn assert_refused(args: &[&str], needles: &[&str]) {
    let tree = Tree::debian12_with_checks();
    let before = tree.snapshot();
    let out = tree.wizard(args);
    out.assert_code(2);
    for needle in needles {
        out.assert_stderr_has(needle);
    }
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());
}

#[test]
fn domains_with_whitespace_are_refused() {
    assert_refused(&["-d", "exa mple.test"], &["exa mple.test", "whitespace"]);
    assert_refused(&["-d", "example.test\t"], &["example.test\\t"]);
    assert_refused(&["-d", "example.test "], &["'example.test '"]);
}

#[test]
fn domain_with_a_newline_is_refused_and_shown_escaped() {
    let out_needle = "example.test\\nSocket inet:1@0.0.0.0";
    assert_refused(
        &["-d", "example.test\nSocket inet:1@0.0.0.0"],
        &[out_needle],
    );
}

#[test]
fn domains_with_colon_star_or_quotes_are_refused() {
    assert_refused(&["-d", "example.test:25"], &["example.test:25", "':'"]);
    assert_refused(&["-d", "ex*ample.test"], &["ex*ample.test"]);
    assert_refused(
        &["-d", "\"example.test\""],
        &["example.test", "invalid domain"],
    );
    assert_refused(
        &["-d", "'example.test'"],
        &["example.test", "invalid domain"],
    );
    assert_refused(&["-d", "exa#mple.test"], &["exa#mple.test"]);
}

#[test]
fn wildcard_and_catch_all_domains_are_refused() {
    assert_refused(&["-d", "*.example.test"], &["*.example.test", "wildcard"]);
    assert_refused(&["-d", "*"], &["'*'"]);
    assert_refused(&["-d", "@example.test"], &["@example.test"]);
}

#[test]
fn single_label_domain_is_refused() {
    assert_refused(&["-d", "localhost"], &["localhost", "two labels"]);
    assert_refused(&["-d", "example"], &["'example'"]);
}

#[test]
fn overlong_domains_are_refused() {
    let long_label = format!("{}.example.test", "a".repeat(64));
    assert_refused(&["-d", &long_label], &[&long_label, "63"]);
    let long_name = vec!["b".repeat(60); 5].join(".");
    assert_refused(&["-d", &long_name], &[&long_name, "253"]);
}

#[test]
fn ip_addresses_and_empty_labels_are_not_domains() {
    assert_refused(&["-d", "192.0.2.1"], &["192.0.2.1"]);
    assert_refused(&["-d", "a..example.test"], &["a..example.test"]);
    assert_refused(&["--domain=-a.example.test"], &["-a.example.test"]);
    assert_refused(&["-d", ""], &["invalid domain ''"]);
}

#[test]
fn one_bad_domain_among_good_ones_refuses_the_whole_run() {
    assert_refused(
        &["-d", "good.example", "-d", "bad domain.example"],
        &["bad domain.example"],
    );
}

#[test]
fn bad_selectors_are_refused() {
    for (sel, needle) in [
        ("bad selector", "bad selector"),
        ("sel:1", "sel:1"),
        ("sel*", "sel*"),
        ("sel\"q", "sel\\\"q"),
        ("-sel", "-sel"),
        ("key._domainkey", "key._domainkey"),
        ("sel\nx", "sel\\nx"),
        ("", "invalid selector ''"),
    ] {
        assert_refused(&["-d", "example.test", "-s", sel], &[needle, "selector"]);
    }
}

#[test]
fn key_sizes_outside_the_list_are_refused() {
    assert_refused(&["-d", "example.test", "--bits", "512"], &["512"]);
    assert_refused(&["-d", "example.test", "--bits", "2047"], &["2047"]);
}

#[test]
fn b12_4096_bit_key_needs_allow_long_key() {
    assert_refused(
        &["-d", "example.test", "--bits", "4096"],
        &["4096", "--allow-long-key"],
    );
}

#[test]
fn b12_4096_bit_key_with_allow_long_key_is_generated() {
    let tree = Tree::debian12();
    let out = tree.wizard(&[
        "-d",
        "example.test",
        "--bits",
        "4096",
        "--allow-long-key",
        "--json",
    ]);
    out.assert_ok();
    let doc = out.json();
    let key = step(&doc, "key", "/etc/opendkim/keys/example.test/key.private").unwrap();
    assert_eq!(key["bits"], 4096);
    let value = doc["dns_records"][0]["value"].as_str().unwrap();
    // SPKI of a 4096-bit key: SEQUENCE of 0x222 bytes.
    assert!(
        p_value(value).starts_with("MIICIjANBgkqhkiG9w0BAQEFAAOCAg8A"),
        "{value}"
    );
    let bind = tree.run(&["dns", "--format", "bind"]);
    let strings: Vec<&str> = bind.stdout.split('"').skip(1).step_by(2).collect();
    assert!(strings.len() >= 3, "{}", bind.stdout);
    assert!(strings.iter().all(|s| s.len() <= 255));
    assert_eq!(strings.concat(), value);
}

#[test]
fn catch_all_trusted_hosts_are_refused() {
    assert_refused(
        &["-d", "example.test", "--trusted-host", "0.0.0.0/0"],
        &["0.0.0.0/0"],
    );
    assert_refused(&["-d", "example.test", "--trusted-host", "::/0"], &["::/0"]);
    assert_refused(
        &["-d", "example.test", "--trusted-host", "192.0.2.0/33"],
        &["192.0.2.0/33"],
    );
    assert_refused(
        &["-d", "example.test", "--trusted-host", "bad host"],
        &["bad host"],
    );
}

#[test]
fn socket_specs_opendkim_cannot_parse_are_refused() {
    for spec in [
        "inet:99999@127.0.0.1",
        "inet:port@127.0.0.1",
        "inet:0@127.0.0.1",
        "tcp:8891@127.0.0.1",
        "local:opendkim.sock",
        "8891",
        "inet:8891@127.0.0.1 extra",
        "local:/run/opendkim/a:b.sock",
    ] {
        assert_refused(&["-d", "example.test", "--socket", spec], &[spec, "socket"]);
    }
    assert_refused(
        &["-d", "example.test", "--socket", "inet:8891@127.0.0.1\nX"],
        &["inet:8891@127.0.0.1\\nX"],
    );
}

#[test]
fn socket_on_every_address_is_refused() {
    assert_refused(
        &["-d", "example.test", "--socket", "inet:8891@0.0.0.0"],
        &["inet:8891@0.0.0.0"],
    );
}

#[test]
fn bad_report_address_is_refused() {
    assert_refused(
        &["-d", "example.test", "--report-address", "postmaster"],
        &["postmaster"],
    );
}

#[test]
fn unknown_flag_is_bad_usage() {
    assert_refused(&["-d", "example.test", "--frobnicate"], &["--frobnicate"]);
}

#[test]
fn missing_domain_without_a_terminal_names_the_flag() {
    let tree = Tree::debian12();
    let before = tree.snapshot();
    // No -y: stdin is not a terminal (the test harness gives /dev/null).
    let root = tree.root_str();
    let out = tree.run_raw(
        &["wizard", "--root", &root, "--no-install", "--no-restart"],
        None,
    );
    out.assert_code(2).assert_stderr_has("--domain");
    assert_same_tree(&before, &tree.snapshot());
    // With -y too.
    let out = tree.wizard(&[]);
    out.assert_code(2).assert_stderr_has("--domain");
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn unsupported_os_release_is_refused_listing_what_is_supported() {
    let tree = Tree::debian12();
    tree.write(
        "etc/os-release",
        "NAME=\"Arch Linux\"\nID=arch\nPRETTY_NAME=\"Arch Linux\"\n",
    );
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_code(2);
    out.assert_stderr_has("'arch'");
    for supported in ["debian", "ubuntu", "rhel", "almalinux", "rocky", "fedora"] {
        out.assert_stderr_has(supported);
    }
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty());
}

#[test]
fn id_like_debian_is_supported() {
    let tree = Tree::debian12();
    tree.write(
        "etc/os-release",
        "ID=devuan\nID_LIKE=debian\nVERSION_ID=\"5\"\n",
    );
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    assert_eq!(
        out.json()["distro"],
        serde_json::json!({"family": "debian", "id": "devuan", "version": "5"})
    );
}

#[test]
fn no_install_without_the_opendkim_package_is_refused() {
    let tree = Tree::debian12();
    tree.write(
        "var/lib/dpkg/status",
        "Package: postfix\nStatus: install ok installed\nVersion: 3.7.11-0+deb12u1\n\n\
         Package: opendkim\nStatus: deinstall ok config-files\nVersion: 2.11.0~beta2-8\n",
    );
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_code(2);
    out.assert_stderr_has("opendkim")
        .assert_stderr_has("--no-install");
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "{:?}", tree.recorded());
}

#[test]
fn missing_postfix_is_refused() {
    let tree = Tree::debian12();
    std::fs::remove_file(tree.path("etc/postfix/main.cf")).unwrap();
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_failed().assert_stderr_has("main.cf");
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn not_root_on_the_live_system_is_refused() {
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("skipped: setpriv not available");
        return;
    };
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !is_root {
        eprintln!("skipped: not running as root, cannot drop to another user");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("dkim-setup");
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(WIZARD)
        .args(["-d", "example.test"])
        .env("DKIM_SETUP_RECORD", "/nonexistent/dkim-setup-record")
        .current_dir("/")
        .output()
        .expect("run setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unsupported system") || stderr.contains("Permission denied") {
        eprintln!("skipped: this host cannot run the check: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("root"), "{stderr}");
}

#[test]
fn values_that_would_inject_lines_or_fields_are_refused_for_every_flag() {
    // Each would add a line or a field to opendkim.conf, a table, or main.cf.
    let hostile = [
        "\nKeyFile /tmp/x",
        " Mode v",
        "#",
        "\"",
        "'",
        "\r",
        "\t",
        "*",
    ];
    for bad in hostile {
        let domain = format!("example.test{bad}");
        assert_refused(&["-d", &domain], &["invalid domain"]);
        let selector = format!("key{bad}");
        assert_refused(&["-d", "example.test", "-s", &selector], &["selector"]);
        let host = format!("192.0.2.1{bad}");
        assert_refused(
            &["-d", "example.test", "--trusted-host", &host],
            &["trusted host"],
        );
        let socket = format!("local:/var/spool/postfix/opendkim/o{bad}.sock");
        assert_refused(&["-d", "example.test", "--socket", &socket], &["socket"]);
        if bad == "*" {
            // A legal character of a mail address's local part, and harmless there.
            continue;
        }
        let address = format!("dmarc{bad}@example.test");
        assert_refused(
            &["-d", "example.test", "--report-address", &address],
            &["report address"],
        );
    }
    for overlong in ["a".repeat(64), vec!["b".repeat(63); 4].join(".")] {
        assert_refused(&["-d", "example.test", "-s", &overlong], &["selector"]);
        assert_refused(
            &["-d", "example.test", "--trusted-host", &overlong],
            &["trusted host"],
        );
    }
    for catch_all in ["0.0.0.0/0", "::/0", "0/0", "0.0.0.0/1", "::/1"] {
        assert_refused(
            &["-d", "example.test", "--trusted-host", catch_all],
            &[catch_all],
        );
    }
}
