//! Field cases B01–B14 (the project's list of real deployment failures), one test per case
//! and variant. B13 belongs to the later `check` command.

use crate::common::*;

const CONF: &str = "etc/opendkim.conf";
const MAIN_CF: &str = "etc/postfix/main.cf";
const KEY_TABLE: &str = "etc/opendkim/KeyTable";
const SIGNING_TABLE: &str = "etc/opendkim/SigningTable";
const KEY: &str = "etc/opendkim/keys/example.test/key.private";
const OPENDKIM: (u32, u32) = (103, 107);

/// A tree already set up for example.test by a first run.
fn set_up() -> Tree {
    let tree = Tree::debian12();
    tree.setup_example();
    tree
}

/// Run the wizard for example.test on a tree that must refuse it, and prove
/// nothing changed and nothing ran.
#[track_caller]
fn assert_refused_unchanged(tree: &Tree, needles: &[&str]) -> Outcome {
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_failed();
    for needle in needles {
        out.assert_stderr_has(needle);
    }
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty(), "ran: {:?}", tree.recorded());
    out
}

// B01 — SigningTable written as a flat file while its entries are wildcards

#[test]
fn b01_file_signing_table_with_wildcards_is_rewritten_to_refile() {
    for old in [
        "file:/etc/opendkim/SigningTable",
        "/etc/opendkim/SigningTable",
    ] {
        let tree = set_up();
        tree.edit(
            CONF,
            "SigningTable\t\trefile:/etc/opendkim/SigningTable",
            &format!("SigningTable\t\t{old}"),
        );
        let signing = tree.read(SIGNING_TABLE);
        assert!(signing.starts_with("*@example.test "), "{signing}");

        let out = tree.wizard(&["-d", "example.test"]);
        out.assert_ok();
        let conf = tree.read(CONF);
        assert_eq!(
            active_values(&conf, "SigningTable"),
            ["refile:/etc/opendkim/SigningTable"],
            "from {old}"
        );
        out.assert_stderr_has(&format!("'{old}'"));
        out.assert_stderr_has("refile:");
        assert_eq!(tree.read(SIGNING_TABLE), signing);
    }
}

#[test]
fn b01_adopted_signing_table_path_is_kept_with_refile() {
    let tree = Tree::debian12();
    tree.edit(
        CONF,
        "#Nameservers",
        "SigningTable\t\t/etc/dkimkeys/SigningTable\n#Nameservers",
    );
    tree.write("etc/dkimkeys/SigningTable", "");
    tree.setup_example();
    let conf = tree.read(CONF);
    assert_eq!(
        active_values(&conf, "SigningTable"),
        ["refile:/etc/dkimkeys/SigningTable"]
    );
    assert_eq!(
        tree.read("etc/dkimkeys/SigningTable"),
        "*@example.test key._domainkey.example.test\n"
    );
    assert!(!tree.exists(SIGNING_TABLE));
}

// B02 — KeyTable declared as refile:

#[test]
fn b02_fresh_key_table_is_a_plain_file_dataset() {
    let tree = set_up();
    let values = active_values(&tree.read(CONF), "KeyTable");
    assert_eq!(values.len(), 1);
    let v = values[0].strip_prefix("file:").unwrap_or(&values[0]);
    assert_eq!(v, "/etc/opendkim/KeyTable");
}

#[test]
fn b02_refile_key_table_is_rewritten_and_reported() {
    let tree = set_up();
    tree.edit(
        CONF,
        "KeyTable\t\t/etc/opendkim/KeyTable",
        "KeyTable\t\trefile:/etc/opendkim/KeyTable",
    );
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    assert_eq!(
        active_values(&tree.read(CONF), "KeyTable"),
        ["/etc/opendkim/KeyTable"]
    );
    let notes = out.json()["notes"].to_string();
    assert!(notes.contains("KeyTable"), "{notes}");
    assert!(notes.contains("refile:/etc/opendkim/KeyTable"), "{notes}");
}

// B03 — Inconsistent or malformed table lines

