//! What DNS really serves for a selector, and whether it is the key we sign with.
//!
//! `dkim-setup check` and `rotate --activate` both need to know whether the
//! world sees the right key. This module does the asking and the judging,
//! and nothing else: it reads no file and changes nothing.
//!
//! 1. Ask ([`lookup_txt`]). A fresh hickory resolver on a current-thread tokio
//!    runtime built for this one call (the rest of the program is
//!    synchronous), so no cache outlives the call. It asks either the
//!    system's resolvers (`/etc/resolv.conf`) or one given server, over UDP
//!    and then TCP for a truncated answer. CNAMEs are followed and the chain
//!    is kept, because the two-slot rotation scheme publishes
//!    `key._domainkey.D CNAME dkim_a.HOST`. A name with no TXT record
//!    (NXDOMAIN or an empty answer) is an answer, not an error; a timeout,
//!    SERVFAIL or REFUSED is an error naming the server and the name.
//! 2. Judge ([`analyse`]). Compare each TXT record, its character-strings
//!    joined without separators (RFC 6376 3.6.2.2), with the record
//!    `dkim-setup dns` derives from the private key. Every way a published
//!    record is seen to go wrong in the field gets its own finding with the
//!    fix: no record, several records (a leftover, or one value split into
//!    separate records, B13), zone-file quotes pasted into a web form (B13),
//!    PEM armour or whitespace inside `p=`, a wrong version or key type, a
//!    revoked key, a value cut short by the DNS provider (B12), another key,
//!    and testing mode. A CNAME and a missing DNSSEC signature are only
//!    information.

use crate::error::bad_hint;
use crate::validate::shown;
use anyhow::{Context, Result, anyhow};
use base64ct::{Base64, Encoding};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How many CNAME hops are followed before giving up on a loop.
const MAX_CNAME_HOPS: usize = 8;

/// Where to ask: the system resolver (`/etc/resolv.conf`) or a given server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    System,
    At(SocketAddr),
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::System => f.write_str("the system resolver"),
            Server::At(addr) => write!(f, "nameserver '{addr}'"),
        }
    }
}

/// Parse `--nameserver IP[:PORT]`: `192.0.2.53`, `192.0.2.53:5353`,
/// `2001:db8::53`, `[2001:db8::53]` or `[2001:db8::53]:5353`. The port
/// defaults to 53. A host name is refused: the resolver that would look it up
/// is the one the user wants to bypass.
pub fn parse_nameserver(value: &str) -> Result<SocketAddr> {
    let refuse = |why: &str| {
        bad_hint(
            format!("invalid nameserver '{}': {why}", shown(value)),
            "give an IP address with an optional port, e.g. 192.0.2.53, 192.0.2.53:5353 or \
             [2001:db8::53]:5353",
        )
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(refuse("it is empty"));
    }
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(refuse("the port must be between 1 and 65535"));
        }
        return Ok(addr);
    }
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    if let Some(inner) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']'))
        && let Ok(ip) = inner.parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, 53));
    }
    // An address with a port that does not parse: say which half is wrong.
    let (host, port) = match trimmed.rsplit_once(':') {
        Some((host, port)) if host.starts_with('[') && host.ends_with(']') => {
            (&host[1..host.len() - 1], port)
        }
        Some((host, port)) if !host.contains(':') => (host, port),
        _ => (trimmed, ""),
    };
    if host.parse::<IpAddr>().is_ok() {
        return Err(refuse(&format!(
            "'{}' is not a port between 1 and 65535",
            shown(port)
        )));
    }
    Err(refuse("it is not an IP address"))
}

/// What DNS serves at a name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The name asked for, without a trailing dot.
    pub name: String,
    /// The CNAME targets followed, in order: `cnames[0]` is what `name`
    /// points to, the last one is where the TXT records live.
    pub cnames: Vec<String>,
    /// Each TXT record as its list of character-strings.
    pub txt: Vec<Vec<String>>,
    /// The answering resolver vouched for the answer (the AD bit).
    pub dnssec_validated: bool,
}

impl Answer {
    /// The name that holds the TXT records: the end of the CNAME chain.
    pub fn record_name(&self) -> &str {
        self.cnames.last().unwrap_or(&self.name)
    }
}

