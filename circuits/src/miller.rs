//! BN254's optimal-ate Miller loop, in the two shapes the verifier needs.
//!
//! - [`miller_loop`] runs over G2 points prepared once (arkworks' line
//!   coefficients): the verifying keys' fixed points, and a lone proof.
//! - [`miller_loop_checking_g2`] runs over a batch of proofs' `B` points in
//!   affine coordinates, and decides on the way whether each `B` lies in
//!   G2.
//!
//! # Why affine for a batch
//! arkworks prepares a G2 point in homogeneous projective coordinates
//! (4 multiplications and 6 squarings in Fp2 per doubling) and stores about
//! 90 line-coefficient triples per point. In affine coordinates every step
//! needs one inversion per point, but the points of a batch are stepped in
//! lockstep, so Montgomery's trick turns a step's inversions into one
//! inversion and three multiplications per point: a doubling then costs
//! about 6 multiplications and 2 squarings. The affine line, divided
//! through by `y_P` (a factor in Fp, which the final exponentiation
//! removes), has a constant 1 in its first slot and multiplies into the
//! accumulator with 10 Fp2 multiplications instead of 13. Below about
//! [`AFFINE_MIN_PROOFS`] points per worker the shared inversion costs more
//! than it saves.
//!
//! # Why the subgroup check comes for free
//! While computing lines for `Q`, the loop computes
//! `T = [6x+2]Q + psi(Q) - psi^2(Q)` (the loop count `6x+2` in signed
//! digits, then the two Frobenius additions). For `Q` in G2, `psi` acts as
//! multiplication by `p`, and `6x + 2 + p - p^2 + p^3 = 0 mod r`, so
//! `T = -psi^3(Q)`. Conversely: the twist's group `E'(Fp2)` has order
//! `r * h2` with `h2 = 2p - r = 10069 * 5864401 * 1875725156269 * l4`
//! (`l4` a 177-bit prime), a squarefree order, so the group is cyclic and
//! the endomorphism `phi = [6x+2] + psi - psi^2 + psi^3` is multiplication
//! by some integer `m`. `phi` kills G2, so `r | m`; the test
//! `phi_kills_exactly_g2` shows it maps a point of each prime order
//! dividing `h2` to a non-zero point, so no such prime divides `m`. Hence
//! `phi(Q) = O` exactly when `Q` is in G2: the same test as
//! [`crate::encoding`]'s, at no extra scalar multiplication.
//!
//! The affine formulas divide by `2 y_T` and `x_T - x_Q'`. For `Q` in G2
//! neither is ever zero (every partial scalar of the loop is a small
//! positive multiple, far from `0` and `+-1` modulo `r`, which the tests
//! confirm on a G2 point: the scalars do not depend on which point). A
//! zero denominator therefore marks `Q` as outside G2.

use ark_bn254::{Config, Fq, Fq12, Fq12Config, Fq2, G1Affine, G2Affine};
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ec::{
    bn::{g2::EllCoeff, BnConfig, G2Prepared, TwistType},
    AffineRepr,
};
use ark_ff::{fields::Fp12Config, AdditiveGroup, Field, MontFp, Zero};

/// Fewest proofs per worker for which [`miller_loop_checking_g2`] beats
/// preparing each point and checking its subgroup separately. Measured
/// with the `batch-verify` benchmark on one thread at 2 to 12 proofs: the
/// affine loop lost at 4 (2.90 against 2.71 ms) and won from 6 (3.16
/// against 3.69 ms; 4.60 against 5.67 ms at 12).
pub(crate) const AFFINE_MIN_PROOFS: usize = 6;

type Lines<'a> = Vec<(&'a G1Affine, std::slice::Iter<'a, EllCoeff<Config>>)>;

/// Multiplies the next prepared line of every pair into `f`.
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

fn prepared_lines<'a>(pairs: &[(&'a G1Affine, &'a G2Prepared<Config>)]) -> Lines<'a> {
    pairs
        .iter()
        .filter(|(p, q)| !p.is_zero() && !q.infinity)
        .map(|(p, q)| (*p, q.ell_coeffs.iter()))
        .collect()
}

