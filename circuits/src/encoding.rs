//! The canonical byte encodings that cross process boundaries.
//!
//! - A field element (public input, device secret) is 32 bytes,
//!   little-endian, strictly below the BN254 scalar-field modulus. An
//!   encoding at or above the modulus is refused, never reduced: reducing
//!   would let two byte strings name one input.
//! - A Groth16 proof is 256 bytes: `A` (G1, 64 bytes), `B` (G2, 128 bytes),
//!   `C` (G1, 64 bytes), each point uncompressed in arkworks' layout
//!   (coordinates little-endian, flags in the top two bits of the last
//!   byte). Uncompressed, because decompression costs a square root per
//!   point and the verifier is the hot path.
//!
//! Decoding a proof validates everything Groth16's soundness assumes:
//! coordinates below the base-field modulus, points on the curve, in the
//! prime-order subgroup (BN254's G2 has a large cofactor), not the identity,
//! and byte-for-byte canonical (re-encoding gives the input back, so no
//! flag bit or alternative spelling survives).

use std::fmt;

use ark_bn254::{Bn254, Fr, G1Affine, G2Affine, G2Projective};
use ark_ec::{
    bn::BnConfig,
    short_weierstrass::{Affine, SWCurveConfig},
    AdditiveGroup, AffineRepr,
};
use ark_ff::{BigInteger, BigInteger256, Field, PrimeField};
use ark_groth16::Proof;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};

/// Length of an encoded proof.
pub const PROOF_LEN: usize = 256;
/// Length of an encoded field element.
pub const FIELD_LEN: usize = 32;

const G1_LEN: usize = 64;
const G2_LEN: usize = 128;

/// A field element encoding at or above the modulus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("field element encoding is not below the BN254 scalar-field modulus")]
pub struct FieldEncodingError;

/// Encodes a scalar-field element.
pub fn field_to_bytes(value: &Fr) -> [u8; FIELD_LEN] {
    let mut out = [0u8; FIELD_LEN];
    out.copy_from_slice(&value.into_bigint().to_bytes_le());
    out
}

/// Decodes a scalar-field element, refusing non-canonical encodings.
///
/// # Errors
/// [`FieldEncodingError`] if the integer is not below the modulus.
pub fn field_from_bytes(bytes: &[u8; FIELD_LEN]) -> Result<Fr, FieldEncodingError> {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *limb = u64::from_le_bytes(word);
    }
    Fr::from_bigint(BigInteger256::new(limbs)).ok_or(FieldEncodingError)
}

/// Which point of a proof an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofPoint {
    /// `A`, in G1.
    A,
    /// `B`, in G2.
    B,
    /// `C`, in G1.
    C,
}

impl fmt::Display for ProofPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        })
    }
}

/// Why proof bytes were refused before any pairing was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofDecodeError {
    /// Not [`PROOF_LEN`] bytes.
    #[error("proof must be {PROOF_LEN} bytes, got {0}")]
    WrongLength(usize),
    /// A coordinate at or above the base-field modulus, or invalid flags.
    #[error("proof point {0} is malformed")]
    Malformed(ProofPoint),
    /// Not a point on the curve.
    #[error("proof point {0} is not on the curve")]
    NotOnCurve(ProofPoint),
    /// On the curve but outside the prime-order subgroup.
    #[error("proof point {0} is not in the prime-order subgroup")]
    NotInSubgroup(ProofPoint),
    /// The point at infinity.
    #[error("proof point {0} is the identity")]
    Identity(ProofPoint),
    /// Decodes, but is not the canonical encoding of the point.
    #[error("proof point {0} is not canonically encoded")]
    NonCanonical(ProofPoint),
}

/// Encodes a proof in the canonical 256-byte form.
pub fn encode_proof(proof: &Proof<Bn254>) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROOF_LEN);
    for result in [
        proof.a.serialize_uncompressed(&mut out),
        proof.b.serialize_uncompressed(&mut out),
        proof.c.serialize_uncompressed(&mut out),
    ] {
        // Writing a valid point into a Vec cannot fail.
        debug_assert!(result.is_ok());
    }
    out
}

/// Decodes and fully validates a proof.
///
/// # Errors
/// See [`ProofDecodeError`].
pub fn decode_proof(bytes: &[u8]) -> Result<Proof<Bn254>, ProofDecodeError> {
    let proof = decode_proof_deferring_g2_check(bytes)?;
    if !g2_in_subgroup(&proof.b) {
        return Err(ProofDecodeError::NotInSubgroup(ProofPoint::B));
    }
    Ok(proof)
}

/// Every check of [`decode_proof`] except `B`'s membership in G2, which
/// the caller must establish before trusting a pairing: the verifier
/// decides it while preparing `B` for the Miller loop ([`crate::miller`]).
pub(crate) fn decode_proof_deferring_g2_check(
    bytes: &[u8],
) -> Result<Proof<Bn254>, ProofDecodeError> {
    if bytes.len() != PROOF_LEN {
        return Err(ProofDecodeError::WrongLength(bytes.len()));
    }
    let (a, rest) = bytes.split_at(G1_LEN);
    let (b, c) = rest.split_at(G2_LEN);
    // G1 has cofactor 1: a point on the curve is in the subgroup.
    let g1 = |_: &G1Affine| true;
    Ok(Proof {
        a: decode_point(a, ProofPoint::A, g1)?,
        b: decode_point(b, ProofPoint::B, |_: &G2Affine| true)?,
        c: decode_point(c, ProofPoint::C, g1)?,
    })
}

