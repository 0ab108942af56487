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
//! Each proof's `B` must lie in G2 before its pairing means anything. The
//! Miller loop's own arithmetic on `B` decides it (module `miller`): for
//! batches of at least six proofs per worker the loop steps every `B` in
//! affine coordinates with shared inversions; smaller batches prepare each
//! `B` in projective coordinates first. A `B` outside G2 is refused as
//! malformed, and the rest of the batch is checked again without it.
//!
//! Trade-offs: a single proof costs about 1.5x a plain verification (the
//! extra scalar multiplications), so callers should verify lone proofs with
//! [`Verifier::verify`]; and when a batch fails we bisect, re-checking each
//! half with fresh scalars, down to single verifications, so one bad proof
//! among `N` costs about `2 log2 N` extra batch checks, and every proof
//! still gets its own verdict.

use std::collections::HashMap;

use ark_bn254::{g1, Bn254, Fq12, Fr, G1Affine, G1Projective, G2Affine};
use ark_ec::{
    bn::G2Prepared,
    pairing::{MillerLoopOutput, Pairing},
    scalar_mul::glv::GLVConfig,
    CurveGroup, VariableBaseMSM,
};
use ark_ff::{AdditiveGroup, Field};
use rand::Rng;
use rayon::prelude::*;

use crate::{
    encoding::{ProofDecodeError, ProofPoint, FIELD_LEN},
    keys::KeyId,
    miller::{
        miller_loop, miller_loop_checking_g2, prepare_checking_g2, CheckedLoop, AFFINE_MIN_PROOFS,
    },
    verifier::{verify_checked, CheckedProof, PreparedKey, Rejection, Verdict, Verifier},
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
        // `B`'s subgroup check waits for the Miller loop, which does it
        // almost for free (`crate::miller`).
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
        let mut refused = Vec::new();
        find_invalid(&candidates, &mut refused);
        for (index, rejection) in refused {
            verdicts[index] = Verdict::Rejected(rejection);
        }
        verdicts
    }
}

