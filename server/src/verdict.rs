//! Signed verdicts: what the server attests about a resolved session, in a
//! canonical byte encoding signed with Ed25519, so that the agent desktop
//! and any downstream system (CRM, ticketing) can check it offline with
//! the server's published public keys (`zkid.v1.Keys/GetSigningKeys`, or
//! `zkid-server keys public`). Keys are named by id and earlier public keys
//! stay published after a rotation, so old verdicts stay checkable.
//!
//! This module depends on nothing else of the server; clients call
//! [`verify`].
//!
//! # Encoding (version 1)
//! `"zkid-verdict-v1"`, then `tenant`, `session_id`, `operation`, `state`
//! (lower case: `passed`, `failed`, `declined`, `expired`, `locked`,
//! `cancelled`), each as a u32 big-endian length and UTF-8 bytes; `level`
//! (one byte, 0 to 3: the level reached); `issued_at` and `expires_at`
//! (i64 big-endian Unix milliseconds); `key_id` (length-prefixed). The
//! signature is Ed25519 over exactly these bytes.
//!
//! A client checks one with [`verify`], given a lookup from key id to the
//! 32-byte public key (for instance a map built from `GetSigningKeys`); the
//! test `a_client_checks_a_verdict_with_the_published_keys` shows the whole
//! round trip. The example is a test rather than a doctest because this
//! file is also compiled into the prover client, where the crate name
//! differs.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

const TAG: &[u8] = b"zkid-verdict-v1";

/// A verdict, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The tenant.
    pub tenant: String,
    /// The session.
    pub session_id: String,
    /// The operation it was started for.
    pub operation: String,
    /// Its final state, lower case.
    pub state: String,
    /// The assurance level reached, 0 (none) to 3.
    pub level: u8,
    /// When the session resolved (Unix milliseconds).
    pub issued_at: i64,
    /// Until when the verdict may be relied on (Unix milliseconds).
    pub expires_at: i64,
    /// The id of the key that signs it.
    pub key_id: String,
}

/// A verdict as the server hands it out: its canonical encoding and the
/// signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVerdict {
    /// [`Verdict::to_bytes`].
    pub encoded: Vec<u8>,
    /// Ed25519 over `encoded`.
    pub signature: [u8; 64],
}

/// Why a verdict does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    /// The bytes are not a version 1 verdict.
    #[error("malformed verdict")]
    Malformed,
    /// No published key has the verdict's key id.
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// The signature does not match.
    #[error("bad verdict signature")]
    BadSignature,
}

/// A public key's id: hex of the first 8 bytes of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

fn put(out: &mut Vec<u8>, text: &str) {
    // Verdict fields are short; a length above u32 cannot occur.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], VerdictError> {
        if self.0.len() < n {
            return Err(VerdictError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn text(&mut self) -> Result<String, VerdictError> {
        let len = u32::from_be_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| VerdictError::Malformed)?,
        );
        let bytes = self.take(usize::try_from(len).map_err(|_| VerdictError::Malformed)?)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| VerdictError::Malformed)
    }

    fn i64(&mut self) -> Result<i64, VerdictError> {
        Ok(i64::from_be_bytes(
            self.take(8)?
                .try_into()
                .map_err(|_| VerdictError::Malformed)?,
        ))
    }
}

impl Verdict {
    /// The canonical encoding (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = TAG.to_vec();
        put(&mut out, &self.tenant);
        put(&mut out, &self.session_id);
        put(&mut out, &self.operation);
        put(&mut out, &self.state);
        out.push(self.level);
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        put(&mut out, &self.key_id);
        out
    }

    /// Decodes the canonical encoding, refusing anything else (trailing
    /// bytes included), so that one verdict has one encoding.
    ///
    /// # Errors
    /// [`VerdictError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerdictError> {
        let mut r = Reader(bytes);
        if r.take(TAG.len())? != TAG {
            return Err(VerdictError::Malformed);
        }
        let verdict = Self {
            tenant: r.text()?,
            session_id: r.text()?,
            operation: r.text()?,
            state: r.text()?,
            level: r.take(1)?[0],
            issued_at: r.i64()?,
            expires_at: r.i64()?,
            key_id: r.text()?,
        };
        if !r.0.is_empty() || verdict.level > 3 {
            return Err(VerdictError::Malformed);
        }
        Ok(verdict)
    }
}

