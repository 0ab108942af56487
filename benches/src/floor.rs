//! The floor every Groth16 verification pays: a 3-pair multi Miller loop
//! (the verifying key's two G2 points prepared once, the proof's `B`
//! prepared in the call) and one final exponentiation. Every run that
//! reports a ratio to the floor measures the floor itself in that run, so
//! the ratio compares figures taken minutes (or, in `zkid-ratios`,
//! milliseconds) apart on the same machine.

use ark_bn254::{Bn254, G1Affine, G2Affine};
use ark_ec::{
    pairing::{Pairing, PairingOutput},
    AffineRepr, CurveGroup,
};
use zkid_circuits::{
    encoding::{decode_proof, ProofDecodeError},
    CircuitVerifyingKey,
};

/// The points of one verification.
pub struct Floor {
    a: G1Affine,
    b: G2Affine,
    c: G1Affine,
    ic: G1Affine,
    gamma_neg: <Bn254 as Pairing>::G2Prepared,
    delta_neg: <Bn254 as Pairing>::G2Prepared,
}

impl Floor {
    /// The floor for `proof` (canonical bytes) under `key`.
    ///
    /// # Errors
    /// The proof does not decode.
    pub fn new(key: &CircuitVerifyingKey, proof: &[u8]) -> Result<Self, ProofDecodeError> {
        let proof = decode_proof(proof)?;
        Ok(Self {
            a: proof.a,
            b: proof.b,
            c: proof.c,
            ic: key.vk.gamma_abc_g1[0],
            gamma_neg: (-key.vk.gamma_g2.into_group()).into_affine().into(),
            delta_neg: (-key.vk.delta_g2.into_group()).into_affine().into(),
        })
    }

    /// One floor's worth of work: the pairing product, or `None` in the
    /// (unreachable for a decoded proof) case of a zero Miller loop output.
    pub fn run(&self) -> Option<PairingOutput<Bn254>> {
        let miller = Bn254::multi_miller_loop(
            [self.a, self.ic, self.c],
            [
                self.b.into(),
                self.gamma_neg.clone(),
                self.delta_neg.clone(),
            ],
        );
        Bn254::final_exponentiation(miller)
    }
}
