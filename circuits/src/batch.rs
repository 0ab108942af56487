//! Batch verification by random linear combination.
//!
//! For proofs `i` under keys `k(i)`, each Groth16 equation reads
//! `e(A_i, B_i) = e(alpha, beta) * e(IC_i, gamma) * e(C_i, delta)`. With
//! fresh random 128-bit scalars `r_i` we check the single equation
//!
//! ```text
//! prod_i e(r_i A_i, B_i)
//!   * prod_k e(-(sum r_i) alpha_k, beta_k) * e(sum r_i IC_i, -gamma_k) * e(sum r_i C_i, -delta_k) = 1
//! ```
//!
//! with one Miller loop over `N + 3K` pairs and one final exponentiation
//! for the whole batch, instead of `N` final exponentiations and `3N`
//! pairs. A batch containing a false proof passes with probability at most
//! about 2^-128 over the choice of the `r_i`, which the verifier draws from
//! a CSPRNG after the proofs are fixed, so a prover cannot anticipate them.
//!
//! Trade-offs: a single proof costs about 1.5x a plain verification (the
//! extra scalar multiplications), so callers should verify lone proofs with
//! [`Verifier::verify`]; and when a batch fails we bisect, re-checking each
//! half with fresh scalars, down to single verifications, so one bad proof
//! among `N` costs about `2 log2 N` extra batch checks, and every proof
//! still gets its own verdict.

use std::collections::HashMap;

use ark_bn254::{Bn254, Fq12, Fr, G1Affine, G1Projective};
use ark_ec::{
    pairing::{MillerLoopOutput, Pairing},
    CurveGroup, VariableBaseMSM,
};
use ark_ff::{AdditiveGroup, Field};
use rand::Rng;
use rayon::prelude::*;

use crate::{
    encoding::FIELD_LEN,
    keys::KeyId,
    verifier::{
        linear_combination, pairing_check, CheckedProof, PreparedKey, Rejection, Verdict, Verifier,
    },
};

/// One proof to verify in a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The key the proof claims.
    pub key_id: &'a KeyId,
    /// The proof, canonically encoded.
    pub proof: &'a [u8],
    /// The public inputs, canonically encoded.
    pub public_inputs: &'a [[u8; FIELD_LEN]],
}

impl Verifier {
    /// Verifies many proofs (under one or several keys) together and returns
    /// each proof's own verdict, in order.
    pub fn verify_batch(&self, items: &[BatchItem<'_>]) -> Vec<Verdict> {
        let checked: Vec<Result<CheckedProof<'_>, Rejection>> = items
            .par_iter()
            .map(|item| self.check(item.key_id, item.proof, item.public_inputs))
            .collect();
        let mut verdicts = Vec::with_capacity(items.len());
        let mut candidates = Vec::new();
        for (index, result) in checked.into_iter().enumerate() {
            match result {
                Ok(proof) => {
                    candidates.push((index, proof));
                    verdicts.push(Verdict::Accepted);
                }
                Err(rejection) => verdicts.push(Verdict::Rejected(rejection)),
            }
        }
        let mut invalid = Vec::new();
        find_invalid(&candidates, &mut invalid);
        for index in invalid {
            verdicts[index] = Verdict::Rejected(Rejection::InvalidProof);
        }
        verdicts
    }
}

/// Appends to `invalid` the indices of the proofs in `group` that do not
/// verify, bisecting failed batches.
fn find_invalid(group: &[(usize, CheckedProof<'_>)], invalid: &mut Vec<usize>) {
    match group {
        [] => {}
        [(index, single)] => {
            if !pairing_check(single) {
                invalid.push(*index);
            }
        }
        _ => {
            if batch_holds(group) {
                return;
            }
            let (left, right) = group.split_at(group.len() / 2);
            let (mut bad_left, bad_right) = rayon::join(
                || {
                    let mut v = Vec::new();
                    find_invalid(left, &mut v);
                    v
                },
                || {
                    let mut v = Vec::new();
                    find_invalid(right, &mut v);
                    v
                },
            );
            bad_left.extend(bad_right);
            invalid.extend(bad_left);
        }
    }
}

/// Per-key sums of the batch equation.
struct KeyTerms<'k> {
    key: &'k PreparedKey,
    scalar_sum: Fr,
    /// `sum_i r_i * x_i` for each public input position.
    input_sums: Vec<Fr>,
    c_points: Vec<G1Affine>,
    c_scalars: Vec<Fr>,
}

/// Checks the randomized batch equation for `group`.
fn batch_holds(group: &[(usize, CheckedProof<'_>)]) -> bool {
    let mut rng = rand::thread_rng();
    let scalars: Vec<Fr> = group.iter().map(|_| Fr::from(rng.gen::<u128>())).collect();

    let mut per_key: HashMap<*const PreparedKey, KeyTerms<'_>> = HashMap::new();
    for ((_, checked), r) in group.iter().zip(&scalars) {
        let terms = per_key
            .entry(std::ptr::from_ref(checked.key))
            .or_insert_with(|| KeyTerms {
                key: checked.key,
                scalar_sum: Fr::ZERO,
                input_sums: vec![Fr::ZERO; checked.key.input_count()],
                c_points: Vec::new(),
                c_scalars: Vec::new(),
            });
        terms.scalar_sum += r;
        for (sum, x) in terms.input_sums.iter_mut().zip(&checked.inputs) {
            *sum += *r * x;
        }
        terms.c_points.push(checked.proof.c);
        terms.c_scalars.push(*r);
    }

    let scaled_a: Vec<G1Projective> = group
        .par_iter()
        .zip(&scalars)
        .map(|((_, checked), r)| checked.proof.a * r)
        .collect();
    let scaled_a = G1Projective::normalize_batch(&scaled_a);

    // One multi-Miller loop per worker, so pairs share the Fp12 squarings
    // of their accumulator instead of paying them once per proof.
    let chunk = scaled_a.len().div_ceil(rayon::current_num_threads()).max(1);
    let proof_loop = scaled_a
        .par_chunks(chunk)
        .zip(group.par_chunks(chunk))
        .map(|(a, proofs)| {
            Bn254::multi_miller_loop(a.iter().copied(), proofs.iter().map(|(_, p)| p.proof.b)).0
        })
        .reduce(|| Fq12::ONE, |x, y| x * y);

    let mut key_g1 = Vec::with_capacity(3 * per_key.len());
    let mut key_g2 = Vec::with_capacity(3 * per_key.len());
    for terms in per_key.values() {
        let pvk = &terms.key.pvk;
        let alpha = G1Projective::from(pvk.vk.alpha_g1) * -terms.scalar_sum;
        let ic = linear_combination(&pvk.vk.gamma_abc_g1, terms.scalar_sum, &terms.input_sums);
        let c = G1Projective::msm_unchecked(&terms.c_points, &terms.c_scalars);
        key_g1.extend([alpha, ic, c]);
        key_g2.extend([
            terms.key.beta_g2.clone(),
            pvk.gamma_g2_neg_pc.clone(),
            pvk.delta_g2_neg_pc.clone(),
        ]);
    }
    let key_g1 = G1Projective::normalize_batch(&key_g1);
    let key_loop = Bn254::multi_miller_loop(key_g1, key_g2).0;

    Bn254::final_exponentiation(MillerLoopOutput(proof_loop * key_loop))
        .is_some_and(|gt| gt.0 == Fq12::ONE)
}
