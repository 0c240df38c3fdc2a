//! Verifying a DKIM signature (RFC 6376) over a message, with the key from a
//! DNS record, so `check` can prove that what opendkim signs verifies
//! against what is published.
//!
//! The steps are the RFC's:
//!
//! 1. parse the signature's tags; only `a=rsa-sha256` is supported, with any
//!    of the four `c=` canonicalizations (simple/simple when absent);
//! 2. parse the record's tags and decode `p=`, the base64 of a DER
//!    SubjectPublicKeyInfo;
//! 3. canonicalize the body, cut it to `l=` bytes when the signature has one,
//!    and compare its SHA-256 with `bh=`;
//! 4. canonicalize the headers `h=` names, each occurrence taken from the
//!    bottom up (a name listed more often than it occurs adds nothing, which
//!    is how over-signing works), then the signature header itself with the
//!    value of `b=` emptied and no CRLF at the end;
//! 5. verify `b=` over that as an RSA PKCS#1 v1.5 SHA-256 signature.
//!
//! Header values are taken as they follow the colon (normally with a leading
//! space); a bare `\n` in one counts as CRLF, so a signature as opendkim
//! hands it to the MTA (folded with `\n\t`) verifies as it will be written.
//! The body must have CRLF line ends.

use anyhow::{Context, Result, anyhow, bail};
use base64ct::{Base64, Encoding};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::{Digest, Sha256};
use rsa::signature::Verifier;

/// What a signature that verified covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `d=`
    pub domain: String,
    /// `s=`
    pub selector: String,
    /// `a=`, such as `rsa-sha256`
    pub algorithm: String,
    /// `c=` in full, such as `relaxed/simple` (`simple/simple` when absent)
    pub canonicalization: String,
    /// `h=`, as listed (over-signed names appear more than once)
    pub signed_headers: Vec<String>,
    /// `l=`: the signature covers only this many bytes of the canonical body
    pub body_length: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canon {
    Simple,
    Relaxed,
}

