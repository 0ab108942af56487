//! The collision-resistant string-to-field encoding.
//!
//! `text_to_field(domain, text)`:
//! 1. Build the byte string `B = len(domain) || domain || len(text) ||
//!    text`, lengths as 4-byte little-endian integers.
//! 2. Cut `B` into 31-byte chunks (the last one zero-padded) and read each
//!    as a little-endian integer: below 2^248 < p, so every chunk is a
//!    distinct field element, no reduction.
//! 3. Absorb: `state = k` (the number of chunks), then for every group of
//!    five chunks (the last group zero-padded) `state = Poseidon6(state,
//!    c_1, ..., c_5)`. The result is `state`.
//!
//! Why it is injective up to Poseidon collisions: `B` starts with its own
//! lengths, so the chunk sequence determines `B` (padding included); the
//! chunk count is absorbed first, so two inputs of different chunk counts
//! run chains of different lengths from different starting states; a
//! collision between two chunk sequences of equal length is therefore a
//! collision of Poseidon6 somewhere along the chain. The domain separates
//! slots: "12345" as a postcode and as a phone number encode differently,
//! so a set built for one slot never matches another.
//!
//! No normalization happens here: "sw1a1aa" and "SW1A 1AA" are different
//! strings. Issuers and verifiers must canonicalize the same way first.

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, PrimeField};

use super::hash_fixed;

/// The longest text (in bytes) the encoding accepts.
pub const MAX_TEXT_LEN: usize = 256;

/// The longest domain tag (in bytes).
pub const MAX_DOMAIN_LEN: usize = 64;

const CHUNK_BYTES: usize = 31;
const CHUNKS_PER_ABSORB: usize = 5;

/// Why a text could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextEncodingError {
    /// The text is longer than [`MAX_TEXT_LEN`] bytes.
    #[error("text is {0} bytes, at most {MAX_TEXT_LEN} are allowed")]
    TooLong(usize),
    /// The domain tag is longer than [`MAX_DOMAIN_LEN`] bytes.
    #[error("domain tag is {0} bytes, at most {MAX_DOMAIN_LEN} are allowed")]
    DomainTooLong(usize),
}

/// Encodes `text` under `domain` as one field element (see the module
/// docs).
///
/// # Errors
/// [`TextEncodingError`] if `text` or `domain` is too long.
pub fn text_to_field(domain: &str, text: &str) -> Result<Fr, TextEncodingError> {
    let chunks = pack(domain.as_bytes(), text.as_bytes())?;
    // At most (4 + 64 + 4 + 256) / 31 + 1 = 11 chunks: the count fits u64.
    let mut state = Fr::from(chunks.len() as u64);
    for group in chunks.chunks(CHUNKS_PER_ABSORB) {
        let mut inputs = [Fr::ZERO; CHUNKS_PER_ABSORB + 1];
        inputs[0] = state;
        inputs[1..=group.len()].copy_from_slice(group);
        state = hash_fixed(&inputs);
    }
    Ok(state)
}

/// Steps 1 and 2 of the encoding: the length-prefixed bytes as 31-byte
/// field elements.
pub(crate) fn pack(domain: &[u8], text: &[u8]) -> Result<Vec<Fr>, TextEncodingError> {
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(TextEncodingError::DomainTooLong(domain.len()));
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(TextEncodingError::TooLong(text.len()));
    }
    let mut bytes = Vec::with_capacity(8 + domain.len() + text.len());
    // Both lengths are bounded above, so the casts cannot truncate.
    bytes.extend_from_slice(&(domain.len() as u32).to_le_bytes());
    bytes.extend_from_slice(domain);
    bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
    bytes.extend_from_slice(text);
    Ok(bytes
        .chunks(CHUNK_BYTES)
        .map(Fr::from_le_bytes_mod_order)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domains_and_lengths_separate() {
        let a = text_to_field("zkid.attr.postcode", "12345").expect("short");
        let b = text_to_field("zkid.attr.phone_number", "12345").expect("short");
        assert_ne!(a, b);
        let c = text_to_field("zkid.attr.postcode", "12345\0").expect("short");
        assert_ne!(a, c, "a trailing zero byte must change the encoding");
        let empty = text_to_field("zkid.attr.postcode", "").expect("short");
        assert_ne!(empty, Fr::ZERO);
    }

    #[test]
    fn shifting_bytes_between_domain_and_text_changes_the_encoding() {
        assert_ne!(
            text_to_field("ab", "c").expect("short"),
            text_to_field("a", "bc").expect("short")
        );
    }

    #[test]
    fn refuses_overlong_inputs() {
        let long = "x".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(
            text_to_field("d", &long),
            Err(TextEncodingError::TooLong(MAX_TEXT_LEN + 1))
        );
        assert!(text_to_field("d", &long[1..]).is_ok());
        let domain = "d".repeat(MAX_DOMAIN_LEN + 1);
        assert_eq!(
            text_to_field(&domain, ""),
            Err(TextEncodingError::DomainTooLong(MAX_DOMAIN_LEN + 1))
        );
    }

    #[test]
    fn chunks_are_31_bytes_and_exact() {
        // 8 bytes of lengths + 1 + 53 = 62 bytes: exactly two chunks.
        let chunks = pack(b"d", &[0xff; 53]).expect("short");
        assert_eq!(chunks.len(), 2);
        let chunks = pack(b"d", &[0xff; 54]).expect("short");
        assert_eq!(chunks.len(), 3);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The packing (everything before Poseidon) is injective; the rest
        /// is Poseidon's collision resistance.
        #[test]
        fn packing_is_injective(
            d1 in "[a-z.]{0,12}", t1 in proptest::collection::vec(any::<u8>(), 0..80),
            d2 in "[a-z.]{0,12}", t2 in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            prop_assume!((&d1, &t1) != (&d2, &t2));
            prop_assert_ne!(
                pack(d1.as_bytes(), &t1).expect("short"),
                pack(d2.as_bytes(), &t2).expect("short")
            );
        }

        #[test]
        fn distinct_texts_encode_distinctly(t1 in ".{0,60}", t2 in ".{0,60}") {
            prop_assume!(t1 != t2);
            prop_assert_ne!(
                text_to_field("zkid.attr.account_id", &t1).expect("short"),
                text_to_field("zkid.attr.account_id", &t2).expect("short")
            );
        }
    }
}