/// Ask `server` for the TXT records at `name`, following CNAMEs. `timeout`
/// bounds each query; the whole lookup, CNAME hops included, is cut off at
/// twice that.
pub fn lookup_txt(server: &Server, name: &str, timeout: Duration) -> Result<Answer> {
    let bare = name.trim_end_matches('.');
    let fqdn = Name::from_ascii(format!("{bare}."))
        .ok()
        .filter(|_| !bare.is_empty())
        .ok_or_else(|| anyhow!("'{}' is not a DNS name", shown(name)))?;
    let (config, options) = resolver_config(server, timeout)?;
    let who = describe(server, &config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the DNS client")?;
    runtime.block_on(async {
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| anyhow!("cannot set up the DNS client for {who}: {e}"))?;
        match tokio::time::timeout(timeout * 2, ask(&resolver, &fqdn, bare)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(lookup_error(&who, bare, timeout, e)),
            Err(_) => Err(lookup_error(&who, bare, timeout, NetError::Timeout)),
        }
    })
}

/// The resolver configuration for `server`, with caching, the hosts file
/// and the search list out of the way.
fn resolver_config(server: &Server, timeout: Duration) -> Result<(ResolverConfig, ResolverOpts)> {
    let (config, mut options) = match server {
        Server::System => hickory_resolver::system_conf::read_system_conf().map_err(|e| {
            anyhow!(
                "cannot read the system resolver configuration '/etc/resolv.conf': {e}; give \
                 the server to ask with --nameserver IP[:PORT]"
            )
        })?,
        Server::At(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            (
                ResolverConfig::from_name_servers(vec![ns]),
                ResolverOpts::default(),
            )
        }
    };
    if config.name_servers().is_empty() {
        return Err(anyhow!(
            "the system resolver configuration '/etc/resolv.conf' names no nameserver; give the \
             server to ask with --nameserver IP[:PORT]"
        ));
    }
    options.timeout = timeout;
    options.attempts = 1;
    options.cache_size = 1;
    options.use_hosts_file = ResolveHosts::Never;
    options.preserve_intermediates = true;
    options.try_tcp_on_error = true;
    Ok((config, options))
}

fn describe(server: &Server, config: &ResolverConfig) -> String {
    match server {
        Server::At(_) => server.to_string(),
        Server::System => {
            let mut ips: Vec<String> = config
                .name_servers()
                .iter()
                .map(|ns| ns.ip.to_string())
                .collect();
            ips.dedup();
            format!("the system resolver ('{}')", ips.join("', '"))
        }
    }
}

fn lookup_error(who: &str, name: &str, timeout: Duration, e: NetError) -> anyhow::Error {
    match e {
        NetError::Timeout => anyhow!(
            "{who} did not answer the TXT query for '{name}' within {:.1} s",
            timeout.as_secs_f64()
        ),
        NetError::Dns(DnsError::ResponseCode(code)) => {
            let code = match code {
                ResponseCode::ServFail => "SERVFAIL".to_string(),
                ResponseCode::Refused => "REFUSED".to_string(),
                other => format!("'{other}'"),
            };
            anyhow!("{who} answered {code} to the TXT query for '{name}'")
        }
        other => anyhow!("cannot ask {who} for the TXT records at '{name}': {other}"),
    }
}

async fn ask(resolver: &TokioResolver, fqdn: &Name, bare: &str) -> Result<Answer, NetError> {
    let mut answer = Answer {
        name: bare.to_string(),
        ..Answer::default()
    };
    match resolver.lookup(fqdn.clone(), RecordType::TXT).await {
        Ok(lookup) => {
            let (chain, txt) = read_answers(lookup.answers(), fqdn);
            answer.cnames = chain.iter().map(shown_name).collect();
            answer.txt = txt;
            answer.dnssec_validated = !answer.txt.is_empty() && authentic(&lookup);
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => {
            // The chain is lost with the negative answer; ask for it hop by hop
            // so that the report can name the name that lacks the record.
            let mut at = fqdn.clone();
            while answer.cnames.len() < MAX_CNAME_HOPS {
                let Ok(lookup) = resolver.lookup(at.clone(), RecordType::CNAME).await else {
                    break;
                };
                let (chain, _) = read_answers(lookup.answers(), &at);
                let Some(next) = chain.first() else { break };
                answer.cnames.push(shown_name(next));
                at = next.clone();
            }
        }
        Err(e) => return Err(e),
    }
    Ok(answer)
}

/// Follow the CNAMEs from `start` through `records`; return the chain and
/// the TXT records at its end.
fn read_answers(records: &[Record], start: &Name) -> (Vec<Name>, Vec<Vec<String>>) {
    let mut chain: Vec<Name> = Vec::new();
    let mut at = start.clone();
    while chain.len() < MAX_CNAME_HOPS {
        let next = records.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == at => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(target) if !chain.contains(&target) && target != *start => {
                chain.push(target.clone());
                at = target;
            }
            _ => break,
        }
    }
    let txt = records
        .iter()
        .filter(|r| r.name == at)
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    (chain, txt)
}