/// Untwist-Frobenius-twist endomorphism `psi` of BN254's G2, on Jacobian
/// coordinates: Frobenius on every coordinate (a field automorphism, so it
/// commutes with the projection) and the twist constants on `x` and `y`.
fn psi(p: &G2Projective) -> G2Projective {
    let mut q = *p;
    q.x.frobenius_map_in_place(1);
    q.y.frobenius_map_in_place(1);
    q.z.frobenius_map_in_place(1);
    q.x *= <ark_bn254::Config as BnConfig>::TWIST_MUL_BY_Q_X;
    q.y *= <ark_bn254::Config as BnConfig>::TWIST_MUL_BY_Q_Y;
    q
}

/// Whether a point of the twist lies in the prime-order subgroup G2.
///
/// Dai, Lin, Zhao and Zhou (ePrint 2022/348, section 5.1) show that for a
/// BN curve with seed `x`, `x != 4 mod 13` and `x != 92 mod 97` (BN254's
/// `x = 4965661367192848881` satisfies both, see the test), a point `P` of
/// the twist is in G2 if and only if
/// `[x+1]P + psi([x]P) + psi^2([x]P) == psi^3([2x]P)`.
/// That costs one 63-bit scalar multiplication, where arkworks' check
/// (`psi(P) == [6x^2]P`, ePrint 2022/352) needs a 127-bit one; the check
/// was most of the cost of decoding a proof.
pub(crate) fn g2_in_subgroup(p: &G2Affine) -> bool {
    let xp = p.mul_bigint(<ark_bn254::Config as BnConfig>::X);
    let psi_xp = psi(&xp);
    let lhs = xp + p + psi_xp + psi(&psi_xp);
    let rhs = psi(&psi(&psi(&xp.double())));
    lhs == rhs
}

