//! The PIN-knowledge circuit end to end: setup, prove, strict verify.
//! Negative cases first: they are the point of a verifier.
mod common;

use ark_bn254::{Fr, G1Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, PrimeField};
use common::{encode_inputs, pin_keys, pin_proof, rng};
use zkid_circuits::{
    circuit::shape,
    encoding::{decode_proof, encode_proof, ProofDecodeError, ProofPoint},
    pin::{DeviceSecret, Pin, PinKnowledge, PinKnowledgePublic},
    prove, KeyId, ProveError, Rejection, Verdict, ZkCircuit,
};

fn verify(proof: &[u8], inputs: &[[u8; 32]]) -> Verdict {
    let keys = pin_keys();
    keys.verifier.verify(&keys.key_id, proof, inputs)
}

#[test]
fn honest_proof_is_accepted() {
    let (proof, inputs) = pin_proof(10, 77);
    assert_eq!(proof.len(), 256);
    assert_eq!(verify(&proof, &inputs), Verdict::Accepted);
}

#[test]
fn proof_fails_under_another_challenge() {
    let (proof, mut inputs) = pin_proof(11, 1000);
    for other in [999u64, 1001, 0] {
        inputs[1] = zkid_circuits::encoding::field_to_bytes(&Fr::from(other));
        assert_eq!(
            verify(&proof, &inputs),
            Verdict::Rejected(Rejection::InvalidProof)
        );
    }
}

#[test]
fn proof_fails_under_another_commitment() {
    let (proof, inputs) = pin_proof(12, 5);
    let (_, other_inputs) = pin_proof(13, 5);
    assert_ne!(inputs[0], other_inputs[0]);
    let swapped = [other_inputs[0], inputs[1]];
    assert_eq!(
        verify(&proof, &swapped),
        Verdict::Rejected(Rejection::InvalidProof)
    );
}

#[test]
fn binding_rests_on_nonzero_input_points() {
    // See the `pin` module docs: with LibsnarkReduction every public input,
    // even one that no constraint uses, gets an independent key point.
    let ic = &pin_keys().verifying_key.vk.gamma_abc_g1;
    assert_eq!(ic.len(), 3);
    assert!(ic.iter().all(|p| !p.is_zero()));
    assert!(ic[0] != ic[1] && ic[1] != ic[2] && ic[0] != ic[2]);
}

#[test]
fn every_single_byte_change_is_refused_or_rejected() {
    let (proof, inputs) = pin_proof(14, 3);
    for position in 0..proof.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut tampered = proof.clone();
            tampered[position] ^= mask;
            let verdict = verify(&tampered, &inputs);
            assert!(
                !verdict.is_accepted(),
                "byte {position} ^ {mask:#x} was accepted"
            );
        }
    }
}

#[test]
fn identity_and_off_curve_points_are_refused() {
    let (proof, inputs) = pin_proof(15, 3);
    let mut decoded = decode_proof(&proof).expect("valid");
    decoded.a = G1Affine::identity();
    assert_eq!(
        verify(&encode_proof(&decoded), &inputs),
        Verdict::Rejected(Rejection::MalformedProof(ProofDecodeError::Identity(
            ProofPoint::A
        )))
    );
    let mut decoded = decode_proof(&proof).expect("valid");
    decoded.c = G1Affine::new_unchecked(decoded.c.x, decoded.c.x);
    assert_eq!(
        verify(&encode_proof(&decoded), &inputs),
        Verdict::Rejected(Rejection::MalformedProof(ProofDecodeError::NotOnCurve(
            ProofPoint::C
        )))
    );
}

#[test]
fn public_input_aliases_are_refused() {
    let (proof, inputs) = pin_proof(16, 3);
    // challenge + p names the same field element: it must not verify.
    let challenge = Fr::from(3u64).into_bigint();
    let mut alias = Fr::MODULUS;
    alias.add_with_carry(&challenge);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&alias.to_bytes_le());
    let aliased = [inputs[0], bytes];
    assert_eq!(
        verify(&proof, &aliased),
        Verdict::Rejected(Rejection::PublicInputOutOfRange { index: 1 })
    );
}