fn authentic(lookup: &Lookup) -> bool {
    lookup.message().metadata.authentic_data
}

fn shown_name(name: &Name) -> String {
    name.to_string().trim_end_matches('.').to_string()
}

/// How bad a finding is. `Fail` breaks verification, `Warn` works but is
/// fragile or temporary, `Info` needs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Warn,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Fail => "fail",
            Severity::Warn => "warn",
            Severity::Info => "info",
        })
    }
}

/// One thing found about the published record, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl Finding {
    fn new(severity: Severity, message: String, fix: String) -> Self {
        Finding {
            severity,
            message,
            fix,
        }
    }
}

/// True when no finding is a failure: warnings and information still pass.
pub fn passed(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.severity != Severity::Fail)
}

/// Compare what DNS serves with `expected`, the record `dkim-setup dns`
/// derives from the private key (`v=DKIM1; k=rsa; p=BASE64`). One finding per
/// problem; no finding, or only `Info`, means the record is right.
pub fn analyse(answer: &Answer, expected: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let at = answer.record_name();
    let want = expected_key(expected);
    if let Some(info) = cname_info(answer) {
        findings.push(info);
    }
    if answer.txt.is_empty() {
        let message = if answer.cnames.is_empty() {
            format!("no TXT record at {at}")
        } else {
            format!("no TXT record at {at}, where {} points", answer.name)
        };
        findings.push(Finding::new(
            Severity::Fail,
            message,
            format!(
                "publish {at} TXT \"{expected}\" (the record `dkim-setup dns` prints; \
                 `dkim-setup dns --format bind` gives the zone-file form)"
            ),
        ));
        return findings;
    }
    let values: Vec<String> = answer.txt.iter().map(|strings| strings.concat()).collect();
    let mut chosen = 0;
    if values.len() > 1 {
        if looks_split(&values) {
            findings.push(Finding::new(
                Severity::Fail,
                format!(
                    "multiple TXT records at {at}: {} records that look like the pieces of one \
                     value split into separate records; verifiers fail when a selector has more \
                     than one TXT record",
                    values.len()
                ),
                format!(
                    "delete these {} records and publish one TXT record at {at} holding the whole \
                     value \"{expected}\"; a long value is split into several strings inside that \
                     one record (`dkim-setup dns --format bind`), which most web panels do by \
                     themselves when the whole value is pasted into one record",
                    values.len()
                ),
            ));
            return findings;
        }
        let matching = values.iter().position(|v| published_key(v) == want);
        chosen = matching.unwrap_or_else(|| {
            values
                .iter()
                .position(|v| parse_tags(&unquoted(v)).is_ok_and(|t| tag(&t, "p").is_some()))
                .unwrap_or(0)
        });
        let fix = match matching {
            Some(keep) => {
                let others: Vec<String> = values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != keep)
                    .map(|(_, v)| format!("'{}'", abridged(v)))
                    .collect();
                format!(
                    "delete all but one: keep the record whose key matches the private key, and \
                     delete {}",
                    others.join(", ")
                )
            }
            None => format!(
                "delete all but one, and make that one \"{expected}\" (the record `dkim-setup \
                 dns` prints)"
            ),
        };
        findings.push(Finding::new(
            Severity::Fail,
            format!(
                "multiple TXT records at {at} ({}); verifiers fail when a selector has more than \
                 one",
                values.len()
            ),
            fix,
        ));
    }
    check_record(&values[chosen], at, expected, &want, &mut findings);
    if !answer.dnssec_validated {
        findings.push(Finding::new(
            Severity::Info,
            format!("the answer for {at} is not DNSSEC-validated"),
            "nothing is required: DKIM does not need DNSSEC; sign the zone at the DNS provider \
             to have it"
                .into(),
        ));
    }
    findings
}

