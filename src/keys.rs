//! Signing keys: generated here, published as DNS records.
//!
//! A key is RSA (2048 bits unless asked otherwise), written as PKCS#8 PEM
//! exactly as `opendkim-genkey` writes it. Its DNS record carries `p=`, the
//! base64 of the DER SubjectPublicKeyInfo; that is what OpenDKIM and every
//! verifier parse, and a PKCS#1 public key in its place is refused (B14).
//! Writing the key file with safe ownership is the apply step's job; nothing
//! here touches the disk, and no function returns a private key as text for
//! printing.

use anyhow::{Context, Result, bail};
use base64ct::{Base64, Encoding};
use rsa::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

/// A freshly generated key: the PEM to write and the record to publish.
pub struct NewKey {
    pub pem: Zeroizing<String>,
    pub record: String,
}

/// Generate an RSA key of `bits` bits.
pub fn generate(bits: u32) -> Result<NewKey> {
    let key = PrivateKey::new(&mut getrandom::SysRng, bits as usize)
        .with_context(|| format!("cannot generate a {bits}-bit RSA key"))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("cannot encode the new key as PEM")?;
    let record = record_for(&key)?;
    Ok(NewKey { pem, record })
}

/// Parse a private key file's text (PKCS#8 or PKCS#1 PEM).
pub fn parse_private(pem: &str) -> Result<PrivateKey> {
    if let Ok(key) = PrivateKey::from_pkcs8_pem(pem) {
        return Ok(key);
    }
    PrivateKey::from_pkcs1_pem(pem).map_err(|_| anyhow::anyhow!("not an RSA private key in PEM"))
}

/// The size of a key in bits.
pub fn bits_of(key: &PrivateKey) -> u32 {
    key.to_public_key().n().bit_width()
}

/// The DNS TXT value for a private key.
pub fn record_for(key: &PrivateKey) -> Result<String> {
    let spki = key
        .to_public_key()
        .to_public_key_der()
        .context("cannot encode the public key")?;
    record_from_spki(spki.as_bytes())
}

/// The DNS TXT value for DER bytes, which must be a SubjectPublicKeyInfo.
pub fn record_from_spki(der: &[u8]) -> Result<String> {
    if rsa::PublicKey::from_public_key_der(der).is_err() {
        bail!(
            "the public key is not a DER SubjectPublicKeyInfo (a PKCS#1 'RSA PUBLIC KEY' is not \
             accepted by verifiers)"
        );
    }
    Ok(format!("v=DKIM1; k=rsa; p={}", Base64::encode_string(der)))
}

/// Split a TXT value into character-strings of at most 255 bytes, as a zone
/// file needs. The value is ASCII, so any byte boundary is a char boundary.
pub fn split_strings(value: &str) -> Vec<String> {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_spki_and_matches_the_private_key() {
        let key = generate(2048).unwrap();
        assert!(key.pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let p = key.record.strip_prefix("v=DKIM1; k=rsa; p=").unwrap();
        assert!(p.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"), "{p}");
        assert_eq!(p.len(), 392);
        let der = Base64::decode_vec(p).unwrap();
        let public = rsa::PublicKey::from_public_key_der(&der).unwrap();
        let private = parse_private(&key.pem).unwrap();
        assert_eq!(public.n(), private.to_public_key().n());
        assert_eq!(bits_of(&private), 2048);
        assert_eq!(record_for(&private).unwrap(), key.record);
    }

    #[test]
    fn pkcs1_public_key_is_refused() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let key = parse_private(&generate(1024).unwrap().pem).unwrap();
        let pkcs1 = key.to_public_key().to_pkcs1_der().unwrap();
        let err = record_from_spki(pkcs1.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("PKCS#1"));
    }

    #[test]
    fn strings_are_at_most_255_bytes_and_rejoin() {
        let value = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
        let parts = split_strings(&value);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.len() <= 255));
        assert_eq!(parts.concat(), value);
    }
}
