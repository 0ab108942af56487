//! Operator login assertions: what the server tells a workstation login
//! system once an operator's phone proved PIN + device for a login.
//!
//! An assertion is a JSON Web Token (RFC 7519) in JWS compact
//! serialization (RFC 7515), signed with Ed25519 (`"alg": "EdDSA"`,
//! RFC 8037) by the same key ring as signed verdicts; the header's `kid`
//! is the signing key's id. A login system checks it offline with a stock
//! JOSE/JWT library and the server's public keys: `zkid.v1.Keys/GetSigningKeys`
//! (32-byte keys by id) or `zkid-server keys public --jwks` (a JWK set of
//! `OKP`/`Ed25519` keys). It must check, as [`verify`] does:
//! - the header's `alg` is `EdDSA` (never `none` or an HMAC) and `kid` names
//!   a published key, and the signature verifies under it;
//! - `aud` is its own audience (what it passed to `BeginLogin`);
//! - `exp` is in the future (assertions live about a minute) and `iat` not
//!   in the future;
//! - `sub` is the operator logging in and `tenant` its employer;
//! - `jti` (the login session id) was not used before, if it keeps state.
//!
//! Claims: `iss` (`"zkid"`), `sub` (operator reference), `aud`, `iat` and
//! `exp` (Unix seconds), `jti` (session id), `tenant`, `level` (assurance
//! level reached, 1 = PIN + device) and `amr` (RFC 8176 methods: `pin`,
//! `swk`).
//!
//! This module depends on nothing else of the server, so that clients can
//! build it on its own (`zkid-agent` includes this very file).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `iss` of every assertion.
pub const ISSUER: &str = "zkid";

/// The JWS algorithm: Ed25519 (RFC 8037).
pub const ALGORITHM: &str = "EdDSA";

/// The authentication methods (RFC 8176) an operator login proves: a PIN
/// and a software-secured key (the device secret).
pub const LOGIN_AMR: &[&str] = &["pin", "swk"];

/// How far in the future `iat` may lie (clock skew between servers).
pub const MAX_SKEW_SECS: i64 = 30;

/// The claims of an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Subject: the operator's reference in their tenant.
    pub sub: String,
    /// Audience: the login system's audience, as given to `BeginLogin`.
    pub aud: String,
    /// Issued at: when the login passed (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// The login session's id.
    pub jti: String,
    /// The operator's tenant (employer).
    pub tenant: String,
    /// The assurance level reached (1: PIN + device).
    pub level: u8,
    /// Authentication methods (RFC 8176).
    pub amr: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    // RFC 7515 4.1.11: a header naming extensions we do not implement must
    // be rejected, so it is read to be refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

/// Why an assertion does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a compact JWS with a JSON header and claims of this shape.
    #[error("malformed assertion")]
    Malformed,
    /// The header names another algorithm, or critical extensions.
    #[error("unsupported algorithm or header: {0}")]
    Unsupported(String),
    /// No published key has the header's key id.
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// It is for another audience.
    #[error("assertion is for audience {0}, not this one")]
    WrongAudience(String),
    /// Its `exp` has passed.
    #[error("assertion expired")]
    Expired,
    /// Its `iat` lies in the future.
    #[error("assertion issued in the future")]
    NotYetValid,
}

/// The id of a public key: hex of the first 8 bytes of its SHA-256 (as for
/// verdicts and `GetSigningKeys`).
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

fn encode_json<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings and integers cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// Signs `claims` as a compact JWS under key `key_id`; `sign` is Ed25519
/// with that key over the signing input.
pub fn sign(claims: &Claims, key_id: &str, sign: impl FnOnce(&[u8]) -> [u8; 64]) -> String {
    let header = Header {
        alg: ALGORITHM.into(),
        typ: Some("JWT".into()),
        kid: Some(key_id.into()),
        crit: None,
    };
    let input = format!("{}.{}", encode_json(&header), encode_json(claims));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Checks an assertion offline: the header (EdDSA, a known `kid`), the
/// signature (strict Ed25519: no malleable or small-order encodings), the
/// audience and the validity window at `now` (Unix seconds). `public_key`
/// maps a key id to its 32-byte Ed25519 key (e.g. from `GetSigningKeys`).
/// Whether `sub` and `tenant` are the operator expected is the caller's
/// to judge.
///
/// # Errors
/// [`AssertionError`].
pub fn verify(
    token: &str,
    audience: &str,
    now: i64,
    public_key: impl Fn(&str) -> Option<[u8; 32]>,
) -> Result<Claims, AssertionError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| AssertionError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| AssertionError::Malformed)?;
    if header.alg != ALGORITHM {
        return Err(AssertionError::Unsupported(header.alg));
    }
    if header.crit.is_some() {
        return Err(AssertionError::Unsupported("crit".into()));
    }
    let kid = header.kid.ok_or(AssertionError::Malformed)?;
    let public = public_key(&kid).ok_or_else(|| AssertionError::UnknownKey(kid.clone()))?;
    // A key must hash to its id: a mislabelled key is not the one named.
    if key_id(&public) != kid {
        return Err(AssertionError::UnknownKey(kid));
    }
    let key = VerifyingKey::from_bytes(&public).map_err(|_| AssertionError::BadSignature)?;
    let signature =
        Signature::from_slice(&decode(signature)?).map_err(|_| AssertionError::BadSignature)?;
    let input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    key.verify_strict(&token.as_bytes()[..input_len], &signature)
        .map_err(|_| AssertionError::BadSignature)?;
    // Only signed claims are read.
    let claims: Claims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| AssertionError::Malformed)?;
    if claims.aud != audience {
        return Err(AssertionError::WrongAudience(claims.aud));
    }
    if now >= claims.exp {
        return Err(AssertionError::Expired);
    }
    if claims.iat > now.saturating_add(MAX_SKEW_SECS) {
        return Err(AssertionError::NotYetValid);
    }
    Ok(claims)
}