#[test]
fn b03_crlf_signing_table_is_rewritten_with_lf_only() {
    let tree = set_up();
    let lf = tree.read(SIGNING_TABLE);
    tree.write(SIGNING_TABLE, &lf.replace('\n', "\r\n"));
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_ok();
    let bytes = tree.read_bytes(SIGNING_TABLE);
    assert!(
        !bytes.contains(&b'\r'),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(bytes, lf.as_bytes());
    out.assert_stderr_has("SigningTable");
}

#[test]
fn b03_trailing_blanks_in_tables_are_stripped() {
    let tree = set_up();
    tree.write(
        SIGNING_TABLE,
        "*@example.test key._domainkey.example.test \t\n*@other.example \
         key._domainkey.example.test  \n",
    );
    tree.wizard(&["-d", "example.test"]).assert_ok();
    assert_eq!(
        tree.read(SIGNING_TABLE),
        "*@example.test key._domainkey.example.test\n\
         *@other.example key._domainkey.example.test\n"
    );
}

#[test]
fn b03_one_column_signing_table_line_is_refused_with_its_line_number() {
    let tree = Tree::debian12_with_checks();
    tree.write(
        SIGNING_TABLE,
        "# signing table\n*@example.test key._domainkey.example.test\n*@other.example\n",
    );
    let out = assert_refused_unchanged(&tree, &["SigningTable", "line 3"]);
    out.assert_stderr_has("*@other.example");
}

#[test]
fn b03_one_column_line_in_an_adopted_setup_keeps_everything() {
    let tree = Tree::debian12_with_checks();
    tree.setup_example();
    let signing = tree.read(SIGNING_TABLE);
    tree.write(SIGNING_TABLE, &format!("{signing}*@example.test\n"));
    let recorded = tree.recorded().len();
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_failed().assert_stderr_has("SigningTable");
    out.assert_stderr_has("line 2");
    assert_same_tree(&before, &tree.snapshot());
    assert_eq!(tree.recorded().len(), recorded, "commands ran");
}

#[test]
fn b03_orphan_key_name_for_another_domain_is_refused() {
    let tree = Tree::debian12_with_checks();
    tree.write(
        SIGNING_TABLE,
        "*@other.example sel2024._domainkey.other.example\n",
    );
    assert_refused_unchanged(&tree, &["SigningTable", "sel2024._domainkey.other.example"]);
}

#[test]
fn b03_orphan_key_name_for_the_same_domain_is_refused() {
    // The field case's exact trigger: the SigningTable names a key that the
    // KeyTable lacks, while the KeyTable holds another key for the domain.
    let tree = Tree::debian12_with_checks();
    tree.wizard(&["-d", "example.test", "-s", "mail"])
        .assert_ok();
    tree.edit(SIGNING_TABLE, "mail._domainkey", "sel2024._domainkey");
    let recorded = tree.recorded().len();
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_failed();
    out.assert_stderr_has("sel2024._domainkey.example.test");
    assert_same_tree(&before, &tree.snapshot());
    assert_eq!(tree.recorded().len(), recorded);
}

#[test]
fn b03_key_table_line_pointing_at_a_missing_key_is_refused() {
    let tree = Tree::debian12_with_checks();
    tree.write(
        KEY_TABLE,
        "mail._domainkey.other.example \
         other.example:mail:/etc/opendkim/keys/other.example/mail.private\n",
    );
    tree.write(
        SIGNING_TABLE,
        "*@other.example mail._domainkey.other.example\n",
    );
    assert_refused_unchanged(&tree, &["/etc/opendkim/keys/other.example/mail.private"]);
}

#[test]
fn b03_key_table_line_without_three_fields_is_refused() {
    let tree = Tree::debian12_with_checks();
    tree.write(
        KEY_TABLE,
        "mail._domainkey.other.example other.example:/etc/opendkim/keys/x.private\n",
    );
    assert_refused_unchanged(&tree, &["KeyTable", "line 1"]);
}

// B04 — Private key readable by other users

#[test]
fn b04_generated_key_is_0600_opendkim() {
    let tree = set_up();
    assert_eq!(tree.stat(KEY), (0o600, OPENDKIM.0, OPENDKIM.1));
}

#[test]
fn b04_existing_world_readable_key_is_fixed_and_named() {
    let tree = set_up();
    let pem = tree.read_bytes(KEY);
    tree.chmod(KEY, 0o644);
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    assert_eq!(tree.stat(KEY), (0o600, OPENDKIM.0, OPENDKIM.1));
    assert_eq!(tree.read_bytes(KEY), pem, "existing key overwritten");
    out.assert_output_has("/etc/opendkim/keys/example.test/key.private");
    let doc = out.json();
    assert_eq!(doc["changed"], true);
    let fix = step(&doc, "attrs", "/etc/opendkim/keys/example.test/key.private")
        .expect("an attrs step for the key");
    assert_eq!(fix["mode"], "0600");
    assert_eq!(fix["owner"], "opendkim:opendkim");
    // Fixed once: the next run is a no-op.
    let before = tree.snapshot();
    tree.wizard(&["-d", "example.test"]).assert_ok();
    assert_same_tree(&before, &tree.snapshot());
}

// B05 — Key owned by the wrong user / opendkim running as root

#[test]
fn b05_conf_runs_opendkim_as_opendkim() {
    let tree = set_up();
    assert_eq!(active_values(&tree.read(CONF), "UserID"), ["opendkim"]);
}

#[test]
fn b05_conf_without_user_id_gets_one() {
    let tree = Tree::debian12();
    tree.edit(CONF, "UserID\t\t\topendkim\n", "");
    tree.setup_example();
    let conf = tree.read(CONF);
    assert_eq!(active_values(&conf, "UserID").len(), 1, "{conf}");
    let user = &active_values(&conf, "UserID")[0];
    assert!(user == "opendkim" || user == "opendkim:opendkim", "{user}");
}

#[test]
fn b05_root_owned_key_is_given_to_opendkim() {
    let tree = set_up();
    tree.chown(KEY, 0, 0);
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_ok();
    assert_eq!(tree.stat(KEY), (0o600, OPENDKIM.0, OPENDKIM.1));
    out.assert_stderr_has("/etc/opendkim/keys/example.test/key.private");
}

#[test]
fn b05_missing_opendkim_user_is_refused_before_anything_changes() {
    let tree = Tree::debian12_with_checks();
    let passwd = tree.read("etc/passwd");
    let without: String = passwd
        .lines()
        .filter(|l| !l.starts_with("opendkim:"))
        .map(|l| format!("{l}\n"))
        .collect();
    tree.write("etc/passwd", &without);
    assert_refused_unchanged(&tree, &["opendkim user not found"]);
}

// B06 — Group membership or a parent directory makes the key "not secure"

#[test]
fn b06_group_readable_key_with_postfix_in_group_becomes_0600_opendkim() {
    let tree = set_up();
    tree.chown(KEY, 0, OPENDKIM.1);
    tree.chmod(KEY, 0o640);
    tree.edit("etc/group", "opendkim:x:107:\n", "opendkim:x:107:postfix\n");
    tree.wizard(&["-d", "example.test"]).assert_ok();
    assert_eq!(tree.stat(KEY), (0o600, OPENDKIM.0, OPENDKIM.1));
    assert!(!tree.read(CONF).contains("RequireSafeKeys"));
}

#[test]
fn b06_group_writable_keys_directory_is_secured() {
    let tree = set_up();
    tree.chmod("etc/opendkim/keys", 0o770);
    tree.chmod("etc/opendkim/keys/example.test", 0o775);
    tree.edit("etc/group", "opendkim:x:107:\n", "opendkim:x:107:postfix\n");
    let out = tree.wizard(&["-d", "example.test"]);
    if out.code == 0 {
        for dir in ["etc/opendkim/keys", "etc/opendkim/keys/example.test"] {
            let (mode, uid, gid) = tree.stat(dir);
            assert_eq!(mode & 0o022, 0, "{dir} still {mode:04o}");
            assert_eq!((uid, gid), OPENDKIM, "{dir}");
        }
    } else {
        out.assert_stderr_has("/etc/opendkim/keys");
    }
}

#[test]
fn b06_key_below_a_directory_writable_by_a_user_is_refused_naming_it() {
    let tree = set_up();
    // Keys kept under /home/user/dkim, a 0775 directory owned by uid 1000.
    tree.mkdir("home/user", 0o755, 0, 0);
    tree.mkdir("home/user/dkim", 0o775, 1000, 1000);
    std::fs::rename(tree.path(KEY), tree.path("home/user/dkim/key.private")).unwrap();
    tree.write(
        KEY_TABLE,
        "key._domainkey.example.test example.test:key:/home/user/dkim/key.private\n",
    );
    let out = assert_refused_unchanged(&tree, &["'/home/user/dkim'"]);
    assert!(
        !out.stderr.contains("RequireSafeKeys false"),
        "{}",
        out.stderr
    );
    assert!(!tree.read(CONF).contains("RequireSafeKeys"));
}

#[test]
fn b06_other_writable_etc_is_refused_naming_it() {
    let tree = Tree::debian12();
    tree.chmod("etc", 0o777);
    let out = tree.wizard(&["-d", "example.test"]);
    tree.chmod("etc", 0o755);
    out.assert_failed().assert_stderr_has("'/etc'");
    assert!(
        !tree.exists("etc/opendkim/keys"),
        "keys created below an unsafe /etc"
    );
}

// B07 — opendkim on a unix socket, Postfix on TCP (or vice versa)

#[test]
fn b07_packaged_unix_socket_is_replaced_by_one_inet_socket_postfix_agrees_with() {
    let tree = Tree::debian12();
    assert_eq!(
        active_values(&tree.read(CONF), "Socket"),
        ["local:/run/opendkim/opendkim.sock"]
    );
    tree.setup_example();
    let sockets = active_values(&tree.read(CONF), "Socket");
    assert_eq!(sockets, ["inet:8891@127.0.0.1"]);
    let main = tree.read(MAIN_CF);
    assert_eq!(milters(&main, "smtpd_milters"), ["inet:127.0.0.1:8891"]);
}

#[test]
fn b07_two_active_socket_lines_become_one() {
    let tree = Tree::debian12();
    tree.edit(
        CONF,
        "#Socket\t\t\tinet:8891\n",
        "Socket\t\t\tinet:8892@localhost\n",
    );
    tree.setup_example();
    assert_eq!(
        active_values(&tree.read(CONF), "Socket"),
        ["inet:8891@127.0.0.1"]
    );
}

#[test]
fn b07_custom_port_is_the_same_on_every_side() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "example.test", "--socket", "inet:12345@127.0.0.1"])
        .assert_ok();
    assert_eq!(
        active_values(&tree.read(CONF), "Socket"),
        ["inet:12345@127.0.0.1"]
    );
    assert!(
        tree.read("etc/default/opendkim")
            .contains("\nSOCKET=inet:12345@127.0.0.1\n")
    );
    let main = tree.read(MAIN_CF);
    assert_eq!(milters(&main, "smtpd_milters"), ["inet:127.0.0.1:12345"]);
    assert_eq!(
        main_cf_value(&main, "non_smtpd_milters").unwrap(),
        "$smtpd_milters"
    );
    assert!(!main.contains("8891"), "{main}");
}

