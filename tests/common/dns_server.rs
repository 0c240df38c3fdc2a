//! A tiny nameserver for tests, in the test process: UDP and TCP on a free
//! port of 127.0.0.1, answering from a table (TXT records made of
//! character-strings, CNAMEs, NXDOMAIN, SERVFAIL or silence). Point
//! `lookup_txt` or `dkim-setup check --nameserver` at the address `serve`
//! returns. Shared by tests/dns_lookup.rs and tests/cli.rs (`#[path]`).

#![allow(dead_code)]

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

/// What the test server answers.
#[derive(Default, Clone)]
pub struct Zone {
    pub txt: HashMap<String, Vec<Vec<String>>>,
    pub cname: HashMap<String, String>,
    /// Answer a CNAME alone, as an authority for another zone does, so the
    /// client has to follow it with a second query.
    pub cname_only: bool,
    pub servfail: bool,
    pub silent: bool,
    /// Over UDP, answer only the header with TC set when the answer is
    /// longer than this, as a server without EDNS does; TCP answers in full.
    pub udp_limit: Option<usize>,
}

impl Zone {
    /// TXT records at `name`, each given as its character-strings.
    /// A string longer than 255 bytes cannot be sent: refused here, not
    /// left to make the server thread panic and fall silent.
    pub fn txt(mut self, name: &str, records: Vec<Vec<String>>) -> Self {
        for s in records.iter().flatten() {
            assert!(
                s.len() <= 255,
                "a TXT string of {} bytes at {name}",
                s.len()
            );
        }
        self.txt.insert(name.to_string(), records);
        self
    }

    pub fn cname(mut self, name: &str, target: &str) -> Self {
        self.cname.insert(name.to_string(), target.to_string());
        self
    }

    pub fn exists(&self, name: &str) -> bool {
        self.txt.contains_key(name) || self.cname.contains_key(name)
    }

    pub fn respond(&self, query: &Message) -> Message {
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
pub fn serve(zone: Zone) -> SocketAddr {
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
