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
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
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
    /// Over UDP, answer only the header with TC set when the answer is
    /// longer than this, as a server without EDNS does; TCP answers in full.
    udp_limit: Option<usize>,
}

impl Zone {
    /// TXT records at `name`, each given as its character-strings.
    fn txt(mut self, name: &str, records: Vec<Vec<String>>) -> Self {
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

/// Start a nameserver for `zone` on a free port, UDP and TCP; it lives as
/// long as the test process.
fn serve(zone: Zone) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = TcpListener::bind(addr).unwrap();
    let tcp_zone = zone.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let zone = tcp_zone.clone();
            std::thread::spawn(move || serve_tcp(&zone, stream));
        }
    });
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
            let mut response = zone.respond(&query);
            let mut bytes = response.to_vec().unwrap();
            if zone.udp_limit.is_some_and(|limit| bytes.len() > limit) {
                response.answers.clear();
                response.metadata.truncation = true;
                bytes = response.to_vec().unwrap();
            }
            let _ = socket.send_to(&bytes, peer);
        }
    });
    addr
}

/// DNS over TCP: each message preceded by its length in two bytes.
fn serve_tcp(zone: &Zone, mut stream: TcpStream) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut buf).is_err() {
            return;
        }
        let Ok(query) = Message::from_vec(&buf) else {
            return;
        };
        let bytes = zone.respond(&query).to_vec().unwrap();
        let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
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