/// The Miller loop over pairs with prepared G2 points, with a single Fp12
/// accumulator: `prod_i f_{6x+2, Q_i}(P_i)` times the Frobenius lines
/// (before the final exponentiation).
///
/// Follows the structure of arkworks' `Bn::multi_miller_loop`, whose line
/// coefficients (`G2Prepared::ell_coeffs`) we consume in the same order:
/// one doubling line per digit of the loop count, an addition line for each
/// non-zero digit, and the two Frobenius lines at the end. BN254's twist is
/// of D type, so each line is a sparse Fp12 element multiplied in with
/// `mul_by_034`, and its seed is positive, so no final conjugation is
/// needed. arkworks' own loop keeps one accumulator (and its squarings) per
/// four pairs.
pub(crate) fn miller_loop(pairs: &[(&G1Affine, &G2Prepared<Config>)]) -> Fq12 {
    debug_assert!(matches!(Config::TWIST_TYPE, TwistType::D) && !Config::X_IS_NEGATIVE);
    let mut lines = prepared_lines(pairs);
    let mut f = Fq12::ONE;
    let digits = Config::ATE_LOOP_COUNT;
    for i in (1..digits.len()).rev() {
        if i != digits.len() - 1 {
            f.square_in_place();
        }
        apply_lines(&mut f, &mut lines);
        if matches!(digits[i - 1], 1 | -1) {
            apply_lines(&mut f, &mut lines);
        }
    }
    apply_lines(&mut f, &mut lines);
    apply_lines(&mut f, &mut lines);
    f
}

/// `Q` prepared for [`miller_loop`] exactly as arkworks prepares it
/// (homogeneous projective coordinates, the same formulas and order), and
/// whether `Q` lies in G2, decided from the point the preparation ends on
/// (module docs): `None` if it does not.
///
/// In homogeneous coordinates a zero denominator does not stop the
/// formulas: it sends `T` to a point with `Z = 0`, which they keep at
/// `Z = 0`. The test below therefore refuses `Z = 0` before comparing
/// `T` with `-psi^3(Q)`.
pub(crate) fn prepare_checking_g2(q: &G2Affine) -> Option<G2Prepared<Config>> {
    if q.is_zero() {
        return None;
    }
    let mut t = Projective {
        x: q.x,
        y: q.y,
        z: Fq2::ONE,
    };
    let negated = -*q;
    let mut ell_coeffs = Vec::with_capacity(Config::ATE_LOOP_COUNT.len() + 24);
    for digit in Config::ATE_LOOP_COUNT.iter().rev().skip(1) {
        ell_coeffs.push(t.double());
        match digit {
            1 => ell_coeffs.push(t.add(q)),
            -1 => ell_coeffs.push(t.add(&negated)),
            _ => {}
        }
    }
    let psi1 = psi(q);
    let psi2 = psi(&psi1);
    ell_coeffs.push(t.add(&psi1));
    ell_coeffs.push(t.add(&-psi2));
    let psi3 = psi(&psi2);
    let in_g2 = !t.z.is_zero() && t.x == psi3.x * t.z && t.y == -(psi3.y * t.z);
    in_g2.then_some(G2Prepared {
        ell_coeffs,
        infinity: false,
    })
}

/// `1/2` in Fq: `(p + 1) / 2`.
const TWO_INVERSE: Fq =
    MontFp!("10944121435919637611123202872628637544348155578648911831344518947322613104292");

/// A point of the twist in homogeneous projective coordinates.
struct Projective {
    x: Fq2,
    y: Fq2,
    z: Fq2,
}

impl Projective {
    /// `2T`, and the tangent line's coefficients (Costello, Lange and
    /// Naehrig, ePrint 2009/615; arkworks' layout for a D-type twist).
    fn double(&mut self) -> EllCoeff<Config> {
        let mut a = self.x * self.y;
        a.mul_assign_by_fp(&TWO_INVERSE);
        let b = self.y.square();
        let c = self.z.square();
        let e = <Config as BnConfig>::G2Config::COEFF_B * (c.double() + c);
        let f = e.double() + e;
        let mut g = b + f;
        g.mul_assign_by_fp(&TWO_INVERSE);
        let h = (self.y + self.z).square() - (b + c);
        let i = e - b;
        let j = self.x.square();
        let e_square = e.square();
        self.x = a * (b - f);
        self.y = g.square() - (e_square.double() + e_square);
        self.z = b * h;
        (-h, j.double() + j, i)
    }