fn cname_info(answer: &Answer) -> Option<Finding> {
    let (first, rest) = answer.cnames.split_first()?;
    let mut message = format!("{} is a CNAME to {first}", answer.name);
    for next in rest {
        message.push_str(&format!(", which is a CNAME to {next}"));
    }
    Some(Finding::new(
        Severity::Info,
        message,
        format!(
            "nothing is required; the record is looked for at {}",
            answer.record_name()
        ),
    ))
}

/// The checks on one record's value (its strings already joined).
fn check_record(value: &str, at: &str, expected: &str, want: &str, out: &mut Vec<Finding>) {
    let republish = format!(
        "publish {at} TXT \"{expected}\" in its place (the record `dkim-setup dns` prints)"
    );
    if value.contains('"') || value.contains('\\') {
        let what = if value.contains('"') {
            "literal quotes"
        } else {
            "literal backslashes"
        };
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "{what} in record at {at}: the value was pasted with its zone-file quoting, so \
                 verifiers cannot parse it"
            ),
            format!(
                "replace the value with the plain text from `dkim-setup dns` (no quotes, no \
                 backslashes, no parentheses): {expected}"
            ),
        ));
    }
    let tags = match parse_tags(&unquoted(value)) {
        Ok(tags) => tags,
        Err(why) => {
            out.push(Finding::new(
                Severity::Fail,
                format!("the record at {at} is not a valid DKIM tag list: {why}"),
                republish,
            ));
            return;
        }
    };
    match tags.first() {
        Some((name, version)) if name == "v" => {
            if version != "DKIM1" {
                out.push(Finding::new(
                    Severity::Fail,
                    format!(
                        "the record at {at} has version '{}'; verifiers discard any version but \
                         DKIM1",
                        shown(version)
                    ),
                    republish.clone(),
                ));
            }
        }
        _ if tag(&tags, "v").is_some() => out.push(Finding::new(
            Severity::Fail,
            format!("v=DKIM1 is not the first tag of the record at {at}"),
            republish.clone(),
        )),
        _ => out.push(Finding::new(
            Severity::Warn,
            format!("the record at {at} does not start with v=DKIM1"),
            republish.clone(),
        )),
    }
    if let Some(kind) = tag(&tags, "k")
        && !kind.eq_ignore_ascii_case("rsa")
    {
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "the record at {at} has key type 'k={}', but the private key is RSA",
                shown(kind)
            ),
            republish.clone(),
        ));
    }
    if let Some(hashes) = tag(&tags, "h")
        && !hashes
            .split(':')
            .any(|h| h.trim().eq_ignore_ascii_case("sha256"))
    {
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "the record at {at} allows only 'h={}', but OpenDKIM signs with sha256",
                shown(hashes)
            ),
            republish.clone(),
        ));
    }
    if let Some(services) = tag(&tags, "s")
        && !services
            .split(':')
            .any(|s| matches!(s.trim(), "*" | "email"))
    {
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "the record at {at} has 's={}', which excludes email",
                shown(services)
            ),
            republish.clone(),
        ));
    }
    check_key(tag(&tags, "p"), at, expected, want, &republish, out);
    if let Some(flags) = tag(&tags, "t")
        && flags.split(':').any(|f| f.trim().eq_ignore_ascii_case("y"))
    {
        out.push(Finding::new(
            Severity::Warn,
            format!(
                "testing mode (t=y) at {at}: receivers treat failures as unsigned; remove t=y \
                 once signing works"
            ),
            format!("publish {at} TXT \"{expected}\" (without t=y) once signing works"),
        ));
    }
}

