//! account-ownership end to end: the proof is accepted for the caller's
//! account and rejected when replayed under another account, another
//! attribute commitment, another device or another challenge.
mod common;

use ark_bn254::Fr;
use common::{encode_inputs, holder, keys_by_name, rng, Holder};
use zkid_circuits::{
    credential::{
        encode_account_id, AccountOwnership, AccountOwnershipPublic, AttributeCredential,
        CredentialError, StatementError, SCHEMA_VERSION,
    },
    encoding::field_to_bytes,
    prove, ProveError, Rejection, Verdict, Verifier, ZkCircuit,
};

const NAME: &str = AccountOwnership::NAME;

fn proof_for(h: &Holder, challenge: u64, seed: u64) -> (Vec<u8>, AccountOwnershipPublic) {
    let circuit = AccountOwnership::new(&h.pin, &h.secret, &h.credential, Fr::from(challenge))
        .expect("current schema");
    let public = *circuit.public().expect("proving instance");
    let proof = prove(&keys_by_name(NAME).proving_key, circuit, &mut rng(seed)).expect("honest");
    (proof, public)
}

fn verify(proof: &[u8], public: &AccountOwnershipPublic) -> Verdict {
    let keys = keys_by_name(NAME);
    keys.verifier
        .verify(&keys.key_id, proof, &encode_inputs(public))
}

#[test]
fn the_server_rebuilds_the_statement_and_accepts() {
    let h = holder(1);
    let (proof, _) = proof_for(&h, 900, 10);
    // Server side: stored commitments, the challenge it issued, and the
    // account the call is about.
    let server_statement = AccountOwnershipPublic {
        common: zkid_circuits::credential::CommonPublic {
            device_commitment: zkid_circuits::pin::device_commitment(&h.pin, &h.secret),
            attr_commitment: h.credential.commitment(),
            challenge: Fr::from(900u64),
        },
        account_id: encode_account_id("DE-ACC-000123").expect("short id"),
    };
    assert_eq!(verify(&proof, &server_statement), Verdict::Accepted);
}

#[test]
fn replay_under_another_account_is_rejected() {
    let h = holder(2);
    let (proof, mut public) = proof_for(&h, 901, 11);
    public.account_id = encode_account_id("DE-ACC-000124").expect("short id");
    assert_eq!(
        verify(&proof, &public),
        Verdict::Rejected(Rejection::InvalidProof)
    );
}

#[test]
fn replay_under_another_attribute_commitment_or_device_is_rejected() {
    let h = holder(3);
    let other = holder(4);
    let (proof, public) = proof_for(&h, 902, 12);
    let mut swapped = public;
    swapped.common.attr_commitment = other.credential.commitment();
    assert_eq!(
        verify(&proof, &swapped),
        Verdict::Rejected(Rejection::InvalidProof)
    );
    let mut swapped = public;
    swapped.common.device_commitment =
        zkid_circuits::pin::device_commitment(&other.pin, &other.secret);
    assert_eq!(
        verify(&proof, &swapped),
        Verdict::Rejected(Rejection::InvalidProof)
    );
}

#[test]
fn replay_under_another_challenge_is_rejected() {
    let h = holder(5);
    let (proof, public) = proof_for(&h, 903, 13);
    assert!(verify(&proof, &public).is_accepted());
    for other in [902u64, 904, 0] {
        let mut replayed = public;
        replayed.common.challenge = Fr::from(other);
        assert_eq!(
            verify(&proof, &replayed),
            Verdict::Rejected(Rejection::InvalidProof)
        );
    }
}

#[test]
fn a_proof_for_another_account_cannot_be_made() {
    let h = holder(6);
    let honest = AccountOwnership::new(&h.pin, &h.secret, &h.credential, Fr::from(7u8))
        .expect("current schema");
    let mut claimed = *honest.public().expect("set");
    claimed.account_id = encode_account_id("SOMEONE-ELSE").expect("short id");
    let circuit =
        AccountOwnership::for_statement(claimed, &h.pin, &h.secret, &h.credential).expect("ok");
    common::trace_constraints();
    match prove(&keys_by_name(NAME).proving_key, circuit, &mut rng(14)) {
        Err(ProveError::Unsatisfied(name)) => assert!(name.contains("account matches"), "{name}"),
        other => panic!("expected Unsatisfied, got {other:?}"),
    }
}

#[test]
fn an_old_schema_credential_is_refused() {
    let h = holder(7);
    let old = AttributeCredential::from_parts(
        SCHEMA_VERSION + 1,
        &h.attributes,
        h.credential.blinding().clone(),
    )
    .expect("valid attributes");
    assert_ne!(old.commitment(), h.credential.commitment());
    assert_eq!(
        AccountOwnership::new(&h.pin, &h.secret, &old, Fr::from(1u8)).err(),
        Some(StatementError::Credential(
            CredentialError::UnsupportedSchema {
                found: SCHEMA_VERSION + 1
            }
        ))
    );
    assert!(zkid_circuits::credential::check_schema_version(SCHEMA_VERSION + 1).is_err());
}

#[test]
fn a_retired_or_unknown_key_is_refused() {
    let h = holder(8);
    let (proof, public) = proof_for(&h, 905, 15);
    let keys = keys_by_name(NAME);
    let mut verifier = Verifier::new();
    let id = verifier.register(&keys.verifying_key);
    let inputs = encode_inputs(&public);
    assert!(verifier.verify(&id, &proof, &inputs).is_accepted());
    assert!(verifier.retire(&id));
    assert_eq!(
        verifier.verify(&id, &proof, &inputs),
        Verdict::Rejected(Rejection::RetiredKey(id))
    );
    // The PIN circuit's key does not verify an account-ownership proof.
    let pin_keys = keys_by_name("pin-knowledge");
    assert!(matches!(
        pin_keys.verifier.verify(&pin_keys.key_id, &proof, &inputs),
        Verdict::Rejected(Rejection::WrongPublicInputCount { .. })
    ));
    let unknown = zkid_circuits::KeyId([9; 32]);
    assert_eq!(
        keys.verifier.verify(&unknown, &proof, &inputs),
        Verdict::Rejected(Rejection::UnknownKey(unknown))
    );
}

#[test]
fn every_public_input_has_its_own_key_point() {
    // The challenge is bound only through its key point (see `pin`).
    use ark_ec::AffineRepr;
    let ic = &keys_by_name(NAME).verifying_key.vk.gamma_abc_g1;
    assert_eq!(ic.len(), 5);
    assert!(ic.iter().all(|p| !p.is_zero()));
    let _ = field_to_bytes(&Fr::from(0u8));
}
