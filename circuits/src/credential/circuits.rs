//! The attribute-credential circuits.
//!
//! Every circuit here proves three things and is bound to a challenge:
//! - the device factor: a PIN of at most eight digits and the device secret
//!   open the enrolled `device_commitment` (as in [`crate::pin`]);
//! - the credential: private slot values and blinding open the registered
//!   `attr_commitment` under the current schema;
//! - its predicate(s) over the opened slots, with every parameter public.
//!
//! All of them begin with the same three public inputs, in this order:
//! `device_commitment`, `attr_commitment`, `challenge`. The challenge takes
//! part in no constraint, and is binding all the same (see [`crate::pin`]'s
//! module docs: every public input has its own independent key point).
//! Because both commitments are public inputs of every proof, several
//! proofs verified for one call are about the same customer, device and
//! credential, and none of them can be replayed in another call.
//!
//! | circuit | NAME | public inputs after the common three |
//! |---|---|---|
//! | [`AccountOwnership`] | `account-ownership` | `account_id` |
//! | [`AttributePredicates`] | `attribute-predicates` | 4 x (`slot`, `kind`, `a`, `b`) |
//! | [`AttributePredicate`] | `attribute-predicate` | 1 x (`slot`, `kind`, `a`, `b`) |
//! | [`SetMembership`] | `set-membership` | `slot`, `root` |
//! | [`SetNonMembership`] | `set-non-membership` | `slot`, `root` |

use std::fmt;

use ark_bn254::Fr;
use ark_r1cs_std::{eq::EqGadget, fields::fp::FpVar};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

use super::{
    gadget::{alloc_and_open, enforce_device_factor, select_slot},
    predicate::{enforce_predicate, SlotPredicate},
    schema::{AttributeCredential, CredentialError, Slot, SLOT_COUNT},
};
use crate::{
    circuit::{alloc_public_inputs, PublicInputs, ZkCircuit},
    merkle::{
        enforce_membership, enforce_non_membership, MembershipSet, MerkleError, MerklePath,
        NonMembershipSet, NonMembershipWitness,
    },
    named,
    pin::{device_commitment, DeviceSecret, Pin},
};

/// Why a proving instance could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// The credential cannot be used (e.g. an old schema version).
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The value is not (or is) in the set, so no proof exists.
    #[error(transparent)]
    Set(#[from] MerkleError),
}

/// The three public inputs every credential circuit starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonPublic {
    /// `Poseidon(pin, device_secret)`, enrolled by the phone.
    pub device_commitment: Fr,
    /// The attribute commitment registered by the issuer.
    pub attr_commitment: Fr,
    /// The one-time challenge issued by the verifier.
    pub challenge: Fr,
}

impl CommonPublic {
    /// The statement the holder of these factors and this credential can
    /// prove for `challenge`.
    pub fn of(
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
        challenge: Fr,
    ) -> Self {
        Self {
            device_commitment: device_commitment(pin, secret),
            attr_commitment: credential.commitment(),
            challenge,
        }
    }

    fn fields(&self) -> [Fr; 3] {
        [self.device_commitment, self.attr_commitment, self.challenge]
    }
}

/// The private witness every credential circuit needs. Its `Debug` shows
/// nothing of it.
#[derive(Clone)]
struct CredentialWitness {
    pin: Fr,
    device_secret: Fr,
    opening: ([Fr; SLOT_COUNT], Fr),
}

impl fmt::Debug for CredentialWitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialWitness(<redacted>)")
    }
}

impl CredentialWitness {
    fn new(
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
    ) -> Result<Self, CredentialError> {
        Ok(Self {
            pin: pin.field_value(),
            device_secret: secret.field_value(),
            opening: credential.opening()?,
        })
    }
}

/// The opened slots, in commitment order.
type SlotVars = [FpVar<Fr>; SLOT_COUNT];

