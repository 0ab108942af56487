//! Client certificates (mTLS) as credentials.
//!
//! A certificate credential is an ordinary credential (tenant, role,
//! expiry, revocation) whose stored hash is the SHA-256 fingerprint of the
//! client's leaf certificate (its DER encoding) instead of the hash of a
//! bearer token. The TLS handshake proves that the client holds the
//! certificate's private key and that a configured CA signed it; the
//! fingerprint then names which registered credential the client is.
//!
//! A fingerprint is not a secret (anyone who saw the certificate can
//! compute it); what authenticates is the handshake. It is still compared
//! in constant time, like a token hash, so that both kinds of credential go
//! through the same check.

use std::fmt;

use sha2::{Digest, Sha256};

use super::secrets;

/// How a credential is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// `authorization: Bearer <token>`; the store keeps the token's SHA-256.
    Token,
    /// A TLS client certificate; the store keeps its fingerprint.
    Certificate,
}

impl CredentialKind {
    /// As stored and as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Certificate => "certificate",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateFingerprint(pub [u8; 32]);

impl CertificateFingerprint {
    /// The fingerprint of the certificate `der`.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Whether `stored` is this fingerprint (constant time).
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        secrets::hashes_match(&self.0, stored)
    }
}

/// Lower-case hex, as `openssl x509 -fingerprint -sha256` shows it without
/// the colons.
impl fmt::Display for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateFingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_of_the_der() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let fp = CertificateFingerprint::of_der(b"abc");
        assert_eq!(
            fp.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(fp.matches(&fp.0));
        let other = CertificateFingerprint::of_der(b"abd");
        assert_ne!(fp, other);
        assert!(!fp.matches(&other.0));
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(CredentialKind::Token.to_string(), "token");
        assert_eq!(CredentialKind::Certificate.to_string(), "certificate");
    }
}
