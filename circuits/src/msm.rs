//! Multi-scalar multiplication over fixed bases: the proving key's query
//! points and the verifying key's input points never change, so we pay for
//! their multiples once, when a key is loaded, instead of on every proof.
//!
//! [`FixedBaseMsm`] stores, for each non-identity base `P_i`, the points
//! `2^(c*j) * P_i` for every window `j`. A multi-scalar multiplication then
//! needs a single set of `2^(c-1)` buckets shared by all windows (signed
//! digits in `[-2^(c-1), 2^(c-1)]`): one bucket accumulation per non-zero
//! digit and one bucket reduction, and no doublings at all. Plain Pippenger
//! (arkworks' `VariableBaseMSM`) repeats the reduction and `c` doublings in
//! every one of its `254 / c` windows. Zero scalars cost nothing and small
//! ones (the 0/1 bits of range checks) only their few non-zero digits.
//!
//! [`FixedBaseTable`] is the single-scalar version for a handful of points
//! (a verifying key's `alpha` and input points): every signed digit's
//! multiple is stored, so `s * P` is about `254 / c` mixed additions.
//!
//! Both are arkworks group arithmetic (`Bucket`'s extended Jacobian mixed
//! additions) over tables we build; the tests compare them with arkworks'
//! own multiplication.

use ark_ec::{
    short_weierstrass::{Affine, Bucket, Projective, SWCurveConfig},
    AffineRepr, CurveGroup,
};
use ark_ff::{AdditiveGroup, BigInteger, Field, PrimeField};
use rayon::prelude::*;

/// Signed base-`2^c` digits of `scalar` (little-endian limbs), least
/// significant first, each in `[-2^(c-1), 2^(c-1)]`; `digits.len()` windows.
///
/// `digits.len() * c` must exceed the scalar's bit length by at least one,
/// so the last digit absorbs the final carry without leaving its range.
fn signed_digits(scalar: &[u64], c: usize, digits: &mut [i32]) {
    let mask = (1u64 << c) - 1;
    let half = 1u64 << (c - 1);
    let mut carry = 0u64;
    for (j, digit) in digits.iter_mut().enumerate() {
        let bit = j * c;
        let limb = bit / 64;
        let shift = bit % 64;
        let mut bits = scalar.get(limb).map_or(0, |l| l >> shift);
        if shift + c > 64 {
            if let Some(next) = scalar.get(limb + 1) {
                bits |= next << (64 - shift);
            }
        }
        let value = (bits & mask) + carry;
        // Recentre [0, 2^c] into [-2^(c-1), 2^(c-1)]: above half, borrow
        // from the next window.
        if value > half {
            carry = 1;
            *digit = value as i32 - (1i32 << c);
        } else {
            carry = 0;
            *digit = value as i32;
        }
    }
    debug_assert_eq!(carry, 0, "scalar longer than the windows");
}

/// Number of windows of width `c` for scalars of `bits` bits.
fn window_count(bits: usize, c: usize) -> usize {
    (bits + 1).div_ceil(c)
}

/// Bit length of the scalar field.
fn scalar_bits<P: SWCurveConfig>() -> usize {
    P::ScalarField::MODULUS_BIT_SIZE as usize
}

/// `sum_k k * buckets[k - 1]`, by running sums: `2 * buckets.len()` additions.
fn reduce_buckets<P: SWCurveConfig>(buckets: &[Bucket<P>]) -> Projective<P> {
    let mut running = Bucket::<P>::ZERO;
    let mut total = Bucket::<P>::ZERO;
    for bucket in buckets.iter().rev() {
        running += bucket;
        total += &running;
    }
    total.into()
}

/// Multi-scalar multiplication with fixed bases; see the module docs.
///
/// For large keys the table keeps only every `stride`-th window of each
/// base (memory divided by `stride`); the MSM then makes `stride` passes,
/// each with its own bucket reduction, joined by `c` doublings.
pub(crate) struct FixedBaseMsm<P: SWCurveConfig> {
    /// Window width `c`.
    window: usize,
    /// Windows per scalar.
    windows: usize,
    /// Stored windows per base: `windows.div_ceil(stride)`.
    rows: usize,
    /// Passes per MSM.
    stride: usize,
    /// Number of bases the table was built for (scalar slices must match).
    len: usize,
    /// Position of each kept (non-identity) base among the original ones.
    positions: Vec<u32>,
    /// `2^(c*stride*j) * base` of kept base `k` at `k * rows + j`.
    table: Vec<Affine<P>>,
}