/// Appends to `refused` the indices of the proofs in `group` that do not
/// verify, with the reason, bisecting failed batches.
fn find_invalid(group: &[(usize, CheckedProof<'_>)], refused: &mut Vec<(usize, Rejection)>) {
    match group {
        [] => {}
        [(index, single)] => {
            if let Err(rejection) = verify_checked(single) {
                refused.push((*index, rejection));
            }
        }
        _ => match batch_check(group) {
            BatchCheck::Holds => {}
            BatchCheck::OutsideG2(positions) => {
                // Only a forged `B` lands here; the rest is checked again
                // without it.
                let mut rest = Vec::with_capacity(group.len() - positions.len());
                for (position, (index, checked)) in group.iter().enumerate() {
                    if positions.binary_search(&position).is_ok() {
                        refused.push((
                            *index,
                            ProofDecodeError::NotInSubgroup(ProofPoint::B).into(),
                        ));
                    } else {
                        rest.push((*index, checked.clone()));
                    }
                }
                find_invalid(&rest, refused);
            }
            BatchCheck::Fails => {
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
                refused.extend(bad_left);
            }
        },
    }
}

/// The outcome of one randomized batch equation.
enum BatchCheck {
    /// Every proof verifies (up to the 2^-128 soundness error).
    Holds,
    /// Some proof does not verify.
    Fails,
    /// These positions in the group (ascending) have a `B` outside G2; the
    /// equation was not evaluated.
    OutsideG2(Vec<usize>),
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

/// Checks the randomized batch equation for `group`, and every deferred
/// G2 subgroup check.
fn batch_check(group: &[(usize, CheckedProof<'_>)]) -> BatchCheck {
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

    let per_key: Vec<KeyTerms<'_>> = per_key.into_values().collect();
    // The per-key terms (three small MSMs per key) run beside the scaling
    // of the A points: on two threads, serial work here is what keeps a
    // batch from halving its time.
    let (scaled_a, (key_g1, key_g2)) = rayon::join(
        || {
            let scaled: Vec<G1Projective> = group
                .par_iter()
                .zip(&halves)
                .map(|((_, checked), &(a, b))| mul_glv_u64(&checked.proof.a, a, b))
                .collect();
            G1Projective::normalize_batch(&scaled)
        },
        || {
            let terms: Vec<_> = per_key
                .par_iter()
                .map(|terms| {
                    let pvk = &terms.key.pvk;
                    let alpha = terms.key.alpha_times(&-terms.scalar_sum);
                    let ic = terms
                        .key
                        .input_combination(&terms.scalar_sum, &terms.input_sums);
                    let c = c_sum(&terms.c_points, &terms.c_low, &terms.c_high);
                    (
                        [alpha, ic, c],
                        [
                            &terms.key.beta_g2,
                            &pvk.gamma_g2_neg_pc,
                            &pvk.delta_g2_neg_pc,
                        ],
                    )
                })
                .collect();
            let g1: Vec<G1Projective> = terms.iter().flat_map(|(g1, _)| *g1).collect();
            let g2: Vec<&G2Prepared<ark_bn254::Config>> =
                terms.iter().flat_map(|(_, g2)| *g2).collect();
            (G1Projective::normalize_batch(&g1), g2)
        },
    );
    let key_pairs: Vec<(&G1Affine, &G2Prepared<ark_bn254::Config>)> =
        key_g1.iter().zip(key_g2).collect();

    // One accumulator per worker: every pair of a worker shares the Fp12
    // squarings, where arkworks' loop pays them once per four pairs.
    let workers = rayon::current_num_threads().clamp(1, group.len());
    let chunk = group.len().div_ceil(workers);
    let miller = if chunk >= AFFINE_MIN_PROOFS {
        let proof_pairs: Vec<(G1Affine, G2Affine)> = scaled_a
            .iter()
            .zip(group)
            .map(|(a, (_, checked))| (*a, checked.proof.b))
            .collect();
        // The keys' pairs ride with the first worker's proofs. A prepared
        // pair costs about three quarters of a proof's affine pair per
        // step, so that worker takes fewer proofs and all finish together.
        let key_weight = key_pairs.len() * 3 / 4;
        let per_worker = (proof_pairs.len() + key_weight).div_ceil(workers);
        let first = per_worker
            .saturating_sub(key_weight)
            .clamp(1, proof_pairs.len());
        let (with_keys, rest) = proof_pairs.split_at(first);
        let rest_chunk = rest.len().div_ceil(workers.saturating_sub(1).max(1)).max(1);
        let chunks: Vec<(&[(G1Affine, G2Affine)], &[_])> =
            std::iter::once((with_keys, &key_pairs[..]))
                .chain(rest.chunks(rest_chunk).map(|pairs| (pairs, &[][..])))
                .collect();
        let loops: Vec<CheckedLoop> = chunks
            .into_par_iter()
            .map(|(pairs, keys)| miller_loop_checking_g2(pairs, keys))
            .collect();
        let outside: Vec<usize> = loops
            .iter()
            .flat_map(|l| &l.in_g2)
            .enumerate()
            .filter(|(_, in_g2)| !**in_g2)
            .map(|(position, _)| position)
            .collect();
        if !outside.is_empty() {
            return BatchCheck::OutsideG2(outside);
        }
        loops.iter().fold(Fq12::ONE, |acc, l| acc * l.f)
    } else {
        // Preparing B (its line coefficients) is a third of a pairing's
        // Miller loop work and independent per proof: do it in parallel up
        // front, deciding on the way whether B is in G2.
        let prepared_b: Vec<Option<G2Prepared<ark_bn254::Config>>> = group
            .par_iter()
            .map(|(_, checked)| prepare_checking_g2(&checked.proof.b))
            .collect();
        let outside: Vec<usize> = prepared_b
            .iter()
            .enumerate()
            .filter(|(_, prepared)| prepared.is_none())
            .map(|(position, _)| position)
            .collect();
        if !outside.is_empty() {
            return BatchCheck::OutsideG2(outside);
        }
        let prepared_b: Vec<G2Prepared<ark_bn254::Config>> =
            prepared_b.into_iter().flatten().collect();
        let pairs: Vec<(&G1Affine, &G2Prepared<ark_bn254::Config>)> =
            scaled_a.iter().zip(&prepared_b).chain(key_pairs).collect();
        let chunk = pairs.len().div_ceil(workers);
        pairs
            .par_chunks(chunk)
            .map(miller_loop)
            .reduce(|| Fq12::ONE, |x, y| x * y)
    };

    if Bn254::final_exponentiation(MillerLoopOutput(miller)).is_some_and(|gt| gt.0 == Fq12::ONE) {
        BatchCheck::Holds
    } else {
        BatchCheck::Fails
    }
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
/// a 64-proof batch. Its 64-bit MSM runs serially in the calling worker;
/// the two halves run side by side.
fn c_sum(points: &[G1Affine], low: &[u64], high: &[u64]) -> G1Projective {
    let (low_sum, high_sum) = rayon::join(
        || G1Projective::msm_u64(points, low),
        || G1Projective::msm_u64(points, high),
    );
    low_sum + <g1::Config as GLVConfig>::endomorphism(&high_sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::AffineRepr;
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
}
