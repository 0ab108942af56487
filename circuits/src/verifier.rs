//! The strict verifier: every check Groth16's soundness relies on, before
//! and around the pairing equation.
//!
//! A [`Verifier`] is a registry of prepared verifying keys. Verification
//! never fails with an error: every outcome is a [`Verdict`], and a
//! [`Rejection`] says why, distinguishing a malformed request
//! ([`Rejection::is_malformed`]) from a well-formed proof that is false.
//!
//! Beyond what arkworks checks, we refuse: proofs under unknown or retired
//! keys; any non-canonical, off-curve, out-of-subgroup or identity point
//! ([`crate::encoding`]); public inputs at or above the field modulus (an
//! alias `x + p` would otherwise verify as `x`); and a wrong number of
//! public inputs (arkworks ignores extra inputs and treats missing ones as
//! zero).

use std::collections::HashMap;

use ark_bn254::{g1, Bn254, Fr, G1Projective};
use ark_ec::{
    bn::G2Prepared,
    pairing::{MillerLoopOutput, Pairing, PairingOutput},
    CurveGroup,
};
use ark_groth16::{prepare_verifying_key, PreparedVerifyingKey, Proof};

use crate::{
    circuit::CircuitId,
    encoding::{
        decode_proof_deferring_g2_check, field_from_bytes, ProofDecodeError, ProofPoint, FIELD_LEN,
    },
    keys::{CircuitVerifyingKey, KeyId},
    miller::{miller_loop, prepare_checking_g2},
    msm::FixedBaseTable,
};

/// Why a proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No key with this id is registered.
    #[error("unknown verifying key {0}")]
    UnknownKey(KeyId),
    /// The key was retired: proofs under it are no longer accepted.
    #[error("verifying key {0} is retired")]
    RetiredKey(KeyId),
    /// The proof bytes are malformed; see [`ProofDecodeError`].
    #[error(transparent)]
    MalformedProof(#[from] ProofDecodeError),
    /// A public input is not a canonical field element.
    #[error("public input {index} is not below the field modulus")]
    PublicInputOutOfRange {
        /// Position of the input.
        index: usize,
    },
    /// The number of public inputs does not match the key.
    #[error("expected {expected} public inputs, got {actual}")]
    WrongPublicInputCount {
        /// The key's count.
        expected: usize,
        /// The count supplied.
        actual: usize,
    },
    /// A well-formed proof that does not verify for this statement.
    #[error("proof does not verify")]
    InvalidProof,
}

impl Rejection {
    /// Whether the request itself was malformed (as opposed to a proof of a
    /// false or other statement).
    pub fn is_malformed(&self) -> bool {
        !matches!(self, Self::InvalidProof)
    }
}

/// The outcome of verifying one proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The proof verifies for the statement.
    Accepted,
    /// It does not, for this reason.
    Rejected(Rejection),
}

impl Verdict {
    /// Whether the proof was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted)
    }
}

impl From<Result<(), Rejection>> for Verdict {
    fn from(result: Result<(), Rejection>) -> Self {
        match result {
            Ok(()) => Self::Accepted,
            Err(r) => Self::Rejected(r),
        }
    }
}

/// A registered key, prepared once.
pub(crate) struct PreparedKey {
    pub(crate) circuit: CircuitId,
    pub(crate) retired: bool,
    pub(crate) pvk: PreparedVerifyingKey<Bn254>,
    /// `beta` in G2, prepared for the batch equation's `e(alpha, beta)` term.
    pub(crate) beta_g2: <Bn254 as Pairing>::G2Prepared,
    /// Fixed-base tables of `gamma_abc_g1[i]`: the public-input combination
    /// is the one scalar-multiplication work of a single verification, and
    /// a 254-bit double-and-add per input cost about 10% of the pairing
    /// check; with tables it is about 43 mixed additions per input.
    ic_tables: Vec<FixedBaseTable<g1::Config>>,
    /// Table of `alpha`, for the batch equation's `-(sum r_i) alpha`.
    alpha_table: FixedBaseTable<g1::Config>,
}

impl PreparedKey {
    fn new(key: &CircuitVerifyingKey) -> Self {
        let window = FixedBaseTable::<g1::Config>::VERIFIER_WINDOW;
        Self {
            circuit: key.circuit.clone(),
            retired: false,
            pvk: prepare_verifying_key(&key.vk),
            beta_g2: key.vk.beta_g2.into(),
            ic_tables: key
                .vk
                .gamma_abc_g1
                .iter()
                .map(|p| FixedBaseTable::new(p, window))
                .collect(),
            alpha_table: FixedBaseTable::new(&key.vk.alpha_g1, window),
        }
    }

    pub(crate) fn input_count(&self) -> usize {
        self.pvk.vk.gamma_abc_g1.len() - 1
    }