/// Allocates the public inputs, proves the device factor and opens the
/// credential; returns the inputs after the common three and the slots.
fn synthesize_common<P: PublicInputs>(
    cs: &ConstraintSystemRef<Fr>,
    public: Option<&P>,
    witness: Option<&CredentialWitness>,
) -> Result<(Vec<FpVar<Fr>>, SlotVars), SynthesisError> {
    let mut inputs = named!("public inputs", alloc_public_inputs(cs, public))?;
    if inputs.len() < 3 {
        return Err(SynthesisError::Unsatisfiable);
    }
    let rest = inputs.split_off(3);
    // inputs = [device_commitment, attr_commitment, challenge]; the
    // challenge only needs to be an input (module docs).
    enforce_device_factor(
        cs,
        &inputs[0],
        witness.map(|w| w.pin),
        witness.map(|w| w.device_secret),
    )?;
    let slots = alloc_and_open(cs, &inputs[1], witness.map(|w| &w.opening))?;
    Ok((rest, slots))
}

macro_rules! redacted_debug {
    ($ty:ident $(<$n:ident>)?) => {
        impl$(<const $n: usize>)? fmt::Debug for $ty$(<$n>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("public", &self.public)
                    .finish_non_exhaustive()
            }
        }
    };
}

// ---------------------------------------------------------------------
// account-ownership
// ---------------------------------------------------------------------

/// Public statement of [`AccountOwnership`], inputs in this order:
/// `device_commitment`, `attr_commitment`, `challenge`, `account_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountOwnershipPublic {
    /// Commitments and challenge.
    pub common: CommonPublic,
    /// The account the call is about, encoded with
    /// [`super::schema::encode_account_id`].
    pub account_id: Fr,
}

impl PublicInputs for AccountOwnershipPublic {
    const COUNT: usize = 4;
    fn to_field_elements(&self) -> Vec<Fr> {
        let mut fields = self.common.fields().to_vec();
        fields.push(self.account_id);
        fields
    }
}

/// "The caller holds the enrolled device, knows its PIN, and holds a
/// credential whose account id is the account this call is about."
#[derive(Clone)]
pub struct AccountOwnership {
    public: Option<AccountOwnershipPublic>,
    witness: Option<CredentialWitness>,
}
redacted_debug!(AccountOwnership);

impl AccountOwnership {
    /// A proving instance for the holder's own account.
    ///
    /// # Errors
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn new(
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
        challenge: Fr,
    ) -> Result<Self, StatementError> {
        let public = AccountOwnershipPublic {
            common: CommonPublic::of(pin, secret, credential, challenge),
            account_id: credential.value(Slot::AccountId),
        };
        Self::for_statement(public, pin, secret, credential)
    }

    /// A proving instance for a given statement (which may be false, in
    /// which case proving fails cleanly).
    ///
    /// # Errors
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn for_statement(
        public: AccountOwnershipPublic,
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
    ) -> Result<Self, StatementError> {
        Ok(Self {
            public: Some(public),
            witness: Some(CredentialWitness::new(pin, secret, credential)?),
        })
    }

    /// The statement this instance proves.
    pub fn public(&self) -> Option<&AccountOwnershipPublic> {
        self.public.as_ref()
    }
}

impl ZkCircuit for AccountOwnership {
    const NAME: &'static str = "account-ownership";
    const VERSION: u32 = 1;
    type Public = AccountOwnershipPublic;

    fn blank() -> Self {
        Self {
            public: None,
            witness: None,
        }
    }
}

impl ConstraintSynthesizer<Fr> for AccountOwnership {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let (rest, slots) = synthesize_common(&cs, self.public.as_ref(), self.witness.as_ref())?;
        let account = rest.first().ok_or(SynthesisError::Unsatisfiable)?;
        named!(
            "account matches",
            slots[Slot::AccountId.index()].enforce_equal(account)
        )
    }
}