#[test]
fn extra_or_missing_public_inputs_are_refused() {
    let (proof, inputs) = pin_proof(17, 3);
    let mut extra = inputs.clone();
    extra.push([0u8; 32]);
    assert_eq!(
        verify(&proof, &extra),
        Verdict::Rejected(Rejection::WrongPublicInputCount {
            expected: 2,
            actual: 3
        })
    );
    assert_eq!(
        verify(&proof, &inputs[..1]),
        Verdict::Rejected(Rejection::WrongPublicInputCount {
            expected: 2,
            actual: 1
        })
    );
    assert!(!verify(&proof, &[]).is_accepted());
}

#[test]
fn unknown_and_retired_keys_are_refused() {
    let (proof, inputs) = pin_proof(18, 3);
    let keys = pin_keys();
    let unknown = KeyId([7; 32]);
    assert_eq!(
        keys.verifier.verify(&unknown, &proof, &inputs),
        Verdict::Rejected(Rejection::UnknownKey(unknown))
    );
    let mut verifier = zkid_circuits::Verifier::new();
    let id = verifier.register(&keys.verifying_key);
    assert!(verifier.verify(&id, &proof, &inputs).is_accepted());
    assert!(verifier.retire(&id));
    assert_eq!(
        verifier.verify(&id, &proof, &inputs),
        Verdict::Rejected(Rejection::RetiredKey(id))
    );
}

#[test]
fn malformed_requests_are_told_apart_from_false_proofs() {
    assert!(!Rejection::InvalidProof.is_malformed());
    assert!(Rejection::PublicInputOutOfRange { index: 0 }.is_malformed());
}

#[test]
fn prover_refuses_a_wrong_pin_with_a_clear_error() {
    let mut rng = rng(19);
    let secret = DeviceSecret::generate(&mut rng);
    let enrolled = PinKnowledge::new(&Pin::parse("1111").expect("pin"), &secret, Fr::from(9u64));
    let statement: PinKnowledgePublic = *enrolled.public().expect("set");
    let typed = PinKnowledge::for_statement(statement, &Pin::parse("1112").expect("pin"), &secret);
    match prove(&pin_keys().proving_key, typed, &mut rng) {
        Err(ProveError::Unsatisfied(_)) => {}
        other => panic!("expected Unsatisfied, got {other:?}"),
    }
}

#[test]
fn proofs_are_randomized_but_both_verify() {
    let (a, inputs) = pin_proof(20, 3);
    let (b, inputs_b) = pin_proof(20, 3);
    assert_eq!(inputs, inputs_b);
    assert_eq!(
        a, b,
        "same seed, same proof: the RNG is the only randomness"
    );
    let mut rng = rng(21);
    let secret = DeviceSecret::generate(&mut rng);
    let pin = Pin::parse("2468").expect("pin");
    let c1 = prove(
        &pin_keys().proving_key,
        PinKnowledge::new(&pin, &secret, Fr::from(1u64)),
        &mut rng,
    )
    .expect("prove");
    let c2 = prove(
        &pin_keys().proving_key,
        PinKnowledge::new(&pin, &secret, Fr::from(1u64)),
        &mut rng,
    )
    .expect("prove");
    assert_ne!(c1, c2, "zero knowledge needs fresh randomness per proof");
    let inputs = encode_inputs(
        PinKnowledge::new(&pin, &secret, Fr::from(1u64))
            .public()
            .expect("set"),
    );
    assert!(verify(&c1, &inputs).is_accepted() && verify(&c2, &inputs).is_accepted());
}

/// A change to the circuit must come with a version bump: update these
/// numbers only together with `PinKnowledge::VERSION`.
#[test]
fn pin_circuit_shape_is_pinned() {
    let shape = shape::<PinKnowledge>().expect("synthesis");
    assert_eq!(PinKnowledge::VERSION, 1);
    assert_eq!(
        (
            shape.constraints,
            shape.instance_variables,
            shape.witness_variables
        ),
        (297, 3, 296),
        "constraint count changed: bump PinKnowledge::VERSION"
    );
    assert_eq!(
        shape.digest, "d9ce9b1bfa875bbea94c7016b6353e361f5719f6c6ae2872a83db186596d2c1e",
        "circuit shape changed: bump PinKnowledge::VERSION"
    );
    assert_eq!(shape.domain_size(), 512);
}