/// A public key as a JWK (RFC 8037: `OKP`, `Ed25519`).
pub fn jwk(key_id: &str, public_key: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(public_key),
        "kid": key_id,
        "alg": ALGORITHM,
        "use": "sig",
    })
}

/// Public keys as a JWK set (RFC 7517), for login systems that configure
/// keys that way.
pub fn jwks<'a>(keys: impl IntoIterator<Item = (&'a str, [u8; 32])>) -> serde_json::Value {
    let keys: Vec<_> = keys.into_iter().map(|(id, key)| jwk(id, &key)).collect();
    serde_json::json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "op-7".into(),
            aud: "workstation:ws-12".into(),
            iat: 1_000,
            exp: 1_060,
            jti: "s_1".into(),
            tenant: "bpo".into(),
            level: 1,
            amr: vec!["pin".into(), "swk".into()],
        }
    }

    fn signed(key: &SigningKey, claims: &Claims) -> (String, [u8; 32], String) {
        let public = key.verifying_key().to_bytes();
        let id = key_id(&public);
        let token = sign(claims, &id, |m| key.sign(m).to_bytes());
        (token, public, id)
    }

    #[test]
    fn an_assertion_checks_and_every_check_bites() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let (token, public, id) = signed(&key, &claims());
        let keys = |k: &str| (k == id).then_some(public);
        assert_eq!(
            verify(&token, "workstation:ws-12", 1_010, keys),
            Ok(claims())
        );
        assert_eq!(
            verify(&token, "workstation:ws-13", 1_010, keys),
            Err(AssertionError::WrongAudience("workstation:ws-12".into()))
        );
        assert_eq!(
            verify(&token, "workstation:ws-12", 1_060, keys),
            Err(AssertionError::Expired)
        );
        assert_eq!(
            verify(&token, "workstation:ws-12", 1_000 - MAX_SKEW_SECS - 1, keys),
            Err(AssertionError::NotYetValid)
        );
        assert!(matches!(
            verify(&token, "workstation:ws-12", 1_010, |_| None),
            Err(AssertionError::UnknownKey(_))
        ));
        // Another key published under this id is not this id's key.
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key().to_bytes();
        assert!(matches!(
            verify(&token, "workstation:ws-12", 1_010, |_| Some(other)),
            Err(AssertionError::UnknownKey(_))
        ));
    }

    #[test]
    fn altered_claims_or_headers_are_refused() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let (token, public, id) = signed(&key, &claims());
        let keys = |k: &str| (k == id).then_some(public);
        let parts: Vec<&str> = token.split('.').collect();
        // Claims re-encoded with a longer life, same signature.
        let mut longer = claims();
        longer.exp += 3600;
        let forged = format!("{}.{}.{}", parts[0], encode_json(&longer), parts[2]);
        assert_eq!(
            verify(&forged, "workstation:ws-12", 1_010, keys),
            Err(AssertionError::BadSignature)
        );
        // `alg: none` and HMAC headers are refused before any key is used.
        for alg in ["none", "HS256"] {
            let header = encode_json(&serde_json::json!({"alg": alg, "kid": id}));
            let forged = format!("{header}.{}.{}", parts[1], parts[2]);
            assert_eq!(
                verify(&forged, "workstation:ws-12", 1_010, keys),
                Err(AssertionError::Unsupported(alg.into()))
            );
        }
        let header = encode_json(&serde_json::json!({"alg": "EdDSA", "kid": id, "crit": ["exp"]}));
        let forged = format!("{header}.{}.{}", parts[1], parts[2]);
        assert!(matches!(
            verify(&forged, "workstation:ws-12", 1_010, keys),
            Err(AssertionError::Unsupported(_))
        ));
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert_eq!(
                verify(bad, "workstation:ws-12", 1_010, keys),
                Err(AssertionError::Malformed)
            );
        }
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(
                &String::from_utf8(flipped).expect("ascii"),
                "workstation:ws-12",
                1_010,
                keys
            ),
            Err(AssertionError::BadSignature)
        );
    }

    #[test]
    fn the_jwk_set_names_each_key_by_id() {
        let public = SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes();
        let id = key_id(&public);
        let set = jwks([(id.as_str(), public)]);
        assert_eq!(set["keys"][0]["kid"], id.as_str());
        assert_eq!(set["keys"][0]["kty"], "OKP");
        assert_eq!(set["keys"][0]["crv"], "Ed25519");
        let x = URL_SAFE_NO_PAD
            .decode(set["keys"][0]["x"].as_str().expect("x"))
            .expect("base64url");
        assert_eq!(x, public);
    }
}