/// Verify the DKIM-Signature header value `signature` (unfolded or folded,
/// as inserted) over `headers` (all the message's header fields in order,
/// name and value as they appear) and `body` (CRLF), using the public key
/// from the DNS record value `record` ("v=DKIM1; k=rsa; p=..."). Returns what
/// was verified, or an error saying exactly what failed. For simple header
/// canonicalization the signature's field name is taken as `DKIM-Signature`,
/// as opendkim writes it.
pub fn verify(
    signature: &str,
    headers: &[(String, String)],
    body: &str,
    record: &str,
) -> Result<Verified> {
    let signature = crlf(signature);
    let tags = parse_tags(&signature).context("the DKIM-Signature cannot be parsed")?;
    let tag = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let required =
        |name: &str| tag(name).ok_or_else(|| anyhow!("the DKIM-Signature has no {name}= tag"));

    let version = required("v")?;
    if version != "1" {
        bail!("the DKIM-Signature has version 'v={version}'; only 'v=1' is defined");
    }
    let algorithm = required("a")?;
    if algorithm != "rsa-sha256" {
        bail!("unsupported algorithm '{algorithm}'");
    }
    let domain = required("d")?;
    let selector = required("s")?;
    let (header_canon, body_canon, canonicalization) = canonicalization(tag("c"))?;
    let signed_headers: Vec<String> = required("h")?
        .split(':')
        .map(|h| h.trim().to_string())
        .collect();
    if signed_headers.iter().any(|h| h.is_empty()) {
        bail!("the DKIM-Signature's h= has an empty header name");
    }
    if !signed_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("from"))
    {
        bail!("the DKIM-Signature does not sign the From header (h= has no 'From')");
    }
    if let Some(identity) = tag("i") {
        check_identity(identity, domain)?;
    }
    if let Some(expires) = tag("x") {
        check_expiry(expires)?;
    }
    let body_length = match tag("l") {
        None => None,
        Some(l) => Some(
            l.parse::<u64>()
                .map_err(|_| anyhow!("the DKIM-Signature has an invalid body length 'l={l}'"))?,
        ),
    };
    let body_hash_tag = required("bh")?;
    let body_hash =
        decode_base64(body_hash_tag).context("the DKIM-Signature's bh= is not base64")?;
    let signature_bytes =
        decode_base64(required("b")?).context("the DKIM-Signature's b= is not base64")?;

    let key = record_key(record)?;

    // The body.
    let mut canonical_body = match body_canon {
        Canon::Simple => simple_body(body.as_bytes()),
        Canon::Relaxed => relaxed_body(body.as_bytes()),
    };
    if let Some(length) = body_length {
        let have = canonical_body.len() as u64;
        if length > have {
            bail!(
                "the signature's body length 'l={length}' is longer than the canonical body \
                 ({have} bytes)"
            );
        }
        canonical_body.truncate(length as usize);
    }
    let computed = Sha256::digest(&canonical_body);
    if computed.as_slice() != body_hash.as_slice() {
        bail!(
            "body hash does not match (bh={body_hash_tag} in the signature, {} computed over \
             the {} body)",
            Base64::encode_string(&computed),
            canonicalization.split('/').nth(1).unwrap_or("simple")
        );
    }

    // The headers, then the signature header itself.
    let mut data = Vec::new();
    let mut used = vec![false; headers.len()];
    for name in &signed_headers {
        let found = (0..headers.len())
            .rev()
            .find(|&i| !used[i] && headers[i].0.trim_end().eq_ignore_ascii_case(name));
        if let Some(i) = found {
            used[i] = true;
            let value = crlf(&headers[i].1);
            canonical_header(&mut data, header_canon, &headers[i].0, &value);
            data.extend(b"\r\n");
        }
    }
    let unsigned = without_b_value(&signature);
    canonical_header(&mut data, header_canon, "DKIM-Signature", &unsigned);

    let signature = Signature::try_from(signature_bytes.as_slice())
        .map_err(|_| anyhow!("signature does not verify against the key in the record"))?;
    VerifyingKey::<Sha256>::new(key)
        .verify(&data, &signature)
        .map_err(|_| anyhow!("signature does not verify against the key in the record"))?;

    Ok(Verified {
        domain: domain.to_string(),
        selector: selector.to_string(),
        algorithm: algorithm.to_string(),
        canonicalization,
        signed_headers,
        body_length,
    })
}

/// A tag list (`name=value; ...`) as (name, value) pairs, each trimmed of
/// surrounding whitespace and folding.
fn parse_tags(text: &str) -> Result<Vec<(String, String)>> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for spec in text.split(';') {
        if spec.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = spec.split_once('=') else {
            bail!("the tag '{}' has no '='", spec.trim());
        };
        let name = name.trim();
        if name.is_empty() {
            bail!("a tag has no name before '='");
        }
        if tags.iter().any(|(n, _)| n == name) {
            bail!("the tag '{name}' appears twice");
        }
        tags.push((name.to_string(), value.trim().to_string()));
    }
    Ok(tags)
}

fn canonicalization(c: Option<&str>) -> Result<(Canon, Canon, String)> {
    let c = c.unwrap_or("simple/simple");
    let (header, body) = c.split_once('/').unwrap_or((c, "simple"));
    let parse = |name: &str| match name {
        "simple" => Ok(Canon::Simple),
        "relaxed" => Ok(Canon::Relaxed),
        _ => Err(anyhow!("unknown canonicalization 'c={c}'")),
    };
    Ok((parse(header)?, parse(body)?, format!("{header}/{body}")))
}

/// `i=` must be the domain of `d=` or a subdomain of it.
fn check_identity(identity: &str, domain: &str) -> Result<()> {
    let host = identity.rsplit_once('@').map_or(identity, |(_, h)| h);
    let host = host.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    if host != domain && !host.ends_with(&format!(".{domain}")) {
        bail!("the signature's identity 'i={identity}' is not within its domain 'd={domain}'");
    }
    Ok(())
}