    /// `T + Q`, and the coefficients of the line through them.
    fn add(&mut self, q: &G2Affine) -> EllCoeff<Config> {
        let theta = self.y - q.y * self.z;
        let lambda = self.x - q.x * self.z;
        let c = theta.square();
        let d = lambda.square();
        let e = lambda * d;
        let f = self.z * c;
        let g = self.x * d;
        let h = e + f - g.double();
        self.x = lambda * h;
        self.y = theta * (g - h) - e * self.y;
        self.z *= e;
        let j = theta * q.x - lambda * q.y;
        (lambda, -theta, j)
    }
}

/// What [`miller_loop_checking_g2`] found.
pub(crate) struct CheckedLoop {
    /// The Miller loop's product over every pair; meaningful only if every
    /// entry of `in_g2` is true.
    pub(crate) f: Fq12,
    /// Per proof pair, in order: whether its G2 point lies in G2.
    pub(crate) in_g2: Vec<bool>,
}

/// One proof pair's running state.
struct AffinePair {
    q: G2Affine,
    /// The running multiple of `q`.
    t_x: Fq2,
    t_y: Fq2,
    /// `-x_P / y_P` and `1 / y_P`: the line divided through by `y_P`.
    line_x: Fq,
    line_y: Fq,
    /// Whether `P` is not the identity (whose pairing is 1: no lines).
    has_lines: bool,
    /// A zero denominator was met: `q` is not in G2.
    exceptional: bool,
}

/// `psi`, the untwist-Frobenius-twist endomorphism, on an affine point.
fn psi(q: &G2Affine) -> G2Affine {
    let mut x = q.x;
    let mut y = q.y;
    x.frobenius_map_in_place(1);
    y.frobenius_map_in_place(1);
    G2Affine::new_unchecked(x * Config::TWIST_MUL_BY_Q_X, y * Config::TWIST_MUL_BY_Q_Y)
}

/// Inverts every non-zero element in place with one field inversion
/// (Montgomery's trick); zeros stay zero.
fn invert_all<F: Field>(values: &mut [F], prefixes: &mut Vec<F>) {
    prefixes.clear();
    let mut product = F::ONE;
    for v in values.iter() {
        prefixes.push(product);
        if !v.is_zero() {
            product *= v;
        }
    }
    // A product of non-zero field elements is non-zero.
    let Some(mut inverse) = product.inverse() else {
        return;
    };
    for (v, prefix) in values.iter_mut().zip(prefixes.iter()).rev() {
        if v.is_zero() {
            continue;
        }
        let next = inverse * *v;
        *v = inverse * prefix;
        inverse = next;
    }
}

/// `f * (1 + (c3 + c4 v) w)`: a line whose first slot is 1.
fn mul_by_34(f: &mut Fq12, c3: &Fq2, c4: &Fq2) {
    let mut high = f.c1;
    high.mul_by_01(c3, c4);
    let mut low = f.c0;
    low.mul_by_01(c3, c4);
    f.c1 += low;
    Fq12Config::mul_fp6_by_nonresidue_in_place(&mut high);
    f.c0 += high;
}

/// Scratch space reused by every step of one loop.
#[derive(Default)]
struct Scratch {
    denominators: Vec<Fq2>,
    prefixes: Vec<Fq2>,
}

impl AffinePair {
    /// Moves `T` to `T + T'` (a doubling when `other` is `None`) and
    /// multiplies the line through them, evaluated at `P`, into `f`.
    /// `inverse` is `1 / (2 y_T)` or `1 / (x_T - x_Q')`, zero if that was
    /// zero.
    fn step(&mut self, f: &mut Fq12, other: Option<&G2Affine>, inverse: &Fq2) {
        if self.exceptional {
            return;
        }
        if inverse.is_zero() {
            self.exceptional = true;
            return;
        }
        let (lambda, x3) = match other {
            None => {
                let x_sq = self.t_x.square();
                let lambda = (x_sq.double() + x_sq) * inverse;
                (lambda, lambda.square() - self.t_x.double())
            }
            Some(q) => {
                let lambda = (self.t_y - q.y) * inverse;
                (lambda, lambda.square() - self.t_x - q.x)
            }
        };
        // The line through T with slope lambda, at the untwisted P:
        // y_P - lambda x_P w + (lambda x_T - y_T) v w, divided by y_P.
        let mut constant = lambda * self.t_x - self.t_y;
        self.t_y = constant - lambda * x3;
        self.t_x = x3;
        if self.has_lines {
            let mut slope = lambda;
            slope.mul_assign_by_fp(&self.line_x);
            constant.mul_assign_by_fp(&self.line_y);
            mul_by_34(f, &slope, &constant);
        }
    }
}