// ---------------------------------------------------------------------
// attribute-predicates / attribute-predicate
// ---------------------------------------------------------------------

/// Public statement of a [`PredicateCircuit`] with `N` predicate slots,
/// inputs in this order: `device_commitment`, `attr_commitment`,
/// `challenge`, then for each predicate `slot`, `kind`, `a`, `b` (see
/// [`SlotPredicate::to_field_elements`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredicatesPublic<const N: usize> {
    /// Commitments and challenge.
    pub common: CommonPublic,
    /// The predicates; fill unused ones with [`SlotPredicate::unused`].
    pub predicates: [SlotPredicate; N],
}

impl<const N: usize> PublicInputs for PredicatesPublic<N> {
    const COUNT: usize = 3 + 4 * N;
    fn to_field_elements(&self) -> Vec<Fr> {
        let mut fields = self.common.fields().to_vec();
        for predicate in &self.predicates {
            fields.extend_from_slice(&predicate.to_field_elements());
        }
        fields
    }
}

/// The device factor and `N` public predicates over one credential.
/// Account ownership is the predicate
/// `SlotPredicate::equals(Slot::AccountId, account)`; age >= 18 on a day is
/// [`SlotPredicate::age_at_least`].
#[derive(Clone)]
pub struct PredicateCircuit<const N: usize> {
    public: Option<PredicatesPublic<N>>,
    witness: Option<CredentialWitness>,
}
redacted_debug!(PredicateCircuit<N>);

/// Four predicate slots: one proof for a whole policy.
pub type AttributePredicates = PredicateCircuit<4>;

/// One predicate slot: for policies proven as several proofs in a batch.
pub type AttributePredicate = PredicateCircuit<1>;

impl<const N: usize> PredicateCircuit<N> {
    /// A proving instance for `predicates` over the holder's credential.
    /// Predicates that do not hold make proving fail, naming the broken
    /// predicate slot.
    ///
    /// # Errors
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn new(
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
        challenge: Fr,
        predicates: [SlotPredicate; N],
    ) -> Result<Self, StatementError> {
        let public = PredicatesPublic {
            common: CommonPublic::of(pin, secret, credential, challenge),
            predicates,
        };
        Self::for_statement(public, pin, secret, credential)
    }

    /// A proving instance for a given statement.
    ///
    /// # Errors
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn for_statement(
        public: PredicatesPublic<N>,
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
    ) -> Result<Self, StatementError> {
        Ok(Self {
            public: Some(public),
            witness: Some(CredentialWitness::new(pin, secret, credential)?),
        })
    }

    /// The statement this instance proves.
    pub fn public(&self) -> Option<&PredicatesPublic<N>> {
        self.public.as_ref()
    }
}

impl ZkCircuit for PredicateCircuit<4> {
    const NAME: &'static str = "attribute-predicates";
    const VERSION: u32 = 1;
    type Public = PredicatesPublic<4>;

    fn blank() -> Self {
        Self {
            public: None,
            witness: None,
        }
    }
}

impl ZkCircuit for PredicateCircuit<1> {
    const NAME: &'static str = "attribute-predicate";
    const VERSION: u32 = 1;
    type Public = PredicatesPublic<1>;

    fn blank() -> Self {
        Self {
            public: None,
            witness: None,
        }
    }
}

