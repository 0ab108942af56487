//! attribute-predicates and attribute-predicate end to end: age on a date
//! at the exact boundary, equality and inequality, replays under other
//! predicate parameters, and a policy split into a batch of proofs.
mod common;

use ark_bn254::Fr;
use common::{encode_inputs, holder, holder_with, keys_by_name, rng, sample_attributes, Holder};
use zkid_circuits::{
    batch::BatchItem,
    credential::{
        date::days_from_civil, encode_account_id, AccountOwnership, AttributePredicate,
        AttributePredicates, PredicatesPublic, Slot, SlotPredicate,
    },
    prove, ProveError, Rejection, Verdict, ZkCircuit,
};

fn account(h: &Holder) -> SlotPredicate {
    SlotPredicate::equals(
        Slot::AccountId,
        encode_account_id(&h.attributes.account_id).expect("short id"),
    )
}

fn prove_policy(
    h: &Holder,
    challenge: u64,
    predicates: [SlotPredicate; 4],
) -> Result<(Vec<u8>, PredicatesPublic<4>), ProveError> {
    let circuit = AttributePredicates::new(
        &h.pin,
        &h.secret,
        &h.credential,
        Fr::from(challenge),
        predicates,
    )
    .expect("current schema");
    let public = *circuit.public().expect("set");
    let keys = keys_by_name(AttributePredicates::NAME);
    prove(&keys.proving_key, circuit, &mut rng(challenge)).map(|proof| (proof, public))
}

fn verify(proof: &[u8], public: &PredicatesPublic<4>) -> Verdict {
    let keys = keys_by_name(AttributePredicates::NAME);
    keys.verifier
        .verify(&keys.key_id, proof, &encode_inputs(public))
}

/// Born on 2007-06-15: 18 on 2025-06-15, not on 2025-06-14.
fn teenager() -> Holder {
    let mut attributes = sample_attributes();
    attributes.date_of_birth = days_from_civil(2007, 6, 15).expect("date");
    holder_with(20, attributes)
}

#[test]
fn exactly_eighteen_today_passes_and_verifies() {
    let h = teenager();
    let today = days_from_civil(2025, 6, 15).expect("date");
    let policy = [
        account(&h),
        SlotPredicate::age_at_least(today, 18).expect("valid"),
        SlotPredicate::unused(),
        SlotPredicate::unused(),
    ];
    let (proof, public) = prove_policy(&h, 1, policy).expect("of age today");
    assert_eq!(verify(&proof, &public), Verdict::Accepted);
}

