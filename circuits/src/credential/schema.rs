//! The attribute-credential schema (version [`SCHEMA_VERSION`]), slot
//! encodings and the commitment.

use std::fmt;

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField, UniformRand};
use rand::{CryptoRng, RngCore};

use super::{
    hash_fixed,
    text::{text_to_field, TextEncodingError},
};
use crate::encoding::{field_from_bytes, field_to_bytes, FieldEncodingError};

/// The schema version this crate's circuits accept. Bump it (and every
/// credential circuit's `VERSION`) when slots are added, removed or
/// re-encoded; old credentials then fail to open and must be re-issued.
pub const SCHEMA_VERSION: u32 = 1;

/// Width of the range checks on integer slots: an integer slot holds a
/// signed integer in `[MIN_INT, MAX_INT] = [-2^47, 2^47 - 1]`, so the
/// difference of two of them is below `2^48` and every comparison needs
/// two `INT_BITS`-bit decompositions (see [`super::predicate`]). 2^47 days
/// is far more than any date needs; the width is chosen so that one bound
/// covers every integer slot of this and later schema versions.
pub const INT_BITS: usize = 48;

/// The smallest integer an integer slot may hold.
pub const MIN_INT: i64 = -(1 << (INT_BITS - 1));

/// The largest integer an integer slot may hold.
pub const MAX_INT: i64 = (1 << (INT_BITS - 1)) - 1;

/// Number of slots in this schema.
pub const SLOT_COUNT: usize = 5;

/// What a slot holds, which decides its encoding and the predicates that
/// make sense on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotKind {
    /// A string, encoded with [`text_to_field`] under the slot's domain.
    Text,
    /// A signed integer in `[MIN_INT, MAX_INT]`, encoded by [`int_to_field`].
    Integer,
}

/// The slots of schema version 1, in commitment order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The customer's account identifier (text).
    AccountId,
    /// Date of birth, days since 1970-01-01, negative before (integer).
    DateOfBirth,
    /// Postcode, canonicalized by the issuer (text).
    Postcode,
    /// Phone number in E.164 form, e.g. `+4915112345678` (text).
    PhoneNumber,
    /// The last four characters of the national id (text: some national
    /// ids end in letters).
    NationalIdLast4,
}

impl Slot {
    /// Every slot, in commitment order.
    pub const ALL: [Slot; SLOT_COUNT] = [
        Slot::AccountId,
        Slot::DateOfBirth,
        Slot::Postcode,
        Slot::PhoneNumber,
        Slot::NationalIdLast4,
    ];

    /// Position in the commitment, and the public-input value naming the
    /// slot in a predicate.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The slot at `index`, if any.
    pub fn from_index(index: usize) -> Option<Slot> {
        Self::ALL.get(index).copied()
    }

    /// Stable snake-case name, also the text-encoding domain suffix.
    pub fn name(self) -> &'static str {
        match self {
            Slot::AccountId => "account_id",
            Slot::DateOfBirth => "date_of_birth",
            Slot::Postcode => "postcode",
            Slot::PhoneNumber => "phone_number",
            Slot::NationalIdLast4 => "national_id_last4",
        }
    }

    /// The slot's kind.
    pub fn kind(self) -> SlotKind {
        match self {
            Slot::DateOfBirth => SlotKind::Integer,
            _ => SlotKind::Text,
        }
    }

    /// Encodes a text value for this slot, exactly as the issuer did: use
    /// it for public values compared with the slot (the account a call is
    /// about, a set of served postcodes).
    ///
    /// # Errors
    /// [`CredentialError::NotATextSlot`] for integer slots;
    /// [`CredentialError::Text`] for overlong text.
    pub fn encode_text(self, text: &str) -> Result<Fr, CredentialError> {
        if self.kind() != SlotKind::Text {
            return Err(CredentialError::NotATextSlot(self));
        }
        let domain = format!("zkid.attr.{}", self.name());
        Ok(text_to_field(&domain, text)?)
    }
}