fn check_expiry(expires: &str) -> Result<()> {
    let at: u64 = expires
        .parse()
        .map_err(|_| anyhow!("the DKIM-Signature has an invalid expiry 'x={expires}'"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now > at {
        bail!("the signature expired (x={expires})");
    }
    Ok(())
}

/// The RSA key in a DKIM record.
fn record_key(record: &str) -> Result<rsa::PublicKey> {
    let tags = parse_tags(record).context("the record cannot be parsed")?;
    let tag = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(version) = tag("v")
        && version != "DKIM1"
    {
        bail!("the record has version 'v={version}'; only 'v=DKIM1' is defined");
    }
    if let Some(kind) = tag("k")
        && kind != "rsa"
    {
        bail!("the record's key type 'k={kind}' is not supported");
    }
    if let Some(hashes) = tag("h")
        && !hashes.split(':').any(|h| h.trim() == "sha256")
    {
        bail!("the record allows only the hashes 'h={hashes}', not sha256");
    }
    let p = tag("p").ok_or_else(|| anyhow!("the record has no p= key"))?;
    if p.is_empty() {
        bail!("the record's key is revoked (empty p=)");
    }
    let der = decode_base64(p).context("the record's p= is not base64")?;
    rsa::PublicKey::from_public_key_der(&der)
        .map_err(|_| anyhow!("the record's p= is not an RSA SubjectPublicKeyInfo"))
}

fn decode_base64(value: &str) -> Result<Vec<u8>> {
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Base64::decode_vec(&compact).map_err(|e| anyhow!("{e}"))
}

/// Bare `\n` to CRLF; CRLF stays.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut last = '\0';
    for ch in text.chars() {
        if ch == '\n' && last != '\r' {
            out.push('\r');
        }
        out.push(ch);
        last = ch;
    }
    out
}

/// The signature header value with the value of its `b=` tag emptied and
/// every other byte kept.
fn without_b_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    loop {
        let (spec, tail) = match rest.find(';') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        match spec.split_once('=') {
            Some((name, _)) if name.trim() == "b" => {
                out.push_str(name);
                out.push('=');
            }
            _ => out.push_str(spec),
        }
        match tail {
            Some(tail) => {
                out.push(';');
                rest = &tail[1..];
            }
            None => return out,
        }
    }
}

/// Append one canonical header field, without its final CRLF.
fn canonical_header(out: &mut Vec<u8>, canon: Canon, name: &str, value: &str) {
    match canon {
        Canon::Simple => {
            out.extend(name.as_bytes());
            out.push(b':');
            out.extend(value.as_bytes());
        }
        Canon::Relaxed => {
            out.extend(name.trim_end().to_ascii_lowercase().as_bytes());
            out.push(b':');
            let unfolded = value.replace("\r\n", "");
            out.extend(compress_wsp(unfolded.as_bytes()).trim_ascii());
        }
    }
}

/// Every run of spaces and tabs as one space.
fn compress_wsp(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut in_run = false;
    for &b in line {
        if b == b' ' || b == b'\t' {
            if !in_run {
                out.push(b' ');
            }
            in_run = true;
        } else {
            out.push(b);
            in_run = false;
        }
    }
    out
}

/// Simple body: trailing empty lines removed, a CRLF at the end (an empty
/// body is one CRLF).
fn simple_body(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if !out.ends_with(b"\r\n") {
        out.extend(b"\r\n");
    }
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// Relaxed body: whitespace runs as one space, none at line ends, trailing
/// empty lines removed, a CRLF at the end (an empty body stays empty).
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines: Vec<&[u8]> = split_crlf(body);
    if body.ends_with(b"\r\n") {
        lines.pop();
    }
    for line in lines {
        let line = compress_wsp(line);
        let end = line.len() - line.iter().rev().take_while(|&&b| b == b' ').count();
        out.extend(&line[..end]);
        out.extend(b"\r\n");
    }
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    if out == b"\r\n" {
        out.clear();
    }
    out
}

