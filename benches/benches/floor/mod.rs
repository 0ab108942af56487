//! The floor every Groth16 verification pays: a 3-pair multi Miller loop
//! (the verifying key's two G2 points prepared once, the proof's `B`
//! prepared in the call) and one final exponentiation. Each bench run
//! measures it, so ratios to the floor compare figures from one run.

use ark_bn254::{Bn254, G1Affine, G2Affine};
use ark_ec::{pairing::Pairing, AffineRepr, CurveGroup};
use criterion::{measurement::WallTime, BenchmarkGroup};
use zkid_circuits::{encoding::decode_proof, CircuitVerifyingKey};

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
    pub fn new(key: &CircuitVerifyingKey, proof: &[u8]) -> Self {
        let proof = decode_proof(proof).expect("a valid proof");
        Self {
            a: proof.a,
            b: proof.b,
            c: proof.c,
            ic: key.vk.gamma_abc_g1[0],
            gamma_neg: (-key.vk.gamma_g2.into_group()).into_affine().into(),
            delta_neg: (-key.vk.delta_g2.into_group()).into_affine().into(),
        }
    }

    /// Adds the floor, run on `pool`'s single thread, to `group`.
    pub fn bench(&self, group: &mut BenchmarkGroup<'_, WallTime>, pool: &rayon::ThreadPool) {
        group.bench_function("floor/miller-loop-3-pairs+final-exp", |bencher| {
            pool.install(|| {
                bencher.iter(|| {
                    let miller = Bn254::multi_miller_loop(
                        [self.a, self.ic, self.c],
                        [
                            self.b.into(),
                            self.gamma_neg.clone(),
                            self.delta_neg.clone(),
                        ],
                    );
                    Bn254::final_exponentiation(miller).expect("non-zero")
                })
            })
        });
    }
}