/// Table entries per query above which windows are thinned out: 2^15 G1
/// points are 2.3 MiB. The PIN circuit's largest query needs 13,312.
const MAX_TABLE_POINTS: usize = 1 << 15;

/// Bases whose table rows are computed and normalized together: one field
/// inversion per group, and a bounded temporary buffer.
const BUILD_GROUP: usize = 32;

impl<P: SWCurveConfig> FixedBaseMsm<P> {
    /// Builds the table for `bases` with windows of `window` bits. Identity
    /// bases (variables absent from a QAP polynomial) are dropped here, so a
    /// proof never spends time on them.
    pub(crate) fn new(bases: &[Affine<P>], window: usize) -> Self {
        Self::with_max_points(bases, window, MAX_TABLE_POINTS)
    }

    /// [`Self::new`] with a table of at most about `max_points` points.
    fn with_max_points(bases: &[Affine<P>], window: usize, max_points: usize) -> Self {
        assert!((2..=20).contains(&window), "window width out of range");
        let windows = window_count(scalar_bits::<P>(), window);
        let positions: Vec<u32> = bases
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_zero())
            .map(|(i, _)| i as u32)
            .collect();
        let stride = (positions.len() * windows)
            .div_ceil(max_points.max(1))
            .clamp(1, windows);
        let rows = windows.div_ceil(stride);
        let mut table = vec![Affine::<P>::identity(); positions.len() * rows];
        table
            .par_chunks_mut(BUILD_GROUP * rows)
            .zip(positions.par_chunks(BUILD_GROUP))
            .for_each(|(out, group)| {
                let mut projective = Vec::with_capacity(group.len() * rows);
                for &i in group {
                    let mut point = bases[i as usize].into_group();
                    for _ in 0..rows {
                        projective.push(point);
                        for _ in 0..window * stride {
                            point.double_in_place();
                        }
                    }
                }
                out.copy_from_slice(&Projective::normalize_batch(&projective));
            });
        Self {
            window,
            windows,
            rows,
            stride,
            len: bases.len(),
            positions,
            table,
        }
    }

    /// Number of bases the table was built for.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `sum_i scalars[i] * bases[i]`, in `parts` independent pieces that
    /// rayon may run on different threads (1 keeps it on the caller's).
    ///
    /// `scalars` must have one entry per base given to [`Self::new`]; the
    /// caller checks (a shorter slice would leave bases out).
    pub(crate) fn msm(&self, scalars: &[P::ScalarField], parts: usize) -> Projective<P> {
        debug_assert_eq!(scalars.len(), self.len);
        let kept = self.positions.len();
        let parts = parts.clamp(1, kept.max(1));
        if parts == 1 {
            return self.msm_range(scalars, 0, kept);
        }
        let chunk = kept.div_ceil(parts);
        (0..kept)
            .step_by(chunk)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| self.msm_range(scalars, start, (start + chunk).min(kept)))
            .reduce(|| Projective::<P>::ZERO, |a, b| a + b)
    }

    /// The MSM over kept bases `start..end`.
    fn msm_range(&self, scalars: &[P::ScalarField], start: usize, end: usize) -> Projective<P> {
        let one = P::ScalarField::ONE.into_bigint();
        // Digits of every scalar in the range, decomposed once for all
        // passes; `None` marks a scalar that needs no digits.
        let mut digits = vec![0i32; (end - start) * self.windows];
        let mut used = vec![0usize; end - start];
        let mut ones = Bucket::<P>::ZERO;
        for (k, (row_digits, used)) in
            (start..end).zip(digits.chunks_exact_mut(self.windows).zip(used.iter_mut()))
        {
            let Some(scalar) = scalars.get(self.positions[k] as usize) else {
                continue;
            };
            let bigint = scalar.into_bigint();
            if bigint.is_zero() {
                continue;
            }
            // Booleans (range-check bits, selector flags) are common in
            // witnesses: add the base itself, no digit work.
            if bigint == one {
                ones += &self.table[k * self.rows];
                continue;
            }
            // Only the windows the scalar reaches: small values touch one
            // or two.
            *used = window_count(bigint.num_bits() as usize, self.window).min(self.windows);
            signed_digits(bigint.as_ref(), self.window, &mut row_digits[..*used]);
        }
        let mut buckets = vec![Bucket::<P>::ZERO; 1 << (self.window - 1)];
        let mut result = Projective::<P>::ZERO;
        for pass in (0..self.stride).rev() {
            for _ in 0..self.window {
                result.double_in_place();
            }
            buckets.fill(Bucket::<P>::ZERO);
            for (k, (row_digits, &used)) in
                (start..end).zip(digits.chunks_exact(self.windows).zip(&used))
            {
                let row = &self.table[k * self.rows..(k + 1) * self.rows];
                for (digit, point) in row_digits[..used]
                    .iter()
                    .skip(pass)
                    .step_by(self.stride)
                    .zip(row)
                {
                    match *digit {
                        0 => {}
                        d if d > 0 => buckets[d as usize - 1] += point,
                        d => buckets[(-d) as usize - 1] -= point,
                    }
                }
            }
            result += reduce_buckets(&buckets);
        }
        result += &ones;
        result
    }
}