fn split_crlf(body: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < body.len() {
        if body[i] == b'\r' && body[i + 1] == b'\n' {
            lines.push(&body[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    lines.push(&body[start..]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn body_canonicalization() {
        assert_eq!(simple_body(b""), b"\r\n");
        assert_eq!(simple_body(b"\r\n\r\n"), b"\r\n");
        assert_eq!(simple_body(b"a \r\n\r\n\r\n"), b"a \r\n");
        assert_eq!(simple_body(b"a"), b"a\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b" \t\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"a  \t b \t\r\n c\r\n\r\n"), b"a b\r\n c\r\n");
        assert_eq!(relaxed_body(b"a"), b"a\r\n");
    }

    #[test]
    fn header_canonicalization() {
        let mut out = Vec::new();
        canonical_header(&mut out, Canon::Relaxed, "SubJect ", " a \t b\r\n\tc  ");
        assert_eq!(out, b"subject:a b c");
        out.clear();
        canonical_header(&mut out, Canon::Simple, "SubJect", " a \t b\r\n\tc  ");
        assert_eq!(out, b"SubJect: a \t b\r\n\tc  ");
    }

    #[test]
    fn only_the_b_value_is_removed() {
        let sig = " v=1; bh=AB+c=; b=XY\r\n\tZ= ; h=from";
        assert_eq!(without_b_value(sig), " v=1; bh=AB+c=; b=; h=from");
        assert_eq!(without_b_value("v=1; b =XYZ"), "v=1; b =");
        assert_eq!(crlf("a\n\tb\r\n\tc"), "a\r\n\tb\r\n\tc");
    }

    #[test]
    fn record_errors() {
        let err = |r: &str| format!("{:#}", record_key(r).unwrap_err());
        assert_eq!(err("v=DKIM1; k=rsa"), "the record has no p= key");
        assert_eq!(
            err("v=DKIM1; k=rsa; p="),
            "the record's key is revoked (empty p=)"
        );
        assert_eq!(
            err("v=DKIM1; k=ed25519; p=AAAA"),
            "the record's key type 'k=ed25519' is not supported"
        );
        assert_eq!(
            err("v=DKIM1; p=AAAA"),
            "the record's p= is not an RSA SubjectPublicKeyInfo"
        );
    }

    #[test]
    fn signature_tag_errors() {
        let record = dkim_setup_record();
        let headers = vec![("From".to_string(), " a@example.test".to_string())];
        let err = |sig: &str| format!("{:#}", verify(sig, &headers, "", &record).unwrap_err());
        let base = "v=1; d=example.test; s=mail; h=From; bh=AAAA; b=AAAA";
        assert_eq!(
            err(&format!("a=ed25519-sha256; {base}")),
            "unsupported algorithm 'ed25519-sha256'"
        );
        assert_eq!(
            err(&format!("a=rsa-sha1; {base}")),
            "unsupported algorithm 'rsa-sha1'"
        );
        assert_eq!(
            err("v=1; a=rsa-sha256; d=x; s=y; h=From; b=AAAA"),
            "the DKIM-Signature has no bh= tag"
        );
        assert_eq!(
            err(&format!("a=rsa-sha256; c=loose; {base}")),
            "unknown canonicalization 'c=loose'"
        );
        assert_eq!(
            err("v=1; a=rsa-sha256; d=example.test; s=mail; h=To; bh=AAAA; b=AAAA"),
            "the DKIM-Signature does not sign the From header (h= has no 'From')"
        );
        assert_eq!(
            err(&format!("a=rsa-sha256; i=@other.test; {base}")),
            "the signature's identity 'i=@other.test' is not within its domain 'd=example.test'"
        );
    }

    fn dkim_setup_record() -> String {
        crate::keys::generate(1024).unwrap().record
    }

    // ---- cross-tests against dkimpy ----

    /// A Python with dkimpy: `python3` on PATH, or Debian's own (python3-dkim
    /// installs into it, and PATH may lead to another Python first).
    fn dkimpy() -> Option<String> {
        for python in ["python3", "/usr/bin/python3"] {
            let ok = Command::new(python)
                .args(["-c", "import dkim"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Some(python.to_string());
            }
        }
        None
    }

    /// dkimpy, or None when it is missing outside CI (where it must be there).
    fn dkimpy_or_skip() -> Option<String> {
        let found = dkimpy();
        if found.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 with dkimpy (Debian's python3-dkim) is needed for this test in CI"
            );
            println!("skipped: python3 cannot import dkim (install python3-dkim)");
        }
        found
    }

    const SIGN: &str = r#"
import sys, dkim
key, msg, canon, headers = sys.argv[1:5]
message = open(msg, 'rb').read()
h, b = canon.split('/')
sig = dkim.sign(message, b'mail', b'example.test', open(key, 'rb').read(),
                canonicalize=(h.encode(), b.encode()),
                include_headers=[x.encode() for x in headers.split(':')],
                length=len(sys.argv) > 5)
sys.stdout.buffer.write(sig + message)
"#;

    const VERIFY: &str = r#"
import sys, dkim
record = open(sys.argv[2], 'rb').read()
ok = dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=lambda name, timeout=5: record)
print('pass' if ok else 'fail')
"#;

    /// Split a message into header fields (name, value after the colon, with
    /// folding) and body.
    fn split_message(message: &str) -> (Vec<(String, String)>, String) {
        let (head, body) = message.split_once("\r\n\r\n").unwrap();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().unwrap();
                last.1.push_str("\r\n");
                last.1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_string(), value.to_string()));
            }
        }
        (headers, body.to_string())
    }

    struct Signed {
        headers: Vec<(String, String)>,
        body: String,
        signature: String,
    }

    fn sign(python: &str, dir: &Path, message: &str, canon: &str, h: &str, l: bool) -> Signed {
        let msg = dir.join("message.eml");
        std::fs::write(&msg, message).unwrap();
        let mut cmd = Command::new(python);
        cmd.args(["-c", SIGN])
            .arg(dir.join("key.pem"))
            .arg(&msg)
            .args([canon, h]);
        if l {
            cmd.arg("l");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let signed = String::from_utf8(out.stdout).unwrap();
        let (mut headers, body) = split_message(&signed);
        let (name, signature) = headers.remove(0);
        assert_eq!(name, "DKIM-Signature");
        Signed {
            headers,
            body,
            signature,
        }
    }

    const MESSAGE: &str = "From: Alice <alice@example.test>\r\n\
        To:   bob@example.test ,\r\n\tcarol@example.test\r\n\
        Subject:  a  subject\twith   runs\r\n\
        X-Tag: first\r\n\
        X-Tag: second\r\n\
        Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
        \r\n\
        Hello  there, \t \r\n\
        \r\n\
        second   paragraph\t\r\n\
        \r\n\
        \r\n\
        \r\n";

    #[test]
    fn verifies_dkimpy_signatures() {
        let Some(python) = dkimpy_or_skip() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let key = crate::keys::generate(2048).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.pem.as_bytes()).unwrap();
        let record = key.record;
        let other = crate::keys::generate(1024).unwrap().record;
        // From over-signed, X-Tag (twice in the message) signed once and
        // twice, a name that is absent.
        let h = "From:To:Subject:Date:X-Tag:From:Reply-To";
        let h2 = "from:to:subject:x-tag:x-tag:x-tag";
        for canon in [
            "simple/simple",
            "relaxed/relaxed",
            "relaxed/simple",
            "simple/relaxed",
        ] {
            for (h, l) in [(h, false), (h2, true)] {
                let s = sign(&python, dir.path(), MESSAGE, canon, h, l);
                let got = verify(&s.signature, &s.headers, &s.body, &record)
                    .unwrap_or_else(|e| panic!("{canon} h={h}: {e:#}"));
                assert_eq!(got.canonicalization, canon);
                assert_eq!(got.domain, "example.test");
                assert_eq!(got.selector, "mail");
                assert_eq!(got.algorithm, "rsa-sha256");
                assert_eq!(got.signed_headers.join(":"), h.to_lowercase());
                assert_eq!(got.body_length.is_some(), l);

                // The signature as a milter hands it over: folded with a bare LF.
                let lf = s.signature.replace("\r\n", "\n");
                verify(&lf, &s.headers, &s.body, &record).unwrap();

                // A changed body character.
                let body = s.body.replacen("there", "thore", 1);
                let err = verify(&s.signature, &s.headers, &body, &record).unwrap_err();
                assert!(
                    format!("{err:#}").starts_with("body hash does not match (bh="),
                    "{canon}: {err:#}"
                );

                // A changed signed header.
                let mut headers = s.headers.clone();
                headers[2].1 = " another subject".to_string();
                let err = verify(&s.signature, &headers, &s.body, &record).unwrap_err();
                assert_eq!(
                    format!("{err:#}"),
                    "signature does not verify against the key in the record"
                );

                // An added From (the over-signed one is no longer empty).
                let mut headers = s.headers.clone();
                headers.push(("From".into(), " mallory@example.test".into()));
                assert!(verify(&s.signature, &headers, &s.body, &record).is_err());

                // Another key.
                let err = verify(&s.signature, &s.headers, &s.body, &other).unwrap_err();
                assert_eq!(
                    format!("{err:#}"),
                    "signature does not verify against the key in the record"
                );
            }
        }
        // A whitespace-only change passes relaxed and fails simple.
        let spaced = MESSAGE.replace("Hello  there,", "Hello \t there,");
        for (canon, passes) in [("relaxed/relaxed", true), ("simple/simple", false)] {
            let s = sign(&python, dir.path(), MESSAGE, canon, "From:Subject", false);
            let (_, body) = split_message(&spaced);
            assert_eq!(
                verify(&s.signature, &s.headers, &body, &record).is_ok(),
                passes
            );
        }
        // Empty bodies.
        for canon in ["simple/simple", "relaxed/relaxed"] {
            let message = "From: a@example.test\r\nSubject: empty\r\n\r\n";
            let s = sign(&python, dir.path(), message, canon, "From:Subject", false);
            verify(&s.signature, &s.headers, &s.body, &record).unwrap();
        }
    }

    /// The other direction: a message dkimpy verifies, this verifier accepts,
    /// and a copy dkimpy rejects, it refuses.
    #[test]
    fn agrees_with_dkimpy_verify() {
        let Some(python) = dkimpy_or_skip() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let key = crate::keys::generate(2048).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.pem.as_bytes()).unwrap();
        let record_file = dir.path().join("record.txt");
        std::fs::write(&record_file, &key.record).unwrap();
        let s = sign(
            &python,
            dir.path(),
            MESSAGE,
            "relaxed/relaxed",
            "From:To:Subject",
            false,
        );
        for (body, want) in [(s.body.clone(), "pass"), (s.body.replace('H', "J"), "fail")] {
            let mut message = format!("DKIM-Signature:{}\r\n", s.signature);
            for (name, value) in &s.headers {
                message.push_str(&format!("{name}:{value}\r\n"));
            }
            message.push_str("\r\n");
            message.push_str(&body);
            let file = dir.path().join("signed.eml");
            std::fs::write(&file, &message).unwrap();
            let out = Command::new(&python)
                .args(["-c", VERIFY])
                .arg(&file)
                .arg(&record_file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
            let ours = verify(&s.signature, &s.headers, &body, &key.record);
            assert_eq!(ours.is_ok(), want == "pass");
        }
    }
}
