//! Proving, with the witness checked first.
//!
//! ark-groth16 only `debug_assert!`s that the witness satisfies the circuit;
//! a release build would silently produce a proof that can never verify. We
//! synthesize once, check satisfaction, and prove from the same constraint
//! system, so the check costs no second synthesis.

use ark_bn254::{Bn254, Fr};
use ark_ff::UniformRand;
use ark_groth16::Groth16;
use ark_relations::gr1cs::{
    ConstraintSystem, OptimizationGoal, SynthesisError, SynthesisMode, R1CS_PREDICATE_LABEL,
};
use rand::{CryptoRng, RngCore};

use crate::{
    circuit::{CircuitId, ZkCircuit},
    encoding::encode_proof,
    keys::CircuitProvingKey,
};

/// Why no proof was produced.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The proving key belongs to another circuit or version.
    #[error("proving key is for {key}, not {circuit}")]
    WrongKey {
        /// The key's circuit.
        key: CircuitId,
        /// The circuit being proven.
        circuit: CircuitId,
    },
    /// The witness does not satisfy the circuit: for a customer, typically a
    /// wrong PIN. Names the first broken constraint (never a value).
    #[error("witness does not satisfy the circuit (constraint {0})")]
    Unsatisfied(String),
    /// The key does not fit the synthesized circuit (a stale key).
    #[error("proving key does not match the circuit's shape")]
    ShapeMismatch,
    /// arkworks failed to synthesize or prove.
    #[error("synthesis failed: {0}")]
    Synthesis(#[from] SynthesisError),
}

/// Proves `circuit` under `key` and returns the proof in the canonical
/// encoding ([`crate::encoding`]).
///
/// # Errors
/// See [`ProveError`].
pub fn prove<C: ZkCircuit, R: RngCore + CryptoRng>(
    key: &CircuitProvingKey,
    circuit: C,
    rng: &mut R,
) -> Result<Vec<u8>, ProveError> {
    if key.circuit != C::id() {
        return Err(ProveError::WrongKey {
            key: key.circuit.clone(),
            circuit: C::id(),
        });
    }
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    cs.set_mode(SynthesisMode::Prove {
        construct_matrices: true,
        generate_lc_assignments: false,
    });
    circuit.generate_constraints(cs.clone())?;
    cs.finalize();
    if let Some(broken) = cs.which_is_unsatisfied()? {
        return Err(ProveError::Unsatisfied(broken));
    }
    let num_inputs = cs.num_instance_variables();
    let num_constraints = cs.num_constraints();
    let pk = &key.pk;
    if pk.vk.gamma_abc_g1.len() != num_inputs
        || pk.a_query.len() != num_inputs + cs.num_witness_variables()
    {
        return Err(ProveError::ShapeMismatch);
    }
    let matrices = cs.to_matrices()?;
    let r1cs = matrices
        .get(R1CS_PREDICATE_LABEL)
        .ok_or(SynthesisError::Unsatisfiable)?;
    let mut assignment = cs.instance_assignment()?;
    assignment.extend(cs.witness_assignment()?);
    let r = Fr::rand(rng);
    let s = Fr::rand(rng);
    let proof = Groth16::<Bn254>::create_proof_with_reduction_and_matrices(
        pk,
        r,
        s,
        r1cs,
        num_inputs,
        num_constraints,
        &assignment,
    )?;
    Ok(encode_proof(&proof))
}