impl<const N: usize> ConstraintSynthesizer<Fr> for PredicateCircuit<N> {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let (rest, slots) = synthesize_common(&cs, self.public.as_ref(), self.witness.as_ref())?;
        for (index, params) in rest.chunks_exact(4).enumerate() {
            let params: [FpVar<Fr>; 4] = [
                params[0].clone(),
                params[1].clone(),
                params[2].clone(),
                params[3].clone(),
            ];
            let check = || enforce_predicate(&cs, &slots, &params);
            // Span names must be literals; four slots is the largest circuit.
            match index {
                0 => named!("predicate 0", check()),
                1 => named!("predicate 1", check()),
                2 => named!("predicate 2", check()),
                3 => named!("predicate 3", check()),
                _ => named!("predicate", check()),
            }?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------
// set-membership / set-non-membership
// ---------------------------------------------------------------------

/// Public statement of [`SetMembership`], inputs in this order:
/// `device_commitment`, `attr_commitment`, `challenge`, `slot` (its
/// [`Slot::index`]), `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetMembershipPublic {
    /// Commitments and challenge.
    pub common: CommonPublic,
    /// The slot whose value is in the set.
    pub slot: Slot,
    /// Root of the [`MembershipSet`], built from values encoded like the
    /// slot.
    pub root: Fr,
}

impl PublicInputs for SetMembershipPublic {
    const COUNT: usize = 5;
    fn to_field_elements(&self) -> Vec<Fr> {
        let mut fields = self.common.fields().to_vec();
        fields.extend([Fr::from(self.slot.index() as u64), self.root]);
        fields
    }
}

/// "The credential's `slot` is one of the set with this root", e.g. a
/// postcode the branch serves.
#[derive(Clone)]
pub struct SetMembership {
    public: Option<SetMembershipPublic>,
    witness: Option<CredentialWitness>,
    path: Option<MerklePath>,
}
redacted_debug!(SetMembership);

impl SetMembership {
    /// A proving instance showing the holder's `slot` is in `set`.
    ///
    /// # Errors
    /// [`StatementError::Set`] if the value is not a member;
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn new(
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
        challenge: Fr,
        slot: Slot,
        set: &MembershipSet,
    ) -> Result<Self, StatementError> {
        let public = SetMembershipPublic {
            common: CommonPublic::of(pin, secret, credential, challenge),
            slot,
            root: set.root(),
        };
        let path = set.witness(&credential.value(slot))?;
        Self::for_statement(public, pin, secret, credential, path)
    }

    /// A proving instance for a given statement and path.
    ///
    /// # Errors
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn for_statement(
        public: SetMembershipPublic,
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
        path: MerklePath,
    ) -> Result<Self, StatementError> {
        Ok(Self {
            public: Some(public),
            witness: Some(CredentialWitness::new(pin, secret, credential)?),
            path: Some(path),
        })
    }

    /// The statement this instance proves.
    pub fn public(&self) -> Option<&SetMembershipPublic> {
        self.public.as_ref()
    }
}

impl ZkCircuit for SetMembership {
    const NAME: &'static str = "set-membership";
    const VERSION: u32 = 1;
    type Public = SetMembershipPublic;

    fn blank() -> Self {
        Self {
            public: None,
            witness: None,
            path: None,
        }
    }
}

impl ConstraintSynthesizer<Fr> for SetMembership {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let (rest, slots) = synthesize_common(&cs, self.public.as_ref(), self.witness.as_ref())?;
        let [slot, root] =
            <[FpVar<Fr>; 2]>::try_from(rest).map_err(|_| SynthesisError::Unsatisfiable)?;
        let value = named!("set slot selector", select_slot(&cs, &slot, &slots))?;
        enforce_membership(&cs, &value, &root, self.path.as_ref())
    }
}

/// Public statement of [`SetNonMembership`], inputs in this order:
/// `device_commitment`, `attr_commitment`, `challenge`, `slot`, `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetNonMembershipPublic {
    /// Commitments and challenge.
    pub common: CommonPublic,
    /// The slot whose value is absent from the set.
    pub slot: Slot,
    /// Root of the [`NonMembershipSet`].
    pub root: Fr,
}

impl PublicInputs for SetNonMembershipPublic {
    const COUNT: usize = 5;
    fn to_field_elements(&self) -> Vec<Fr> {
        let mut fields = self.common.fields().to_vec();
        fields.extend([Fr::from(self.slot.index() as u64), self.root]);
        fields
    }
}

