//! Input checks: every value a user gives is proved harmless before it can
//! reach a file.
//!
//! Domains, selectors, trusted hosts, key sizes and socket specs end up in
//! opendkim.conf, the tables and main.cf, whose formats have no quoting: a
//! space, newline, `:`, `#` or `*` in a value would split or inject lines.
//! Each check returns the normalised value or a [`crate::error::BadInput`]
//! that names the value and says why.

use crate::error::{bad, bad_hint};
use anyhow::Result;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const FORBIDDEN: &[char] = &[':', '*', '"', '\'', '#', '\\', '/', '@', ',', ';', '='];

/// Show a value safely inside an error message (control characters escaped).
pub fn shown(value: &str) -> String {
    value.escape_debug().to_string()
}

/// A signing domain: lower-cased, IDN converted to A-labels, a valid DNS name
/// with at least two labels, no wildcard.
pub fn domain(value: &str) -> Result<String> {
    let refuse = |why: &str| bad(format!("invalid domain '{}': {why}", shown(value)));
    if value.is_empty() {
        return Err(refuse("it is empty"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("it contains whitespace or control characters"));
    }
    if value.contains('*') {
        return Err(refuse("wildcard domains are not allowed; name each domain"));
    }
    if let Some(c) = value.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(refuse(&format!(
            "the character '{c}' cannot be in a domain name"
        )));
    }
    let trimmed = value.strip_suffix('.').unwrap_or(value);
    let ascii = idna::domain_to_ascii(trimmed)
        .map_err(|_| refuse("it is not a valid internationalised domain name"))?;
    dns_name(&ascii).map_err(|why| refuse(&why))?;
    if !ascii.contains('.') {
        return Err(bad_hint(
            format!(
                "invalid domain '{}': a signing domain needs at least two labels",
                shown(value)
            ),
            "give the mail domain, for example 'example.com'",
        ));
    }
    if ascii.parse::<IpAddr>().is_ok()
        || ascii
            .split('.')
            .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(refuse("an IP address is not a domain"));
    }
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(refuse(
            "its top-level label is all digits, which no DNS zone has",
        ));
    }
    Ok(ascii)
}

/// The DKIM record name `SELECTOR._domainkey.DOMAIN` must itself be a valid
/// DNS name, or the record can never be published.
pub fn record_name(selector: &str, domain: &str) -> Result<String> {
    let name = format!("{selector}._domainkey.{domain}");
    if name.len() > 253 {
        return Err(bad_hint(
            format!(
                "the DKIM record name for '{domain}' with selector '{selector}' is {} characters \
                 long; DNS allows 253",
                name.len()
            ),
            "choose a shorter selector",
        ));
    }
    Ok(name)
}

fn dns_name(ascii: &str) -> Result<(), String> {
    if ascii.len() > 253 {
        return Err(format!(
            "it is {} characters long; DNS allows 253",
            ascii.len()
        ));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err("it has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("the label '{label}' is longer than 63 characters"));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "the label '{label}' may hold only letters, digits and '-'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label '{label}' starts or ends with '-'"));
        }
    }
    Ok(())
}

