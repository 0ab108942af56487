//! The PIN-knowledge circuit: two factors, bound to a one-time challenge.
//!
//! Statement (public inputs, in order):
//! 1. `commitment`: the device commitment enrolled with the server,
//!    `Poseidon(pin, device_secret)` (circomlib parameters);
//! 2. `challenge`: the one-time challenge the verifier issued.
//!
//! Witness: `pin` (an integer of at most 8 decimal digits) and
//! `device_secret` (a uniformly random field element that never leaves the
//! phone). A valid proof shows that the prover knows the PIN (something the
//! customer knows) and holds the device secret (something the customer has)
//! behind the enrolled commitment.
//!
//! # Why the proof is bound to the challenge
//! The challenge takes part in no constraint of ours, yet a proof for one
//! challenge fails under any other. In ark-groth16's `LibsnarkReduction`
//! (the reduction we use, and the one bellman uses too) the QAP carries one
//! extra row per public input, `x_i * 1 = 0` in the A polynomials, so every
//! input variable has a non-zero polynomial `u_i` linearly independent of all
//! others, and its verifying-key point `gamma_abc_g1[i] = (beta*u_i(tau) +
//! ...)/gamma * G` is an independent group element. The verifier folds
//! `sum x_i * gamma_abc_g1[i]` into the pairing check, so changing the
//! challenge changes the equation; adapting a proof to a new challenge would
//! take a multiple of that point over `delta`, which the CRS does not
//! contain, and Groth16's knowledge soundness rules it out. Without those
//! rows an unconstrained input would have `gamma_abc_g1[i]` equal to the
//! identity and would be ignored: `binding_rests_on_nonzero_input_points`
//! guards against such a change of reduction.

use std::fmt;

use ark_bn254::Fr;
use ark_ff::UniformRand;
use ark_r1cs_std::{alloc::AllocVar, eq::EqGadget, fields::fp::FpVar};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use rand::{CryptoRng, RngCore};

use crate::{
    circuit::{alloc_public_inputs, PublicInputs, ZkCircuit},
    named, poseidon, range,
};

/// The largest PIN: 8 decimal digits.
pub const MAX_PIN: u32 = 99_999_999;

/// Errors when reading a PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// A PIN is 4 to 8 decimal digits.
    #[error("a PIN is 4 to 8 decimal digits")]
    Malformed,
}

/// A customer's PIN. Its `Debug` shows nothing of it.
///
/// The PIN enters the circuit as the integer its digits spell, so apps
/// should fix one PIN length per deployment ("0123" and "00123" are the
/// same integer).
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(u32);

impl Pin {
    /// Reads a PIN of 4 to 8 ASCII digits.
    ///
    /// # Errors
    /// [`PinError::Malformed`] for anything else.
    pub fn parse(text: &str) -> Result<Self, PinError> {
        if !(4..=8).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinError::Malformed);
        }
        text.parse().map(Pin).map_err(|_| PinError::Malformed)
    }

    fn to_field(&self) -> Fr {
        Fr::from(self.0)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// The phone's device secret: a uniformly random field element. Its `Debug`
/// shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceSecret(Fr);

impl DeviceSecret {
    /// Draws a fresh secret. Use the OS RNG outside tests.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(Fr::rand(rng))
    }

    /// The canonical 32-byte encoding (see [`crate::encoding`]).
    pub fn to_bytes(&self) -> [u8; 32] {
        crate::encoding::field_to_bytes(&self.0)
    }

    /// Reads the canonical encoding.
    ///
    /// # Errors
    /// The bytes are not a canonical field element.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, crate::encoding::FieldEncodingError> {
        crate::encoding::field_from_bytes(bytes).map(Self)
    }
}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceSecret(<redacted>)")
    }
}

/// `Poseidon(pin, device_secret)`: the commitment the phone enrolls.
pub fn device_commitment(pin: &Pin, secret: &DeviceSecret) -> Fr {
    // Two inputs are always a supported arity.
    poseidon::hash(&[pin.to_field(), secret.0]).unwrap_or_else(|_| unreachable!())
}

impl Pin {
    /// The PIN as the field element the circuits commit to. Crate-private:
    /// the attribute-credential circuits reuse the device factor.
    pub(crate) fn field_value(&self) -> Fr {
        self.to_field()
    }
}

impl DeviceSecret {
    /// The secret as a field element. Crate-private, for the circuits that
    /// combine the device factor with attribute predicates.
    pub(crate) fn field_value(&self) -> Fr {
        self.0
    }
}

/// The public statement of a PIN-knowledge proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinKnowledgePublic {
    /// The enrolled device commitment.
    pub commitment: Fr,
    /// The one-time challenge.
    pub challenge: Fr,
}

impl PublicInputs for PinKnowledgePublic {
    const COUNT: usize = 2;
    fn to_field_elements(&self) -> Vec<Fr> {
        vec![self.commitment, self.challenge]
    }
}

/// The PIN-knowledge circuit. Witnesses are `None` at key generation; its
/// `Debug` hides them.
#[derive(Clone)]
pub struct PinKnowledge {
    public: Option<PinKnowledgePublic>,
    pin: Option<Fr>,
    device_secret: Option<Fr>,
}

