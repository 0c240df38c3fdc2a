//! `dns_lookup` against a real DNS exchange: a tiny nameserver on 127.0.0.1
//! (tests/common/dns_server.rs) answers from a table (TXT records made of
//! character-strings, CNAMEs, NXDOMAIN, SERVFAIL or silence), and
//! `lookup_txt` asks it over the wire, as `dkim-setup check --nameserver`
//! does. Each answer is then judged by `analyse` against a record derived
//! from a real key.

#[path = "common/dns_server.rs"]
mod dns_server;

use dkim_setup::dns_lookup::{Answer, Finding, Server, Severity, analyse, lookup_txt, passed};
use dkim_setup::keys;
use dns_server::{Zone, serve};
use std::sync::OnceLock;
use std::time::Duration;

const NAME: &str = "key._domainkey.example.test";
const TIMEOUT: Duration = Duration::from_secs(3);

/// The record `dkim-setup dns` would publish for a 2048-bit key.
fn expected() -> &'static str {
    static RECORD: OnceLock<String> = OnceLock::new();
    RECORD.get_or_init(|| keys::generate(2048).unwrap().record)
}

/// A record for some other key.
fn other_key() -> &'static str {
    static RECORD: OnceLock<String> = OnceLock::new();
    RECORD.get_or_init(|| keys::generate(2048).unwrap().record)
}

/// A record holding `value` as a zone file does: strings of at most 255 bytes.
fn strings(value: &str) -> Vec<String> {
    keys::split_strings(value)
}

/// A record made of exactly these strings.
fn raw(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn ask(zone: Zone) -> Answer {
    lookup_txt(&Server::At(serve(zone)), NAME, TIMEOUT).unwrap()
}

fn failures(findings: &[Finding]) -> Vec<&str> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .map(|f| f.message.as_str())
        .collect()
}

fn has(findings: &[Finding], severity: Severity, text: &str) -> bool {
    findings
        .iter()
        .any(|f| f.severity == severity && f.message.contains(text))
}

#[test]
fn the_right_record_passes() {
    let parts = strings(expected());
    assert_eq!(parts.len(), 2);
    let answer = ask(Zone::default().txt(NAME, vec![parts.clone()]));
    assert_eq!(answer.name, NAME);
    assert!(answer.cnames.is_empty());
    assert_eq!(answer.txt, vec![parts.clone()]);
    assert!(!answer.dnssec_validated);
    let findings = analyse(&answer, expected());
    assert!(passed(&findings), "{findings:#?}");
    assert!(
        findings.iter().all(|f| f.severity == Severity::Info),
        "{findings:#?}"
    );
    assert!(has(&findings, Severity::Info, "not DNSSEC-validated"));
}

#[test]
fn another_key_does_not_match() {
    let zone = Zone::default().txt(NAME, vec![strings(other_key())]);
    let findings = analyse(&ask(zone), expected());
    assert_eq!(
        failures(&findings),
        [format!(
            "the published key does not match the private key at {NAME}"
        )],
    );
}

#[test]
fn a_record_cut_at_255_characters_is_truncation() {
    let findings = analyse(
        &ask(Zone::default().txt(NAME, vec![raw(&[&expected()[..255]])])),
        expected(),
    );
    let fails = failures(&findings);
    assert_eq!(fails.len(), 1, "{findings:#?}");
    assert!(fails[0].starts_with("record truncated by DNS provider"));
}

#[test]
fn two_records_fail() {
    let answer = ask(Zone::default().txt(NAME, vec![strings(other_key()), strings(expected())]));
    assert_eq!(answer.txt.len(), 2);
    let findings = analyse(&answer, expected());
    let fails = failures(&findings);
    assert_eq!(fails.len(), 1, "{findings:#?}");
    assert!(fails[0].starts_with(&format!("multiple TXT records at {NAME}")));
    assert!(!fails[0].contains("pieces"));
}