/// The checks on `p=`, the published key.
fn check_key(
    p: Option<&str>,
    at: &str,
    expected: &str,
    want: &str,
    republish: &str,
    out: &mut Vec<Finding>,
) {
    let Some(p) = p else {
        out.push(Finding::new(
            Severity::Fail,
            format!("the record at {at} has no p= tag"),
            republish.into(),
        ));
        return;
    };
    if p.is_empty() {
        out.push(Finding::new(
            Severity::Fail,
            format!("the key was revoked (empty p=) at {at}"),
            republish.into(),
        ));
        return;
    }
    if p.contains("-----") {
        out.push(Finding::new(
            Severity::Fail,
            format!("PEM armour inside p= at {at}: verifiers need the bare base64"),
            format!("publish only the base64, without the '-----BEGIN/END' lines: {republish}"),
        ));
    } else if p.chars().any(char::is_whitespace) {
        // Field case B13: verifiers and providers disagree on whitespace in
        // the base64, and it usually means the value was pasted wrongly.
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "whitespace inside p= at {at}: the RFC allows it, but verifiers and DNS \
                 providers' forms often break on it"
            ),
            format!("publish the key without spaces or line breaks: {republish}"),
        ));
    }
    let got = bare_key(p);
    if got == want {
        return;
    }
    if let Some(bad) = got.chars().find(|c| !is_base64(*c)) {
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "p= at {at} is not base64: it contains '{}'",
                bad.escape_debug()
            ),
            republish.into(),
        ));
        return;
    }
    if !got.is_empty() && want.starts_with(got.as_str()) {
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "record truncated by DNS provider at {at}: p= has {} of the key's {} characters",
                got.len(),
                want.len()
            ),
            format!(
                "publish the whole value; if the provider limits a string to 255 characters, \
                 enter it as several quoted strings in one record (`dkim-setup dns --format \
                 bind`) or use a provider that accepts long TXT records: {at} TXT \"{expected}\""
            ),
        ));
        return;
    }
    if let (Some(published), Some(ours)) = (pkcs1_modulus(&got), spki_modulus(want))
        && published == ours
    {
        out.push(Finding::new(
            Severity::Fail,
            format!(
                "the record at {at} holds the right key in the wrong encoding: PKCS#1 (the \
                 body of 'BEGIN RSA PUBLIC KEY'), where DKIM wants SubjectPublicKeyInfo; \
                 verifiers such as opendkim reject it (field case B14)"
            ),
            format!("publish {at} TXT \"{expected}\" (the record `dkim-setup dns` prints)"),
        ));
        return;
    }
    let detail = match (key_size(&got), key_size(want)) {
        (Some(published), Some(ours)) if published != ours => {
            format!(" (it publishes a {published}-bit key; the private key has {ours} bits)")
        }
        _ => String::new(),
    };
    out.push(Finding::new(
        Severity::Fail,
        format!("the published key does not match the private key at {at}{detail}"),
        format!(
            "publish {at} TXT \"{expected}\" (the record `dkim-setup dns` prints), or, if DNS is \
             right, check that the KeyTable points at the key that was published"
        ),
    ));
}

/// A tag list (RFC 6376 3.2): `name=value` pairs separated by `;`, spaces
/// around names and values ignored, a trailing `;` allowed, no duplicates.
fn parse_tags(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for part in value.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, tag_value)) = part.split_once('=') else {
            return Err(format!("'{}' has no '='", shown(&abridged(part))));
        };
        let name = name.trim();
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("'{}' is not a tag name", shown(&abridged(name))));
        }
        if tags.iter().any(|(n, _)| n == name) {
            return Err(format!("the tag '{name}' appears twice"));
        }
        tags.push((name.to_string(), tag_value.trim().to_string()));
    }
    Ok(tags)
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The value with pasted zone-file quoting removed, for a second look:
/// `"a" "b"` joins to `ab`, then stray quotes and backslashes go.
fn unquoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(quote) = rest.find('"') {
        out.push_str(&rest[..quote]);
        let after = &rest[quote + 1..];
        let gap = after.trim_start();
        rest = match gap.strip_prefix('"') {
            Some(next) if gap.len() < after.len() => next,
            _ => after,
        };
    }
    out.push_str(rest);
    out.replace('\\', "")
}

/// `p=` as compared: no whitespace, no PEM armour lines.
fn bare_key(p: &str) -> String {
    let mut rest = p;
    let mut out = String::new();
    while let Some(start) = rest.find("-----") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 5..];
        rest = match after.find("-----") {
            Some(end) => &after[end + 5..],
            None => "",
        };
    }
    out.push_str(rest);
    out.retain(|c| !c.is_whitespace());
    out
}

