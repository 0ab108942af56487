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

use ark_bn254::{g1, Bn254, Fq12, Fr, G1Affine, G1Projective};
use ark_ec::{
    bn::{g2::EllCoeff, BnConfig, G2Prepared, TwistType},
    pairing::{MillerLoopOutput, Pairing},
    scalar_mul::glv::GLVConfig,
    AffineRepr, CurveGroup, VariableBaseMSM,
};
use ark_ff::{AdditiveGroup, Field};
use rand::Rng;
use rayon::prelude::*;

use crate::{
    encoding::FIELD_LEN,
    keys::KeyId,
    verifier::{pairing_check, CheckedProof, PreparedKey, Rejection, Verdict, Verifier},
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
    /// The 64-bit parts `a_i`, `b_i` of each proof's `r_i`.
    c_low: Vec<u64>,
    c_high: Vec<u64>,
}

/// Checks the randomized batch equation for `group`.
fn batch_holds(group: &[(usize, CheckedProof<'_>)]) -> bool {
    let mut rng = rand::thread_rng();
    // Each r_i is a_i + b_i * lambda for uniform 64-bit a_i, b_i: see
    // `glv_scalar`.
    let halves: Vec<(u64, u64)> = group.iter().map(|_| (rng.gen(), rng.gen())).collect();
    let scalars: Vec<Fr> = halves.iter().map(|&(a, b)| glv_scalar(a, b)).collect();

    let mut per_key: HashMap<*const PreparedKey, KeyTerms<'_>> = HashMap::new();
    for (((_, checked), r), &(lo, hi)) in group.iter().zip(&scalars).zip(&halves) {
        let terms = per_key
            .entry(std::ptr::from_ref(checked.key))
            .or_insert_with(|| KeyTerms {
                key: checked.key,
                scalar_sum: Fr::ZERO,
                input_sums: vec![Fr::ZERO; checked.key.input_count()],
                c_points: Vec::new(),
                c_low: Vec::new(),
                c_high: Vec::new(),
            });
        terms.scalar_sum += r;
        for (sum, x) in terms.input_sums.iter_mut().zip(&checked.inputs) {
            *sum += *r * x;
        }
        terms.c_points.push(checked.proof.c);
        terms.c_low.push(lo);
        terms.c_high.push(hi);
    }

    let scaled_a: Vec<G1Projective> = group
        .par_iter()
        .zip(&scalars)
        .map(|((_, checked), _)| checked)
        .zip(&halves)
        .map(|(checked, &(a, b))| mul_glv_u64(&checked.proof.a, a, b))
        .collect();
    let scaled_a = G1Projective::normalize_batch(&scaled_a);
    // Preparing B (its line coefficients) is a third of a pairing's Miller
    // loop work and independent per proof: do it in parallel up front.
    let prepared_b: Vec<G2Prepared<ark_bn254::Config>> = group
        .par_iter()
        .map(|(_, checked)| checked.proof.b.into())
        .collect();

    let mut key_g1 = Vec::with_capacity(3 * per_key.len());
    let mut key_g2 = Vec::with_capacity(3 * per_key.len());
    for terms in per_key.values() {
        let pvk = &terms.key.pvk;
        let alpha = terms.key.alpha_times(&-terms.scalar_sum);
        let ic = terms
            .key
            .input_combination(&terms.scalar_sum, &terms.input_sums);
        let c = c_sum(&terms.c_points, &terms.c_low, &terms.c_high);
        key_g1.extend([alpha, ic, c]);
        key_g2.extend([
            &terms.key.beta_g2,
            &pvk.gamma_g2_neg_pc,
            &pvk.delta_g2_neg_pc,
        ]);
    }
    let key_g1 = G1Projective::normalize_batch(&key_g1);

    let pairs: Vec<(&G1Affine, &G2Prepared<ark_bn254::Config>)> = scaled_a
        .iter()
        .zip(&prepared_b)
        .chain(key_g1.iter().zip(key_g2))
        .collect();
    // One accumulator per worker: every pair of a worker shares the Fp12
    // squarings, where arkworks' loop pays them once per four pairs.
    let chunk = pairs.len().div_ceil(rayon::current_num_threads()).max(1);
    let miller = pairs
        .par_chunks(chunk)
        .map(miller_loop)
        .reduce(|| Fq12::ONE, |x, y| x * y);

    Bn254::final_exponentiation(MillerLoopOutput(miller)).is_some_and(|gt| gt.0 == Fq12::ONE)
}

/// `a + b * lambda`, where `lambda` is the eigenvalue of G1's endomorphism
/// `phi(x, y) = (beta * x, y)`: `phi(P) = lambda * P` on the prime-order G1.
///
/// The batch check is sound when each `r_i` is drawn uniformly from a set
/// of 2^128 scalars (a false proof then survives with probability at most
/// 2^-128, whatever the other scalars). `(a, b) -> a + b * lambda mod r` is
/// injective on pairs of 64-bit integers: a collision would be a non-zero
/// vector of the lattice `{(u, v) : u + v * lambda = 0 mod r}` with both
/// coordinates below 2^64 in absolute value, and that lattice (determinant
/// r, about 2^254) has no vector shorter than about 2^126 (its reduced basis
/// is arkworks' GLV decomposition basis, whose vectors are about 2^127
/// long). So the `r_i` are uniform on 2^128 values, as before, but
/// `r_i * A_i = a_i * A_i + b_i * phi(A_i)` is a 64-bit double
/// multiplication instead of a 128-bit one.
fn glv_scalar(a: u64, b: u64) -> Fr {
    Fr::from(a) + Fr::from(b) * <g1::Config as GLVConfig>::LAMBDA
}

/// `a * P + b * phi(P)` (= `glv_scalar(a, b) * P`), by Shamir's trick: 64
/// doublings and one addition per non-zero bit pair.
fn mul_glv_u64(p: &G1Affine, a: u64, b: u64) -> G1Projective {
    let phi = <g1::Config as GLVConfig>::endomorphism_affine(p);
    let both = *p + phi;
    let mut acc = G1Projective::ZERO;
    for bit in (0..64).rev() {
        acc.double_in_place();
        match ((a >> bit) & 1, (b >> bit) & 1) {
            (1, 0) => acc += p,
            (0, 1) => acc += &phi,
            (1, 1) => acc += &both,
            _ => {}
        }
    }
    acc
}

/// `sum_i r_i C_i` with `r_i = a_i + b_i * lambda`, as two 64-bit MSMs:
/// `sum a_i C_i + phi(sum b_i C_i)`.
///
/// arkworks' general MSM windows over all 254 bits of the scalar field
/// and, with `parallel`, builds a rayon pool on every call: it took 29% of
/// a 64-proof batch. Its 64-bit MSM runs serially in the calling worker.
fn c_sum(points: &[G1Affine], low: &[u64], high: &[u64]) -> G1Projective {
    let low_sum = G1Projective::msm_u64(points, low);
    let high_sum = G1Projective::msm_u64(points, high);
    low_sum + <g1::Config as GLVConfig>::endomorphism(&high_sum)
}

type Lines<'a> = Vec<(
    &'a G1Affine,
    std::slice::Iter<'a, EllCoeff<ark_bn254::Config>>,
)>;

/// Multiplies the next line of every pair into `f`.
fn apply_lines(f: &mut Fq12, lines: &mut Lines<'_>) {
    for (p, coefficients) in lines.iter_mut() {
        // A prepared point has exactly one coefficient per line; a
        // shortfall would only make the check fail, never pass.
        if let Some((c0, c1, c2)) = coefficients.next() {
            let mut c0 = *c0;
            let mut c1 = *c1;
            c0.mul_assign_by_fp(&p.y);
            c1.mul_assign_by_fp(&p.x);
            f.mul_by_034(&c0, &c1, c2);
        }
    }
}

/// The optimal-ate Miller loop of BN254 over many pairs with a single Fp12
/// accumulator: `prod_i f_{u, Q_i}(P_i)` (before the final exponentiation).
///
/// Follows the structure of arkworks' `Bn::multi_miller_loop`, whose line
/// coefficients (`G2Prepared::ell_coeffs`) we consume in the same order:
/// one doubling line per bit of the loop count, an addition line for each
/// non-zero digit, and the two Frobenius lines at the end. BN254's twist is
/// of D type, so each line is a sparse Fp12 element multiplied in with
/// `mul_by_034`, and its loop parameter is positive, so no final
/// conjugation is needed.
pub(crate) fn miller_loop(pairs: &[(&G1Affine, &G2Prepared<ark_bn254::Config>)]) -> Fq12 {
    type Config = ark_bn254::Config;
    debug_assert!(matches!(Config::TWIST_TYPE, TwistType::D) && !Config::X_IS_NEGATIVE);
    let mut lines: Lines<'_> = pairs
        .iter()
        .filter(|(p, q)| !p.is_zero() && !q.infinity)
        .map(|(p, q)| (*p, q.ell_coeffs.iter()))
        .collect();
    let mut f = Fq12::ONE;
    let loop_count = Config::ATE_LOOP_COUNT;
    for i in (1..loop_count.len()).rev() {
        if i != loop_count.len() - 1 {
            f.square_in_place();
        }
        apply_lines(&mut f, &mut lines);
        if matches!(loop_count[i - 1], 1 | -1) {
            apply_lines(&mut f, &mut lines);
        }
    }
    apply_lines(&mut f, &mut lines);
    apply_lines(&mut f, &mut lines);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::G2Affine;
    use ark_ff::UniformRand;
    use ark_std::test_rng;

    #[test]
    fn glv_randomness_multiplies_like_its_scalar() {
        let mut rng = test_rng();
        let p = (G1Affine::generator() * Fr::rand(&mut rng)).into_affine();
        // phi really is multiplication by lambda on G1.
        assert_eq!(
            <g1::Config as GLVConfig>::endomorphism_affine(&p),
            (p * <g1::Config as GLVConfig>::LAMBDA).into_affine()
        );
        for (a, b) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (u64::MAX, u64::MAX),
            (rng.gen(), rng.gen()),
        ] {
            assert_eq!(
                mul_glv_u64(&p, a, b),
                p * glv_scalar(a, b),
                "a = {a}, b = {b}"
            );
        }
        let points: Vec<G1Affine> = (0..5)
            .map(|_| (G1Affine::generator() * Fr::rand(&mut rng)).into_affine())
            .collect();
        let (low, high): (Vec<u64>, Vec<u64>) =
            (0..5).map(|_| (rng.gen::<u64>(), rng.gen::<u64>())).unzip();
        let expected: G1Projective = points
            .iter()
            .zip(low.iter().zip(&high))
            .map(|(p, (&a, &b))| *p * glv_scalar(a, b))
            .sum();
        assert_eq!(c_sum(&points, &low, &high), expected);
        // Distinct small pairs give distinct scalars (injectivity, spot check).
        assert_ne!(glv_scalar(1, 0), glv_scalar(0, 1));
    }

    #[test]
    fn single_accumulator_loop_matches_arkworks() {
        let mut rng = test_rng();
        for n in [1usize, 2, 5, 9] {
            let g1: Vec<G1Affine> = (0..n)
                .map(|_| (G1Affine::generator() * Fr::rand(&mut rng)).into_affine())
                .collect();
            let g2: Vec<G2Affine> = (0..n)
                .map(|_| (G2Affine::generator() * Fr::rand(&mut rng)).into_affine())
                .collect();
            let prepared: Vec<G2Prepared<ark_bn254::Config>> =
                g2.iter().map(|q| (*q).into()).collect();
            let pairs: Vec<_> = g1.iter().zip(&prepared).collect();
            let ours = miller_loop(&pairs);
            let theirs = Bn254::multi_miller_loop(g1.clone(), g2.clone()).0;
            // Miller loop outputs agree up to factors the final
            // exponentiation removes; compare after it.
            assert_eq!(
                Bn254::final_exponentiation(MillerLoopOutput(ours)),
                Bn254::final_exponentiation(MillerLoopOutput(theirs)),
                "n = {n}"
            );
        }
    }
}
