//! Pinned constraint counts and shape digests of every credential
//! circuit: a change to a circuit must come with a version bump, and these
//! numbers may only change together with that circuit's `VERSION`.
use zkid_circuits::{
    circuit::{shape, CircuitShape},
    credential::{
        AccountOwnership, AttributePredicate, AttributePredicates, SetMembership, SetNonMembership,
    },
    registry::{circuit_ids, shape_by_name},
    ZkCircuit,
};

fn check<C: ZkCircuit>(expected: (usize, usize, usize, usize), digest: &str) {
    let shape: CircuitShape = shape::<C>().expect("synthesis");
    assert_eq!(C::VERSION, 1, "{}", C::NAME);
    assert_eq!(
        (
            shape.constraints,
            shape.instance_variables,
            shape.witness_variables,
            shape.domain_size()
        ),
        expected,
        "{}: constraint count changed: bump its VERSION",
        C::NAME
    );
    assert_eq!(
        shape.digest,
        digest,
        "{}: circuit shape changed: bump its VERSION",
        C::NAME
    );
    assert_eq!(
        shape_by_name(C::NAME).expect("registered"),
        shape,
        "registry and type agree"
    );
}

#[test]
fn account_ownership_shape_is_pinned() {
    check::<AccountOwnership>(
        (890, 5, 893, 1024),
        "ac6f1e22f8573deb212498de01fd9738f982f4071a0b5b0b767b6a34b53f329f",
    );
}

#[test]
fn attribute_predicates_shape_is_pinned() {
    check::<AttributePredicates>(
        (1369, 20, 1345, 2048),
        "746435984a71cbbe5e5dab229d44363b4389cb99326c5edc10a47555d17220be",
    );
}

#[test]
fn attribute_predicate_shape_is_pinned() {
    check::<AttributePredicate>(
        (1009, 8, 1006, 1024),
        "c530f1c641f7701cf0d3b587c5eea35ce21aaf615c0490923cbf31a4cc1aaa22",
    );
}

#[test]
fn set_membership_shape_is_pinned() {
    check::<SetMembership>(
        (5742, 6, 5763, 8192),
        "9083b2736264129a871c2e2884c55ce9d5a4aabe39312ecb2d8e6ae29ca95b81",
    );
}

#[test]
fn set_non_membership_shape_is_pinned() {
    check::<SetNonMembership>(
        (6488, 6, 6509, 8192),
        "0d9e1d1378de64c690f151b8f60ccd190583a9efa5c96d7804a0dbf5daf7a2f0",
    );
}

#[test]
fn every_registered_circuit_has_a_pinned_shape_here_or_in_pin_proofs() {
    let names: Vec<String> = circuit_ids().into_iter().map(|id| id.name).collect();
    assert_eq!(
        names,
        [
            "pin-knowledge",
            "account-ownership",
            "attribute-predicates",
            "attribute-predicate",
            "set-membership",
            "set-non-membership"
        ]
    );
}
