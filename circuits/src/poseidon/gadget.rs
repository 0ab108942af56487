//! The R1CS gadget for circomlib-compatible Poseidon.
//!
//! Each S-box costs three constraints (x^2, x^4, x^5); round constants and
//! the MDS mix are linear and cost none, and lane 0 enters the first round
//! as a constant, so its first S-box is free. For `n` inputs this is
//! `3 * (8 * (n + 1) + partial_rounds - 1)` constraints: 240 for two.

use ark_bn254::Fr;
use ark_r1cs_std::{fields::fp::FpVar, prelude::*};
use ark_relations::gr1cs::SynthesisError;

use super::{params, PoseidonError};

/// Errors of the gadget: a bad arity or a synthesis failure.
#[derive(Debug, thiserror::Error)]
pub enum PoseidonGadgetError {
    /// See [`PoseidonError`].
    #[error(transparent)]
    Arity(#[from] PoseidonError),
    /// The constraint system refused an allocation or constraint.
    #[error(transparent)]
    Synthesis(#[from] SynthesisError),
}

impl From<PoseidonGadgetError> for SynthesisError {
    fn from(err: PoseidonGadgetError) -> Self {
        match err {
            // A circuit asking for an unsupported width is a bug in the
            // circuit, which arkworks reports as an unsatisfiable setup.
            PoseidonGadgetError::Arity(_) => SynthesisError::Unsatisfiable,
            PoseidonGadgetError::Synthesis(e) => e,
        }
    }
}

/// circomlib's `Poseidon(inputs.len())` of `inputs`, in the circuit.
///
/// # Errors
/// An unsupported arity, or whatever the constraint system reports.
pub fn hash_var(inputs: &[FpVar<Fr>]) -> Result<FpVar<Fr>, PoseidonGadgetError> {
    let params = params(inputs.len())?;
    let mut state = Vec::with_capacity(params.width);
    state.push(FpVar::Constant(Fr::from(0u8)));
    state.extend_from_slice(inputs);
    for round in 0..params.rounds() {
        for (lane, constant) in state.iter_mut().zip(&params.round_constants[round]) {
            *lane += *constant;
        }
        if params.is_full_round(round) {
            for lane in state.iter_mut() {
                *lane = pow5(lane)?;
            }
        } else {
            state[0] = pow5(&state[0])?;
        }
        state = params
            .mds
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&state)
                    .fold(FpVar::Constant(Fr::from(0u8)), |acc, (m, s)| acc + s * *m)
            })
            .collect();
    }
    Ok(state.swap_remove(0))
}

fn pow5(x: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    let x2 = x.square()?;
    let x4 = x2.square()?;
    Ok(x4 * x)
}
