//! Randomness and secrets: bearer tokens, challenges, binding codes.
//!
//! Everything here draws from the OS CSPRNG ([`rand::rngs::OsRng`]).
//!
//! A bearer token reads `zkid_<credential id>_<secret>`: the credential id
//! (24 hex digits) lets the server find the credential without a search by
//! secret, and the secret (32 random bytes, 64 hex digits) is what proves
//! possession. The store keeps only the SHA-256 of the whole token, and the
//! comparison with a presented token's hash runs in constant time.

use std::fmt;

use ark_bn254::Fr;
use ark_ff::UniformRand;
use rand::{rngs::OsRng, Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zkid_circuits::encoding::field_to_bytes;

use super::model::CredentialId;

const TOKEN_PREFIX: &str = "zkid_";

/// `bytes` random bytes from the OS, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A bearer token. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh token for credential `id`.
    pub(crate) fn generate(id: &CredentialId) -> Self {
        Self(format!("{TOKEN_PREFIX}{id}_{}", random_hex(32)))
    }

    /// The token's text, to hand to its holder once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token, as stored.
    pub fn hash(&self) -> [u8; 32] {
        hash_token(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// SHA-256 of a presented token.
pub(crate) fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The credential id a presented token claims, if it is shaped like a token.
pub(crate) fn claimed_credential(token: &str) -> Option<CredentialId> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    CredentialId::parse(id).ok()
}

/// Constant-time equality of two token hashes.
pub(crate) fn hashes_match(presented: &[u8; 32], stored: &[u8; 32]) -> bool {
    presented.ct_eq(stored).into()
}

/// A uniformly random field element, canonically encoded: a challenge.
pub(crate) fn random_challenge() -> [u8; 32] {
    field_to_bytes(&Fr::rand(&mut OsRng))
}

/// A six-digit binding code, `NNN-NNN`: short enough to read out on a call,
/// random enough that a stale or foreign request is noticed.
pub(crate) fn binding_code() -> String {
    let n: u32 = OsRng.gen_range(0..1_000_000);
    format!("{:03}-{:03}", n / 1000, n % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkid_circuits::encoding::field_from_bytes;

    #[test]
    fn tokens_round_trip_their_credential_id() {
        let id = CredentialId::random();
        let token = Token::generate(&id);
        assert_eq!(claimed_credential(token.expose()), Some(id));
        assert!(hashes_match(&hash_token(token.expose()), &token.hash()));
    }

    #[test]
    fn malformed_tokens_claim_nothing() {
        let id = CredentialId::random();
        let good = Token::generate(&id).expose().to_owned();
        for bad in [
            "",
            "zkid_",
            &good[..good.len() - 1],
            &good.replace("zkid_", "zkid-"),
            &format!("{good}0"),
            "Bearer x",
        ] {
            assert_eq!(claimed_credential(bad), None, "{bad}");
        }
    }

    #[test]
    fn different_tokens_do_not_match() {
        let id = CredentialId::random();
        let a = Token::generate(&id);
        let b = Token::generate(&id);
        assert_ne!(a, b);
        assert!(!hashes_match(&a.hash(), &b.hash()));
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = Token::generate(&CredentialId::random());
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }

    #[test]
    fn challenges_are_canonical_and_fresh() {
        let a = random_challenge();
        let b = random_challenge();
        assert_ne!(a, b);
        assert!(field_from_bytes(&a).is_ok());
    }

    #[test]
    fn binding_codes_are_six_digits() {
        for _ in 0..100 {
            let code = binding_code();
            assert_eq!(code.len(), 7);
            assert_eq!(&code[3..4], "-");
            assert!(code.replace('-', "").bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