#[test]
fn b07_changing_the_port_later_moves_postfix_too() {
    let tree = set_up();
    tree.wizard(&["-d", "example.test", "--socket", "inet:8899@127.0.0.1"])
        .assert_ok();
    assert_eq!(
        active_values(&tree.read(CONF), "Socket"),
        ["inet:8899@127.0.0.1"]
    );
    let main = tree.read(MAIN_CF);
    assert_eq!(
        milters(&main, "smtpd_milters"),
        ["inet:127.0.0.1:8899"],
        "{main}"
    );
}

// B08 — Postfix chroot hides a unix socket

#[test]
fn b08_unix_socket_outside_the_postfix_chroot_is_refused() {
    let tree = Tree::debian12_with_checks();
    assert!(
        tree.read("etc/postfix/master.cf")
            .contains("\nsmtp      inet  n       -       y       -       -       smtpd\n")
    );
    let before = tree.snapshot();
    let out = tree.wizard(&[
        "-d",
        "example.test",
        "--socket",
        "local:/run/opendkim/opendkim.sock",
    ]);
    out.assert_failed();
    out.assert_stderr_has("chroot")
        .assert_stderr_has("/var/spool/postfix");
    assert_same_tree(&before, &tree.snapshot());
    assert!(tree.recorded().is_empty());
}