/// Fixed-base multiplication of one point by arbitrary scalars; see the
/// module docs.
pub(crate) struct FixedBaseTable<P: SWCurveConfig> {
    window: usize,
    windows: usize,
    /// `d * 2^(c*j) * P` for `d` in `1..=2^(c-1)` at `j * 2^(c-1) + d - 1`.
    table: Vec<Affine<P>>,
}

impl<P: SWCurveConfig> FixedBaseTable<P> {
    /// Window width for verifying-key tables: 2^5 points of 64 bytes per
    /// window, 51 windows, about 100 KiB per G1 point; a multiplication is
    /// then 51 mixed additions instead of a 254-bit double-and-add.
    pub(crate) const VERIFIER_WINDOW: usize = 6;

    /// Builds the table of `point` with windows of `window` bits.
    pub(crate) fn new(point: &Affine<P>, window: usize) -> Self {
        assert!((2..=16).contains(&window), "window width out of range");
        let windows = window_count(scalar_bits::<P>(), window);
        let per_window = 1usize << (window - 1);
        let mut projective = Vec::with_capacity(windows * per_window);
        let mut base = point.into_group();
        for _ in 0..windows {
            let mut multiple = base;
            for _ in 0..per_window {
                projective.push(multiple);
                multiple += &base;
            }
            for _ in 0..window {
                base.double_in_place();
            }
        }
        Self {
            window,
            windows,
            table: Projective::normalize_batch(&projective),
        }
    }

