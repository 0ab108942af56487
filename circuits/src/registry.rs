//! Every circuit of the crate by name: the list the key-generation CLI
//! walks and the server loads keys for.
//!
//! A key is identified by (circuit, version, verifying-key hash): the
//! [`CircuitId`] comes from here, the hash from [`crate::keys::KeyId`].

use rand::{CryptoRng, RngCore};

use crate::{
    circuit::{shape, CircuitId, CircuitShape, ZkCircuit},
    credential::{
        AccountOwnership, AttributePredicate, AttributePredicates, SetMembership, SetNonMembership,
    },
    keys::{generate_keys, CircuitProvingKey, CircuitVerifyingKey, KeyError},
    pin::PinKnowledge,
};

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No circuit of this crate has this name (or name@vVERSION).
    #[error("unknown circuit {0:?}")]
    UnknownCircuit(String),
    /// Key generation failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Synthesizing the blank circuit failed.
    #[error("synthesis failed: {0}")]
    Synthesis(#[from] ark_relations::gr1cs::SynthesisError),
}

/// Runs `$action::<C>()` for the circuit named `$name`, or fails with
/// [`RegistryError::UnknownCircuit`]. One list, so that a new circuit is
/// added in exactly one place.
macro_rules! dispatch {
    ($name:expr, $action:ident $(, $arg:expr)*) => {{
        let name: &str = $name;
        if matches_id::<PinKnowledge>(name) {
            $action::<PinKnowledge>($($arg),*)
        } else if matches_id::<AccountOwnership>(name) {
            $action::<AccountOwnership>($($arg),*)
        } else if matches_id::<AttributePredicates>(name) {
            $action::<AttributePredicates>($($arg),*)
        } else if matches_id::<AttributePredicate>(name) {
            $action::<AttributePredicate>($($arg),*)
        } else if matches_id::<SetMembership>(name) {
            $action::<SetMembership>($($arg),*)
        } else if matches_id::<SetNonMembership>(name) {
            $action::<SetNonMembership>($($arg),*)
        } else {
            Err(RegistryError::UnknownCircuit(name.to_owned()))
        }
    }};
}

/// Every circuit of the crate, in a stable order.
pub fn circuit_ids() -> Vec<CircuitId> {
    vec![
        PinKnowledge::id(),
        AccountOwnership::id(),
        AttributePredicates::id(),
        AttributePredicate::id(),
        SetMembership::id(),
        SetNonMembership::id(),
    ]
}

/// `name` is `C`'s name, or `C`'s id as displayed (`name@vVERSION`).
fn matches_id<C: ZkCircuit>(name: &str) -> bool {
    name == C::NAME || name == C::id().to_string()
}

fn keys_for<C: ZkCircuit>(
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(CircuitProvingKey, CircuitVerifyingKey), RegistryError> {
    Ok(generate_keys::<C, _>(rng)?)
}

fn shape_for<C: ZkCircuit>() -> Result<CircuitShape, RegistryError> {
    Ok(shape::<C>()?)
}

fn id_for<C: ZkCircuit>() -> Result<CircuitId, RegistryError> {
    Ok(C::id())
}

/// Runs the Groth16 setup for the circuit called `name` (e.g.
/// `account-ownership`, or `account-ownership@v1`).
///
/// # Errors
/// [`RegistryError::UnknownCircuit`], or a setup failure.
pub fn generate_by_name<R: RngCore + CryptoRng>(
    name: &str,
    rng: &mut R,
) -> Result<(CircuitProvingKey, CircuitVerifyingKey), RegistryError> {
    dispatch!(name, keys_for, rng)
}

/// The id of the circuit called `name`.
///
/// # Errors
/// [`RegistryError::UnknownCircuit`].
pub fn id_by_name(name: &str) -> Result<CircuitId, RegistryError> {
    dispatch!(name, id_for)
}

/// The constraint count and shape digest of the circuit called `name`.
///
/// # Errors
/// [`RegistryError::UnknownCircuit`], or a synthesis failure.
pub fn shape_by_name(name: &str) -> Result<CircuitShape, RegistryError> {
    dispatch!(name, shape_for)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_circuit_resolves_by_name_and_id() {
        let ids = circuit_ids();
        assert_eq!(ids.len(), 6);
        for id in &ids {
            assert_eq!(id_by_name(&id.name).expect("known"), *id);
            assert_eq!(id_by_name(&id.to_string()).expect("known"), *id);
            assert!(id.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
        }
        let mut names: Vec<_> = ids.iter().map(|id| &id.name).collect();
        names.dedup();
        assert_eq!(names.len(), ids.len(), "names are unique");
    }

    #[test]
    fn unknown_names_are_refused() {
        for name in ["", "pin", "account-ownership@v2", "ACCOUNT-OWNERSHIP"] {
            assert!(matches!(
                id_by_name(name),
                Err(RegistryError::UnknownCircuit(n)) if n == name
            ));
        }
    }
}