#[test]
fn b08_unix_socket_without_chroot_is_accepted() {
    let tree = Tree::debian12();
    tree.edit(
        "etc/postfix/master.cf",
        "\nsmtp      inet  n       -       y       -       -       smtpd\n",
        "\nsmtp      inet  n       -       n       -       -       smtpd\n",
    );
    let master = tree.read("etc/postfix/master.cf");
    let chrooted = master.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        !l.starts_with('#') && f.len() >= 8 && f[4] == "y" && f[7] == "cleanup"
    });
    let out = tree.wizard(&[
        "-d",
        "example.test",
        "--socket",
        "local:/run/opendkim/opendkim.sock",
    ]);
    if chrooted {
        // cleanup (used for sendmail mail) is still chrooted: refusing is right.
        out.assert_failed().assert_stderr_has("chroot");
    } else {
        out.assert_ok();
    }
}

#[test]
fn b08_unix_socket_inside_the_spool_is_relative_for_postfix_and_adds_the_group() {
    let tree = Tree::debian12_with_checks();
    let out = tree.wizard(&[
        "-d",
        "example.test",
        "--socket",
        "local:/var/spool/postfix/opendkim/opendkim.sock",
    ]);
    out.assert_ok();
    assert_eq!(
        active_values(&tree.read(CONF), "Socket"),
        ["local:/var/spool/postfix/opendkim/opendkim.sock"]
    );
    let main = tree.read(MAIN_CF);
    assert_eq!(
        milters(&main, "smtpd_milters"),
        ["unix:opendkim/opendkim.sock"]
    );
    let root = tree.root_str();
    let usermod: Vec<String> = ["usermod", &root, "-a", "-G", "opendkim", "postfix"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut expected = usermod.clone();
    expected.insert(1, "--root".into());
    assert!(
        tree.recorded().contains(&expected),
        "no {expected:?} in {:?}",
        tree.recorded()
    );
    // With postfix in group opendkim, the key stays owner-only.
    assert_eq!(tree.stat(KEY), (0o600, OPENDKIM.0, OPENDKIM.1));
    assert!(!tree.read(CONF).contains("RequireSafeKeys"));
}

#[test]
fn b08_tcp_socket_proceeds_with_the_chrooted_master_cf() {
    let tree = Tree::debian12();
    tree.wizard(&["-d", "example.test", "--socket", "inet:8891@127.0.0.1"])
        .assert_ok();
    assert!(
        tree.recorded()
            .iter()
            .all(|argv| !argv.contains(&"usermod".to_string()))
    );
}

#[test]
fn b08_spool_socket_directory_is_created_for_opendkim() {
    let tree = Tree::debian12();
    tree.mkdir("var/spool/postfix", 0o755, 0, 0);
    tree.wizard(&[
        "-d",
        "example.test",
        "--socket",
        "local:/var/spool/postfix/opendkim/opendkim.sock",
    ])
    .assert_ok();
    assert_eq!(
        tree.stat("var/spool/postfix/opendkim"),
        (0o750, OPENDKIM.0, OPENDKIM.1)
    );
}

/// A tree set up for example.test on a unix socket in Postfix's spool, whose
/// milter lists were then respelled by hand as `smtpd_milters` and
/// `non_smtpd_milters`.
fn unix_socket_respelled(smtpd: &str, non_smtpd: &str) -> Tree {
    let tree = Tree::debian12();
    tree.wizard(&[
        "-d",
        "example.test",
        "--socket",
        "local:/var/spool/postfix/opendkim/opendkim.sock",
    ])
    .assert_ok();
    let main = tree.read(MAIN_CF);
    assert!(main.contains("\nsmtpd_milters = unix:opendkim/opendkim.sock\n"));
    assert!(main.contains("\nnon_smtpd_milters = $smtpd_milters\n"));
    tree.edit(
        MAIN_CF,
        "\nsmtpd_milters = unix:opendkim/opendkim.sock\n",
        &format!("\nsmtpd_milters = {smtpd}\n"),
    );
    tree.edit(
        MAIN_CF,
        "\nnon_smtpd_milters = $smtpd_milters\n",
        &format!("\nnon_smtpd_milters = {non_smtpd}\n"),
    );
    tree
}

#[test]
fn b08_unix_milter_spelled_another_way_inside_the_chroot_is_kept_not_added_again() {
    let tree = unix_socket_respelled(
        "unix:/opendkim/opendkim.sock",
        "local:opendkim/opendkim.sock",
    );
    let before = tree.read_bytes(MAIN_CF);
    tree.wizard(&[
        "-d",
        "example.test",
        "--socket",
        "local:/var/spool/postfix/opendkim/opendkim.sock",
    ])
    .assert_ok();
    let main = tree.read(MAIN_CF);
    assert_eq!(tree.read_bytes(MAIN_CF), before, "{main}");
    assert_eq!(
        milters(&main, "smtpd_milters"),
        ["unix:/opendkim/opendkim.sock"]
    );
    assert_eq!(
        milters(&main, "non_smtpd_milters"),
        ["local:opendkim/opendkim.sock"]
    );
}

#[test]
fn b08_unix_milter_listed_twice_in_two_spellings_is_listed_once() {
    let tree = unix_socket_respelled(
        "unix:/opendkim/opendkim.sock, unix:opendkim/opendkim.sock",
        "$smtpd_milters, local:/opendkim//opendkim.sock",
    );
    tree.wizard(&[
        "-d",
        "example.test",
        "--socket",
        "local:/var/spool/postfix/opendkim/opendkim.sock",
    ])
    .assert_ok()
    .assert_output_has("smtpd_milters listed opendkim twice");
    let main = tree.read(MAIN_CF);
    assert_eq!(
        milters(&main, "smtpd_milters"),
        ["unix:/opendkim/opendkim.sock"],
        "{main}"
    );
    assert_eq!(
        milters(&main, "non_smtpd_milters"),
        ["$smtpd_milters"],
        "{main}"
    );
}

// B09 — "localhost" resolves to ::1 first, or not at all

#[test]
fn b09_localhost_socket_is_written_as_127_0_0_1_on_both_sides() {
    let tree = Tree::debian12();
    tree.write("etc/hosts", "::1 localhost\n");
    tree.wizard(&["-d", "example.test", "--socket", "inet:8891@localhost"])
        .assert_ok();
    let conf = tree.read(CONF);
    assert_eq!(active_values(&conf, "Socket"), ["inet:8891@127.0.0.1"]);
    let main = tree.read(MAIN_CF);
    assert_eq!(milters(&main, "smtpd_milters"), ["inet:127.0.0.1:8891"]);
    assert!(
        tree.read("etc/default/opendkim")
            .contains("\nSOCKET=inet:8891@127.0.0.1\n")
    );
    assert!(!main.contains("inet:localhost"), "{main}");
}

#[test]
fn b09_existing_localhost_entry_for_our_port_is_not_duplicated() {
    let tree = Tree::debian12();
    let main = tree.read(MAIN_CF);
    tree.write(
        MAIN_CF,
        &format!(
            "{main}smtpd_milters = inet:localhost:8891\nnon_smtpd_milters = inet:localhost:8891\n"
        ),
    );
    tree.setup_example();
    let main = tree.read(MAIN_CF);
    assert_eq!(
        milters(&main, "smtpd_milters"),
        ["inet:127.0.0.1:8891"],
        "{main}"
    );
    assert_eq!(
        milters(&main, "non_smtpd_milters"),
        ["inet:127.0.0.1:8891"],
        "{main}"
    );
}

// B10 — Existing milters lost, duplicated or ordered wrongly

fn with_main_cf_tail(tail: &str) -> Tree {
    let tree = Tree::debian12();
    let main = tree.read(MAIN_CF);
    tree.write(MAIN_CF, &format!("{main}{tail}"));
    tree
}

#[test]
fn b10_keeps_dmarc_milter_after_ours() {
    let tree = with_main_cf_tail(
        "smtpd_milters = inet:127.0.0.1:8893\nnon_smtpd_milters = inet:127.0.0.1:8893\n",
    );
    tree.setup_example();
    let main = tree.read(MAIN_CF);
    for list in ["smtpd_milters", "non_smtpd_milters"] {
        assert_eq!(
            milters(&main, list),
            ["inet:127.0.0.1:8891", "inet:127.0.0.1:8893"],
            "{list} in:\n{main}"
        );
    }
    assert_eq!(main.matches("inet:127.0.0.1:8891").count(), 2, "{main}");
    assert_eq!(main.matches("smtpd_milters =").count(), 2, "{main}");

    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    assert_same_tree(&before, &tree.snapshot());
    assert_eq!(out.json()["changed"], false);
}

#[test]
fn b10_keeps_rspamd_and_adds_ours_once() {
    let tree = with_main_cf_tail("smtpd_milters = inet:localhost:11332\n");
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_ok();
    let main = tree.read(MAIN_CF);
    let list = milters(&main, "smtpd_milters");
    assert!(list.contains(&"inet:localhost:11332".to_string()), "{main}");
    assert_eq!(main.matches("8891").count(), 1, "{main}");
    assert_eq!(list[0], "inet:127.0.0.1:8891", "{main}");
    // A milter reached through the name localhost gets a warning.
    out.assert_stderr_has("inet:localhost:11332");

    let before = tree.snapshot();
    tree.wizard(&["-d", "example.test"]).assert_ok();
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn b10_inserts_before_dmarc_in_a_continued_list_and_keeps_clamav() {
    let tree = with_main_cf_tail(
        "smtpd_milters =\n    inet:127.0.0.1:8893,\n    unix:clamav/clamav-milter.ctl\n\
         non_smtpd_milters = inet:127.0.0.1:8893\n",
    );
    tree.setup_example();
    let main = tree.read(MAIN_CF);
    assert_eq!(
        milters(&main, "smtpd_milters"),
        [
            "inet:127.0.0.1:8891",
            "inet:127.0.0.1:8893",
            "unix:clamav/clamav-milter.ctl"
        ],
        "{main}"
    );
    assert_eq!(
        milters(&main, "non_smtpd_milters"),
        ["inet:127.0.0.1:8891", "inet:127.0.0.1:8893"]
    );
    let before = tree.snapshot();
    tree.wizard(&["-d", "example.test"]).assert_ok();
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn b10_dmarc_through_a_variable_stays_after_ours() {
    let tree = with_main_cf_tail(
        "dmarc_milter = inet:127.0.0.1:8893\n\
         smtpd_milters = unix:clamav/clamav-milter.ctl, $dmarc_milter\n",
    );
    tree.setup_example();
    let main = tree.read(MAIN_CF);
    let list = milters(&main, "smtpd_milters");
    let ours = list
        .iter()
        .position(|m| m == "inet:127.0.0.1:8891")
        .unwrap();
    let dmarc = list
        .iter()
        .position(|m| m == "$dmarc_milter")
        .expect("dmarc kept");
    assert!(ours < dmarc, "{list:?}");
    assert!(list.contains(&"unix:clamav/clamav-milter.ctl".to_string()));
    assert_eq!(
        main_cf_value(&main, "dmarc_milter").unwrap(),
        "inet:127.0.0.1:8893"
    );
}

#[test]
fn b10_existing_milter_protocol_and_default_action_are_kept_with_a_warning() {
    let tree = with_main_cf_tail("milter_protocol = 2\nmilter_default_action = tempfail\n");
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_ok();
    let main = tree.read(MAIN_CF);
    assert_eq!(main_cf_value(&main, "milter_protocol").unwrap(), "2");
    assert_eq!(
        main_cf_value(&main, "milter_default_action").unwrap(),
        "tempfail"
    );
    assert_eq!(main.matches("milter_protocol").count(), 1, "{main}");
    out.assert_stderr_has("milter_protocol = 2");
    out.assert_stderr_has("milter_default_action = tempfail");
}

// B11 — Mail from PHP mail(), cron or the sendmail command stays unsigned

#[test]
fn b11_missing_non_smtpd_milters_follows_smtpd_milters() {
    let tree = Tree::debian12();
    assert!(main_cf_value(&tree.read(MAIN_CF), "non_smtpd_milters").is_none());
    tree.setup_example();
    assert_eq!(
        main_cf_value(&tree.read(MAIN_CF), "non_smtpd_milters").unwrap(),
        "$smtpd_milters"
    );
}

#[test]
fn b11_existing_non_smtpd_milters_gets_ours_merged() {
    let tree = with_main_cf_tail("non_smtpd_milters = unix:clamav/clamav-milter.ctl\n");
    tree.setup_example();
    let main = tree.read(MAIN_CF);
    let list = milters(&main, "non_smtpd_milters");
    assert!(list.contains(&"inet:127.0.0.1:8891".to_string()), "{main}");
    assert!(
        list.contains(&"unix:clamav/clamav-milter.ctl".to_string()),
        "{main}"
    );
}

#[test]
fn b11_myorigin_outside_the_signing_domains_is_warned_about() {
    let tree = with_main_cf_tail("myorigin = host.example.test\n");
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    out.assert_stderr_has("myorigin")
        .assert_stderr_has("host.example.test");
    let notes = out.json()["notes"].to_string();
    assert!(notes.contains("myorigin"), "{notes}");
}

#[test]
fn b11_myorigin_from_etc_mailname_is_resolved() {
    // The fixture has myorigin = /etc/mailname holding mail.example.test.
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "example.test"]);
    out.assert_ok().assert_stderr_has("mail.example.test");
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "mail.example.test"]);
    out.assert_ok();
    assert!(!out.stderr.contains("myorigin"), "{}", out.stderr);
}