/// A DKIM selector: one or more DNS labels (RFC 6376 `selector`), lower-cased.
pub fn selector(value: &str) -> Result<String> {
    let refuse = |why: &str| bad(format!("invalid selector '{}': {why}", shown(value)));
    if value.is_empty() {
        return Err(refuse("it is empty"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("it contains whitespace or control characters"));
    }
    let lower = value.to_ascii_lowercase();
    if !lower.is_ascii() {
        return Err(refuse("a selector must be plain ASCII"));
    }
    if lower.contains("._domainkey") || lower == "_domainkey" {
        return Err(bad_hint(
            format!(
                "invalid selector '{}': give the selector alone",
                shown(value)
            ),
            "for key._domainkey.example.com the selector is 'key'",
        ));
    }
    dns_name(&lower).map_err(|why| refuse(&why))?;
    if lower.len() > 63 {
        return Err(refuse("it is longer than 63 characters"));
    }
    Ok(lower)
}

/// RSA key sizes offered, and whether the size needs a confirming flag.
pub fn bits(value: u32, allow_long: bool) -> Result<u32> {
    match value {
        1024 | 2048 | 3072 => Ok(value),
        4096 if allow_long => Ok(value),
        4096 => Err(bad_hint(
            "a 4096-bit key makes a 750-character DNS record that many DNS providers truncate \
             or reject",
            "use 2048 (the default), or add --allow-long-key if your provider takes long records",
        )),
        _ => Err(bad_hint(
            format!("invalid key size '{value}'"),
            "choose 1024, 2048 (recommended), 3072 or 4096",
        )),
    }
}

/// A TrustedHosts entry: an IP address, a CIDR block or a host name.
/// Catch-all blocks are refused: they would make every client "internal",
/// so opendkim would sign mail from anywhere.
pub fn trusted_host(value: &str) -> Result<String> {
    let refuse = |why: &str| bad(format!("invalid trusted host '{}': {why}", shown(value)));
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("it is empty or contains whitespace"));
    }
    if let Some((addr, len)) = value.split_once('/') {
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| refuse("the part before '/' is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .map_err(|_| refuse("the prefix length is not a number"))?;
        if len > max {
            return Err(refuse(&format!("the prefix length is larger than {max}")));
        }
        let shortest = if ip.is_ipv4() { 8 } else { 16 };
        if len < shortest {
            let what = if len == 0 {
                "every address on the internet"
            } else {
                "a huge share of the internet"
            };
            return Err(bad_hint(
                format!(
                    "refusing trusted host '{value}': a /{len} block trusts {what}, so opendkim \
                     would sign mail relayed from anywhere in it"
                ),
                format!(
                    "name the networks that may send mail through this server (at least a \
                     /{shortest}), \
                     e.g. 192.0.2.0/24"
                ),
            ));
        }
        return Ok(format!("{}/{len}", network(ip, len)));
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(refuse("the unspecified address is not a host"));
        }
        return Ok(ip.to_string());
    }
    let lower = value.to_ascii_lowercase();
    if lower
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(refuse("it is neither a valid IP address nor a host name"));
    }
    dns_name(&lower).map_err(|why| refuse(&why))?;
    Ok(lower)
}

/// The network address of a CIDR block (host bits cleared).
fn network(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Where opendkim listens, parsed from opendkim's own socket syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    /// `inet:PORT@ADDR` (or `inet6:PORT@[ADDR]`).
    Inet { port: u16, addr: IpAddr },
    /// `local:/path` (or `unix:/path`, or a bare absolute path).
    Local { path: String },
}

impl Socket {
    /// The value for opendkim.conf's `Socket`.
    pub fn opendkim(&self) -> String {
        match self {
            Socket::Inet {
                port,
                addr: IpAddr::V4(a),
            } => format!("inet:{port}@{a}"),
            Socket::Inet {
                port,
                addr: IpAddr::V6(a),
            } => format!("inet6:{port}@[{a}]"),
            Socket::Local { path } => format!("local:{path}"),
        }
    }

    /// The address Postfix connects to, given the Postfix queue directory
    /// (where chrooted daemons live).
    pub fn postfix(&self, queue_dir: &str) -> String {
        match self {
            Socket::Inet {
                port,
                addr: IpAddr::V4(a),
            } => format!("inet:{a}:{port}"),
            Socket::Inet {
                port,
                addr: IpAddr::V6(a),
            } => format!("inet:[{a}]:{port}"),
            Socket::Local { path } => {
                let prefix = format!("{}/", queue_dir.trim_end_matches('/'));
                match path.strip_prefix(&prefix) {
                    Some(rel) => format!("unix:{rel}"),
                    None => format!("unix:{path}"),
                }
            }
        }
    }
}