    /// `gamma_abc_g1[0] + sum_i inputs[i] * gamma_abc_g1[i + 1]`.
    pub(crate) fn prepare_inputs(&self, inputs: &[Fr]) -> G1Projective {
        let mut acc = G1Projective::from(self.pvk.vk.gamma_abc_g1[0]);
        for (table, x) in self.ic_tables[1..].iter().zip(inputs) {
            acc += table.mul(x);
        }
        acc
    }

    /// `constant * gamma_abc_g1[0] + sum_i scalars[i] * gamma_abc_g1[i + 1]`.
    pub(crate) fn input_combination(&self, constant: &Fr, scalars: &[Fr]) -> G1Projective {
        self.ic_tables
            .iter()
            .zip(std::iter::once(constant).chain(scalars))
            .map(|(table, x)| table.mul(x))
            .sum()
    }

    /// `scalar * alpha`.
    pub(crate) fn alpha_times(&self, scalar: &Fr) -> G1Projective {
        self.alpha_table.mul(scalar)
    }
}

/// A proof that passed every structural check but one, ready for the
/// pairings: whether `B` lies in G2 is decided while `B` is prepared for
/// the Miller loop ([`crate::miller`]), at almost no cost.
#[derive(Clone)]
pub(crate) struct CheckedProof<'k> {
    pub(crate) key: &'k PreparedKey,
    pub(crate) proof: Proof<Bn254>,
    pub(crate) inputs: Vec<Fr>,
}

/// A registry of verifying keys and the verification entry points.
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<KeyId, PreparedKey>,
}

impl Verifier {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (and prepares) a key; returns its id.
    pub fn register(&mut self, key: &CircuitVerifyingKey) -> KeyId {
        self.keys.insert(key.key_id, PreparedKey::new(key));
        key.key_id
    }

    /// Retires a key: later proofs under it are rejected with
    /// [`Rejection::RetiredKey`]. Returns whether the key was known.
    pub fn retire(&mut self, key_id: &KeyId) -> bool {
        self.keys
            .get_mut(key_id)
            .map(|k| k.retired = true)
            .is_some()
    }

    /// The circuit a registered key belongs to.
    pub fn circuit_of(&self, key_id: &KeyId) -> Option<&CircuitId> {
        self.keys.get(key_id).map(|k| &k.circuit)
    }

    /// Verifies `proof` (canonical bytes) against `public_inputs` (canonical
    /// 32-byte field elements) under the key `key_id`.
    pub fn verify(
        &self,
        key_id: &KeyId,
        proof: &[u8],
        public_inputs: &[[u8; FIELD_LEN]],
    ) -> Verdict {
        self.check(key_id, proof, public_inputs)
            .and_then(|checked| verify_checked(&checked))
            .into()
    }

    /// Every check short of the pairings.
    pub(crate) fn check(
        &self,
        key_id: &KeyId,
        proof: &[u8],
        public_inputs: &[[u8; FIELD_LEN]],
    ) -> Result<CheckedProof<'_>, Rejection> {
        let key = self
            .keys
            .get(key_id)
            .ok_or(Rejection::UnknownKey(*key_id))?;
        if key.retired {
            return Err(Rejection::RetiredKey(*key_id));
        }
        if public_inputs.len() != key.input_count() {
            return Err(Rejection::WrongPublicInputCount {
                expected: key.input_count(),
                actual: public_inputs.len(),
            });
        }
        let inputs = public_inputs
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                field_from_bytes(bytes).map_err(|_| Rejection::PublicInputOutOfRange { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proof = decode_proof_deferring_g2_check(proof)?;
        Ok(CheckedProof { key, proof, inputs })
    }
}

/// The rest of a single verification: `B`'s subgroup check, then the
/// pairing equation.
pub(crate) fn verify_checked(checked: &CheckedProof<'_>) -> Result<(), Rejection> {
    let b = prepare_checking_g2(&checked.proof.b)
        .ok_or(ProofDecodeError::NotInSubgroup(ProofPoint::B))?;
    if pairing_check(checked, &b) {
        Ok(())
    } else {
        Err(Rejection::InvalidProof)
    }
}

/// `e(A, B) == e(alpha, beta) * e(IC(x), gamma) * e(C, delta)`, as one
/// 3-pair Miller loop and one final exponentiation, with `B` prepared by
/// [`prepare_checking_g2`] (which established that it lies in G2).
///
/// The Miller loop is the single-accumulator loop of [`crate::miller`];
/// for three pairs arkworks' loop has one accumulator too, but also
/// allocates and prepares inside the call.
fn pairing_check(checked: &CheckedProof<'_>, b: &G2Prepared<ark_bn254::Config>) -> bool {
    let pvk = &checked.key.pvk;
    let ic = checked.key.prepare_inputs(&checked.inputs).into_affine();
    let miller = miller_loop(&[
        (&checked.proof.a, b),
        (&ic, &pvk.gamma_g2_neg_pc),
        (&checked.proof.c, &pvk.delta_g2_neg_pc),
    ]);
    Bn254::final_exponentiation(MillerLoopOutput(miller))
        .is_some_and(|PairingOutput(gt)| gt == pvk.alpha_g1_beta_g2)
}