/// The public value of an account id, as committed in
/// [`Slot::AccountId`]. The server computes it for the account a call is
/// about.
///
/// # Errors
/// [`CredentialError::Text`] for an overlong id.
pub fn encode_account_id(account_id: &str) -> Result<Fr, CredentialError> {
    Slot::AccountId.encode_text(account_id)
}

/// Encodes a signed integer: `v` for `v >= 0`, `p - |v|` below zero.
///
/// # Errors
/// [`CredentialError::IntegerOutOfRange`] outside `[MIN_INT, MAX_INT]`.
pub fn int_to_field(value: i64) -> Result<Fr, CredentialError> {
    if !(MIN_INT..=MAX_INT).contains(&value) {
        return Err(CredentialError::IntegerOutOfRange(value));
    }
    let magnitude = Fr::from(value.unsigned_abs());
    Ok(if value < 0 { -magnitude } else { magnitude })
}

/// The integer a field element encodes, if it encodes one in
/// `[MIN_INT, MAX_INT]`.
pub fn field_to_int(value: &Fr) -> Option<i64> {
    let small = |x: &Fr| -> Option<u64> {
        let bigint = x.into_bigint();
        (bigint.num_bits() <= 64).then(|| bigint.as_ref()[0])
    };
    if let Some(v) = small(value).and_then(|v| i64::try_from(v).ok()) {
        return (v <= MAX_INT).then_some(v);
    }
    let magnitude = small(&-*value)?;
    // |MIN_INT| = 2^47 fits an i64, so the negation cannot overflow.
    let v = -i64::try_from(magnitude).ok()?;
    (v >= MIN_INT).then_some(v)
}

/// Errors of the credential layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The credential was issued under another schema version; it must be
    /// re-issued before it can be used.
    #[error("credential uses schema version {found}, this build accepts {SCHEMA_VERSION}")]
    UnsupportedSchema {
        /// The credential's version.
        found: u32,
    },
    /// A text value could not be encoded.
    #[error(transparent)]
    Text(#[from] TextEncodingError),
    /// An integer outside `[MIN_INT, MAX_INT]`.
    #[error("integer {0} is outside the range of integer slots")]
    IntegerOutOfRange(i64),
    /// A text operation on an integer slot.
    #[error("slot {} holds an integer, not text", .0.name())]
    NotATextSlot(Slot),
    /// The blinding bytes are not a canonical field element.
    #[error("blinding is not a canonical field element")]
    MalformedBlinding(#[from] FieldEncodingError),
}

/// Refuses every schema version but [`SCHEMA_VERSION`]. The server calls
/// it with the version stored beside a commitment before asking for a
/// proof; the circuits enforce the same through [`schema_tag`].
///
/// # Errors
/// [`CredentialError::UnsupportedSchema`].
pub fn check_schema_version(version: u32) -> Result<(), CredentialError> {
    if version == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(CredentialError::UnsupportedSchema { found: version })
    }
}

/// The constant that opens a commitment of schema `version`:
/// `Poseidon2(text_to_field("zkid.attr", "attribute-credential"), version)`.
/// Hashing the version (rather than using it raw) keeps the tag apart from
/// any slot value a careless issuer might place first.
pub fn schema_tag(version: u32) -> Fr {
    // A constant domain and text, both far below the length limits.
    let domain = text_to_field("zkid.attr", "attribute-credential")
        .unwrap_or_else(|_| unreachable!("constant input within limits"));
    hash_fixed(&[domain, Fr::from(version)])
}

/// The attested attribute values, as the issuer knows them. Its `Debug`
/// shows nothing of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Attributes {
    /// Account identifier.
    pub account_id: String,
    /// Days since 1970-01-01 (see [`super::date::days_from_civil`]).
    pub date_of_birth: i64,
    /// Canonical postcode.
    pub postcode: String,
    /// E.164 phone number.
    pub phone_number: String,
    /// Last four characters of the national id.
    pub national_id_last4: String,
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Attributes(<redacted>)")
    }
}

