//! Predicates over one slot, natively and in the circuit, side by side.
//!
//! A [`SlotPredicate`] is four public inputs, `(slot, kind, a, b)`:
//!
//! | kind            | code | holds when                     |
//! |-----------------|------|--------------------------------|
//! | [`Unused`]      | 0    | always (a slot left empty)     |
//! | [`Equal`]       | 1    | `value == a`                   |
//! | [`NotEqual`]    | 2    | `value != a`                   |
//! | [`InRange`]     | 3    | `a <= value <= b` as integers  |
//!
//! `lt`, `lte`, `gt`, `gte`, `between` and `age >= N on D` are all
//! [`InRange`] with one bound at the edge of the integer domain
//! `[MIN_INT, MAX_INT]`; the constructors below build them and refuse
//! empty ranges and text slots.
//!
//! # Why the range check is sound
//! In F_p, "a <= x" means nothing until x is known to be a small integer.
//! The gadget decomposes `d1 = x - a` and `d2 = b - x` into
//! [`INT_BITS`] = 48 bits each. The verifier picks `a` and `b` with
//! `MIN_INT <= a <= b <= MAX_INT` (the constructors guarantee it), so the
//! integers `X1 = a + d1` and `X2 = b - d2` both lie in `(-2^49, 2^49)` and
//! are congruent to `x` modulo p; their difference is below `2^50`, far
//! below p, so `X1 = X2`: `x` is the image of one integer `X` with
//! `a <= X <= b`. No range check on `x` itself is needed, and a value that
//! is not a small integer (`-1` is one: the integer -1; `(p - 1) / 2` or
//! `2^48` are not) cannot satisfy both decompositions. Honest values always
//! fit: `d1, d2 <= MAX_INT - MIN_INT < 2^48`.
//!
//! [`Unused`]: PredicateKind::Unused
//! [`Equal`]: PredicateKind::Equal
//! [`NotEqual`]: PredicateKind::NotEqual
//! [`InRange`]: PredicateKind::InRange

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, Field};
use ark_r1cs_std::{
    alloc::AllocVar,
    fields::{fp::FpVar, FieldVar},
    GR1CSVar,
};
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

use super::{
    date::{age_cutoff, DateError},
    gadget::{one_hot, select_slot},
    schema::{field_to_int, int_to_field, Slot, SlotKind, INT_BITS, MAX_INT, MIN_INT, SLOT_COUNT},
};
use crate::named;

/// What a predicate slot checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PredicateKind {
    /// Nothing: the slot is not used by this policy.
    Unused = 0,
    /// `value == a`.
    Equal = 1,
    /// `value != a`.
    NotEqual = 2,
    /// `a <= value <= b`, as signed integers.
    InRange = 3,
}

/// Number of predicate kinds.
const KIND_COUNT: usize = 4;

/// Why a predicate could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredicateError {
    /// Comparisons need an integer slot.
    #[error("slot {} holds text: only equality and inequality apply", .0.name())]
    NotAnIntegerSlot(Slot),
    /// A bound outside `[MIN_INT, MAX_INT]`, or one step past it.
    #[error("bound {0} is outside the integer domain")]
    BoundOutOfRange(i64),
    /// `lo > hi`: no value satisfies the predicate.
    #[error("empty range {lo}..={hi}")]
    EmptyRange {
        /// Lower bound.
        lo: i64,
        /// Upper bound.
        hi: i64,
    },
    /// The date or age does not make a valid cut-off.
    #[error(transparent)]
    Date(#[from] DateError),
}

/// A predicate over one slot: the public parameters of one predicate slot
/// of a circuit. Build it with the constructors; the verifier builds the
/// same value from its policy and the prover's statement must match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPredicate {
    slot: Slot,
    kind: PredicateKind,
    a: Fr,
    b: Fr,
}

impl SlotPredicate {
    /// Checks nothing: fills a predicate slot a policy does not need.
    pub fn unused() -> Self {
        Self {
            slot: Slot::AccountId,
            kind: PredicateKind::Unused,
            a: Fr::ZERO,
            b: Fr::ZERO,
        }
    }

