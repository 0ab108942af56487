//! What each operation requires, and how the server builds each circuit's
//! statement.
//!
//! Agents name an operation; the server alone decides which circuits prove
//! it and which assurance level it yields. A circuit is known by its stable
//! name (`zkid_circuits::ZkCircuit::NAME`); to plug a new circuit in, give
//! it a [`Statement`] (how its public inputs are assembled from what the
//! server knows) and name it in an operation. Key files are generated and
//! loaded by name for every circuit an operation uses.
//!
//! Which operations exist, and what they require, is each tenant's policy
//! ([`super::policy`]).

use std::{collections::BTreeMap, sync::Arc};

use zkid_circuits::{
    circuit::{CircuitId, PublicInputs},
    credential::{encode_account_id, AccountOwnershipPublic, CommonPublic, SCHEMA_VERSION},
    encoding::{field_from_bytes, field_to_bytes},
    pin::PinKnowledgePublic,
    KeyId,
};

use super::{
    model::{AccountRef, Customer, Device, TenantId},
    policy::{Operation, Policies, Policy},
    DomainError,
};

/// How the server assembles a circuit's public inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statement {
    /// `pin-knowledge`: `[device commitment, challenge]`
    /// ([`PinKnowledgePublic`]).
    PinKnowledge,
    /// `account-ownership`: `[device commitment, attribute commitment,
    /// challenge, account id]` ([`AccountOwnershipPublic`]); the account is
    /// the session's account reference, encoded as the issuer encodes the
    /// account-id slot.
    AccountOwnership,
}

impl Statement {
    /// The statement kind of the circuit called `name`, if the server knows
    /// how to build it.
    pub fn for_circuit(name: &str) -> Option<Self> {
        match name {
            "pin-knowledge" => Some(Self::PinKnowledge),
            "account-ownership" => Some(Self::AccountOwnership),
            _ => None,
        }
    }

    /// The public inputs, canonically encoded, in the circuit's order.
    ///
    /// # Errors
    /// [`DomainError::Internal`] if a stored commitment or challenge is not
    /// a canonical field element (a corrupt store);
    /// [`DomainError::FailedPrecondition`] if the customer has no attribute
    /// credential, or one of an unsupported schema;
    /// [`DomainError::InvalidArgument`] if the operation needs an account
    /// reference and the session has none, or it cannot be encoded.
    pub fn public_inputs(
        self,
        context: &StatementContext<'_>,
    ) -> Result<Vec<[u8; 32]>, DomainError> {
        let corrupt = |_| DomainError::Internal("stored field element is not canonical".into());
        match self {
            Self::PinKnowledge => {
                let statement = PinKnowledgePublic {
                    commitment: field_from_bytes(&context.device.commitment).map_err(corrupt)?,
                    challenge: field_from_bytes(context.challenge).map_err(corrupt)?,
                };
                Ok(encode(&statement))
            }
            Self::AccountOwnership => {
                let attributes =
                    context
                        .customer
                        .attributes
                        .as_ref()
                        .ok_or(DomainError::FailedPrecondition(
                            "customer has no attribute credential",
                        ))?;
                // A commitment under another schema opens to other slots:
                // the circuit would reject it anyway, but the agent should
                // learn why at once rather than after the phone's attempt.
                if attributes.schema_version != SCHEMA_VERSION {
                    return Err(DomainError::FailedPrecondition(
                        "customer's attribute credential uses an unsupported schema version",
                    ));
                }
                let account = context.account.ok_or(DomainError::InvalidArgument(
                    "this operation needs an account reference",
                ))?;
                let statement = AccountOwnershipPublic {
                    common: CommonPublic {
                        device_commitment: field_from_bytes(&context.device.commitment)
                            .map_err(corrupt)?,
                        attr_commitment: field_from_bytes(&attributes.commitment)
                            .map_err(corrupt)?,
                        challenge: field_from_bytes(context.challenge).map_err(corrupt)?,
                    },
                    account_id: encode_account_id(account.as_str())
                        .map_err(|_| DomainError::InvalidArgument("malformed account_ref"))?,
                };
                Ok(encode(&statement))
            }
        }
    }
}

fn encode<P: PublicInputs>(statement: &P) -> Vec<[u8; 32]> {
    statement
        .to_field_elements()
        .iter()
        .map(field_to_bytes)
        .collect()
}

/// What a statement may draw on.
#[derive(Debug, Clone, Copy)]
pub struct StatementContext<'a> {
    /// The session's challenge.
    pub challenge: &'a [u8; 32],
    /// The device asked.
    pub device: &'a Device,
    /// The customer (for attribute circuits).
    pub customer: &'a Customer,
    /// The account the call is about, if the agent named one.
    pub account: Option<&'a AccountRef>,
}