/// Checks a signed verdict offline: decodes it, finds its key with
/// `public_key` (key id to the 32-byte Ed25519 public key, e.g. from
/// `GetSigningKeys`), and verifies the signature strictly. Whether the
/// verdict has expired, or is for the expected session, is the caller's
/// to judge from the fields.
///
/// # Errors
/// [`VerdictError`].
pub fn verify(
    encoded: &[u8],
    signature: &[u8],
    public_key: impl Fn(&str) -> Option<[u8; 32]>,
) -> Result<Verdict, VerdictError> {
    let verdict = Verdict::from_bytes(encoded)?;
    let public = public_key(&verdict.key_id)
        .ok_or_else(|| VerdictError::UnknownKey(verdict.key_id.clone()))?;
    // A key must hash to its id: a mislabelled key is not the one named.
    if key_id(&public) != verdict.key_id {
        return Err(VerdictError::UnknownKey(verdict.key_id.clone()));
    }
    let key = VerifyingKey::from_bytes(&public).map_err(|_| VerdictError::BadSignature)?;
    let signature = Signature::from_slice(signature).map_err(|_| VerdictError::BadSignature)?;
    key.verify_strict(encoded, &signature)
        .map_err(|_| VerdictError::BadSignature)?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn signed() -> (Vec<u8>, [u8; 64], [u8; 32]) {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key().to_bytes();
        let verdict = Verdict {
            tenant: "acme".into(),
            session_id: "s_0123".into(),
            operation: "change_address".into(),
            state: "passed".into(),
            level: 2,
            issued_at: 1_700_000_000_000,
            expires_at: 1_700_000_600_000,
            key_id: key_id(&public),
        };
        let encoded = verdict.to_bytes();
        let signature = key.sign(&encoded).to_bytes();
        (encoded, signature, public)
    }

    #[test]
    fn a_verdict_checks_offline_and_fails_when_any_field_is_altered() {
        let (encoded, signature, public) = signed();
        let id = key_id(&public);
        let keys = |k: &str| (k == id).then_some(public);
        let verdict = verify(&encoded, &signature, keys).expect("valid");
        assert_eq!(Verdict::from_bytes(&encoded), Ok(verdict.clone()));
        let alterations: [fn(&mut Verdict); 7] = [
            |v| v.tenant = "acme2".into(),
            |v| v.session_id = "s_0124".into(),
            |v| v.operation = "account_recovery".into(),
            |v| v.state = "failed".into(),
            |v| v.level = 3,
            |v| v.issued_at += 1,
            |v| v.expires_at += 1,
        ];
        for alter in alterations {
            let mut changed = verdict.clone();
            alter(&mut changed);
            assert_eq!(
                verify(&changed.to_bytes(), &signature, keys),
                Err(VerdictError::BadSignature)
            );
        }
        let mut other_key = verdict.clone();
        other_key.key_id = "00".repeat(8);
        assert!(matches!(
            verify(&other_key.to_bytes(), &signature, keys),
            Err(VerdictError::UnknownKey(_))
        ));
        let mut bad = signature;
        bad[0] ^= 1;
        assert_eq!(
            verify(&encoded, &bad, keys),
            Err(VerdictError::BadSignature)
        );
        // A key published under another's id is refused.
        let mislabelled =
            |_: &str| Some(SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes());
        assert!(matches!(
            verify(&encoded, &signature, mislabelled),
            Err(VerdictError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_client_checks_a_verdict_with_the_published_keys() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let public = key.verifying_key().to_bytes();
        let published = key_id(&public);
        let issued = Verdict {
            tenant: "acme".into(),
            session_id: "s_1".into(),
            operation: "balance_inquiry".into(),
            state: "passed".into(),
            level: 1,
            issued_at: 1,
            expires_at: 2,
            key_id: published.clone(),
        };
        let encoded = issued.to_bytes();
        let signature = key.sign(&encoded).to_bytes();
        let keys = |id: &str| (id == published).then_some(public);
        let verdict = verify(&encoded, &signature, keys).expect("checks");
        assert_eq!(verdict, issued);
        assert_eq!(verdict.state, "passed");
    }

    #[test]
    fn only_the_canonical_encoding_decodes() {
        let (encoded, _, _) = signed();
        let mut trailing = encoded.clone();
        trailing.push(0);
        assert_eq!(Verdict::from_bytes(&trailing), Err(VerdictError::Malformed));
        assert_eq!(
            Verdict::from_bytes(&encoded[..encoded.len() - 1]),
            Err(VerdictError::Malformed)
        );
        assert_eq!(
            Verdict::from_bytes(b"zkid-verdict-v2"),
            Err(VerdictError::Malformed)
        );
    }
}