#[test]
fn b11_myorigin_already_signed_by_an_earlier_run_is_not_warned_about() {
    // mail.example.test (the fixture's /etc/mailname) is signed since the
    // first run; adding another domain must not claim it is unsigned.
    let tree = Tree::debian12();
    tree.wizard(&["-d", "mail.example.test"]).assert_ok();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    assert!(!out.stderr.contains("myorigin"), "{}", out.stderr);
    let notes = out.json()["notes"].to_string();
    assert!(!notes.contains("myorigin"), "{notes}");
}

// B12 — TXT record too long (bind form and 4096 bits are in dns.rs and refused.rs)

#[test]
fn b12_wizard_text_report_prints_the_zone_form_in_255_byte_strings() {
    let tree = Tree::debian12();
    let out = tree.setup_example();
    let zone = out
        .stdout
        .lines()
        .find(|l| l.starts_with("key._domainkey.example.test. IN TXT"))
        .expect("zone line in the report");
    let strings: Vec<&str> = zone.split('"').skip(1).step_by(2).collect();
    assert!(strings.len() >= 2);
    assert!(strings.iter().all(|s| s.len() <= 255));
    let value = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("value: "))
        .expect("raw value in the report");
    assert_eq!(strings.concat(), value);
}

// B14 — Public key in the wrong encoding (SPKI decoding is in dns.rs)