/// Steps every pair: doubles `T` when `others` is `None`, else adds the
/// pair's own point from `others`.
fn step_all(
    f: &mut Fq12,
    pairs: &mut [AffinePair],
    others: Option<&[G2Affine]>,
    scratch: &mut Scratch,
) {
    scratch.denominators.clear();
    match others {
        None => scratch
            .denominators
            .extend(pairs.iter().map(|pair| pair.t_y.double())),
        Some(others) => scratch
            .denominators
            .extend(pairs.iter().zip(others).map(|(pair, q)| pair.t_x - q.x)),
    }
    invert_all(&mut scratch.denominators, &mut scratch.prefixes);
    for (index, (pair, inverse)) in pairs.iter_mut().zip(&scratch.denominators).enumerate() {
        pair.step(f, others.map(|o| &o[index]), inverse);
    }
}

/// The Miller loop over `proof_pairs` (each a G1 point and a G2 point
/// whose subgroup membership is still unknown) and `key_pairs` (prepared
/// G2 points of verifying keys), with a single accumulator.
///
/// Returns the loop's product and, per proof pair, whether its G2 point is
/// in G2 (module docs). Callers must discard the product unless every
/// proof pair's point is.
pub(crate) fn miller_loop_checking_g2(
    proof_pairs: &[(G1Affine, G2Affine)],
    key_pairs: &[(&G1Affine, &G2Prepared<Config>)],
) -> CheckedLoop {
    debug_assert!(matches!(Config::TWIST_TYPE, TwistType::D) && !Config::X_IS_NEGATIVE);
    let mut y_inverses: Vec<Fq> = proof_pairs.iter().map(|(p, _)| p.y).collect();
    invert_all(&mut y_inverses, &mut Vec::with_capacity(proof_pairs.len()));
    let mut pairs: Vec<AffinePair> = proof_pairs
        .iter()
        .zip(&y_inverses)
        .map(|((p, q), y_inverse)| AffinePair {
            q: *q,
            t_x: q.x,
            t_y: q.y,
            line_x: -(p.x * y_inverse),
            line_y: *y_inverse,
            has_lines: !p.is_zero(),
            // The identity has no affine coordinates to step from.
            exceptional: q.is_zero(),
        })
        .collect();
    let mut key_lines = prepared_lines(key_pairs);
    let mut scratch = Scratch::default();
    let points: Vec<G2Affine> = pairs.iter().map(|pair| pair.q).collect();
    let negated: Vec<G2Affine> = points.iter().map(|q| -*q).collect();

    let mut f = Fq12::ONE;
    let digits = Config::ATE_LOOP_COUNT;
    for i in (1..digits.len()).rev() {
        if i != digits.len() - 1 {
            f.square_in_place();
        }
        step_all(&mut f, &mut pairs, None, &mut scratch);
        apply_lines(&mut f, &mut key_lines);
        let addend = match digits[i - 1] {
            1 => &points,
            -1 => &negated,
            _ => continue,
        };
        step_all(&mut f, &mut pairs, Some(addend), &mut scratch);
        apply_lines(&mut f, &mut key_lines);
    }
    let psi1: Vec<G2Affine> = points.iter().map(psi).collect();
    let psi2: Vec<G2Affine> = psi1.iter().map(psi).collect();
    let neg_psi2: Vec<G2Affine> = psi2.iter().map(|q| -*q).collect();
    step_all(&mut f, &mut pairs, Some(&psi1), &mut scratch);
    apply_lines(&mut f, &mut key_lines);
    step_all(&mut f, &mut pairs, Some(&neg_psi2), &mut scratch);
    apply_lines(&mut f, &mut key_lines);

    // T = [6x+2]Q + psi(Q) - psi^2(Q) must equal -psi^3(Q).
    let in_g2 = pairs
        .iter()
        .zip(&psi2)
        .map(|(pair, psi2)| {
            let psi3 = psi(psi2);
            !pair.exceptional && pair.t_x == psi3.x && pair.t_y == -psi3.y
        })
        .collect();
    CheckedLoop { f, in_g2 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Bn254, Fr, G2Projective};
    use ark_ec::{
        pairing::{MillerLoopOutput, Pairing},
        CurveGroup,
    };
    use ark_ff::{BigInteger, PrimeField, UniformRand};
    use ark_std::test_rng;
    use num_bigint::BigUint;

    fn random_g1(rng: &mut impl rand::RngCore) -> G1Affine {
        (G1Affine::generator() * Fr::rand(rng)).into_affine()
    }

    fn random_g2(rng: &mut impl rand::RngCore) -> G2Affine {
        (G2Affine::generator() * Fr::rand(rng)).into_affine()
    }

    /// A point of the twist, almost surely outside G2.
    fn random_twist_point(rng: &mut impl rand::RngCore) -> G2Affine {
        loop {
            if let Some(p) = G2Affine::get_point_from_x_unchecked(Fq2::rand(rng), false) {
                return p;
            }
        }
    }

    fn final_exp(f: Fq12) -> Fq12 {
        Bn254::final_exponentiation(MillerLoopOutput(f))
            .expect("non-zero")
            .0
    }

    #[test]
    fn single_accumulator_loop_matches_arkworks() {
        let mut rng = test_rng();
        for n in [1usize, 2, 5, 9] {
            let g1: Vec<G1Affine> = (0..n).map(|_| random_g1(&mut rng)).collect();
            let g2: Vec<G2Affine> = (0..n).map(|_| random_g2(&mut rng)).collect();
            let prepared: Vec<G2Prepared<Config>> = g2.iter().map(|q| (*q).into()).collect();
            let pairs: Vec<_> = g1.iter().zip(&prepared).collect();
            let theirs = Bn254::multi_miller_loop(g1.clone(), g2.clone()).0;
            // Miller loop outputs agree up to factors the final
            // exponentiation removes; compare after it.
            assert_eq!(final_exp(miller_loop(&pairs)), final_exp(theirs), "n = {n}");
        }
    }

    #[test]
    fn affine_loop_matches_arkworks_and_accepts_g2_points() {
        let mut rng = test_rng();
        for (proofs, keys) in [(1usize, 0usize), (3, 0), (8, 3), (17, 6)] {
            let g1: Vec<G1Affine> = (0..proofs + keys).map(|_| random_g1(&mut rng)).collect();
            let g2: Vec<G2Affine> = (0..proofs + keys).map(|_| random_g2(&mut rng)).collect();
            let proof_pairs: Vec<(G1Affine, G2Affine)> = g1[..proofs]
                .iter()
                .copied()
                .zip(g2[..proofs].iter().copied())
                .collect();
            let prepared: Vec<G2Prepared<Config>> =
                g2[proofs..].iter().map(|q| (*q).into()).collect();
            let key_pairs: Vec<_> = g1[proofs..].iter().zip(&prepared).collect();
            let ours = miller_loop_checking_g2(&proof_pairs, &key_pairs);
            assert!(ours.in_g2.iter().all(|&ok| ok), "a G2 point was refused");
            let theirs = Bn254::multi_miller_loop(g1, g2).0;
            assert_eq!(
                final_exp(ours.f),
                final_exp(theirs),
                "{proofs} + {keys} pairs"
            );
        }
    }

    #[test]
    fn affine_loop_skips_the_identity_in_g1() {
        let mut rng = test_rng();
        let q = random_g2(&mut rng);
        let p = random_g1(&mut rng);
        let with_identity =
            miller_loop_checking_g2(&[(G1Affine::identity(), random_g2(&mut rng)), (p, q)], &[]);
        assert_eq!(with_identity.in_g2, vec![true, true]);
        let alone = miller_loop_checking_g2(&[(p, q)], &[]);
        assert_eq!(final_exp(with_identity.f), final_exp(alone.f));
    }

    /// `h2 = #E'(Fp2) / r`, and its prime factors.
    fn cofactor_primes() -> (BigUint, Vec<BigUint>) {
        let h2: BigUint =
            "21888242871839275222246405745257275088844257914179612981679871602714643921549"
                .parse()
                .expect("decimal");
        let primes: Vec<BigUint> = [
            "10069",
            "5864401",
            "1875725156269",
            "197620364512881247228717050342013327560683201906968909",
        ]
        .iter()
        .map(|s| s.parse().expect("decimal"))
        .collect();
        (h2, primes)
    }

    fn times(p: &G2Affine, k: &BigUint) -> G2Projective {
        p.mul_bigint(k.to_u64_digits())
    }

    #[test]
    fn phi_kills_exactly_g2() {
        let (h2, primes) = cofactor_primes();
        let r = BigUint::from_bytes_le(&Fr::MODULUS.to_bytes_le());
        let p = BigUint::from_bytes_le(&Fq::MODULUS.to_bytes_le());
        // The structure the module docs rely on: h2 = 2p - r is the
        // squarefree product of these primes, coprime to r.
        assert_eq!(&p * 2u32 - &r, h2);
        assert_eq!(primes.iter().product::<BigUint>(), h2);
        let mut rng = test_rng();
        let point = random_twist_point(&mut rng);
        assert!(times(&point, &(&r * &h2)).is_zero(), "#E'(Fp2) = r * h2");
        for l in &primes {
            assert!(!(&r % l).is_zero() && !(&h2 / l % l).is_zero());
            // A point of order exactly l, alone and hidden behind a G2 point.
            let small = times(&point, &(&r * &h2 / l)).into_affine();
            assert!(!small.is_zero() && times(&small, l).is_zero());
            let hidden = (small + random_g2(&mut rng)).into_affine();
            let g1 = random_g1(&mut rng);
            let found = miller_loop_checking_g2(&[(g1, small), (g1, hidden)], &[]);
            assert_eq!(found.in_g2, vec![false, false], "order {l}");
            // And phi(small) != O as a point, whatever the loop's
            // exceptional cases: phi as scalar multiplications.
            let x6_2 = BigUint::from(6u32) * BigUint::from(Config::X[0]) + 2u32;
            let phi = times(&small, &x6_2) + psi(&small).into_group()
                - psi(&psi(&small)).into_group()
                + psi(&psi(&psi(&small))).into_group();
            assert!(!phi.is_zero(), "phi kills a point of order {l}");
        }
        // A random twist point is caught too; G2's generator passes.
        let g1 = random_g1(&mut rng);
        let found = miller_loop_checking_g2(&[(g1, point), (g1, G2Affine::generator())], &[]);
        assert_eq!(found.in_g2, vec![false, true]);
    }

    #[test]
    fn projective_preparation_matches_arkworks_and_checks_g2() {
        assert_eq!(TWO_INVERSE.double(), Fq::ONE);
        let mut rng = test_rng();
        for _ in 0..4 {
            let q = random_g2(&mut rng);
            let ours = prepare_checking_g2(&q).expect("a G2 point is accepted");
            assert_eq!(ours, G2Prepared::<Config>::from(q));
        }
        let (h2, primes) = cofactor_primes();
        let r = BigUint::from_bytes_le(&Fr::MODULUS.to_bytes_le());
        let point = random_twist_point(&mut rng);
        assert!(prepare_checking_g2(&point).is_none());
        for l in &primes {
            let small = times(&point, &(&r * &h2 / l)).into_affine();
            let hidden = (small + random_g2(&mut rng)).into_affine();
            assert!(prepare_checking_g2(&small).is_none(), "order {l}");
            assert!(prepare_checking_g2(&hidden).is_none(), "order {l} hidden");
        }
        assert!(prepare_checking_g2(&G2Affine::identity()).is_none());
    }

    #[test]
    fn montgomery_inversion_leaves_zeros_and_inverts_the_rest() {
        let mut rng = test_rng();
        let mut values: Vec<Fq2> = (0..7).map(|_| Fq2::rand(&mut rng)).collect();
        values[0] = Fq2::ZERO;
        values[4] = Fq2::ZERO;
        let expected: Vec<Fq2> = values
            .iter()
            .map(|v| v.inverse().unwrap_or(Fq2::ZERO))
            .collect();
        invert_all(&mut values, &mut Vec::new());
        assert_eq!(values, expected);
        let mut empty: Vec<Fq2> = Vec::new();
        invert_all(&mut empty, &mut Vec::new());
    }
}
