//! The server's Ed25519 signing keys: one current key signs audit records,
//! tree heads and verdicts; every earlier key's public half stays, so that
//! what it signed stays checkable after a rotation. Keys are named by
//! their id: the first 8 bytes of SHA-256 of the public key, in hex.

use std::{collections::BTreeMap, sync::Arc};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The id of a public key: hex of the first 8 bytes of its SHA-256.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

/// The signing keys. `Debug` shows ids only. Cloning shares the keys (a
/// reference count, not a copy of the secret), so that a write queued for
/// the store's group commit can carry the ring it is sealed with.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Keys>,
}

struct Keys {
    current_id: String,
    current: SigningKey,
    public: BTreeMap<String, VerifyingKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.inner.current_id)
            .field("keys", &self.inner.public.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring signing with `current` and checking with it and `earlier`.
    pub fn new(current: SigningKey, earlier: impl IntoIterator<Item = VerifyingKey>) -> Self {
        let mut public: BTreeMap<String, VerifyingKey> =
            earlier.into_iter().map(|k| (key_id(&k), k)).collect();
        let current_public = current.verifying_key();
        let current_id = key_id(&current_public);
        public.insert(current_id.clone(), current_public);
        Self {
            inner: Arc::new(Keys {
                current_id,
                current,
                public,
            }),
        }
    }

    /// The id of the key that signs.
    pub fn current_id(&self) -> &str {
        &self.inner.current_id
    }

    /// Signs `message` with the current key: (key id, signature).
    pub fn sign(&self, message: &[u8]) -> (String, [u8; 64]) {
        (
            self.inner.current_id.clone(),
            self.inner.current.sign(message).to_bytes(),
        )
    }

    /// Whether `signature` is the key `key_id`'s over `message` (strict
    /// verification: no malleable or small-order encodings).
    pub fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool {
        let Some(key) = self.inner.public.get(key_id) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        key.verify_strict(message, &signature).is_ok() && key.verify(message, &signature).is_ok()
    }

    /// Every public key, by id.
    pub fn public_keys(&self) -> &BTreeMap<String, VerifyingKey> {
        &self.inner.public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_keys_keep_verifying_after_rotation() {
        let old = SigningKey::from_bytes(&[1; 32]);
        let ring = KeyRing::new(old, []);
        let (old_id, signature) = ring.sign(b"verdict");
        let rotated = KeyRing::new(
            SigningKey::from_bytes(&[2; 32]),
            [SigningKey::from_bytes(&[1; 32]).verifying_key()],
        );
        assert_ne!(rotated.current_id(), old_id);
        assert!(rotated.verify(&old_id, b"verdict", &signature));
        assert!(!rotated.verify(&old_id, b"verdicT", &signature));
        assert!(!rotated.verify(rotated.current_id(), b"verdict", &signature));
        assert!(!rotated.verify("0000000000000000", b"verdict", &signature));
        assert_eq!(rotated.public_keys().len(), 2);
    }
}
