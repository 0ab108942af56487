//! Attribute credentials: account ownership and predicates over attested
//! attributes, proven without revealing them.
//!
//! # Who attests what
//! The organization's system of record (say, a bank's onboarding backend)
//! fills an [`AttributeCredential`]: a fixed, versioned schema of
//! [`Slot`]s plus a random [`Blinding`]. It hands values and blinding to the
//! customer's app over its own channel and registers only the commitment
//! [`attr_commitment`] (and [`SCHEMA_VERSION`]) with zkid. The phone holds
//! the device factor (`Poseidon(pin, device_secret)`, see [`crate::pin`]).
//! The zkid server stores the two commitments and the schema version, never
//! a value.
//!
//! # Encodings
//! - Text slots (account id, postcode, phone number, national-id last four)
//!   map to a field element by [`text::text_to_field`]: Poseidon over
//!   length-prefixed, domain-tagged bytes packed into 31-byte chunks.
//!   The encoding is bytewise: issuer and verifier must canonicalize the
//!   same way (E.164 phone numbers, upper-case postcodes without spaces).
//! - The integer slot (date of birth, as days since 1970-01-01, negative
//!   before 1970) maps to the field as a signed integer of at most
//!   [`schema::INT_BITS`] bits ([`schema::int_to_field`]).
//!
//! # The commitment
//! `attr_commitment = Poseidon2(Poseidon6(schema_tag, account_id,
//! date_of_birth, postcode, phone_number, national_id_last4), blinding)`,
//! where `schema_tag` is a domain-separated constant per schema version
//! ([`schema::schema_tag`]). Circuits hard-wire the current version's tag,
//! so a credential committed under another schema does not open.
//!
//! We chose this flat two-hash chain over a Poseidon Merkle tree of the
//! slots by measured constraint count (see
//! `schema::tests::flat_commitment_is_cheaper_than_a_slot_tree`): opening
//! the flat commitment costs 591 constraints (351 for Poseidon6, whose
//! constant tag lane gets its first S-box free, and 240 for Poseidon2), a
//! binary tree over eight leaves (tag, five slots, blinding, padding) 1,680,
//! and even a single salted slot opened along a depth-3 path 960. A tree's only advantage, opening one slot
//! without the others, does not pay off, since every circuit here opens the
//! commitment once and a path is already dearer than the full opening.
//! Poseidon takes at most six inputs and we have seven (tag, five slots,
//! blinding), hence the chain; the blinding enters last so that the inner
//! hash, which is deterministic, never leaves the circuit.
//!
//! # Circuits
//! Every circuit proves the device factor, opens the attribute commitment
//! and is bound to the one-time challenge ([`circuits`]):
//! - `account-ownership`: the account id slot equals a public account;
//! - `attribute-predicates` (four predicate slots) and `attribute-predicate`
//!   (one): each slot is a public [`SlotPredicate`] (equality, inequality
//!   or an integer range, which covers lt, lte, gt, gte, between and
//!   age >= N on a date);
//! - `set-membership` and `set-non-membership`: a slot is (not) in a set
//!   committed to by a public Poseidon Merkle root ([`crate::merkle`]).
//!
//! Several predicates of one policy go into one `attribute-predicates`
//! proof; membership proofs, which cost a Merkle path each, are separate
//! proofs checked in the same batch. `benches/RESULTS.md` ("Credential
//! circuits") records the measurements behind that split.

pub mod circuits;
pub mod date;
pub(crate) mod gadget;
pub mod predicate;
pub mod schema;
pub mod text;

pub use circuits::{
    AccountOwnership, AccountOwnershipPublic, AttributePredicate, AttributePredicates,
    CommonPublic, PredicateCircuit, PredicatesPublic, SetMembership, SetMembershipPublic,
    SetNonMembership, SetNonMembershipPublic, StatementError,
};
pub use predicate::{PredicateError, PredicateKind, SlotPredicate};
pub use schema::{
    attr_commitment, check_schema_version, encode_account_id, int_to_field, AttributeCredential,
    Attributes, Blinding, CredentialError, Slot, SlotKind, SCHEMA_VERSION,
};

use ark_bn254::Fr;

use crate::poseidon;

/// `Poseidon(inputs)` for a fixed arity of 1 to 6.
pub(crate) fn hash_fixed<const K: usize>(inputs: &[Fr; K]) -> Fr {
    // Every call site uses K in 1..=6, the arities Poseidon supports, so
    // the only error `hash` can return never happens.
    poseidon::hash(inputs).unwrap_or_else(|_| unreachable!("Poseidon arity {K} is supported"))
}