impl Attributes {
    /// The slot values as field elements, in commitment order.
    ///
    /// # Errors
    /// Overlong text or an out-of-range date.
    pub fn encode(&self) -> Result<[Fr; SLOT_COUNT], CredentialError> {
        Ok([
            Slot::AccountId.encode_text(&self.account_id)?,
            int_to_field(self.date_of_birth)?,
            Slot::Postcode.encode_text(&self.postcode)?,
            Slot::PhoneNumber.encode_text(&self.phone_number)?,
            Slot::NationalIdLast4.encode_text(&self.national_id_last4)?,
        ])
    }
}

/// The credential's random blinding: it makes the commitment hiding (slot
/// values such as a date of birth have little entropy and could otherwise
/// be found by trying them all). Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Blinding(pub(crate) Fr);

impl Blinding {
    /// Draws a fresh blinding. Use the OS RNG outside tests.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(Fr::rand(rng))
    }

    /// The canonical 32-byte encoding, for handing to the customer's app.
    pub fn to_bytes(&self) -> [u8; 32] {
        field_to_bytes(&self.0)
    }

    /// Reads the canonical encoding.
    ///
    /// # Errors
    /// [`CredentialError::MalformedBlinding`].
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CredentialError> {
        Ok(Self(field_from_bytes(bytes)?))
    }
}

impl fmt::Debug for Blinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Blinding(<redacted>)")
    }
}

/// An issued attribute credential: encoded slot values, blinding and the
/// schema version they were committed under. Its `Debug` shows only the
/// version.
#[derive(Clone, PartialEq, Eq)]
pub struct AttributeCredential {
    schema_version: u32,
    values: [Fr; SLOT_COUNT],
    blinding: Blinding,
}

impl fmt::Debug for AttributeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttributeCredential")
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

impl AttributeCredential {
    /// Issues a credential under the current schema with a fresh blinding
    /// (the issuer's side).
    ///
    /// # Errors
    /// See [`Attributes::encode`].
    pub fn issue<R: RngCore + CryptoRng>(
        attributes: &Attributes,
        rng: &mut R,
    ) -> Result<Self, CredentialError> {
        Self::from_parts(SCHEMA_VERSION, attributes, Blinding::generate(rng))
    }

    /// Rebuilds a credential from what the issuer handed over (the app's
    /// side). Any `schema_version` is accepted here, so that an app can
    /// hold an old credential and learn from the error when it tries to
    /// prove with it.
    ///
    /// # Errors
    /// See [`Attributes::encode`].
    pub fn from_parts(
        schema_version: u32,
        attributes: &Attributes,
        blinding: Blinding,
    ) -> Result<Self, CredentialError> {
        Ok(Self {
            schema_version,
            values: attributes.encode()?,
            blinding,
        })
    }

    /// The schema version the credential was committed under.
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The encoded value of `slot`. This is the customer's own data: the
    /// app may use it, nothing may log it.
    pub fn value(&self, slot: Slot) -> Fr {
        self.values[slot.index()]
    }

    /// The blinding.
    pub fn blinding(&self) -> &Blinding {
        &self.blinding
    }

    /// The commitment the issuer registers with zkid.
    pub fn commitment(&self) -> Fr {
        commit(self.schema_version, &self.values, &self.blinding.0)
    }

    /// The encoded slot values and blinding, refusing other schemas.
    pub(crate) fn opening(&self) -> Result<([Fr; SLOT_COUNT], Fr), CredentialError> {
        check_schema_version(self.schema_version)?;
        Ok((self.values, self.blinding.0))
    }
}

/// `attr_commitment` of a credential (see the [module docs](super)).
pub fn attr_commitment(credential: &AttributeCredential) -> Fr {
    credential.commitment()
}