#[test]
fn b14_record_starts_with_the_spki_prefix() {
    let tree = Tree::debian12();
    let out = tree.wizard(&["-d", "example.test", "--json"]);
    out.assert_ok();
    let value = out.json()["dns_records"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(p_value(&value).starts_with(SPKI_2048_PREFIX), "{value}");
    assert!(
        !p_value(&value).starts_with("MIIBCgKCAQEA"),
        "PKCS#1, not SPKI"
    );
}

// A hand-made single-key setup (`KeyFile`, `Selector`, `Domain` without a
// KeyTable): commenting its lines out must not stop signing its domains.

const SINGLE_KEY: &str = "etc/dkimkeys/mail.private";

#[test]
fn single_key_setup_is_carried_into_the_tables() {
    let tree = Tree::debian12();
    let key = tree.with_single_key("other.org");
    let out = tree.wizard(&["-d", "example.com", "--json"]);
    out.assert_ok();

    let conf = tree.read(CONF);
    for key in ["KeyFile", "Selector", "Domain"] {
        assert!(active_values(&conf, key).is_empty(), "{key}:\n{conf}");
    }
    let keys = tree.read(KEY_TABLE);
    assert!(
        keys.lines()
            .any(|l| l == "mail._domainkey.other.org other.org:mail:/etc/dkimkeys/mail.private"),
        "{keys}"
    );
    let signing = tree.read(SIGNING_TABLE);
    assert!(
        signing
            .lines()
            .any(|l| l == "*@other.org mail._domainkey.other.org"),
        "{signing}"
    );
    assert!(signing.contains("*@example.com "), "{signing}");
    let notes = out.json()["notes"].to_string();
    assert!(
        notes.contains("single-key signing of other.org") && notes.contains("carried"),
        "{notes}"
    );
    // The key is kept where it is, as it was.
    assert_eq!(tree.read_bytes(SINGLE_KEY), key);
    assert_eq!(tree.stat(SINGLE_KEY), (0o600, OPENDKIM.0, OPENDKIM.1));

    // `dns` derives other.org's record from that key.
    let dns = tree.run(&["dns"]);
    dns.assert_ok();
    let line = dns
        .stdout
        .lines()
        .find(|l| l.starts_with("mail._domainkey.other.org TXT "))
        .unwrap_or_else(|| panic!("no record for other.org:\n{}", dns.stdout));
    let pem = String::from_utf8(key).unwrap();
    let record =
        dkim_setup::keys::record_for(&dkim_setup::keys::parse_private(&pem).unwrap()).unwrap();
    assert_eq!(p_value(line), p_value(&record));

    // A second run changes nothing.
    let before = tree.snapshot_without_backups();
    tree.wizard(&["-d", "example.com"]).assert_ok();
    assert_same_tree(&before, &tree.snapshot_without_backups());
}

#[test]
fn single_key_setup_with_a_data_set_domain_is_refused() {
    for domain in [
        "/etc/opendkim/domains",
        "refile:/etc/opendkim/domains",
        "csl:other.org",
    ] {
        let tree = Tree::debian12();
        tree.with_single_key(domain);
        tree.write("etc/opendkim/domains", "other.org\n");
        let before = tree.snapshot();
        let out = tree.wizard(&["-d", "example.com"]);
        out.assert_code(2)
            .assert_stderr_has(&format!("'Domain {domain}'"))
            .assert_stderr_has("KeyFile /etc/dkimkeys/mail.private")
            .assert_stderr_has("data set")
            .assert_stderr_has("hint: move these lines into a KeyTable and SigningTable by hand");
        assert_same_tree(&before, &tree.snapshot());
        assert!(tree.recorded().is_empty(), "ran: {:?}", tree.recorded());
    }
}

#[test]
fn single_key_setup_without_its_selector_is_refused() {
    let tree = Tree::debian12();
    tree.with_single_key("other.org");
    tree.edit(CONF, "Selector\t\tmail\n", "");
    let before = tree.snapshot();
    let out = tree.wizard(&["-d", "example.com"]);
    out.assert_code(2)
        .assert_stderr_has("'Selector' is missing")
        .assert_stderr_has("'Domain other.org'")
        .assert_stderr_has("hint: ");
    assert_same_tree(&before, &tree.snapshot());
}

#[test]
fn single_key_domain_of_the_run_takes_the_runs_answer() {
    let tree = Tree::debian12();
    let key = tree.with_single_key("example.com, other.org");
    let out = tree.wizard(&["-d", "example.com", "--json"]);
    out.assert_ok();
    let signing = tree.read(SIGNING_TABLE);
    assert_eq!(
        signing,
        "*@example.com key._domainkey.example.com\n*@other.org mail._domainkey.other.org\n"
    );
    let keys = tree.read(KEY_TABLE);
    assert!(!keys.contains("mail._domainkey.example.com"), "{keys}");
    assert!(
        keys.contains(
            "key._domainkey.example.com example.com:key:/etc/opendkim/keys/example.com/key.private"
        ),
        "{keys}"
    );
    let notes = out.json()["notes"].to_string();
    assert!(
        notes.contains("this run's answer for example.com takes its place"),
        "{notes}"
    );
    assert_eq!(tree.read_bytes(SINGLE_KEY), key);
}

#[test]
fn single_key_file_goes_through_the_key_safety_rules() {
    // A looser carried key is fixed like any other key, its bytes kept.
    let tree = Tree::debian12();
    let key = tree.with_single_key("other.org");
    tree.chmod(SINGLE_KEY, 0o644);
    let out = tree.wizard(&["-d", "example.com"]);
    out.assert_ok().assert_stderr_has(
        "the key '/etc/dkimkeys/mail.private' is fixed to opendkim:opendkim 0600",
    );
    assert_eq!(tree.stat(SINGLE_KEY), (0o600, OPENDKIM.0, OPENDKIM.1));
    assert_eq!(tree.read_bytes(SINGLE_KEY), key);

    // A directory others can write to is refused, nothing written.
    let tree = Tree::debian12();
    tree.with_single_key("other.org");
    tree.chmod("etc/dkimkeys", 0o777);
    let before = tree.snapshot();
    tree.wizard(&["-d", "example.com"])
        .assert_failed()
        .assert_stderr_has("'/etc/dkimkeys'");
    assert_same_tree(&before, &tree.snapshot());
}