/// A circuit the server verifies, with its key.
#[derive(Debug, Clone)]
pub struct CircuitEntry {
    /// Name and version.
    pub id: CircuitId,
    /// Its verifying key's id.
    pub key_id: KeyId,
    /// How its statement is built.
    pub statement: Statement,
    /// Its proving key file, served to devices.
    pub proving_key: Arc<ProvingKeyFile>,
}

/// A proving key file as served to devices.
#[derive(Clone)]
pub struct ProvingKeyFile {
    /// The circuit.
    pub circuit: CircuitId,
    /// The key id.
    pub key_id: KeyId,
    /// The file's bytes (zkid_circuits key file format).
    pub bytes: Arc<[u8]>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for ProvingKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvingKeyFile")
            .field("circuit", &self.circuit)
            .field("key_id", &self.key_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Errors building a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// An operation names a circuit that has no key or no statement.
    #[error("operation {operation} needs circuit {circuit}, which the server cannot verify")]
    UnknownCircuit {
        /// The operation.
        operation: String,
        /// The circuit.
        circuit: String,
    },
    /// An operation with no circuits would pass without proof.
    #[error("operation {0} requires no proof")]
    NoCircuits(String),
}

/// Operations (per tenant, from the policies) and circuits.
#[derive(Debug, Clone)]
pub struct Catalog {
    policies: Policies,
    circuits: BTreeMap<String, CircuitEntry>,
}

impl Catalog {
    /// The circuit names `policies` use, deduplicated, sorted.
    pub fn circuits_used(policies: &Policies) -> Vec<String> {
        let mut names: Vec<String> = policies
            .all()
            .flat_map(Policy::operations)
            .flat_map(|op| op.circuits.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// A catalog of `policies` over `circuits`.
    ///
    /// # Errors
    /// See [`CatalogError`].
    pub fn new(policies: Policies, circuits: Vec<CircuitEntry>) -> Result<Self, CatalogError> {
        let circuits: BTreeMap<String, CircuitEntry> = circuits
            .into_iter()
            .map(|c| (c.id.name.clone(), c))
            .collect();
        for op in policies.all().flat_map(Policy::operations) {
            if op.circuits.is_empty() {
                return Err(CatalogError::NoCircuits(op.name.clone()));
            }
            if let Some(missing) = op.circuits.iter().find(|c| !circuits.contains_key(*c)) {
                return Err(CatalogError::UnknownCircuit {
                    operation: op.name.clone(),
                    circuit: missing.clone(),
                });
            }
        }
        Ok(Self { policies, circuits })
    }

    /// The operation called `name` in `tenant`'s policy.
    pub fn operation(&self, tenant: &TenantId, name: &str) -> Option<&Operation> {
        self.policies.for_tenant(tenant.as_str()).operation(name)
    }

    /// The policies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The circuit called `name`.
    pub fn circuit(&self, name: &str) -> Option<&CircuitEntry> {
        self.circuits.get(name)
    }

    /// Every circuit.
    pub fn circuits(&self) -> impl Iterator<Item = &CircuitEntry> {
        self.circuits.values()
    }

    /// The proving key with id `key_id`.
    pub fn proving_key(&self, key_id: &KeyId) -> Option<&Arc<ProvingKeyFile>> {
        self.circuits
            .values()
            .find(|c| c.key_id == *key_id)
            .map(|c| &c.proving_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> CircuitEntry {
        let id = CircuitId {
            name: name.into(),
            version: 1,
        };
        CircuitEntry {
            id: id.clone(),
            key_id: KeyId([7; 32]),
            statement: Statement::PinKnowledge,
            proving_key: Arc::new(ProvingKeyFile {
                circuit: id,
                key_id: KeyId([7; 32]),
                bytes: Arc::from(vec![1u8, 2, 3]),
                sha256: [0; 32],
            }),
        }
    }

    #[test]
    fn shipped_policy_names_known_statements() {
        let policies = Policies::uniform(Policy::shipped_default());
        for circuit in Catalog::circuits_used(&policies) {
            assert!(Statement::for_circuit(&circuit).is_some(), "{circuit}");
        }
    }

    #[test]
    fn operations_must_name_available_circuits() {
        let policies = Policies::uniform(Policy::shipped_default());
        let every_circuit = vec![entry("pin-knowledge"), entry("account-ownership")];
        assert!(Catalog::new(policies.clone(), every_circuit).is_ok());
        assert!(matches!(
            Catalog::new(policies.clone(), vec![entry("pin-knowledge")]),
            Err(CatalogError::UnknownCircuit { .. })
        ));
        assert!(matches!(
            Catalog::new(policies, vec![entry("other")]),
            Err(CatalogError::UnknownCircuit { .. })
        ));
    }
}