/// `Poseidon2(Poseidon6(schema_tag(version), values...), blinding)`.
pub(crate) fn commit(version: u32, values: &[Fr; SLOT_COUNT], blinding: &Fr) -> Fr {
    let [a, b, c, d, e] = *values;
    let inner = hash_fixed(&[schema_tag(version), a, b, c, d, e]);
    hash_fixed(&[inner, *blinding])
}

/// `-1` in the field, for tests and docs about wrap-around.
#[cfg(test)]
pub(crate) fn minus_one() -> Fr {
    -Fr::from(1u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{credential::gadget, poseidon::gadget::hash_var};
    use ark_ff::Field;
    use ark_r1cs_std::{alloc::AllocVar, fields::fp::FpVar, GR1CSVar};
    use ark_relations::gr1cs::{ConstraintSystem, OptimizationGoal};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    pub(crate) fn sample_attributes() -> Attributes {
        Attributes {
            account_id: "DE-ACC-000123".into(),
            date_of_birth: 7_000,
            postcode: "10115".into(),
            phone_number: "+4915112345678".into(),
            national_id_last4: "123X".into(),
        }
    }

    #[test]
    fn integers_round_trip_at_the_edges() {
        for v in [0, 1, -1, MIN_INT, MAX_INT, -719_468, 20_000] {
            assert_eq!(field_to_int(&int_to_field(v).expect("in range")), Some(v));
        }
        assert_eq!(
            int_to_field(MAX_INT + 1),
            Err(CredentialError::IntegerOutOfRange(MAX_INT + 1))
        );
        assert_eq!(
            int_to_field(MIN_INT - 1),
            Err(CredentialError::IntegerOutOfRange(MIN_INT - 1))
        );
        assert_eq!(int_to_field(-1), Ok(minus_one()));
        assert_eq!(field_to_int(&Fr::from(1u64 << 47)), None);
        assert_eq!(field_to_int(&-Fr::from((1u64 << 47) + 1)), None);
        assert_eq!(field_to_int(&Fr::from(u64::MAX)), None);
    }

    #[test]
    fn commitment_depends_on_every_slot_the_blinding_and_the_version() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let attributes = sample_attributes();
        let credential = AttributeCredential::issue(&attributes, &mut rng).expect("valid");
        let base = credential.commitment();
        for slot in Slot::ALL {
            let mut values = credential.values;
            values[slot.index()] += Fr::ONE;
            assert_ne!(
                commit(SCHEMA_VERSION, &values, &credential.blinding.0),
                base
            );
        }
        let other_blinding = Blinding::generate(&mut rng);
        let reblinded =
            AttributeCredential::from_parts(SCHEMA_VERSION, &attributes, other_blinding)
                .expect("valid");
        assert_ne!(reblinded.commitment(), base);
        let old = AttributeCredential::from_parts(0, &attributes, credential.blinding.clone())
            .expect("valid");
        assert_ne!(old.commitment(), base);
        assert_eq!(
            old.opening(),
            Err(CredentialError::UnsupportedSchema { found: 0 })
        );
        assert!(credential.opening().is_ok());
    }

    #[test]
    fn text_is_refused_for_integer_slots() {
        assert_eq!(
            Slot::DateOfBirth.encode_text("1990-01-01"),
            Err(CredentialError::NotATextSlot(Slot::DateOfBirth))
        );
        assert_ne!(
            Slot::Postcode.encode_text("10115").expect("text"),
            Slot::PhoneNumber.encode_text("10115").expect("text")
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let attributes = sample_attributes();
        let credential = AttributeCredential::issue(&attributes, &mut rng).expect("valid");
        let text = format!("{attributes:?} {credential:?} {:?}", credential.blinding());
        for secret in ["DE-ACC", "7000", "10115", "+49", "123X"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("schema_version: 1"));
    }

    #[test]
    fn blinding_bytes_round_trip_and_refuse_non_canonical() {
        let blinding = Blinding::generate(&mut ChaCha20Rng::seed_from_u64(3));
        assert_eq!(Blinding::from_bytes(&blinding.to_bytes()), Ok(blinding));
        assert!(Blinding::from_bytes(&[0xff; 32]).is_err());
    }

    /// The measurement behind the commitment's structure (module docs of
    /// [`crate::credential`]).
    #[test]
    fn flat_commitment_is_cheaper_than_a_slot_tree() {
        let count = |build: &dyn Fn(&[FpVar<Fr>])| {
            let cs = ConstraintSystem::<Fr>::new_ref();
            cs.set_optimization_goal(OptimizationGoal::Constraints);
            let vars: Vec<FpVar<Fr>> = (0..8u64)
                .map(|i| FpVar::new_witness(cs.clone(), || Ok(Fr::from(i))).expect("alloc"))
                .collect();
            build(&vars);
            cs.num_constraints()
        };
        let flat = count(&|v| {
            let commitment = FpVar::new_input(v[0].cs(), || Ok(Fr::ONE)).expect("alloc");
            let slots: [FpVar<Fr>; SLOT_COUNT] = std::array::from_fn(|i| v[i].clone());
            gadget::open_commitment(&commitment, &slots, &v[5]).expect("synthesis");
        });
        let tree = count(&|v| {
            let mut level = v.to_vec();
            while level.len() > 1 {
                level = level
                    .chunks(2)
                    .map(|pair| hash_var(pair).expect("arity 2"))
                    .collect();
            }
        });
        let single_path = count(&|v| {
            let mut node = hash_var(&v[0..2]).expect("salted leaf");
            for sibling in &v[2..5] {
                node = hash_var(&[node, sibling.clone()]).expect("arity 2");
            }
        });
        // Opening plus the final equality.
        assert_eq!(flat, 591 + 1);
        assert_eq!(tree, 7 * 240);
        assert_eq!(single_path, 4 * 240);
        assert!(flat < single_path && single_path < tree);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The native commitment and the in-circuit opening agree, and the
        /// opening refuses a commitment to anything else.
        #[test]
        fn native_and_circuit_commitments_agree(
            seed in any::<[u8; 32]>(), tweak in 0usize..SLOT_COUNT + 1,
        ) {
            let values: [Fr; SLOT_COUNT] = std::array::from_fn(|i| {
                Fr::from_le_bytes_mod_order(&seed) + Fr::from(i as u64)
            });
            let blinding = Fr::from_le_bytes_mod_order(&seed[..16]);
            let native = commit(SCHEMA_VERSION, &values, &blinding);
            let satisfied = |commitment: Fr| {
                let cs = ConstraintSystem::<Fr>::new_ref();
                let c = FpVar::new_input(cs.clone(), || Ok(commitment)).expect("alloc");
                let slots = values.map(|v| FpVar::new_witness(cs.clone(), || Ok(v)).expect("alloc"));
                let r = FpVar::new_witness(cs.clone(), || Ok(blinding)).expect("alloc");
                gadget::open_commitment(&c, &slots, &r).expect("synthesis");
                cs.is_satisfied().expect("prove mode")
            };
            prop_assert!(satisfied(native));
            let mut other = values;
            let other_blinding = if tweak == SLOT_COUNT {
                blinding + Fr::ONE
            } else {
                other[tweak] += Fr::ONE;
                blinding
            };
            prop_assert!(!satisfied(commit(SCHEMA_VERSION, &other, &other_blinding)));
        }

        #[test]
        fn integer_encoding_round_trips(v in MIN_INT..=MAX_INT) {
            prop_assert_eq!(field_to_int(&int_to_field(v).expect("in range")), Some(v));
        }

        #[test]
        fn out_of_range_integers_are_refused(v in any::<i64>()) {
            prop_assume!(!(MIN_INT..=MAX_INT).contains(&v));
            prop_assert!(int_to_field(v).is_err());
        }
    }
}