    /// `scalar * P`.
    pub(crate) fn mul(&self, scalar: &P::ScalarField) -> Projective<P> {
        let bigint = scalar.into_bigint();
        let mut digits = vec![0i32; self.windows];
        signed_digits(bigint.as_ref(), self.window, &mut digits);
        let per_window = 1usize << (self.window - 1);
        let mut acc = Bucket::<P>::ZERO;
        for (j, digit) in digits.iter().enumerate() {
            match *digit {
                0 => {}
                d if d > 0 => acc += &self.table[j * per_window + d as usize - 1],
                d => acc -= &self.table[j * per_window + (-d) as usize - 1],
            }
        }
        acc.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
    use ark_ec::VariableBaseMSM;
    use ark_ff::{Field, UniformRand};
    use ark_std::test_rng;
    use proptest::prelude::*;

    fn digits_value(digits: &[i32], c: usize) -> Fr {
        let radix = Fr::from(1u64 << c);
        digits.iter().rev().fold(Fr::ZERO, |acc, &d| {
            let d = if d >= 0 {
                Fr::from(d as u64)
            } else {
                -Fr::from((-d) as u64)
            };
            acc * radix + d
        })
    }

    proptest! {
        #[test]
        fn signed_digits_spell_the_scalar(seed in any::<[u8; 32]>(), c in 2usize..=16) {
            let scalar = Fr::from_le_bytes_mod_order(&seed);
            let mut digits = vec![0i32; window_count(254, c)];
            signed_digits(scalar.into_bigint().as_ref(), c, &mut digits);
            let half = 1i32 << (c - 1);
            prop_assert!(digits.iter().all(|d| (-half..=half).contains(d)));
            prop_assert_eq!(digits_value(&digits, c), scalar);
        }
    }

    #[test]
    fn extreme_scalars_decompose() {
        for scalar in [
            Fr::ZERO,
            Fr::ONE,
            -Fr::ONE,
            Fr::from(u64::MAX),
            -Fr::from(2u64),
        ] {
            for c in [2, 5, 6, 8, 10, 13] {
                let mut digits = vec![0i32; window_count(254, c)];
                signed_digits(scalar.into_bigint().as_ref(), c, &mut digits);
                assert_eq!(digits_value(&digits, c), scalar, "c = {c}");
            }
        }
    }

    /// Scalars shaped like a witness: zeros, ones, small values, field
    /// elements near the modulus and uniform ones.
    fn witness_like(n: usize) -> Vec<Fr> {
        let mut rng = test_rng();
        (0..n)
            .map(|i| match i % 6 {
                0 => Fr::ZERO,
                1 => Fr::ONE,
                2 => Fr::from((i * 7919) as u64),
                3 => -Fr::from(i as u64 + 1),
                _ => Fr::rand(&mut rng),
            })
            .collect()
    }

    #[test]
    fn fixed_base_msm_matches_arkworks_in_g1_and_g2() {
        let mut rng = test_rng();
        let n = 75;
        let mut g1: Vec<G1Affine> = (0..n)
            .map(|_| (G1Affine::generator() * Fr::rand(&mut rng)).into_affine())
            .collect();
        let mut g2: Vec<G2Affine> = (0..n)
            .map(|_| (G2Affine::generator() * Fr::rand(&mut rng)).into_affine())
            .collect();
        // Identity bases, as in a proving key's queries.
        g1[3] = G1Affine::identity();
        g2[10] = G2Affine::identity();
        // A repeated base exercises the doubling inside bucket additions.
        g1[20] = g1[21];
        let scalars = witness_like(n);
        let expected1 = G1Projective::msm(&g1, &scalars).expect("lengths");
        let expected2 = G2Projective::msm(&g2, &scalars).expect("lengths");
        for window in [3, 7, 10] {
            let t1 = FixedBaseMsm::new(&g1, window);
            let t2 = FixedBaseMsm::new(&g2, window);
            assert_eq!(t1.len(), n);
            for parts in [1, 2, 5] {
                assert_eq!(
                    t1.msm(&scalars, parts),
                    expected1,
                    "G1 c={window} parts={parts}"
                );
                assert_eq!(
                    t2.msm(&scalars, parts),
                    expected2,
                    "G2 c={window} parts={parts}"
                );
            }
        }
        // Thinned tables (every `stride`-th window stored, as for large
        // keys) give the same results.
        // 74 bases are not the identity, 26 windows each.
        for (max_points, stride) in [(74 * 26 / 4, 4), (1, 26)] {
            let t1 = FixedBaseMsm::with_max_points(&g1, 10, max_points);
            assert_eq!(t1.stride, stride);
            let t2 = FixedBaseMsm::with_max_points(&g2, 10, max_points);
            for parts in [1, 3] {
                assert_eq!(t1.msm(&scalars, parts), expected1, "G1 stride {stride}");
                assert_eq!(t2.msm(&scalars, parts), expected2, "G2 stride {stride}");
            }
        }
        // All-zero scalars give the identity, and a wrong result is caught.
        let t1 = FixedBaseMsm::new(&g1, 8);
        assert_eq!(t1.msm(&vec![Fr::ZERO; n], 1), G1Projective::ZERO);
        let mut other = scalars.clone();
        other[5] += Fr::ONE;
        assert_ne!(t1.msm(&other, 1), expected1);
    }

    #[test]
    fn fixed_base_table_matches_scalar_multiplication() {
        let mut rng = test_rng();
        let point = (G1Affine::generator() * Fr::rand(&mut rng)).into_affine();
        let table = FixedBaseTable::new(
            &point,
            FixedBaseTable::<ark_bn254::g1::Config>::VERIFIER_WINDOW,
        );
        for scalar in witness_like(30) {
            assert_eq!(table.mul(&scalar), point * scalar);
        }
    }
}