#[test]
fn a_value_split_into_two_records_is_named() {
    let (head, tail) = expected().split_at(200);
    let findings = analyse(
        &ask(Zone::default().txt(NAME, vec![raw(&[head]), strings(tail)])),
        expected(),
    );
    let fails = failures(&findings);
    assert_eq!(fails.len(), 1, "{findings:#?}");
    assert!(fails[0].starts_with(&format!("multiple TXT records at {NAME}")));
    assert!(fails[0].contains("pieces of one value split into separate records"));
}

#[test]
fn pasted_quotes_fail() {
    let (head, tail) = expected().split_at(16);
    let pasted = format!("\"{head}\" \"{tail}\"");
    let findings = analyse(
        &ask(Zone::default().txt(NAME, vec![strings(&pasted)])),
        expected(),
    );
    let fails = failures(&findings);
    assert_eq!(fails.len(), 1, "{findings:#?}");
    assert!(fails[0].starts_with("literal quotes in record"));
}

#[test]
fn a_cname_to_the_right_record_is_followed() {
    let target = "dkim_a.example.net";
    for cname_only in [false, true] {
        let mut zone = Zone::default()
            .cname(NAME, target)
            .txt(target, vec![strings(expected())]);
        zone.cname_only = cname_only;
        let answer = ask(zone);
        assert_eq!(answer.cnames, [target], "cname_only {cname_only}");
        assert_eq!(answer.record_name(), target);
        assert_eq!(answer.txt.len(), 1);
        let findings = analyse(&answer, expected());
        assert!(passed(&findings), "{findings:#?}");
        assert!(has(
            &findings,
            Severity::Info,
            &format!("{NAME} is a CNAME to {target}")
        ));
    }
}

#[test]
fn a_cname_to_nothing_names_the_target() {
    let zone = Zone::default()
        .cname(NAME, "dkim_a.example.net")
        .cname("dkim_a.example.net", "dkim_b.example.net");
    let answer = ask(zone);
    assert_eq!(answer.cnames, ["dkim_a.example.net", "dkim_b.example.net"]);
    assert!(answer.txt.is_empty());
    let findings = analyse(&answer, expected());
    assert_eq!(
        failures(&findings),
        [format!(
            "no TXT record at dkim_b.example.net, where {NAME} points"
        )]
    );
}

#[test]
fn a_missing_record_fails() {
    let answer = ask(Zone::default().txt("other._domainkey.example.test", vec![raw(&["x"])]));
    assert!(answer.txt.is_empty());
    let findings = analyse(&answer, expected());
    assert_eq!(failures(&findings), [format!("no TXT record at {NAME}")]);
    assert!(findings[0].fix.contains(expected()));
}

#[test]
fn testing_mode_warns() {
    let value = expected().replace("k=rsa;", "k=rsa; t=y;");
    let findings = analyse(
        &ask(Zone::default().txt(NAME, vec![strings(&value)])),
        expected(),
    );
    assert!(passed(&findings), "{findings:#?}");
    assert!(has(&findings, Severity::Warn, "testing mode (t=y)"));
}

#[test]
fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let mut zone = Zone::default().txt(NAME, vec![strings(expected())]);
    zone.udp_limit = Some(300);
    let answer = ask(zone);
    assert_eq!(answer.txt, vec![strings(expected())]);
    assert!(passed(&analyse(&answer, expected())));
}

#[test]
fn servfail_is_an_error_naming_server_and_name() {
    let addr = serve(Zone {
        servfail: true,
        ..Zone::default()
    });
    let err = lookup_txt(&Server::At(addr), NAME, TIMEOUT).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("SERVFAIL"), "{text}");
    assert!(text.contains(&format!("'{addr}'")), "{text}");
    assert!(text.contains(&format!("'{NAME}'")), "{text}");
}

#[test]
fn silence_is_a_timeout_naming_server_and_name() {
    let addr = serve(Zone {
        silent: true,
        ..Zone::default()
    });
    let started = std::time::Instant::now();
    let err = lookup_txt(&Server::At(addr), NAME, Duration::from_millis(400)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = err.to_string();
    assert!(text.contains("did not answer"), "{text}");
    assert!(text.contains(&format!("'{addr}'")), "{text}");
    assert!(text.contains(&format!("'{NAME}'")), "{text}");
}
