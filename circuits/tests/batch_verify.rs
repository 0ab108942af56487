//! Batch verification: every proof keeps its own verdict.
mod common;

use ark_bn254::Fr;
use common::{pin_keys, pin_proof, rng};
use zkid_circuits::{
    batch::BatchItem,
    encoding::field_to_bytes,
    generate_keys,
    pin::{DeviceSecret, Pin, PinKnowledge},
    prove, Rejection, Verdict, Verifier,
};

fn items<'a>(
    key_id: &'a zkid_circuits::KeyId,
    proofs: &'a [(Vec<u8>, Vec<[u8; 32]>)],
) -> Vec<BatchItem<'a>> {
    proofs
        .iter()
        .map(|(proof, inputs)| BatchItem {
            key_id,
            proof,
            public_inputs: inputs,
        })
        .collect()
}

#[test]
fn a_batch_of_valid_proofs_is_accepted() {
    let proofs: Vec<_> = (0..8).map(|i| pin_proof(100 + i, i)).collect();
    let keys = pin_keys();
    let verdicts = keys.verifier.verify_batch(&items(&keys.key_id, &proofs));
    assert_eq!(verdicts, vec![Verdict::Accepted; 8]);
}

#[test]
fn one_false_proof_among_many_is_named() {
    let mut proofs: Vec<_> = (0..12).map(|i| pin_proof(200 + i, i)).collect();
    // Proof 7 answers another challenge: well-formed, but false.
    proofs[7].1[1] = field_to_bytes(&Fr::from(9999u64));
    let keys = pin_keys();
    let verdicts = keys.verifier.verify_batch(&items(&keys.key_id, &proofs));
    for (i, verdict) in verdicts.iter().enumerate() {
        if i == 7 {
            assert_eq!(*verdict, Verdict::Rejected(Rejection::InvalidProof));
        } else {
            assert_eq!(*verdict, Verdict::Accepted, "proof {i}");
        }
    }
}

#[test]
fn malformed_and_false_proofs_get_their_own_reasons() {
    let mut proofs: Vec<_> = (0..6).map(|i| pin_proof(300 + i, i)).collect();
    proofs[1].0.truncate(10);
    proofs[4].1[0] = field_to_bytes(&Fr::from(1u64));
    proofs[5].1.pop();
    let keys = pin_keys();
    let verdicts = keys.verifier.verify_batch(&items(&keys.key_id, &proofs));
    assert!(verdicts[0].is_accepted() && verdicts[2].is_accepted() && verdicts[3].is_accepted());
    assert!(matches!(
        verdicts[1],
        Verdict::Rejected(Rejection::MalformedProof(_))
    ));
    assert_eq!(verdicts[4], Verdict::Rejected(Rejection::InvalidProof));
    assert!(matches!(
        verdicts[5],
        Verdict::Rejected(Rejection::WrongPublicInputCount { .. })
    ));
}

#[test]
fn batches_may_mix_keys() {
    // A second, independent setup of the same circuit (as after a key
    // rotation): proofs under both keys verify together.
    let mut rng = rng(400);
    let (pk2, vk2) = generate_keys::<PinKnowledge, _>(&mut rng).expect("setup");
    let keys = pin_keys();
    let mut verifier = Verifier::new();
    let id1 = verifier.register(&keys.verifying_key);
    let id2 = verifier.register(&vk2);

    let secret = DeviceSecret::generate(&mut rng);
    let pin = Pin::parse("5555").expect("pin");
    let circuit = PinKnowledge::new(&pin, &secret, Fr::from(8u64));
    let inputs = common::encode_inputs(circuit.public().expect("set"));
    let under_second = prove(&pk2, circuit, &mut rng).expect("prove");
    let (under_first, first_inputs) = pin_proof(401, 8);

    let batch = [
        BatchItem {
            key_id: &id1,
            proof: &under_first,
            public_inputs: &first_inputs,
        },
        BatchItem {
            key_id: &id2,
            proof: &under_second,
            public_inputs: &inputs,
        },
        // The same proof claimed under the wrong key must fail alone.
        BatchItem {
            key_id: &id1,
            proof: &under_second,
            public_inputs: &inputs,
        },
    ];
    assert_eq!(
        verifier.verify_batch(&batch),
        vec![
            Verdict::Accepted,
            Verdict::Accepted,
            Verdict::Rejected(Rejection::InvalidProof)
        ]
    );
}

#[test]
fn empty_and_single_batches_work() {
    let keys = pin_keys();
    assert!(keys.verifier.verify_batch(&[]).is_empty());
    let proofs = vec![pin_proof(500, 1)];
    assert_eq!(
        keys.verifier.verify_batch(&items(&keys.key_id, &proofs)),
        vec![Verdict::Accepted]
    );
}

/// Replaces the proof's `B` with a point of the twist outside G2 (on the
/// curve, canonically encoded), as a forger would.
fn with_b_outside_g2(proof: &mut [u8], seed: u64) {
    use ark_bn254::{Fq2, G2Affine};
    use ark_ff::UniformRand;
    use ark_serialize::CanonicalSerialize;
    let mut rng = rng(seed);
    let point = loop {
        if let Some(p) = G2Affine::get_point_from_x_unchecked(Fq2::rand(&mut rng), false) {
            if !p.is_in_correct_subgroup_assuming_on_curve() {
                break p;
            }
        }
    };
    let mut bytes = Vec::new();
    point.serialize_uncompressed(&mut bytes).expect("vec");
    proof[64..192].copy_from_slice(&bytes);
}