fn is_base64(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')
}

/// The key in `expected`, as compared.
fn expected_key(expected: &str) -> String {
    parse_tags(expected)
        .ok()
        .and_then(|tags| tag(&tags, "p").map(bare_key))
        .unwrap_or_default()
}

/// The key a published value carries, as compared (empty when none).
fn published_key(value: &str) -> String {
    parse_tags(&unquoted(value))
        .ok()
        .and_then(|tags| tag(&tags, "p").map(bare_key))
        .unwrap_or_default()
}

/// Several records look like one value cut into pieces when one of them
/// starts like a DKIM record and another does not start with a tag at all.
fn looks_split(values: &[String]) -> bool {
    let starts_with_tag = |v: &str| {
        let v = unquoted(v);
        let v = v.trim_start();
        ["v", "g", "h", "k", "n", "p", "s", "t"].iter().any(|t| {
            v.strip_prefix(t)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
    };
    let heads = values.iter().filter(|v| starts_with_tag(v)).count();
    heads >= 1 && heads < values.len()
}

/// The size in bits of the RSA key in a base64 SubjectPublicKeyInfo.
fn key_size(b64: &str) -> Option<u32> {
    let der = Base64::decode_vec(b64).ok()?;
    let key = rsa::PublicKey::from_public_key_der(&der).ok()?;
    Some(key.n().bit_width())
}

/// The modulus of a base64 SubjectPublicKeyInfo RSA key.
fn spki_modulus(b64: &str) -> Option<Vec<u8>> {
    let der = Base64::decode_vec(b64).ok()?;
    let key = rsa::PublicKey::from_public_key_der(&der).ok()?;
    Some(key.n().to_be_bytes().to_vec())
}

/// The modulus of a base64 PKCS#1 RSAPublicKey (what `openssl rsa
/// -RSAPublicKey_out` prints), which DKIM records must not hold.
fn pkcs1_modulus(b64: &str) -> Option<Vec<u8>> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    let der = Base64::decode_vec(b64).ok()?;
    let key = rsa::PublicKey::from_pkcs1_der(&der).ok()?;
    Some(key.n().to_be_bytes().to_vec())
}

/// The start of a long value, for naming a record in a message.
fn abridged(value: &str) -> String {
    const KEEP: usize = 40;
    match value.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> String {
        format!("v=DKIM1; k=rsa; p={}", key())
    }

    /// A 392-character key-shaped value (not a real key).
    fn key() -> String {
        let body: String = (0..360).map(|i| (b'A' + (i % 26) as u8) as char).collect();
        format!("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A{body}")
    }

    fn served(records: &[&[&str]]) -> Answer {
        Answer {
            name: "key._domainkey.example.test".into(),
            cnames: Vec::new(),
            txt: records
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect(),
            dnssec_validated: true,
        }
    }

    fn problems(findings: &[Finding]) -> Vec<&Finding> {
        findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .collect()
    }

    fn only(findings: &[Finding], severity: Severity, text: &str) {
        let hits = problems(findings);
        assert_eq!(hits.len(), 1, "{findings:#?}");
        assert_eq!(hits[0].severity, severity, "{findings:#?}");
        assert!(hits[0].message.contains(text), "{findings:#?}");
    }

    #[test]
    fn the_right_record_split_into_strings_passes() {
        let value = expected();
        let (a, b) = value.split_at(255);
        let findings = analyse(&served(&[&[a, b]]), &expected());
        assert!(findings.is_empty(), "{findings:#?}");
        assert!(passed(&findings));
    }

    #[test]
    fn the_right_key_in_pkcs1_form_is_named_as_the_wrong_encoding() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let key = crate::keys::generate(1024).unwrap();
        let private = crate::keys::parse_private(&key.pem).unwrap();
        let pkcs1 = private.to_public_key().to_pkcs1_der().unwrap();
        let published = format!(
            "v=DKIM1; k=rsa; p={}",
            Base64::encode_string(pkcs1.as_bytes())
        );
        let (a, b) = published.split_at(published.len().min(255));
        let strings: Vec<&str> = [a, b].into_iter().filter(|s| !s.is_empty()).collect();
        let findings = analyse(&served(&[&strings]), &key.record);
        only(
            &findings,
            Severity::Fail,
            "the right key in the wrong encoding: PKCS#1",
        );
        assert!(findings.iter().any(|f| f.fix.contains(&key.record)));
    }

    #[test]
    fn no_record_fails_and_says_what_to_publish() {
        let findings = analyse(&served(&[]), &expected());
        only(
            &findings,
            Severity::Fail,
            "no TXT record at key._domainkey.example.test",
        );
        assert!(findings[0].fix.contains(&expected()));
        assert!(findings[0].fix.contains("dkim-setup dns"));
        assert!(!passed(&findings));
    }

    #[test]
    fn truncated_value_is_reported_as_truncation() {
        let value = expected();
        let findings = analyse(&served(&[&[&value[..255]]]), &expected());
        only(
            &findings,
            Severity::Fail,
            "record truncated by DNS provider",
        );
    }

    #[test]
    fn another_key_does_not_match() {
        let other = expected().replace("QUJD", "QUJE").replace("ABCD", "ABCE");
        let findings = analyse(&served(&[&[&other]]), &expected());
        only(
            &findings,
            Severity::Fail,
            "the published key does not match the private key",
        );
        assert!(findings[0].fix.contains("KeyTable"));
    }

    #[test]
    fn pasted_quotes_fail_but_the_key_is_still_compared() {
        let value = expected();
        let pasted = format!("\"{}\" \"{}\"", &value[..20], &value[20..]);
        let findings = analyse(&served(&[&[&pasted]]), &expected());
        only(&findings, Severity::Fail, "literal quotes in record");
        let escaped = format!("\\\"{value}\\\"");
        let findings = analyse(&served(&[&[&escaped]]), &expected());
        only(&findings, Severity::Fail, "literal quotes in record");
        let truncated = format!("\"{}\"", &value[..200]);
        let findings = analyse(&served(&[&[&truncated]]), &expected());
        assert_eq!(problems(&findings).len(), 2, "{findings:#?}");
    }

    #[test]
    fn two_records_fail_and_the_matching_one_is_kept() {
        let value = expected();
        let findings = analyse(&served(&[&["v=DKIM1; k=rsa; p=MIGf"], &[&value]]), &value);
        only(
            &findings,
            Severity::Fail,
            "multiple TXT records at key._domainkey.example.test",
        );
        assert!(findings[0].fix.contains("'v=DKIM1; k=rsa; p=MIGf'"));
    }

    #[test]
    fn a_value_split_into_two_records_is_named_as_such() {
        let value = expected();
        let (a, b) = value.split_at(200);
        let findings = analyse(&served(&[&[b], &[a]]), &value);
        only(&findings, Severity::Fail, "multiple TXT records at");
        assert!(findings[0].message.contains("pieces of one value"));
    }

    #[test]
    fn pem_armour_and_whitespace_inside_p() {
        let k = key();
        let armoured = format!(
            "v=DKIM1; k=rsa; p=-----BEGIN PUBLIC KEY-----{}-----END PUBLIC KEY-----",
            k
        );
        let findings = analyse(&served(&[&[&armoured]]), &expected());
        only(&findings, Severity::Fail, "PEM armour inside p=");
        let spaced = format!("v=DKIM1; k=rsa; p={} {}", &k[..100], &k[100..]);
        let findings = analyse(&served(&[&[&spaced]]), &expected());
        only(&findings, Severity::Fail, "whitespace inside p=");
    }

    #[test]
    fn version_key_type_and_revocation() {
        let k = key();
        let findings = analyse(&served(&[&[&format!("k=rsa; p={k}")]]), &expected());
        only(&findings, Severity::Warn, "does not start with v=DKIM1");
        let findings = analyse(&served(&[&[&format!("v=DKIM2; p={k}")]]), &expected());
        only(&findings, Severity::Fail, "version 'DKIM2'");
        let findings = analyse(
            &served(&[&[&format!("k=rsa; v=DKIM1; p={k}")]]),
            &expected(),
        );
        only(&findings, Severity::Fail, "not the first tag");
        let findings = analyse(
            &served(&[&[&format!("v=DKIM1; k=ed25519; p={k}")]]),
            &expected(),
        );
        only(&findings, Severity::Fail, "key type 'k=ed25519'");
        let findings = analyse(&served(&[&["v=DKIM1; k=rsa; p="]]), &expected());
        only(&findings, Severity::Fail, "the key was revoked (empty p=)");
        let findings = analyse(&served(&[&["v=DKIM1; k=rsa"]]), &expected());
        only(&findings, Severity::Fail, "no p= tag");
    }

    #[test]
    fn testing_mode_warns() {
        let value = format!("v=DKIM1; k=rsa; t=y; p={}", key());
        let findings = analyse(&served(&[&[&value]]), &expected());
        only(&findings, Severity::Warn, "testing mode (t=y)");
        assert!(passed(&findings));
    }

    #[test]
    fn malformed_tag_lists_fail() {
        for value in [
            "v=DKIM1; rsa; p=AAAA",
            "v=DKIM1; p=AAAA; p=AAAA",
            "v=DKIM1; 1x=2",
        ] {
            let findings = analyse(&served(&[&[value]]), &expected());
            only(&findings, Severity::Fail, "not a valid DKIM tag list");
        }
    }

    #[test]
    fn hash_and_service_restrictions_fail() {
        let k = key();
        let findings = analyse(
            &served(&[&[&format!("v=DKIM1; h=sha1; k=rsa; p={k}")]]),
            &expected(),
        );
        only(&findings, Severity::Fail, "'h=sha1'");
        let findings = analyse(
            &served(&[&[&format!("v=DKIM1; h=sha1:sha256; s=email; p={k}")]]),
            &expected(),
        );
        assert!(problems(&findings).is_empty(), "{findings:#?}");
    }

    #[test]
    fn cname_and_missing_dnssec_are_information() {
        let mut answer = served(&[&[&expected()]]);
        answer.cnames = vec!["dkim_a.example.net".into()];
        answer.dnssec_validated = false;
        let findings = analyse(&answer, &expected());
        assert!(passed(&findings));
        assert!(problems(&findings).is_empty(), "{findings:#?}");
        assert_eq!(findings.len(), 2);
        assert_eq!(
            findings[0].message,
            "key._domainkey.example.test is a CNAME to dkim_a.example.net"
        );
        assert!(findings[1].message.contains("not DNSSEC-validated"));
    }

    #[test]
    fn missing_record_behind_a_cname_names_the_target() {
        let mut answer = served(&[]);
        answer.cnames = vec!["dkim_a.example.net".into()];
        let findings = analyse(&answer, &expected());
        only(
            &findings,
            Severity::Fail,
            "no TXT record at dkim_a.example.net",
        );
        assert!(findings[1].fix.contains("publish dkim_a.example.net TXT"));
    }

    #[test]
    fn nameserver_values() {
        let ok = [
            ("192.0.2.53", "192.0.2.53:53"),
            (" 192.0.2.53:5353 ", "192.0.2.53:5353"),
            ("2001:db8::53", "[2001:db8::53]:53"),
            ("[2001:db8::53]", "[2001:db8::53]:53"),
            ("[2001:db8::53]:5353", "[2001:db8::53]:5353"),
        ];
        for (value, want) in ok {
            assert_eq!(
                parse_nameserver(value).unwrap().to_string(),
                want,
                "{value}"
            );
        }
        let bad = [
            ("nonsense", "it is not an IP address"),
            ("1.2.3.4:99999", "'99999' is not a port"),
            ("", "it is empty"),
            ("1.2.3.4:0", "between 1 and 65535"),
            ("[2001:db8::53]:x", "'x' is not a port"),
            ("ns1.example.com", "it is not an IP address"),
        ];
        for (value, why) in bad {
            let err = parse_nameserver(value).unwrap_err();
            let bad = err
                .downcast_ref::<crate::error::BadInput>()
                .expect("bad input");
            assert!(bad.message.contains(why), "{value}: {}", bad.message);
            assert!(
                bad.message.contains(&format!("'{}'", value)),
                "{}",
                bad.message
            );
        }
    }

    #[test]
    fn bare_key_drops_armour_and_whitespace() {
        assert_eq!(
            bare_key("-----BEGIN X-----\nAB CD\n-----END X-----"),
            "ABCD"
        );
        assert_eq!(bare_key("AB\tCD"), "ABCD");
    }
}
