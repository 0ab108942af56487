//! zkid's zero-knowledge layer: circuits, keys, proving and verification,
//! over BN254 with arkworks' Groth16.
//!
//! What lives here and nowhere else:
//! - [`poseidon`]: circomlib-compatible Poseidon, natively and in-circuit,
//!   so commitments survive a change of prover stack;
//! - [`pin::PinKnowledge`]: the two-factor circuit (PIN + device secret)
//!   bound to a one-time challenge;
//! - [`keys`]: per-circuit Groth16 setup and key files with stable ids;
//! - [`prover::prove`]: proving that refuses unsatisfying witnesses, over
//!   fixed-base tables built once per key ([`CircuitProvingKey::prepare`]);
//! - [`verifier::Verifier`] and [`batch`]: strict single and batch
//!   verification that validates every point and public input.
//!
//! This crate knows nothing of transport or storage: proofs leave it as
//! bytes in [`encoding`]'s canonical form.
//!
//! ```
//! use ark_bn254::Fr;
//! use rand::SeedableRng;
//! use zkid_circuits::{
//!     circuit::PublicInputs, encoding::field_to_bytes, keys::generate_keys,
//!     pin::{DeviceSecret, Pin, PinKnowledge}, prover::prove, verifier::Verifier,
//! };
//!
//! // Tests and docs may seed; real deployments use the OS RNG.
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let (proving_key, verifying_key) = generate_keys::<PinKnowledge, _>(&mut rng)?;
//! let mut verifier = Verifier::new();
//! let key_id = verifier.register(&verifying_key);
//!
//! // On the phone: enrolment created the secret and the commitment.
//! let secret = DeviceSecret::generate(&mut rng);
//! let pin = Pin::parse("4711")?;
//! let challenge = Fr::from(123_456u64); // issued once by the verifier
//! let circuit = PinKnowledge::new(&pin, &secret, challenge);
//! let statement = *circuit.public().expect("proving instance");
//! let proof = prove(&proving_key, circuit, &mut rng)?;
//!
//! // On the server, which knows the commitment and the challenge it issued.
//! let inputs: Vec<[u8; 32]> = statement.to_field_elements().iter().map(field_to_bytes).collect();
//! assert!(verifier.verify(&key_id, &proof, &inputs).is_accepted());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod batch;
pub mod circuit;
pub mod credential;
pub mod encoding;
pub mod keys;
pub mod merkle;
mod miller;
mod msm;
pub mod pin;
pub mod poseidon;
pub mod prover;
pub mod range;
pub mod registry;
pub mod verifier;

#[cfg(test)]
mod test_support;

pub use circuit::{CircuitId, PublicInputs, ZkCircuit};
pub use keys::{generate_keys, CircuitProvingKey, CircuitVerifyingKey, KeyId};
pub use prover::{prove, ProveError};
pub use verifier::{Rejection, Verdict, Verifier};
