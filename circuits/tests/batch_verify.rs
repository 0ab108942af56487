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