fn decode_point<P: SWCurveConfig>(
    bytes: &[u8],
    which: ProofPoint,
    in_subgroup: impl Fn(&Affine<P>) -> bool,
) -> Result<Affine<P>, ProofDecodeError> {
    let point = Affine::<P>::deserialize_with_mode(bytes, Compress::No, Validate::No)
        .map_err(|_| ProofDecodeError::Malformed(which))?;
    if point.is_zero() {
        return Err(ProofDecodeError::Identity(which));
    }
    if !point.is_on_curve() {
        return Err(ProofDecodeError::NotOnCurve(which));
    }
    if !in_subgroup(&point) {
        return Err(ProofDecodeError::NotInSubgroup(which));
    }
    let mut canonical = Vec::with_capacity(bytes.len());
    point
        .serialize_uncompressed(&mut canonical)
        .map_err(|_| ProofDecodeError::Malformed(which))?;
    if canonical != bytes {
        return Err(ProofDecodeError::NonCanonical(which));
    }
    Ok(point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::CurveGroup;
    use ark_ff::{AdditiveGroup, Field, UniformRand};
    use ark_std::test_rng;
    use proptest::prelude::*;

    fn sample_proof() -> Proof<Bn254> {
        let mut rng = test_rng();
        Proof {
            a: (G1Affine::generator() * Fr::rand(&mut rng)).into(),
            b: (G2Affine::generator() * Fr::rand(&mut rng)).into(),
            c: (G1Affine::generator() * Fr::rand(&mut rng)).into(),
        }
    }

    #[test]
    fn proof_round_trips() {
        let proof = sample_proof();
        let bytes = encode_proof(&proof);
        assert_eq!(bytes.len(), PROOF_LEN);
        assert_eq!(decode_proof(&bytes), Ok(proof));
    }

    #[test]
    fn refuses_wrong_lengths() {
        let bytes = encode_proof(&sample_proof());
        assert_eq!(
            decode_proof(&bytes[..255]),
            Err(ProofDecodeError::WrongLength(255))
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_proof(&longer),
            Err(ProofDecodeError::WrongLength(257))
        );
        assert_eq!(decode_proof(&[]), Err(ProofDecodeError::WrongLength(0)));
    }

    #[test]
    fn refuses_identity_points() {
        let mut proof = sample_proof();
        proof.c = G1Affine::identity();
        assert_eq!(
            decode_proof(&encode_proof(&proof)),
            Err(ProofDecodeError::Identity(ProofPoint::C))
        );
        let mut proof = sample_proof();
        proof.b = G2Affine::identity();
        assert_eq!(
            decode_proof(&encode_proof(&proof)),
            Err(ProofDecodeError::Identity(ProofPoint::B))
        );
    }

    #[test]
    fn refuses_points_off_the_curve() {
        let proof = sample_proof();
        let off = G1Affine::new_unchecked(proof.a.x, proof.a.y + ark_bn254::Fq::ONE);
        let bytes = encode_proof(&Proof { a: off, ..proof });
        assert_eq!(
            decode_proof(&bytes),
            Err(ProofDecodeError::NotOnCurve(ProofPoint::A))
        );
    }

    #[test]
    fn refuses_g2_points_outside_the_subgroup() {
        // Find a point on the twist with the right x but outside the
        // r-torsion: almost every x gives one, since G2's cofactor is huge.
        let mut x = ark_bn254::Fq2::ONE;
        let point = loop {
            if let Some(p) = G2Affine::get_point_from_x_unchecked(x, false) {
                if !p.is_in_correct_subgroup_assuming_on_curve() {
                    break p;
                }
            }
            x += ark_bn254::Fq2::ONE;
        };
        let bytes = encode_proof(&Proof {
            b: point,
            ..sample_proof()
        });
        assert_eq!(
            decode_proof(&bytes),
            Err(ProofDecodeError::NotInSubgroup(ProofPoint::B))
        );
    }

    #[test]
    fn fast_g2_subgroup_check_agrees_with_arkworks() {
        // The theorem's conditions on the seed.
        let x = <ark_bn254::Config as BnConfig>::X[0];
        assert_eq!(<ark_bn254::Config as BnConfig>::X.len(), 1);
        assert!(x % 13 != 4 && x % 97 != 92);
        let mut rng = test_rng();
        // psi acts on G2 as multiplication by 6x^2 (= p mod r).
        let g = (G2Affine::generator() * Fr::rand(&mut rng)).into_affine();
        let six_x_squared = Fr::from(6u64) * Fr::from(x) * Fr::from(x);
        assert_eq!(psi(&g.into_group()), g * six_x_squared);
        let (mut inside, mut outside) = (0, 0);
        let mut x_coordinate =
            ark_bn254::Fq2::new(ark_bn254::Fq::rand(&mut rng), ark_bn254::Fq::ONE);
        while outside < 200 {
            x_coordinate += ark_bn254::Fq2::ONE;
            let Some(p) = G2Affine::get_point_from_x_unchecked(x_coordinate, false) else {
                continue;
            };
            assert!(!p.is_in_correct_subgroup_assuming_on_curve());
            assert!(!g2_in_subgroup(&p), "non-subgroup point accepted");
            outside += 1;
            // Clearing the cofactor lands in G2; so do multiples of it.
            let cleared = p.clear_cofactor();
            assert!(cleared.is_in_correct_subgroup_assuming_on_curve());
            assert!(g2_in_subgroup(&cleared));
            // A subgroup point plus a non-subgroup point is outside.
            assert!(!g2_in_subgroup(&(cleared + p).into_affine()));
            inside += 1;
        }
        for _ in 0..50 {
            let q = (G2Affine::generator() * Fr::rand(&mut rng)).into_affine();
            assert!(g2_in_subgroup(&q));
            inside += 1;
        }
        assert_eq!((inside, outside), (250, 200));
    }

    #[test]
    fn refuses_non_canonical_flags() {
        let mut bytes = encode_proof(&sample_proof());
        // Top bit of A's y: the "negative y" flag, meaningless uncompressed.
        bytes[63] |= 0x80;
        assert!(decode_proof(&bytes).is_err());
    }

    #[test]
    fn field_modulus_and_aliases_are_refused() {
        let modulus = Fr::MODULUS.to_bytes_le();
        let mut bytes = [0u8; FIELD_LEN];
        bytes.copy_from_slice(&modulus);
        assert_eq!(field_from_bytes(&bytes), Err(FieldEncodingError));
        bytes[0] += 5; // modulus + 5, an alias of 5
        assert_eq!(field_from_bytes(&bytes), Err(FieldEncodingError));
        assert_eq!(
            field_from_bytes(&[0xff; FIELD_LEN]),
            Err(FieldEncodingError)
        );
        let minus_one = -Fr::ONE;
        assert_eq!(field_from_bytes(&field_to_bytes(&minus_one)), Ok(minus_one));
        assert_eq!(field_from_bytes(&[0; FIELD_LEN]), Ok(Fr::ZERO));
    }

    proptest! {
        #[test]
        fn field_encoding_round_trips(seed in any::<[u8; 32]>()) {
            let value = Fr::from_le_bytes_mod_order(&seed);
            prop_assert_eq!(field_from_bytes(&field_to_bytes(&value)), Ok(value));
        }

        #[test]
        fn field_decoding_accepts_exactly_the_canonical_range(bytes in any::<[u8; 32]>()) {
            let as_integer = num_bigint_le(&bytes);
            let below = as_integer < num_bigint_le(&Fr::MODULUS.to_bytes_le());
            prop_assert_eq!(field_from_bytes(&bytes).is_ok(), below);
        }

        #[test]
        fn proof_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_proof(&bytes);
        }
    }

    /// Compares little-endian integers as big-endian byte strings.
    fn num_bigint_le(bytes: &[u8]) -> Vec<u8> {
        bytes.iter().rev().copied().collect()
    }
}