/// "The credential's `slot` is not in the set with this root", e.g. a
/// phone number not on a fraud list.
#[derive(Clone)]
pub struct SetNonMembership {
    public: Option<SetNonMembershipPublic>,
    witness: Option<CredentialWitness>,
    neighbours: Option<NonMembershipWitness>,
}
redacted_debug!(SetNonMembership);

impl SetNonMembership {
    /// A proving instance showing the holder's `slot` is absent from `set`.
    ///
    /// # Errors
    /// [`StatementError::Set`] if the value is a member;
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn new(
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
        challenge: Fr,
        slot: Slot,
        set: &NonMembershipSet,
    ) -> Result<Self, StatementError> {
        let public = SetNonMembershipPublic {
            common: CommonPublic::of(pin, secret, credential, challenge),
            slot,
            root: set.root(),
        };
        let neighbours = set.witness(&credential.value(slot))?;
        Self::for_statement(public, pin, secret, credential, neighbours)
    }

    /// A proving instance for a given statement and neighbours.
    ///
    /// # Errors
    /// [`StatementError::Credential`] for a credential of another schema.
    pub fn for_statement(
        public: SetNonMembershipPublic,
        pin: &Pin,
        secret: &DeviceSecret,
        credential: &AttributeCredential,
        neighbours: NonMembershipWitness,
    ) -> Result<Self, StatementError> {
        Ok(Self {
            public: Some(public),
            witness: Some(CredentialWitness::new(pin, secret, credential)?),
            neighbours: Some(neighbours),
        })
    }

    /// The statement this instance proves.
    pub fn public(&self) -> Option<&SetNonMembershipPublic> {
        self.public.as_ref()
    }
}

impl ZkCircuit for SetNonMembership {
    const NAME: &'static str = "set-non-membership";
    const VERSION: u32 = 1;
    type Public = SetNonMembershipPublic;

    fn blank() -> Self {
        Self {
            public: None,
            witness: None,
            neighbours: None,
        }
    }
}

impl ConstraintSynthesizer<Fr> for SetNonMembership {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let (rest, slots) = synthesize_common(&cs, self.public.as_ref(), self.witness.as_ref())?;
        let [slot, root] =
            <[FpVar<Fr>; 2]>::try_from(rest).map_err(|_| SynthesisError::Unsatisfiable)?;
        let value = named!("set slot selector", select_slot(&cs, &slot, &slots))?;
        enforce_non_membership(&cs, &value, &root, self.neighbours.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        credential::schema::{Attributes, Blinding, SCHEMA_VERSION},
        test_support::unsatisfied_constraint,
    };
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    struct Fixture {
        pin: Pin,
        secret: DeviceSecret,
        attributes: Attributes,
        credential: AttributeCredential,
    }

    fn fixture() -> Fixture {
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let attributes = Attributes {
            account_id: "ACC-42".into(),
            date_of_birth: 10_000,
            postcode: "10115".into(),
            phone_number: "+4930123456".into(),
            national_id_last4: "0042".into(),
        };
        Fixture {
            pin: Pin::parse("1234").expect("pin"),
            secret: DeviceSecret::generate(&mut rng),
            credential: AttributeCredential::issue(&attributes, &mut rng).expect("valid"),
            attributes,
        }
    }

    #[test]
    fn honest_account_ownership_satisfies() {
        let f = fixture();
        let circuit =
            AccountOwnership::new(&f.pin, &f.secret, &f.credential, Fr::from(5u8)).expect("ok");
        assert_eq!(unsatisfied_constraint(circuit), None);
    }

    #[test]
    fn another_account_breaks_account_matches() {
        let f = fixture();
        let mut public = *AccountOwnership::new(&f.pin, &f.secret, &f.credential, Fr::from(5u8))
            .expect("ok")
            .public()
            .expect("set");
        public.account_id = Slot::AccountId.encode_text("ACC-43").expect("text");
        let circuit =
            AccountOwnership::for_statement(public, &f.pin, &f.secret, &f.credential).expect("ok");
        let broken = unsatisfied_constraint(circuit).expect("must fail");
        assert!(broken.contains("account matches"), "{broken}");
    }

