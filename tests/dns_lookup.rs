//! `dns_lookup` against a real DNS exchange: a tiny UDP nameserver on
//! 127.0.0.1 answers from a table (TXT records made of character-strings,
//! CNAMEs, NXDOMAIN, SERVFAIL or silence), and `lookup_txt` asks it over
//! the wire, as `dkim-setup check --nameserver` does. Each answer is then
//! judged by `analyse` against a record derived from a real key.

use dkim_setup::dns_lookup::{Answer, Finding, Server, Severity, analyse, lookup_txt, passed};
use dkim_setup::keys;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::Duration;

const NAME: &str = "key._domainkey.example.test";
const TIMEOUT: Duration = Duration::from_secs(3);

/// What the test server answers.
#[derive(Default, Clone)]
struct Zone {
    txt: HashMap<String, Vec<Vec<String>>>,
    cname: HashMap<String, String>,
    /// Answer a CNAME alone, as an authority for another zone does, so the
    /// client has to follow it with a second query.
    cname_only: bool,
    servfail: bool,
    silent: bool,
}

impl Zone {
    fn txt(mut self, name: &str, records: &[&[&str]]) -> Self {
        let records = records
            .iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect();
        self.txt.insert(name.to_string(), records);
        self
    }

    fn cname(mut self, name: &str, target: &str) -> Self {
        self.cname.insert(name.to_string(), target.to_string());
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.txt.contains_key(name) || self.cname.contains_key(name)
    }

    fn respond(&self, query: &Message) -> Message {
        let mut response = Message::response(query.metadata.id, query.metadata.op_code);
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_queries(query.queries.iter().cloned());
        if self.servfail {
            response.metadata.response_code = ResponseCode::ServFail;
            return response;
        }
        let Some(question) = query.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return response;
        };
        let mut at = plain(question.name());
        if !self.exists(&at) {
            response.metadata.response_code = ResponseCode::NXDomain;
            return response;
        }
        for _ in 0..8 {
            let Some(target) = self.cname.get(&at) else {
                break;
            };
            let rdata = RData::CNAME(CNAME(Name::from_ascii(format!("{target}.")).unwrap()));
            response.add_answer(Record::from_rdata(fqdn(&at), 300, rdata));
            at = target.clone();
            if self.cname_only || question.query_type() == RecordType::CNAME {
                return response;
            }
        }
        if question.query_type() == RecordType::TXT {
            for strings in self.txt.get(&at).into_iter().flatten() {
                let rdata = RData::TXT(TXT::new(strings.clone()));
                response.add_answer(Record::from_rdata(fqdn(&at), 300, rdata));
            }
        }
        response
    }
}

fn plain(name: &Name) -> String {
    name.to_string().trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Name {
    Name::from_ascii(format!("{name}.")).unwrap()
}

/// Start a nameserver for `zone` on a free UDP port; it lives as long as
/// the test process.
fn serve(zone: Zone) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            if zone.silent {
                continue;
            }
            let Ok(query) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let bytes = zone.respond(&query).to_vec().unwrap();
            let _ = socket.send_to(&bytes, peer);
        }
    });
    addr
}

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

/// The value as a zone file holds it: strings of at most 255 bytes.
fn strings(value: &str) -> Vec<String> {
    keys::split_strings(value)
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
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let answer = ask(Zone::default().txt(NAME, &[&refs]));
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
    let parts = strings(other_key());
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let findings = analyse(&ask(Zone::default().txt(NAME, &[&refs])), expected());
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
        &ask(Zone::default().txt(NAME, &[&[&expected()[..255]]])),
        expected(),
    );
    let fails = failures(&findings);
    assert_eq!(fails.len(), 1, "{findings:#?}");
    assert!(fails[0].starts_with("record truncated by DNS provider"));
}

#[test]
fn two_records_fail() {
    let answer = ask(Zone::default().txt(NAME, &[&[other_key()], &[expected()]]));
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
        &ask(Zone::default().txt(NAME, &[&[head], &[tail]])),
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
        &ask(Zone::default().txt(
            NAME,
            &[&strings(&pasted)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()],
        )),
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
            .txt(target, &[&[expected()]]);
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
    let answer = ask(Zone::default().txt("other._domainkey.example.test", &[&["x"]]));
    assert!(answer.txt.is_empty());
    let findings = analyse(&answer, expected());
    assert_eq!(failures(&findings), [format!("no TXT record at {NAME}")]);
    assert!(findings[0].fix.contains(expected()));
}

#[test]
fn testing_mode_warns() {
    let value = expected().replace("k=rsa;", "k=rsa; t=y;");
    let findings = analyse(&ask(Zone::default().txt(NAME, &[&[&value]])), expected());
    assert!(passed(&findings), "{findings:#?}");
    assert!(has(&findings, Severity::Warn, "testing mode (t=y)"));
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
    assert!(text.contains(&format!("'{addr}'")), "{text}");
    assert!(text.contains(&format!("'{NAME}'")), "{text}");
}