#[test]
fn one_day_short_of_eighteen_cannot_be_proven() {
    let h = teenager();
    let yesterday = days_from_civil(2025, 6, 14).expect("date");
    let policy = [
        account(&h),
        SlotPredicate::age_at_least(yesterday, 18).expect("valid"),
        SlotPredicate::unused(),
        SlotPredicate::unused(),
    ];
    common::trace_constraints();
    match prove_policy(&h, 2, policy) {
        Err(ProveError::Unsatisfied(name)) => {
            assert!(
                name.contains("predicate 1") && name.contains("upper bound"),
                "{name}"
            );
        }
        other => panic!("expected Unsatisfied, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_proof_of_age_does_not_verify_for_a_later_cutoff() {
    // Replaying "18 on 2025-06-15" as "18 on 2025-06-14" (or "21") fails.
    let h = teenager();
    let today = days_from_civil(2025, 6, 15).expect("date");
    let policy = [
        account(&h),
        SlotPredicate::age_at_least(today, 18).expect("valid"),
        SlotPredicate::unused(),
        SlotPredicate::unused(),
    ];
    let (proof, public) = prove_policy(&h, 3, policy).expect("of age");
    for replayed_predicate in [
        SlotPredicate::age_at_least(today - 1, 18).expect("valid"),
        SlotPredicate::age_at_least(today, 21).expect("valid"),
        SlotPredicate::unused(),
    ] {
        let mut replayed = public;
        replayed.predicates[1] = replayed_predicate;
        assert_eq!(
            verify(&proof, &replayed),
            Verdict::Rejected(Rejection::InvalidProof)
        );
    }
    let mut other_account = public;
    other_account.predicates[0] =
        SlotPredicate::equals(Slot::AccountId, encode_account_id("X").expect("id"));
    assert_eq!(
        verify(&proof, &other_account),
        Verdict::Rejected(Rejection::InvalidProof)
    );
}

#[test]
fn equality_inequality_and_bounds_in_one_proof() {
    let h = holder(21);
    let dob = h.attributes.date_of_birth;
    let policy = [
        account(&h),
        SlotPredicate::equals(
            Slot::NationalIdLast4,
            Slot::NationalIdLast4.encode_text("123X").expect("text"),
        ),
        SlotPredicate::not_equals(
            Slot::Postcode,
            Slot::Postcode.encode_text("99999").expect("text"),
        ),
        // A bound equal to the value, on both sides.
        SlotPredicate::between(Slot::DateOfBirth, dob, dob).expect("valid"),
    ];
    let (proof, public) = prove_policy(&h, 4, policy).expect("all hold");
    assert!(verify(&proof, &public).is_accepted());
}

#[test]
fn each_failing_predicate_is_named() {
    let h = holder(22);
    let dob = h.attributes.date_of_birth;
    let cases = [
        (
            SlotPredicate::equals(
                Slot::NationalIdLast4,
                Slot::NationalIdLast4.encode_text("1234").expect("text"),
            ),
            "equality",
        ),
        (
            SlotPredicate::not_equals(
                Slot::Postcode,
                Slot::Postcode.encode_text("10115").expect("text"),
            ),
            "inequality",
        ),
        (
            SlotPredicate::gt(Slot::DateOfBirth, dob).expect("valid"),
            "lower bound",
        ),
        (
            SlotPredicate::lt(Slot::DateOfBirth, dob).expect("valid"),
            "upper bound",
        ),
    ];
    for (predicate, constraint) in cases {
        let policy = [
            account(&h),
            SlotPredicate::unused(),
            SlotPredicate::unused(),
            predicate,
        ];
        let circuit =
            AttributePredicates::new(&h.pin, &h.secret, &h.credential, Fr::from(5u8), policy)
                .expect("current schema");
        let name = common::unsatisfied_constraint(circuit).expect("must fail");
        assert!(
            name.contains("predicate 3") && name.contains(constraint),
            "{constraint}: {name}"
        );
    }
}

#[test]
fn a_policy_split_into_proofs_verifies_in_one_batch() {
    // The alternative to one multi-predicate proof: account-ownership and
    // a one-slot age proof, both over the same commitments and challenge.
    let h = holder(23);
    let challenge = Fr::from(77u8);
    let today = days_from_civil(2025, 1, 1).expect("date");

    let owner = AccountOwnership::new(&h.pin, &h.secret, &h.credential, challenge).expect("ok");
    let owner_inputs = encode_inputs(owner.public().expect("set"));
    let owner_keys = keys_by_name(AccountOwnership::NAME);
    let owner_proof = prove(&owner_keys.proving_key, owner, &mut rng(30)).expect("prove");

    let age = AttributePredicate::new(
        &h.pin,
        &h.secret,
        &h.credential,
        challenge,
        [SlotPredicate::age_at_least(today, 18).expect("valid")],
    )
    .expect("ok");
    let age_inputs = encode_inputs(age.public().expect("set"));
    let age_keys = keys_by_name(AttributePredicate::NAME);
    let age_proof = prove(&age_keys.proving_key, age, &mut rng(31)).expect("prove");

    let mut verifier = zkid_circuits::Verifier::new();
    let owner_id = verifier.register(&owner_keys.verifying_key);
    let age_id = verifier.register(&age_keys.verifying_key);
    // The age proof answers another challenge: it alone must fail.
    let mut stale_inputs = age_inputs.clone();
    stale_inputs[2] = zkid_circuits::encoding::field_to_bytes(&Fr::from(76u8));
    let batch = [
        BatchItem {
            key_id: &owner_id,
            proof: &owner_proof,
            public_inputs: &owner_inputs,
        },
        BatchItem {
            key_id: &age_id,
            proof: &age_proof,
            public_inputs: &age_inputs,
        },
        BatchItem {
            key_id: &age_id,
            proof: &age_proof,
            public_inputs: &stale_inputs,
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
fn out_of_range_dates_cannot_be_issued() {
    let mut attributes = sample_attributes();
    attributes.date_of_birth = zkid_circuits::credential::schema::MAX_INT + 1;
    assert!(
        zkid_circuits::credential::AttributeCredential::issue(&attributes, &mut rng(1)).is_err()
    );
}