    #[test]
    fn wrong_pin_breaks_the_device_commitment() {
        let f = fixture();
        let public = *AccountOwnership::new(&f.pin, &f.secret, &f.credential, Fr::from(5u8))
            .expect("ok")
            .public()
            .expect("set");
        let wrong = Pin::parse("1235").expect("pin");
        let circuit =
            AccountOwnership::for_statement(public, &wrong, &f.secret, &f.credential).expect("ok");
        let broken = unsatisfied_constraint(circuit).expect("must fail");
        assert!(broken.contains("device commitment matches"), "{broken}");
    }

    #[test]
    fn an_old_schema_credential_is_refused_and_would_not_open() {
        let f = fixture();
        let old = AttributeCredential::from_parts(
            SCHEMA_VERSION - 1,
            &f.attributes,
            f.credential.blinding().clone(),
        )
        .expect("valid");
        assert_eq!(
            AccountOwnership::new(&f.pin, &f.secret, &old, Fr::from(5u8)).err(),
            Some(StatementError::Credential(
                CredentialError::UnsupportedSchema {
                    found: SCHEMA_VERSION - 1
                }
            ))
        );
        // Bypassing the check: the old commitment does not open under the
        // current schema tag.
        let (values, blinding) = (
            std::array::from_fn(|i| f.credential.value(Slot::ALL[i])),
            f.credential.blinding().0,
        );
        let circuit = AccountOwnership {
            public: Some(AccountOwnershipPublic {
                common: CommonPublic::of(&f.pin, &f.secret, &old, Fr::from(5u8)),
                account_id: old.value(Slot::AccountId),
            }),
            witness: Some(CredentialWitness {
                pin: f.pin.field_value(),
                device_secret: f.secret.field_value(),
                opening: (values, blinding),
            }),
        };
        let broken = unsatisfied_constraint(circuit).expect("must fail");
        assert!(broken.contains("attribute commitment matches"), "{broken}");
    }

    #[test]
    fn another_credential_breaks_the_attribute_commitment() {
        let f = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(32);
        let other = AttributeCredential::from_parts(
            SCHEMA_VERSION,
            &f.attributes,
            Blinding::generate(&mut rng),
        )
        .expect("valid");
        let public = *AccountOwnership::new(&f.pin, &f.secret, &f.credential, Fr::from(5u8))
            .expect("ok")
            .public()
            .expect("set");
        let circuit =
            AccountOwnership::for_statement(public, &f.pin, &f.secret, &other).expect("ok");
        let broken = unsatisfied_constraint(circuit).expect("must fail");
        assert!(broken.contains("attribute commitment matches"), "{broken}");
    }

    #[test]
    fn a_failing_predicate_is_named_by_its_slot() {
        let f = fixture();
        let predicates = [
            SlotPredicate::equals(Slot::AccountId, f.credential.value(Slot::AccountId)),
            SlotPredicate::unused(),
            SlotPredicate::gte(Slot::DateOfBirth, 10_001).expect("valid"),
            SlotPredicate::unused(),
        ];
        let circuit =
            AttributePredicates::new(&f.pin, &f.secret, &f.credential, Fr::from(1u8), predicates)
                .expect("ok");
        let broken = unsatisfied_constraint(circuit).expect("must fail");
        assert!(
            broken.contains("predicate 2") && broken.contains("lower bound"),
            "{broken}"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let f = fixture();
        let circuit =
            AccountOwnership::new(&f.pin, &f.secret, &f.credential, Fr::from(5u8)).expect("ok");
        let text = format!("{circuit:?} {:?}", circuit.witness);
        assert!(
            text.contains("redacted") && !text.contains("1234"),
            "{text}"
        );
    }
}