    /// `slot == value`, where `value` is encoded like the slot (e.g.
    /// [`Slot::encode_text`] or [`int_to_field`]).
    pub fn equals(slot: Slot, value: Fr) -> Self {
        Self {
            slot,
            kind: PredicateKind::Equal,
            a: value,
            b: Fr::ZERO,
        }
    }

    /// `slot != value`.
    pub fn not_equals(slot: Slot, value: Fr) -> Self {
        Self {
            slot,
            kind: PredicateKind::NotEqual,
            a: value,
            b: Fr::ZERO,
        }
    }

    /// `lo <= slot <= hi` on an integer slot.
    ///
    /// # Errors
    /// [`PredicateError`] for text slots, bounds outside the integer domain
    /// and empty ranges.
    pub fn between(slot: Slot, lo: i64, hi: i64) -> Result<Self, PredicateError> {
        if slot.kind() != SlotKind::Integer {
            return Err(PredicateError::NotAnIntegerSlot(slot));
        }
        let encode = |v: i64| int_to_field(v).map_err(|_| PredicateError::BoundOutOfRange(v));
        let (a, b) = (encode(lo)?, encode(hi)?);
        if lo > hi {
            return Err(PredicateError::EmptyRange { lo, hi });
        }
        Ok(Self {
            slot,
            kind: PredicateKind::InRange,
            a,
            b,
        })
    }

    /// `slot >= bound`.
    ///
    /// # Errors
    /// See [`SlotPredicate::between`].
    pub fn gte(slot: Slot, bound: i64) -> Result<Self, PredicateError> {
        Self::between(slot, bound, MAX_INT)
    }

    /// `slot > bound`.
    ///
    /// # Errors
    /// See [`SlotPredicate::between`]; `bound == MAX_INT` is an empty range.
    pub fn gt(slot: Slot, bound: i64) -> Result<Self, PredicateError> {
        let lo = bound
            .checked_add(1)
            .ok_or(PredicateError::BoundOutOfRange(bound))?;
        Self::between(slot, lo, MAX_INT)
    }

    /// `slot <= bound`.
    ///
    /// # Errors
    /// See [`SlotPredicate::between`].
    pub fn lte(slot: Slot, bound: i64) -> Result<Self, PredicateError> {
        Self::between(slot, MIN_INT, bound)
    }

    /// `slot < bound`.
    ///
    /// # Errors
    /// See [`SlotPredicate::between`]; `bound == MIN_INT` is an empty range.
    pub fn lt(slot: Slot, bound: i64) -> Result<Self, PredicateError> {
        let hi = bound
            .checked_sub(1)
            .ok_or(PredicateError::BoundOutOfRange(bound))?;
        Self::between(slot, MIN_INT, hi)
    }

    /// "At least `years` old on `today`" (days since 1970-01-01):
    /// `date_of_birth <= age_cutoff(today, years)`. See
    /// [`super::date`] for the calendar rule.
    ///
    /// # Errors
    /// [`PredicateError::Date`] for dates outside years 1..=9999.
    pub fn age_at_least(today: i64, years: u32) -> Result<Self, PredicateError> {
        Self::lte(Slot::DateOfBirth, age_cutoff(today, years)?)
    }

    /// The slot the predicate reads.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The predicate's kind.
    pub fn kind(&self) -> PredicateKind {
        self.kind
    }

    /// The public inputs `[slot, kind, a, b]`.
    pub fn to_field_elements(&self) -> [Fr; 4] {
        [
            Fr::from(self.slot.index() as u64),
            Fr::from(self.kind as u64),
            self.a,
            self.b,
        ]
    }

    /// Whether the predicate holds for these slot values: the native
    /// counterpart of the in-circuit check (`enforce_predicate`).
    pub fn holds(&self, values: &[Fr; SLOT_COUNT]) -> bool {
        let value = values[self.slot.index()];
        match self.kind {
            PredicateKind::Unused => true,
            PredicateKind::Equal => value == self.a,
            PredicateKind::NotEqual => value != self.a,
            PredicateKind::InRange => {
                match (
                    field_to_int(&value),
                    field_to_int(&self.a),
                    field_to_int(&self.b),
                ) {
                    (Some(v), Some(lo), Some(hi)) => lo <= v && v <= hi,
                    _ => false,
                }
            }
        }
    }

