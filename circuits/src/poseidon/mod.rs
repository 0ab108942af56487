//! Poseidon over the BN254 scalar field with circomlib's parameters.
//!
//! circomlib's `Poseidon(n)` (and circomlibjs' `buildPoseidon`) permutes the
//! state `[0, x_1, ..., x_n]` of width `t = n + 1` with an x^5 S-box, 8 full
//! rounds and a width-dependent number of partial rounds, and outputs lane 0.
//! Enrolled commitments must stay valid across prover stacks (a circom
//! circuit, circomlibjs on a web page, this crate), so we reproduce that
//! function exactly rather than using arkworks' sponge, which squeezes from
//! lane `capacity` and therefore returns a different value with the same
//! constants.
//!
//! The round constants and MDS matrices are not copied from circomlib: they
//! are regenerated with the Grain LFSR of the Poseidon paper (arkworks'
//! `find_poseidon_ark_and_mds`), which is how circomlib produced them. The
//! test vectors in `tests/data/poseidon-bn254.json` (from circomlibjs) pin
//! the result for every width.
//!
//! [`hash`] is the native function; [`gadget::hash_var`] the R1CS gadget.
//! Both share [`PoseidonParams`], so they cannot drift apart.

pub mod gadget;

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::poseidon::find_poseidon_ark_and_mds;
use ark_ff::{AdditiveGroup, Field, PrimeField};

/// The largest number of inputs supported (state width 7).
pub const MAX_INPUTS: usize = 6;

/// Full rounds for every width, as in circomlib.
pub const FULL_ROUNDS: usize = 8;

/// circomlib's `N_ROUNDS_P` for state widths 2 to 7 (1 to 6 inputs).
const PARTIAL_ROUNDS: [usize; MAX_INPUTS] = [56, 57, 56, 60, 60, 63];

/// Errors of the Poseidon functions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoseidonError {
    /// Poseidon is defined here for 1 to [`MAX_INPUTS`] inputs.
    #[error("poseidon takes 1 to {MAX_INPUTS} inputs, got {0}")]
    UnsupportedArity(usize),
}

/// Round constants and MDS matrix for one state width.
#[derive(Debug)]
pub struct PoseidonParams {
    /// State width `t = inputs + 1`.
    pub width: usize,
    /// Number of partial rounds (S-box on lane 0 only).
    pub partial_rounds: usize,
    /// `round_constants[r][i]` is added to lane `i` at the start of round `r`.
    pub round_constants: Vec<Vec<Fr>>,
    /// `mds[i][j]`: new lane `i` is `sum_j mds[i][j] * lane j`.
    pub mds: Vec<Vec<Fr>>,
}

impl PoseidonParams {
    /// Total rounds, full and partial.
    pub fn rounds(&self) -> usize {
        FULL_ROUNDS + self.partial_rounds
    }

    /// Whether round `round` applies the S-box to every lane: the first and
    /// last `FULL_ROUNDS / 2` rounds do.
    pub fn is_full_round(&self, round: usize) -> bool {
        round < FULL_ROUNDS / 2 || round >= FULL_ROUNDS / 2 + self.partial_rounds
    }
}

/// The parameters for `inputs` inputs, generated once per width.
pub fn params(inputs: usize) -> Result<&'static PoseidonParams, PoseidonError> {
    static PARAMS: [OnceLock<PoseidonParams>; MAX_INPUTS] = [const { OnceLock::new() }; MAX_INPUTS];
    if !(1..=MAX_INPUTS).contains(&inputs) {
        return Err(PoseidonError::UnsupportedArity(inputs));
    }
    Ok(PARAMS[inputs - 1].get_or_init(|| {
        let partial_rounds = PARTIAL_ROUNDS[inputs - 1];
        let (round_constants, mds) = find_poseidon_ark_and_mds::<Fr>(
            u64::from(Fr::MODULUS_BIT_SIZE),
            inputs,
            FULL_ROUNDS as u64,
            partial_rounds as u64,
            0,
        );
        PoseidonParams {
            width: inputs + 1,
            partial_rounds,
            round_constants,
            mds,
        }
    }))
}

/// circomlib's `Poseidon(inputs.len())` of `inputs`, natively.
///
/// # Errors
/// [`PoseidonError::UnsupportedArity`] unless `1 <= inputs.len() <= 6`.
pub fn hash(inputs: &[Fr]) -> Result<Fr, PoseidonError> {
    let params = params(inputs.len())?;
    let mut state = Vec::with_capacity(params.width);
    state.push(Fr::ZERO);
    state.extend_from_slice(inputs);
    let mut mixed = vec![Fr::ZERO; params.width];
    for round in 0..params.rounds() {
        for (lane, constant) in state.iter_mut().zip(&params.round_constants[round]) {
            *lane += constant;
        }
        if params.is_full_round(round) {
            state.iter_mut().for_each(|lane| *lane = pow5(*lane));
        } else {
            state[0] = pow5(state[0]);
        }
        for (out, row) in mixed.iter_mut().zip(&params.mds) {
            *out = row.iter().zip(&state).map(|(m, s)| *m * s).sum();
        }
        std::mem::swap(&mut state, &mut mixed);
    }
    Ok(state[0])
}

fn pow5(x: Fr) -> Fr {
    let x2 = x.square();
    x2.square() * x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsupported_arity() {
        assert_eq!(hash(&[]), Err(PoseidonError::UnsupportedArity(0)));
        assert_eq!(
            hash(&[Fr::ZERO; 7]),
            Err(PoseidonError::UnsupportedArity(7))
        );
    }

    #[test]
    fn round_layout_matches_circomlib() {
        let p = params(2).expect("two inputs are supported");
        assert_eq!(p.width, 3);
        assert_eq!(p.rounds(), 65);
        assert_eq!(p.round_constants.len(), 65);
        assert!(p.is_full_round(3) && !p.is_full_round(4));
        assert!(!p.is_full_round(60) && p.is_full_round(61));
    }
}