/// Parse a `--socket` value. `localhost` is written as `127.0.0.1` so that
/// opendkim and Postfix agree on one literal address (field case B09).
pub fn socket(value: &str) -> Result<Socket> {
    let refuse = |why: &str| {
        bad_hint(
            format!("invalid socket '{}': {why}", shown(value)),
            "use inet:PORT@127.0.0.1 (the default is inet:8891@127.0.0.1) or local:/ABSOLUTE/PATH",
        )
    };
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#' || c == '"')
    {
        return Err(refuse("it contains whitespace, '#' or quotes"));
    }
    let (kind, rest) = match value.split_once(':') {
        Some((k, r)) => (k, r),
        None if value.starts_with('/') => ("local", value),
        None => return Err(refuse("it has no type (inet:, inet6: or local:)")),
    };
    match kind {
        "inet" | "inet6" => {
            let (port, host) = match rest.split_once('@') {
                Some((p, h)) => (p, h),
                None => (rest, ""),
            };
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| refuse(&format!("'{port}' is not a port number")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let addr = match host {
                "" => return Err(refuse("name the address to listen on, e.g. @127.0.0.1")),
                "localhost" if kind == "inet6" => IpAddr::V6(Ipv6Addr::LOCALHOST),
                "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                h => h
                    .parse()
                    .map_err(|_| refuse(&format!("'{h}' is not an IP address")))?,
            };
            if addr.is_unspecified() {
                return Err(refuse(
                    "listening on every address exposes the signer to the network",
                ));
            }
            Ok(Socket::Inet { port, addr })
        }
        "local" | "unix" => {
            if !rest.starts_with('/') || rest.contains("/../") || rest.ends_with('/') {
                return Err(refuse("a local socket needs an absolute file path"));
            }
            if let Some(c) = rest.chars().find(|c| [':', '*', '\'', ','].contains(c)) {
                return Err(refuse(&format!(
                    "the character '{c}' cannot be in the socket path"
                )));
            }
            Ok(Socket::Local {
                path: rest.to_string(),
            })
        }
        other => Err(refuse(&format!("unknown socket type '{other}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(domain("Example.COM").unwrap(), "example.com");
        assert_eq!(domain("example.com.").unwrap(), "example.com");
        assert_eq!(domain("bücher.example").unwrap(), "xn--bcher-kva.example");
    }

    #[test]
    fn hostile_domains_are_refused() {
        for bad in [
            "",
            "example",
            "*.example.com",
            "exa mple.com",
            "example.com\nSocket x",
            "a:b.com",
            "\"x\".com",
            "-a.com",
            "a..com",
            "192.0.2.1",
            "x#y.com",
            "example.com ",
        ] {
            assert!(domain(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(domain(&long).is_err());
    }

    #[test]
    fn selectors() {
        assert_eq!(selector("Key").unwrap(), "key");
        assert_eq!(selector("2024.mail").unwrap(), "2024.mail");
        for bad in ["", "a b", "k:1", "k*", "key._domainkey", "k\n", "_x", "ké"] {
            assert!(selector(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_sizes() {
        assert!(bits(2048, false).is_ok());
        assert!(bits(4096, false).is_err());
        assert!(bits(4096, true).is_ok());
        assert!(bits(512, true).is_err());
        assert!(bits(2049, false).is_err());
    }

    #[test]
    fn trusted_hosts() {
        assert_eq!(trusted_host("192.0.2.0/24").unwrap(), "192.0.2.0/24");
        assert_eq!(trusted_host("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(trusted_host("2001:db8::1/32").unwrap(), "2001:db8::/32");
        for wide in ["0.0.0.0/1", "128.0.0.0/1", "1.0.0.0/2", "::/1", "2000::/3"] {
            assert!(trusted_host(wide).is_err(), "{wide} accepted");
        }
        assert_eq!(trusted_host("2001:db8::/32").unwrap(), "2001:db8::/32");
        assert_eq!(
            trusted_host("Mail.Example.com").unwrap(),
            "mail.example.com"
        );
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "*.example.com",
            "a b",
            "x\ny",
            "1.2.3.4/33",
            "#x",
            "192.168.1.300",
        ] {
            assert!(trusted_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sockets() {
        let s = socket("inet:8891@127.0.0.1").unwrap();
        assert_eq!(s.opendkim(), "inet:8891@127.0.0.1");
        assert_eq!(s.postfix("/var/spool/postfix"), "inet:127.0.0.1:8891");
        assert_eq!(
            socket("inet:8891@localhost").unwrap().opendkim(),
            "inet:8891@127.0.0.1"
        );
        let s = socket("local:/var/spool/postfix/opendkim/opendkim.sock").unwrap();
        assert_eq!(
            s.postfix("/var/spool/postfix"),
            "unix:opendkim/opendkim.sock"
        );
        let s = socket("inet6:8891@[::1]").unwrap();
        assert_eq!(s.postfix("/var/spool/postfix"), "inet:[::1]:8891");
        for bad in [
            "8891",
            "inet:99999@127.0.0.1",
            "inet:8891",
            "inet:x@1.2.3.4",
            "tcp:1@1.1.1.1",
            "local:relative",
            "inet:8891@0.0.0.0",
            "inet:8891@127.0.0.1\nx",
        ] {
            assert!(socket(bad).is_err(), "{bad:?} accepted");
        }
    }
}