#[test]
fn b_outside_g2_is_refused_in_small_and_large_batches() {
    // 4 proofs take the path that checks each B before the loop; 40 take
    // the affine loop that checks B on the way (`AFFINE_MIN_PROOFS`).
    for (count, forged) in [(4usize, vec![2usize]), (40, vec![0, 13, 39])] {
        let mut proofs: Vec<_> = (0..count as u64).map(|i| pin_proof(600 + i, i)).collect();
        for &i in &forged {
            with_b_outside_g2(&mut proofs[i].0, 700 + i as u64);
        }
        let keys = pin_keys();
        let verdicts = keys.verifier.verify_batch(&items(&keys.key_id, &proofs));
        for (i, verdict) in verdicts.iter().enumerate() {
            if forged.contains(&i) {
                assert_eq!(
                    *verdict,
                    Verdict::Rejected(Rejection::MalformedProof(
                        zkid_circuits::encoding::ProofDecodeError::NotInSubgroup(
                            zkid_circuits::encoding::ProofPoint::B
                        )
                    )),
                    "batch of {count}, proof {i}"
                );
            } else {
                assert_eq!(*verdict, Verdict::Accepted, "batch of {count}, proof {i}");
            }
        }
        // The single verifier agrees.
        let (proof, inputs) = &proofs[forged[0]];
        assert!(matches!(
            keys.verifier.verify(&keys.key_id, proof, inputs),
            Verdict::Rejected(Rejection::MalformedProof(_))
        ));
    }
}

#[test]
fn a_large_batch_names_a_false_proof_among_valid_ones() {
    let mut proofs: Vec<_> = (0..40).map(|i| pin_proof(800 + i, i)).collect();
    proofs[21].1[1] = field_to_bytes(&Fr::from(4242u64));
    let keys = pin_keys();
    let verdicts = keys.verifier.verify_batch(&items(&keys.key_id, &proofs));
    for (i, verdict) in verdicts.iter().enumerate() {
        let expected = if i == 21 {
            Verdict::Rejected(Rejection::InvalidProof)
        } else {
            Verdict::Accepted
        };
        assert_eq!(*verdict, expected, "proof {i}");
    }
}

#[test]
fn large_batches_under_two_keys_verify_on_any_number_of_workers() {
    // Two keys put six prepared pairs beside the first worker's proofs;
    // odd and even worker counts split the proofs differently.
    let mut rng = rng(900);
    let (pk2, vk2) = generate_keys::<PinKnowledge, _>(&mut rng).expect("setup");
    let keys = pin_keys();
    let mut verifier = Verifier::new();
    let id1 = verifier.register(&keys.verifying_key);
    let id2 = verifier.register(&vk2);
    let mut proofs: Vec<(zkid_circuits::KeyId, Vec<u8>, Vec<[u8; 32]>)> = (0..20)
        .map(|i| {
            let (proof, inputs) = pin_proof(910 + i, i);
            (id1, proof, inputs)
        })
        .collect();
    let secret = DeviceSecret::generate(&mut rng);
    let pin = Pin::parse("2468").expect("pin");
    for challenge in 0..19u64 {
        let circuit = PinKnowledge::new(&pin, &secret, Fr::from(challenge));
        let inputs = common::encode_inputs(circuit.public().expect("set"));
        let proof = prove(&pk2, circuit, &mut rng).expect("prove");
        proofs.push((id2, proof, inputs));
    }
    // One false proof under the second key.
    proofs[30].2[1] = field_to_bytes(&Fr::from(77u64));
    let batch: Vec<BatchItem<'_>> = proofs
        .iter()
        .map(|(key_id, proof, public_inputs)| BatchItem {
            key_id,
            proof,
            public_inputs,
        })
        .collect();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let verdicts = pool.install(|| verifier.verify_batch(&batch));
        for (i, verdict) in verdicts.iter().enumerate() {
            let expected = if i == 30 {
                Verdict::Rejected(Rejection::InvalidProof)
            } else {
                Verdict::Accepted
            };
            assert_eq!(*verdict, expected, "{threads} threads, proof {i}");
        }
    }
}

#[test]
fn every_kind_of_bad_proof_is_named_in_a_large_batch_on_any_number_of_workers() {
    // A proof that fails to decode, one whose B is outside G2 (caught by
    // the affine loop of one worker's share) and a false one (found by
    // bisection), in different workers' shares, each keep their own
    // verdict, and every other proof is accepted.
    let mut proofs: Vec<_> = (0..30).map(|i| pin_proof(1000 + i, i)).collect();
    proofs[3].0.truncate(100);
    with_b_outside_g2(&mut proofs[17].0, 1100);
    proofs[26].1[1] = field_to_bytes(&Fr::from(31337u64));
    let keys = pin_keys();
    let batch = items(&keys.key_id, &proofs);
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let verdicts = pool.install(|| keys.verifier.verify_batch(&batch));
        for (i, verdict) in verdicts.iter().enumerate() {
            match i {
                3 => assert!(
                    matches!(verdict, Verdict::Rejected(Rejection::MalformedProof(_))),
                    "{threads} threads: {verdict:?}"
                ),
                17 => assert_eq!(
                    *verdict,
                    Verdict::Rejected(Rejection::MalformedProof(
                        zkid_circuits::encoding::ProofDecodeError::NotInSubgroup(
                            zkid_circuits::encoding::ProofPoint::B
                        )
                    )),
                    "{threads} threads"
                ),
                26 => assert_eq!(
                    *verdict,
                    Verdict::Rejected(Rejection::InvalidProof),
                    "{threads} threads"
                ),
                _ => assert_eq!(*verdict, Verdict::Accepted, "{threads} threads, proof {i}"),
            }
        }
    }
}
