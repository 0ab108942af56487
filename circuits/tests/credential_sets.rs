//! set-membership and set-non-membership end to end: served postcodes and
//! a fraud list of phone numbers.
mod common;

use ark_bn254::Fr;
use ark_ff::Field;
use common::{encode_inputs, holder, keys_by_name, rng, Holder};
use zkid_circuits::{
    credential::{SetMembership, SetMembershipPublic, SetNonMembership, Slot, StatementError},
    merkle::{MembershipSet, MerkleError, NonMembershipSet},
    prove, Rejection, Verdict, ZkCircuit,
};

fn postcodes(codes: &[&str]) -> MembershipSet {
    let values: Vec<Fr> = codes
        .iter()
        .map(|c| Slot::Postcode.encode_text(c).expect("text"))
        .collect();
    MembershipSet::new(&values).expect("fits")
}

fn phones(numbers: &[&str]) -> NonMembershipSet {
    let values: Vec<Fr> = numbers
        .iter()
        .map(|n| Slot::PhoneNumber.encode_text(n).expect("text"))
        .collect();
    NonMembershipSet::new(&values).expect("fits")
}

fn served() -> MembershipSet {
    postcodes(&["10115", "10117", "10119", "10178", "10179"])
}

fn verify_membership(proof: &[u8], public: &SetMembershipPublic) -> Verdict {
    let keys = keys_by_name(SetMembership::NAME);
    keys.verifier
        .verify(&keys.key_id, proof, &encode_inputs(public))
}

fn membership_proof(h: &Holder, set: &MembershipSet) -> (Vec<u8>, SetMembershipPublic) {
    let circuit = SetMembership::new(
        &h.pin,
        &h.secret,
        &h.credential,
        Fr::from(3u8),
        Slot::Postcode,
        set,
    )
    .expect("member");
    let public = *circuit.public().expect("set");
    let keys = keys_by_name(SetMembership::NAME);
    (
        prove(&keys.proving_key, circuit, &mut rng(40)).expect("prove"),
        public,
    )
}

#[test]
fn a_served_postcode_is_proven_and_replays_fail() {
    let h = holder(41);
    let set = served();
    let (proof, public) = membership_proof(&h, &set);
    assert_eq!(verify_membership(&proof, &public), Verdict::Accepted);

    let mut other_root = public;
    other_root.root = postcodes(&["10115", "20095"]).root();
    let mut other_slot = public;
    other_slot.slot = Slot::PhoneNumber;
    let mut other_challenge = public;
    other_challenge.common.challenge = Fr::from(4u8);
    let mut other_credential = public;
    other_credential.common.attr_commitment = holder(42).credential.commitment();
    for replayed in [other_root, other_slot, other_challenge, other_credential] {
        assert_eq!(
            verify_membership(&proof, &replayed),
            Verdict::Rejected(Rejection::InvalidProof)
        );
    }
}

#[test]
fn a_postcode_outside_the_set_has_no_path() {
    let h = holder(43);
    let set = postcodes(&["20095", "20097"]);
    assert_eq!(
        SetMembership::new(
            &h.pin,
            &h.secret,
            &h.credential,
            Fr::ONE,
            Slot::Postcode,
            &set
        )
        .err(),
        Some(StatementError::Set(MerkleError::NotAMember))
    );
}

#[test]
fn a_wrong_member_or_a_wrong_path_breaks_the_root() {
    let h = holder(44);
    let set = served();
    let honest = SetMembership::new(
        &h.pin,
        &h.secret,
        &h.credential,
        Fr::ONE,
        Slot::Postcode,
        &set,
    )
    .expect("member");
    let public = *honest.public().expect("set");
    // Another member's path for the holder's postcode.
    let other_member = set
        .witness(&Slot::Postcode.encode_text("10179").expect("text"))
        .expect("member");
    // The holder's path with one sibling changed.
    let mut tampered = set
        .witness(&h.credential.value(Slot::Postcode))
        .expect("member");
    tampered.siblings[5] += Fr::ONE;
    // The right path, but the statement names the phone-number slot.
    let mut wrong_slot = public;
    wrong_slot.slot = Slot::PhoneNumber;
    let right_path = set
        .witness(&h.credential.value(Slot::Postcode))
        .expect("member");
    for (statement, path) in [
        (public, other_member),
        (public, tampered),
        (wrong_slot, right_path),
    ] {
        let circuit =
            SetMembership::for_statement(statement, &h.pin, &h.secret, &h.credential, path)
                .expect("current schema");
        let name = common::unsatisfied_constraint(circuit).expect("must fail");
        assert!(name.contains("membership root matches"), "{name}");
    }
}

#[test]
fn a_phone_number_off_the_fraud_list_is_proven() {
    let h = holder(45);
    let fraud = phones(&["+4915100000001", "+4915100000002", "+12025550123"]);
    let circuit = SetNonMembership::new(
        &h.pin,
        &h.secret,
        &h.credential,
        Fr::from(9u8),
        Slot::PhoneNumber,
        &fraud,
    )
    .expect("not listed");
    let public = *circuit.public().expect("set");
    let keys = keys_by_name(SetNonMembership::NAME);
    let proof = prove(&keys.proving_key, circuit, &mut rng(46)).expect("prove");
    let inputs = encode_inputs(&public);
    assert!(keys
        .verifier
        .verify(&keys.key_id, &proof, &inputs)
        .is_accepted());
    // The same proof under a list that now contains the number.
    let mut updated = public;
    updated.root = phones(&["+4915100000001", &h.attributes.phone_number]).root();
    assert_eq!(
        keys.verifier
            .verify(&keys.key_id, &proof, &encode_inputs(&updated)),
        Verdict::Rejected(Rejection::InvalidProof)
    );
}

#[test]
fn a_listed_phone_number_cannot_prove_absence() {
    let h = holder(47);
    let fraud = phones(&["+4915100000001", &h.attributes.phone_number]);
    assert_eq!(
        SetNonMembership::new(
            &h.pin,
            &h.secret,
            &h.credential,
            Fr::ONE,
            Slot::PhoneNumber,
            &fraud
        )
        .err(),
        Some(StatementError::Set(MerkleError::Member))
    );
    // Borrowing the neighbours of an unlisted number does not help.
    let unlisted = fraud
        .witness(
            &Slot::PhoneNumber
                .encode_text("+4915100000003")
                .expect("text"),
        )
        .expect("absent");
    let public = zkid_circuits::credential::SetNonMembershipPublic {
        common: zkid_circuits::credential::CommonPublic::of(
            &h.pin,
            &h.secret,
            &h.credential,
            Fr::ONE,
        ),
        slot: Slot::PhoneNumber,
        root: fraud.root(),
    };
    let circuit =
        SetNonMembership::for_statement(public, &h.pin, &h.secret, &h.credential, unlisted)
            .expect("current schema");
    let name = common::unsatisfied_constraint(circuit).expect("must fail");
    assert!(name.contains("neighbour"), "{name}");
}
