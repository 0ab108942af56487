//! Range checks: the building block that makes integer comparisons sound in
//! a prime field.
//!
//! In F_p "a <= b" has no meaning: every element is some `b - a` away from
//! any other. A comparison becomes sound only once both sides are proven to
//! be small integers, so that their difference cannot wrap around p. We
//! prove `0 <= value <= max` by decomposing both `value` and `max - value`
//! into `bits(max)` boolean variables each: two non-negative numbers below
//! 2^bits that sum to `max` (with 2^(bits+1) far below p, so no wrap) pin
//! `value` into the interval.

use ark_bn254::Fr;
use ark_r1cs_std::{boolean::Boolean, fields::fp::FpVar};
use ark_relations::gr1cs::SynthesisError;

/// Number of bits needed to write `max`.
pub fn bit_width(max: u64) -> usize {
    (u64::BITS - max.leading_zeros()) as usize
}

/// Enforces `0 <= value <= max` and returns `value`'s little-endian bits.
///
/// Costs `2 * (bit_width(max) + 1)` constraints.
///
/// # Errors
/// Whatever the constraint system reports.
pub fn enforce_at_most(value: &FpVar<Fr>, max: u64) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    let bits = bit_width(max).max(1);
    let (value_bits, _) = value.to_bits_le_with_top_bits_zero(bits)?;
    let headroom = FpVar::Constant(Fr::from(max)) - value;
    let (_headroom_bits, _) = headroom.to_bits_le_with_top_bits_zero(bits)?;
    Ok(value_bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{AdditiveGroup, Field};
    use ark_r1cs_std::alloc::AllocVar;
    use ark_relations::gr1cs::ConstraintSystem;

    fn satisfied(value: Fr, max: u64) -> bool {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let var = FpVar::new_witness(cs.clone(), || Ok(value)).expect("allocation");
        enforce_at_most(&var, max).expect("synthesis");
        cs.is_satisfied().expect("prove mode")
    }

    #[test]
    fn accepts_the_whole_interval_edges() {
        assert!(satisfied(Fr::ZERO, 99_999_999));
        assert!(satisfied(Fr::from(99_999_999u64), 99_999_999));
        assert!(satisfied(Fr::from(7u64), 7));
    }

    #[test]
    fn rejects_one_past_the_bound_and_wrapped_values() {
        assert!(!satisfied(Fr::from(100_000_000u64), 99_999_999));
        assert!(!satisfied(Fr::from(8u64), 7));
        // -1 is p - 1: the classic wrap-around a bare "max - value" check misses.
        assert!(!satisfied(-Fr::ONE, 99_999_999));
        assert!(!satisfied(Fr::from(1u64 << 27), 99_999_999));
    }

    #[test]
    fn costs_two_decompositions() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let var = FpVar::new_witness(cs.clone(), || Ok(Fr::from(5u64))).expect("allocation");
        enforce_at_most(&var, 99_999_999).expect("synthesis");
        assert_eq!(cs.num_constraints(), 2 * (27 + 1));
    }
}
