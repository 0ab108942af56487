//! What every zkid circuit has in common: a stable identity, a typed public
//! statement whose field-element order is defined in one place, and a blank
//! instance for key generation.

use std::fmt;

use ark_bn254::Fr;
use ark_r1cs_std::{alloc::AllocVar, fields::fp::FpVar};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

/// A circuit's stable name and version. A change to a circuit's constraints
/// must come with a new version: the pinned shape tests enforce it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircuitId {
    /// Stable, kebab-case name, e.g. `pin-knowledge`.
    pub name: String,
    /// Incremented on every change to the constraint system.
    pub version: u32,
}

impl fmt::Display for CircuitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@v{}", self.name, self.version)
    }
}

/// A circuit's public statement.
pub trait PublicInputs {
    /// Number of public inputs, excluding the constant one.
    const COUNT: usize;
    /// The public inputs in the order the circuit allocates them. Prover and
    /// verifier both go through this function, so the order cannot diverge.
    fn to_field_elements(&self) -> Vec<Fr>;
}

/// A zkid circuit.
pub trait ZkCircuit: ConstraintSynthesizer<Fr> + Sized {
    /// Stable name.
    const NAME: &'static str;
    /// Version of the constraint system.
    const VERSION: u32;
    /// The public statement.
    type Public: PublicInputs;
    /// An instance without witness or statement, for key generation.
    fn blank() -> Self;
    /// This circuit's identity.
    fn id() -> CircuitId {
        CircuitId {
            name: Self::NAME.to_owned(),
            version: Self::VERSION,
        }
    }
}

/// Allocates the public inputs in `P::to_field_elements` order.
///
/// # Errors
/// Whatever the constraint system reports.
pub fn alloc_public_inputs<P: PublicInputs>(
    cs: &ConstraintSystemRef<Fr>,
    public: Option<&P>,
) -> Result<Vec<FpVar<Fr>>, SynthesisError> {
    let values = public.map(PublicInputs::to_field_elements);
    (0..P::COUNT)
        .map(|i| {
            FpVar::new_input(cs.clone(), || {
                values
                    .as_ref()
                    .and_then(|v| v.get(i).copied())
                    .ok_or(SynthesisError::AssignmentMissing)
            })
        })
        .collect()
}

/// Runs `$body` inside a `gr1cs` span named `$name`, so that a broken
/// constraint is reported by that name (`which_is_unsatisfied`). Unlike
/// arkworks' `ns!`, the span is closed again, so a long-running prover with
/// a tracing subscriber does not accumulate spans.
#[macro_export]
macro_rules! named {
    ($name:literal, $body:expr) => {
        tracing::info_span!(target: "gr1cs", $name).in_scope(|| $body)
    };
}

/// Size and structure of a circuit's constraint system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitShape {
    /// R1CS constraints.
    pub constraints: usize,
    /// Instance variables, including the constant one.
    pub instance_variables: usize,
    /// Witness variables.
    pub witness_variables: usize,
    /// SHA-256 over the A, B, C matrices: any change to any constraint
    /// changes it.
    pub digest: String,
}

impl CircuitShape {
    /// The Groth16 QAP domain: the next power of two of constraints plus
    /// instance variables. Proving cost follows this, not the raw count.
    pub fn domain_size(&self) -> usize {
        (self.constraints + self.instance_variables).next_power_of_two()
    }
}

/// Synthesizes `C`'s blank instance and measures it.
///
/// # Errors
/// Whatever synthesis reports.
pub fn shape<C: ZkCircuit>() -> Result<CircuitShape, SynthesisError> {
    use ark_ff::{BigInteger, PrimeField};
    use ark_relations::gr1cs::{
        ConstraintSystem, OptimizationGoal, SynthesisMode, R1CS_PREDICATE_LABEL,
    };
    use sha2::{Digest, Sha256};

    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    cs.set_mode(SynthesisMode::Setup);
    C::blank().generate_constraints(cs.clone())?;
    cs.finalize();
    let matrices = cs.to_matrices()?;
    let r1cs = matrices
        .get(R1CS_PREDICATE_LABEL)
        .ok_or(SynthesisError::Unsatisfiable)?;
    let mut hasher = Sha256::new();
    for matrix in r1cs {
        hasher.update((matrix.len() as u64).to_le_bytes());
        for row in matrix {
            hasher.update((row.len() as u64).to_le_bytes());
            for (coefficient, column) in row {
                hasher.update(coefficient.into_bigint().to_bytes_le());
                hasher.update((*column as u64).to_le_bytes());
            }
        }
    }
    Ok(CircuitShape {
        constraints: cs.num_constraints(),
        instance_variables: cs.num_instance_variables(),
        witness_variables: cs.num_witness_variables(),
        digest: hex::encode(hasher.finalize()),
    })
}