    /// A predicate with arbitrary parameters, bypassing validation: only
    /// for tests that show what the circuit does with bad parameters.
    #[cfg(test)]
    pub(crate) fn raw(slot: Slot, kind: PredicateKind, a: Fr, b: Fr) -> Self {
        Self { slot, kind, a, b }
    }
}

/// Enforces one predicate slot. `params` are the public inputs
/// `[slot, kind, a, b]`; `slots` the opened credential. 120 constraints:
/// 12 to select the slot, 6 for the kind, 1 for equality, 1 for
/// inequality, 100 for the range (two 48-bit decompositions and the two
/// products that switch them off for other kinds).
pub(crate) fn enforce_predicate(
    cs: &ConstraintSystemRef<Fr>,
    slots: &[FpVar<Fr>; SLOT_COUNT],
    params: &[FpVar<Fr>; 4],
) -> Result<(), SynthesisError> {
    let [slot, kind, a, b] = params;
    let value = named!("slot selector", select_slot(cs, slot, slots))?;
    let kinds = named!("kind selector", one_hot(cs, kind, KIND_COUNT))?;
    let is = |k: PredicateKind| FpVar::from(kinds[k as usize].clone());
    let zero = FpVar::Constant(Fr::ZERO);

    let diff = &value - a;
    // is_eq * (value - a) = 0.
    named!(
        "equality",
        is(PredicateKind::Equal).mul_equals(&diff, &zero)
    )?;
    // (value - a) * inverse = is_ne: with is_ne = 1 an inverse exists only
    // if value != a; with is_ne = 0 the prover sets inverse = 0.
    named!("inequality", {
        let inverse = FpVar::new_witness(cs.clone(), || {
            let wanted = kinds[PredicateKind::NotEqual as usize].value()?;
            Ok(if wanted {
                diff.value()?.inverse().unwrap_or(Fr::ZERO)
            } else {
                Fr::ZERO
            })
        })?;
        diff.mul_equals(&inverse, &is(PredicateKind::NotEqual))
    })?;
    // The switch multiplies by is_range, so other kinds decompose zero.
    let in_range = is(PredicateKind::InRange);
    named!("lower bound", {
        let d1 = &in_range * &diff;
        d1.to_bits_le_with_top_bits_zero(INT_BITS).map(|_| ())
    })?;
    named!("upper bound", {
        let d2 = &in_range * (b - &value);
        d2.to_bits_le_with_top_bits_zero(INT_BITS).map(|_| ())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::schema::minus_one;
    use crate::test_support::trace_constraints;
    use ark_ff::PrimeField;
    use ark_relations::gr1cs::{ConstraintSystem, OptimizationGoal};
    use proptest::prelude::*;

    /// Synthesizes one predicate over `values` and returns the first broken
    /// constraint, if any.
    fn broken(predicate: &SlotPredicate, values: &[Fr; SLOT_COUNT]) -> Option<String> {
        trace_constraints();
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        let slots = values.map(|v| FpVar::new_witness(cs.clone(), || Ok(v)).expect("alloc"));
        let params = predicate
            .to_field_elements()
            .map(|v| FpVar::new_input(cs.clone(), || Ok(v)).expect("alloc"));
        enforce_predicate(&cs, &slots, &params).expect("synthesis");
        cs.finalize();
        cs.which_is_unsatisfied().expect("prove mode")
    }

    fn with_dob(value: Fr) -> [Fr; SLOT_COUNT] {
        let mut values = [Fr::from(11u64); SLOT_COUNT];
        values[Slot::DateOfBirth.index()] = value;
        values
    }

    fn int(v: i64) -> Fr {
        int_to_field(v).expect("in range")
    }

    #[test]
    fn costs_120_constraints() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        let slots = [(); SLOT_COUNT]
            .map(|()| FpVar::new_witness(cs.clone(), || Ok(Fr::ONE)).expect("alloc"));
        let params = SlotPredicate::unused()
            .to_field_elements()
            .map(|v| FpVar::new_input(cs.clone(), || Ok(v)).expect("alloc"));
        enforce_predicate(&cs, &slots, &params).expect("synthesis");
        cs.finalize();
        assert_eq!(cs.num_constraints(), 120);
    }

    #[test]
    fn equality_and_inequality() {
        let values = with_dob(int(100));
        let eq = SlotPredicate::equals(Slot::DateOfBirth, int(100));
        assert_eq!(broken(&eq, &values), None);
        let wrong = SlotPredicate::equals(Slot::DateOfBirth, int(101));
        let name = broken(&wrong, &values).expect("must fail");
        assert!(
            name.contains("equality") && !name.contains("inequality"),
            "{name}"
        );
        let ne = SlotPredicate::not_equals(Slot::DateOfBirth, int(101));
        assert_eq!(broken(&ne, &values), None);
        let ne_same = SlotPredicate::not_equals(Slot::DateOfBirth, int(100));
        let name = broken(&ne_same, &values).expect("must fail");
        assert!(name.contains("inequality"), "{name}");
        assert_eq!(broken(&SlotPredicate::unused(), &values), None);
    }

    #[test]
    fn bounds_are_inclusive_and_exact() {
        let values = with_dob(int(500));
        for (p, ok) in [
            (SlotPredicate::between(Slot::DateOfBirth, 500, 500), true),
            (SlotPredicate::between(Slot::DateOfBirth, 499, 501), true),
            (SlotPredicate::lte(Slot::DateOfBirth, 500), true),
            (SlotPredicate::lt(Slot::DateOfBirth, 500), false),
            (SlotPredicate::gte(Slot::DateOfBirth, 500), true),
            (SlotPredicate::gt(Slot::DateOfBirth, 500), false),
            (SlotPredicate::gt(Slot::DateOfBirth, 499), true),
            (SlotPredicate::lt(Slot::DateOfBirth, 501), true),
        ] {
            let p = p.expect("valid predicate");
            assert_eq!(p.holds(&values), ok, "{p:?}");
            assert_eq!(broken(&p, &values).is_none(), ok, "{p:?}");
        }
        let name = broken(
            &SlotPredicate::lt(Slot::DateOfBirth, 500).expect("valid"),
            &values,
        )
        .expect("fails");
        assert!(name.contains("upper bound"), "{name}");
        let name = broken(
            &SlotPredicate::gt(Slot::DateOfBirth, 500).expect("valid"),
            &values,
        )
        .expect("fails");
        assert!(name.contains("lower bound"), "{name}");
    }

    #[test]
    fn the_edges_of_the_integer_domain_are_allowed() {
        for v in [MIN_INT, MAX_INT, 0, -1] {
            let p = SlotPredicate::between(Slot::DateOfBirth, MIN_INT, MAX_INT).expect("valid");
            assert_eq!(broken(&p, &with_dob(int(v))), None, "{v}");
            let exact = SlotPredicate::between(Slot::DateOfBirth, v, v).expect("valid");
            assert_eq!(broken(&exact, &with_dob(int(v))), None, "{v}");
        }
    }

    #[test]
    fn values_beyond_the_range_check_or_near_the_modulus_fail() {
        let half = Fr::from(Fr::MODULUS_MINUS_ONE_DIV_TWO);
        let wide = Fr::from(1u64 << 48);
        let just_above = Fr::from((1u64 << 47) + 1);
        let below_min = -Fr::from((1u64 << 47) + 1);
        let cases = [
            (
                SlotPredicate::gte(Slot::DateOfBirth, 0),
                wide,
                "lower bound",
            ),
            (
                SlotPredicate::gte(Slot::DateOfBirth, 0),
                just_above,
                "upper bound",
            ),
            (
                SlotPredicate::between(Slot::DateOfBirth, 0, MAX_INT),
                Fr::from(1u64 << 47),
                "upper bound",
            ),
            (
                SlotPredicate::lte(Slot::DateOfBirth, MAX_INT),
                half,
                "lower bound",
            ),
            (
                SlotPredicate::lte(Slot::DateOfBirth, 10),
                below_min,
                "lower bound",
            ),
            (
                SlotPredicate::gte(Slot::DateOfBirth, 0),
                minus_one(),
                "lower bound",
            ),
            (
                SlotPredicate::gte(Slot::DateOfBirth, MIN_INT),
                half + Fr::ONE,
                "lower bound",
            ),
        ];
        for (p, value, constraint) in cases {
            let p = p.expect("valid predicate");
            assert!(!p.holds(&with_dob(value)));
            let name = broken(&p, &with_dob(value)).expect("must fail");
            assert!(name.contains(constraint), "{value}: {name}");
        }
        // -1 is an honest integer: inside [-5, 5] it passes.
        let p = SlotPredicate::between(Slot::DateOfBirth, -5, 5).expect("valid");
        assert_eq!(broken(&p, &with_dob(minus_one())), None);
    }

    #[test]
    fn out_of_range_public_selectors_are_unsatisfiable() {
        let values = with_dob(int(1));
        let bad_slot =
            SlotPredicate::raw(Slot::DateOfBirth, PredicateKind::Unused, Fr::ZERO, Fr::ZERO);
        let mut fields = bad_slot.to_field_elements();
        fields[0] = Fr::from(SLOT_COUNT as u64);
        let cs = ConstraintSystem::<Fr>::new_ref();
        let slots = values.map(|v| FpVar::new_witness(cs.clone(), || Ok(v)).expect("alloc"));
        let params = fields.map(|v| FpVar::new_input(cs.clone(), || Ok(v)).expect("alloc"));
        trace_constraints();
        enforce_predicate(&cs, &slots, &params).expect("synthesis");
        let name = cs.which_is_unsatisfied().expect("prove").expect("fails");
        assert!(name.contains("slot selector"), "{name}");
        let bad_kind = SlotPredicate {
            kind: PredicateKind::Unused,
            ..bad_slot
        };
        let mut fields = bad_kind.to_field_elements();
        fields[1] = Fr::from(KIND_COUNT as u64);
        let cs = ConstraintSystem::<Fr>::new_ref();
        let slots = values.map(|v| FpVar::new_witness(cs.clone(), || Ok(v)).expect("alloc"));
        let params = fields.map(|v| FpVar::new_input(cs.clone(), || Ok(v)).expect("alloc"));
        enforce_predicate(&cs, &slots, &params).expect("synthesis");
        let name = cs.which_is_unsatisfied().expect("prove").expect("fails");
        assert!(name.contains("kind selector"), "{name}");
    }

    #[test]
    fn constructors_refuse_nonsense() {
        assert_eq!(
            SlotPredicate::gte(Slot::Postcode, 1),
            Err(PredicateError::NotAnIntegerSlot(Slot::Postcode))
        );
        assert_eq!(
            SlotPredicate::between(Slot::DateOfBirth, 5, 4),
            Err(PredicateError::EmptyRange { lo: 5, hi: 4 })
        );
        assert_eq!(
            SlotPredicate::gt(Slot::DateOfBirth, MAX_INT),
            Err(PredicateError::BoundOutOfRange(MAX_INT + 1))
        );
        assert_eq!(
            SlotPredicate::lt(Slot::DateOfBirth, MIN_INT),
            Err(PredicateError::BoundOutOfRange(MIN_INT - 1))
        );
        assert_eq!(
            SlotPredicate::lte(Slot::DateOfBirth, MAX_INT + 1),
            Err(PredicateError::BoundOutOfRange(MAX_INT + 1))
        );
        assert!(SlotPredicate::age_at_least(i64::MAX, 18).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Native and in-circuit evaluation agree, including for values
        /// that are not small integers.
        #[test]
        fn native_and_circuit_agree(
            lo in -2_000i64..2_000, width in 0i64..2_000, v in -4_000i64..4_000,
            kind in 0u8..4, wild in any::<[u8; 32]>(), use_wild in any::<bool>(),
        ) {
            let value = if use_wild { Fr::from_le_bytes_mod_order(&wild) } else { int(v) };
            let p = match kind {
                0 => SlotPredicate::unused(),
                1 => SlotPredicate::equals(Slot::DateOfBirth, int(lo)),
                2 => SlotPredicate::not_equals(Slot::DateOfBirth, int(lo)),
                _ => SlotPredicate::between(Slot::DateOfBirth, lo, lo + width).expect("valid"),
            };
            let values = with_dob(value);
            prop_assert_eq!(broken(&p, &values).is_none(), p.holds(&values));
        }
    }
}
