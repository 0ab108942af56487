//! Proving, with the witness checked first.
//!
//! ark-groth16 only `debug_assert!`s that the witness satisfies the circuit;
//! a release build would silently produce a proof that can never verify. We
//! synthesize once, check satisfaction, and prove from the same constraint
//! system, so the check costs no second synthesis.
//!
//! The proof itself is ark-groth16's, computed over fixed-base tables of
//! the proving key (see [`CircuitProvingKey::prepare`]): the tests check
//! that both give the same proof for the same randomness.

use ark_bn254::{Bn254, Fr, G1Projective, G2Projective};
use ark_ec::CurveGroup;
use ark_ff::UniformRand;
use ark_groth16::{
    r1cs_to_qap::{LibsnarkReduction, R1CSToQAP},
    Proof, ProvingKey,
};
use ark_poly::GeneralEvaluationDomain;
use ark_relations::gr1cs::{
    ConstraintSystem, Matrix, OptimizationGoal, SynthesisError, SynthesisMode, R1CS_PREDICATE_LABEL,
};
use rand::{CryptoRng, RngCore};

use crate::{
    circuit::{CircuitId, ZkCircuit},
    encoding::encode_proof,
    keys::CircuitProvingKey,
    msm::{FixedBaseMsm, FixedBaseTable},
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
/// The key's prover tables are built on its first proof unless
/// [`CircuitProvingKey::prepare`] was called when it was loaded (which a
/// phone should do: the first proof then costs what every other one does).
///
/// # Errors
/// See [`ProveError`].
pub fn prove<C: ZkCircuit, R: RngCore + CryptoRng>(
    key: &CircuitProvingKey,
    circuit: C,
    rng: &mut R,
) -> Result<Vec<u8>, ProveError> {
    let witness = Witness::synthesize(key, circuit)?;
    let r = Fr::rand(rng);
    let s = Fr::rand(rng);
    let proof = key.prover_tables().create_proof(key.pk(), r, s, &witness)?;
    Ok(encode_proof(&proof))
}

/// A synthesized, satisfied constraint system: what proving needs of it.
pub(crate) struct Witness {
    /// The R1CS matrices A, B, C.
    pub(crate) r1cs: Vec<Matrix<Fr>>,
    /// Instance variables, including the constant one.
    pub(crate) num_inputs: usize,
    pub(crate) num_constraints: usize,
    /// Instance then witness values, starting with the constant one.
    pub(crate) assignment: Vec<Fr>,
}

impl Witness {
    /// Synthesizes `circuit` for `key` and checks that the witness satisfies
    /// it and fits the key.
    ///
    /// # Errors
    /// See [`ProveError`].
    pub(crate) fn synthesize<C: ZkCircuit>(
        key: &CircuitProvingKey,
        circuit: C,
    ) -> Result<Self, ProveError> {
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
        let num_inputs = cs.num_instance_variables();
        let num_constraints = cs.num_constraints();
        let pk = key.pk();
        if pk.vk.gamma_abc_g1.len() != num_inputs
            || pk.a_query.len() != num_inputs + cs.num_witness_variables()
        {
            return Err(ProveError::ShapeMismatch);
        }
        let mut matrices = cs.to_matrices()?;
        let r1cs = matrices
            .remove(R1CS_PREDICATE_LABEL)
            .ok_or(SynthesisError::Unsatisfiable)?;
        let mut assignment = cs.instance_assignment()?;
        assignment.extend(cs.witness_assignment()?);
        // arkworks' `which_is_unsatisfied` re-evaluates every constraint
        // through its linear-combination maps: 14% of a PIN proof. The
        // matrices give the same verdict for R1CS in a few microseconds; we
        // ask arkworks only to name a broken constraint, and for any other
        // kind of predicate.
        if !matrices.is_empty() || !r1cs_satisfied(&r1cs, &assignment) {
            if let Some(broken) = cs.which_is_unsatisfied()? {
                return Err(ProveError::Unsatisfied(broken));
            }
            if matrices.is_empty() {
                // The matrices say unsatisfied; arkworks disagrees.
                return Err(ProveError::Unsatisfied("unnamed".into()));
            }
        }
        Ok(Self {
            r1cs,
            num_inputs,
            num_constraints,
            assignment,
        })
    }
}

/// Whether `A z ∘ B z = C z` holds row by row. A variable index outside
/// `z` (impossible for matrices and assignment of one constraint system)
/// counts as unsatisfied rather than panicking.
fn r1cs_satisfied(r1cs: &[Matrix<Fr>], z: &[Fr]) -> bool {
    let row_value = |row: &[(Fr, usize)]| -> Option<Fr> {
        row.iter()
            .try_fold(Fr::from(0u64), |acc, (coefficient, index)| {
                z.get(*index).map(|value| acc + *coefficient * value)
            })
    };
    let [a, b, c] = r1cs else {
        return false;
    };
    a.len() == b.len()
        && b.len() == c.len()
        && a.iter().zip(b).zip(c).all(|((a, b), c)| {
            matches!(
                (row_value(a), row_value(b), row_value(c)),
                (Some(a), Some(b), Some(c)) if a * b == c
            )
        })
}

/// Window width of the `delta` tables: 43 windows of 2^5 points (about
/// 290 KiB for G1 and G2 together), so each multiplication by `r`, `s` or
/// `r * s` is at most 43 mixed additions instead of a 254-bit scalar
/// multiplication (those were 6% of a PIN proof).
const DELTA_WINDOW: usize = 6;

/// Window width of the proving key's tables: for the few hundred points of
/// our queries, 10-bit windows balance one accumulation per digit (26
/// digits per full scalar) against reducing 512 buckets.
const PROVER_WINDOW: usize = 10;

/// A proving key's query points expanded into fixed-base tables
/// ([`FixedBaseMsm`]), built once per key: see
/// [`CircuitProvingKey::prepare`].
///
/// Proving is ark-groth16's algorithm (the same QAP witness map, the same
/// five multi-scalar multiplications and the same combination with `r` and
/// `s`; the tests check that both produce identical proofs), with three
/// changes: the MSMs use the tables, so they need no doublings and skip the
/// bases of variables absent from a polynomial; zero and one witness values
/// cost nothing and one addition; and the MSMs and the FFTs run as
/// independent rayon tasks in the caller's pool, where arkworks' MSM builds
/// a new thread pool on every call.
pub(crate) struct ProverTables {
    a: FixedBaseMsm<ark_bn254::g1::Config>,
    b_g1: FixedBaseMsm<ark_bn254::g1::Config>,
    b_g2: FixedBaseMsm<ark_bn254::g2::Config>,
    l: FixedBaseMsm<ark_bn254::g1::Config>,
    h: FixedBaseMsm<ark_bn254::g1::Config>,
    /// `delta` is multiplied by `r`, `s` and `r * s` in every proof.
    delta_g1: FixedBaseTable<ark_bn254::g1::Config>,
    delta_g2: FixedBaseTable<ark_bn254::g2::Config>,
}

impl ProverTables {
    /// Builds the tables of `pk`: about 254 doublings per query point, done
    /// in parallel on the caller's rayon pool.
    pub(crate) fn new(pk: &ProvingKey<Bn254>) -> Self {
        let ((a, b_g1), ((b_g2, l), h)) = rayon::join(
            || {
                rayon::join(
                    || FixedBaseMsm::new(&pk.a_query, PROVER_WINDOW),
                    || FixedBaseMsm::new(&pk.b_g1_query, PROVER_WINDOW),
                )
            },
            || {
                rayon::join(
                    || {
                        rayon::join(
                            || FixedBaseMsm::new(&pk.b_g2_query, PROVER_WINDOW),
                            || FixedBaseMsm::new(&pk.l_query, PROVER_WINDOW),
                        )
                    },
                    || FixedBaseMsm::new(&pk.h_query, PROVER_WINDOW),
                )
            },
        );
        Self {
            a,
            b_g1,
            b_g2,
            l,
            h,
            delta_g1: FixedBaseTable::new(&pk.delta_g1, DELTA_WINDOW),
            delta_g2: FixedBaseTable::new(&pk.vk.delta_g2, DELTA_WINDOW),
        }
    }

    /// The Groth16 proof for `witness` under `pk`, with randomness `r`, `s`.
    ///
    /// # Errors
    /// [`ProveError::ShapeMismatch`] if the assignment or QAP does not fit
    /// the key; synthesis errors of the witness map.
    pub(crate) fn create_proof(
        &self,
        pk: &ProvingKey<Bn254>,
        r: Fr,
        s: Fr,
        witness: &Witness,
    ) -> Result<Proof<Bn254>, ProveError> {
        let Witness {
            r1cs,
            num_inputs,
            num_constraints,
            assignment,
        } = witness;
        let (num_inputs, num_constraints) = (*num_inputs, *num_constraints);
        let variables = assignment.len();
        if self.a.len() != variables
            || self.b_g1.len() != variables
            || self.b_g2.len() != variables
            || num_inputs == 0
            || self.l.len() + num_inputs != variables
        {
            return Err(ProveError::ShapeMismatch);
        }
        let aux = &assignment[num_inputs..];
        // Splitting an MSM adds a bucket reduction per piece; with one
        // thread there is nothing to gain from it.
        let parts = rayon::current_num_threads().min(2);
        // The QAP witness map (FFTs) feeds only the H query; everything
        // else runs beside it.
        let (h_and_l, (a_and_b1, b_g2)) = rayon::join(
            || -> Result<(G1Projective, G1Projective), ProveError> {
                let h = LibsnarkReduction::witness_map_from_matrices::<
                    Fr,
                    GeneralEvaluationDomain<Fr>,
                >(r1cs, num_inputs, num_constraints, assignment)?;
                // The H query has one point fewer than the domain: the top
                // coefficient of h is zero for a satisfied system.
                let h = h.get(..self.h.len()).ok_or(ProveError::ShapeMismatch)?;
                Ok(rayon::join(|| self.h.msm(h, parts), || self.l.msm(aux, 1)))
            },
            || {
                rayon::join(
                    || {
                        rayon::join(
                            || self.a.msm(assignment, 1),
                            || self.b_g1.msm(assignment, 1),
                        )
                    },
                    || self.b_g2.msm(assignment, parts),
                )
            },
        );
        let (h_acc, l_acc) = h_and_l?;
        let (a_acc, b_g1_acc) = a_and_b1;

        let vk = &pk.vk;
        let g_a = a_acc + vk.alpha_g1 + self.delta_g1.mul(&r);
        let g1_b = b_g1_acc + pk.beta_g1 + self.delta_g1.mul(&s);
        let g2_b: G2Projective = b_g2 + vk.beta_g2 + self.delta_g2.mul(&s);
        let g_c = g_a * s + g1_b * r - self.delta_g1.mul(&(r * s)) + l_acc + h_acc;
        Ok(Proof {
            a: g_a.into_affine(),
            b: g2_b.into_affine(),
            c: g_c.into_affine(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        keys::generate_keys,
        pin::{DeviceSecret, Pin, PinKnowledge},
        PublicInputs,
    };
    use ark_groth16::{prepare_verifying_key, Groth16};
    use ark_snark::SNARK;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn circuit(seed: u64) -> PinKnowledge {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let secret = DeviceSecret::generate(&mut rng);
        let pin = Pin::parse("20250917").expect("valid PIN");
        PinKnowledge::new(&pin, &secret, Fr::from(seed))
    }

    #[test]
    fn tables_give_arkworks_proofs_bit_for_bit() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (key, _) = generate_keys::<PinKnowledge, _>(&mut rng).expect("setup");
        let pvk = prepare_verifying_key(&key.pk().vk);
        for seed in 0..3 {
            let instance = circuit(seed);
            let inputs = instance.public().expect("instance").to_field_elements();
            let witness = Witness::synthesize(&key, instance).expect("satisfied");
            let (r, s) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
            let ours = key
                .prover_tables()
                .create_proof(key.pk(), r, s, &witness)
                .expect("prove");
            let theirs = Groth16::<Bn254>::create_proof_with_reduction_and_matrices(
                key.pk(),
                r,
                s,
                &witness.r1cs,
                witness.num_inputs,
                witness.num_constraints,
                &witness.assignment,
            )
            .expect("arkworks prove");
            assert_eq!(ours, theirs, "seed {seed}");
            assert!(
                Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &ours).expect("verify")
            );
            let mut wrong = inputs.clone();
            wrong[1] += Fr::from(1u64);
            assert!(
                !Groth16::<Bn254>::verify_with_processed_vk(&pvk, &wrong, &ours).expect("verify")
            );
        }
    }

    #[test]
    fn proofs_under_two_threads_match_one_thread() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (key, _) = generate_keys::<PinKnowledge, _>(&mut rng).expect("setup");
        let witness = Witness::synthesize(&key, circuit(9)).expect("satisfied");
        let (r, s) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
        let prove_with = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| key.prover_tables().create_proof(key.pk(), r, s, &witness))
                .expect("prove")
        };
        assert_eq!(prove_with(1), prove_with(2));
    }

    #[test]
    fn matrix_check_agrees_with_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let (key, _) = generate_keys::<PinKnowledge, _>(&mut rng).expect("setup");
        let witness = Witness::synthesize(&key, circuit(13)).expect("satisfied");
        assert!(r1cs_satisfied(&witness.r1cs, &witness.assignment));
        // Any single changed witness value that a constraint uses breaks it.
        for index in [
            witness.num_inputs,
            witness.assignment.len() / 2,
            witness.assignment.len() - 1,
        ] {
            let mut broken = witness.assignment.clone();
            broken[index] += Fr::from(1u64);
            assert!(!r1cs_satisfied(&witness.r1cs, &broken), "variable {index}");
        }
        // So does a public input (the commitment is constrained).
        let mut broken = witness.assignment.clone();
        broken[1] += Fr::from(1u64);
        assert!(!r1cs_satisfied(&witness.r1cs, &broken));
        assert!(!r1cs_satisfied(&witness.r1cs, &witness.assignment[..10]));
    }

    #[test]
    fn a_truncated_assignment_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let (key, _) = generate_keys::<PinKnowledge, _>(&mut rng).expect("setup");
        let mut witness = Witness::synthesize(&key, circuit(11)).expect("satisfied");
        witness.assignment.pop();
        assert!(matches!(
            key.prover_tables()
                .create_proof(key.pk(), Fr::from(1u64), Fr::from(2u64), &witness),
            Err(ProveError::ShapeMismatch)
        ));
    }
}