impl fmt::Debug for PinKnowledge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinKnowledge")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl PinKnowledge {
    /// A proving instance answering `challenge` for the enrolled commitment
    /// of `pin` and `secret`.
    pub fn new(pin: &Pin, secret: &DeviceSecret, challenge: Fr) -> Self {
        Self::for_statement(
            PinKnowledgePublic {
                commitment: device_commitment(pin, secret),
                challenge,
            },
            pin,
            secret,
        )
    }

    /// A proving instance for a given statement: the commitment may belong
    /// to another PIN (a wrong PIN typed by the customer), in which case
    /// proving fails cleanly.
    pub fn for_statement(public: PinKnowledgePublic, pin: &Pin, secret: &DeviceSecret) -> Self {
        Self {
            public: Some(public),
            pin: Some(pin.to_field()),
            device_secret: Some(secret.0),
        }
    }

    /// The statement this instance proves.
    pub fn public(&self) -> Option<&PinKnowledgePublic> {
        self.public.as_ref()
    }
}

impl ZkCircuit for PinKnowledge {
    const NAME: &'static str = "pin-knowledge";
    const VERSION: u32 = 1;
    type Public = PinKnowledgePublic;

    fn blank() -> Self {
        Self {
            public: None,
            pin: None,
            device_secret: None,
        }
    }
}

impl ConstraintSynthesizer<Fr> for PinKnowledge {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let inputs = named!(
            "public inputs",
            alloc_public_inputs(&cs, self.public.as_ref())
        )?;
        // The challenge only needs to be an input: see the module docs.
        let [commitment, _challenge] =
            <[FpVar<Fr>; 2]>::try_from(inputs).map_err(|_| SynthesisError::Unsatisfiable)?;
        let pin = named!(
            "pin",
            FpVar::new_witness(cs.clone(), || self
                .pin
                .ok_or(SynthesisError::AssignmentMissing))
        )?;
        let device_secret = named!(
            "device secret",
            FpVar::new_witness(cs.clone(), || self
                .device_secret
                .ok_or(SynthesisError::AssignmentMissing))
        )?;
        // Without the range check a "PIN" could be any field element, and
        // the commitment would no longer commit to an 8-digit PIN.
        named!(
            "pin range check",
            range::enforce_at_most(&pin, u64::from(MAX_PIN))
        )?;
        let opened = named!(
            "commitment opening",
            poseidon::gadget::hash_var(&[pin, device_secret])
        )?;
        named!("commitment matches", opened.enforce_equal(&commitment))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::unsatisfied_constraint;
    use ark_ff::Field;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn fixture() -> (Pin, DeviceSecret, Fr) {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let pin = Pin::parse("20481024").expect("valid pin");
        (pin, DeviceSecret::generate(&mut rng), Fr::from(42u64))
    }

    #[test]
    fn honest_witness_satisfies() {
        let (pin, secret, challenge) = fixture();
        assert_eq!(
            unsatisfied_constraint(PinKnowledge::new(&pin, &secret, challenge)),
            None
        );
    }

    #[test]
    fn wrong_pin_breaks_the_commitment() {
        let (pin, secret, challenge) = fixture();
        let honest = PinKnowledge::new(&pin, &secret, challenge);
        let public = *honest.public().expect("set");
        let wrong = Pin::parse("20481025").expect("valid pin");
        let broken = unsatisfied_constraint(PinKnowledge::for_statement(public, &wrong, &secret))
            .expect("a wrong PIN must not satisfy the circuit");
        assert!(broken.contains("commitment matches"), "{broken}");
    }

    #[test]
    fn wrong_device_secret_breaks_the_commitment() {
        let (pin, secret, challenge) = fixture();
        let public = *PinKnowledge::new(&pin, &secret, challenge)
            .public()
            .expect("set");
        let other = DeviceSecret::generate(&mut ChaCha20Rng::seed_from_u64(8));
        let broken = unsatisfied_constraint(PinKnowledge::for_statement(public, &pin, &other))
            .expect("a wrong device secret must not satisfy the circuit");
        assert!(broken.contains("commitment matches"), "{broken}");
    }

    #[test]
    fn pin_above_range_breaks_the_range_check() {
        let (_, secret, challenge) = fixture();
        for too_big in [Fr::from(100_000_000u64), Fr::from(1u64 << 27), -Fr::ONE] {
            // Commit honestly to the out-of-range value, so that only the
            // range check can object.
            let commitment = poseidon::hash(&[too_big, secret.0]).expect("arity 2");
            let circuit = PinKnowledge {
                public: Some(PinKnowledgePublic {
                    commitment,
                    challenge,
                }),
                pin: Some(too_big),
                device_secret: Some(secret.0),
            };
            let broken = unsatisfied_constraint(circuit).expect("out-of-range PIN must fail");
            assert!(broken.contains("pin range check"), "{broken}");
        }
    }

    #[test]
    fn largest_and_smallest_pins_satisfy() {
        let (_, secret, challenge) = fixture();
        for text in ["99999999", "0000"] {
            let pin = Pin::parse(text).expect("valid pin");
            assert_eq!(
                unsatisfied_constraint(PinKnowledge::new(&pin, &secret, challenge)),
                None
            );
        }
    }

    #[test]
    fn pin_parsing_refuses_non_pins() {
        for bad in ["", "123", "123456789", "12a4", "-1234", " 1234", "１２３４"] {
            assert_eq!(Pin::parse(bad), Err(PinError::Malformed), "{bad:?}");
        }
        assert!(Pin::parse("1234").is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let (pin, secret, challenge) = fixture();
        let text = format!(
            "{:?} {:?} {:?}",
            pin,
            secret,
            PinKnowledge::new(&pin, &secret, challenge)
        );
        assert!(!text.contains("20481024"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn device_secret_bytes_round_trip() {
        let (_, secret, _) = fixture();
        assert_eq!(DeviceSecret::from_bytes(&secret.to_bytes()), Ok(secret));
    }
}
