//! Gadgets shared by the credential circuits: the device factor, the
//! commitment opening and the selection of a slot named by a public input.

use ark_bn254::Fr;
use ark_r1cs_std::{alloc::AllocVar, boolean::Boolean, eq::EqGadget, fields::fp::FpVar, GR1CSVar};
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};

use super::schema::{schema_tag, SCHEMA_VERSION, SLOT_COUNT};
use crate::{named, pin::MAX_PIN, poseidon::gadget::hash_var, range};

/// Allocates a private witness, `None` at key generation.
pub(crate) fn witness(
    cs: &ConstraintSystemRef<Fr>,
    value: Option<Fr>,
) -> Result<FpVar<Fr>, SynthesisError> {
    FpVar::new_witness(cs.clone(), || {
        value.ok_or(SynthesisError::AssignmentMissing)
    })
}

/// The device factor, exactly as in [`crate::pin::PinKnowledge`]: a PIN of
/// at most eight digits and a device secret that open `commitment`.
pub(crate) fn enforce_device_factor(
    cs: &ConstraintSystemRef<Fr>,
    commitment: &FpVar<Fr>,
    pin: Option<Fr>,
    device_secret: Option<Fr>,
) -> Result<(), SynthesisError> {
    let pin = named!("pin", witness(cs, pin))?;
    let device_secret = named!("device secret", witness(cs, device_secret))?;
    // Without it a "PIN" could be any field element: the device commitment
    // would no longer commit to an eight-digit PIN.
    named!(
        "pin range check",
        range::enforce_at_most(&pin, u64::from(MAX_PIN))
    )?;
    let opened = named!("device commitment opening", hash_var(&[pin, device_secret]))?;
    named!(
        "device commitment matches",
        opened.enforce_equal(commitment)
    )
}

/// Enforces `commitment == Poseidon2(Poseidon6(tag, slots), blinding)` with
/// the current schema's tag as a constant: a credential of any other schema
/// version fails here ("attribute commitment matches"). 591 constraints
/// plus the equality.
pub(crate) fn open_commitment(
    commitment: &FpVar<Fr>,
    slots: &[FpVar<Fr>; SLOT_COUNT],
    blinding: &FpVar<Fr>,
) -> Result<(), SynthesisError> {
    let opened = named!("attribute commitment opening", {
        let mut inner_inputs = Vec::with_capacity(SLOT_COUNT + 1);
        inner_inputs.push(FpVar::Constant(schema_tag(SCHEMA_VERSION)));
        inner_inputs.extend_from_slice(slots);
        hash_var(&inner_inputs).and_then(|inner| hash_var(&[inner, blinding.clone()]))
    })?;
    named!(
        "attribute commitment matches",
        opened.enforce_equal(commitment)
    )
}

/// Allocates the slots and blinding of a credential and opens
/// `commitment` with them; returns the slot variables.
pub(crate) fn alloc_and_open(
    cs: &ConstraintSystemRef<Fr>,
    commitment: &FpVar<Fr>,
    opening: Option<&([Fr; SLOT_COUNT], Fr)>,
) -> Result<[FpVar<Fr>; SLOT_COUNT], SynthesisError> {
    let slots = named!("attribute slots", {
        let mut slots = Vec::with_capacity(SLOT_COUNT);
        for i in 0..SLOT_COUNT {
            slots.push(witness(cs, opening.map(|(values, _)| values[i]))?);
        }
        Ok::<_, SynthesisError>(slots)
    })?;
    let slots =
        <[FpVar<Fr>; SLOT_COUNT]>::try_from(slots).map_err(|_| SynthesisError::Unsatisfiable)?;
    let blinding = named!(
        "attribute blinding",
        witness(cs, opening.map(|(_, blinding)| *blinding))
    )?;
    open_commitment(commitment, &slots, &blinding)?;
    Ok(slots)
}

/// One boolean per position `0..n`, exactly one of them true, at
/// `index`. Unsatisfiable when `index` is not in `0..n`: `n` booleanity
/// constraints, one for "exactly one", one for "at `index`".
pub(crate) fn one_hot(
    cs: &ConstraintSystemRef<Fr>,
    index: &FpVar<Fr>,
    n: usize,
) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    let bits = (0..n)
        .map(|i| Boolean::new_witness(cs.clone(), || Ok(index.value()? == Fr::from(i as u64))))
        .collect::<Result<Vec<_>, _>>()?;
    let count: FpVar<Fr> = bits.iter().map(|b| FpVar::from(b.clone())).sum();
    count.enforce_equal(&FpVar::Constant(Fr::from(1u8)))?;
    let position: FpVar<Fr> = bits
        .iter()
        .enumerate()
        .map(|(i, b)| FpVar::from(b.clone()) * Fr::from(i as u64))
        .sum();
    position.enforce_equal(index)?;
    Ok(bits)
}

/// `values[index]` for a public `index`: one-hot selection, `n + 2`
/// constraints for the selector and `n` products.
pub(crate) fn select_slot(
    cs: &ConstraintSystemRef<Fr>,
    index: &FpVar<Fr>,
    values: &[FpVar<Fr>; SLOT_COUNT],
) -> Result<FpVar<Fr>, SynthesisError> {
    let bits = one_hot(cs, index, SLOT_COUNT)?;
    let mut selected = FpVar::Constant(Fr::from(0u8));
    for (bit, value) in bits.iter().zip(values) {
        selected += FpVar::from(bit.clone()) * value;
    }
    Ok(selected)
}
