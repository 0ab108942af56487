//! Shared fixtures for zkid's criterion benchmarks.
//!
//! Benchmarks build keys and proofs outside the timed closures; this crate
//! holds that setup so every bench file measures the same things. Run the
//! benches with `cargo bench -p zkid-benches`; figures are recorded in
//! `benches/RESULTS.md`.

mod floor;

pub use floor::Floor;

use ark_bn254::Fr;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkid_circuits::{
    encoding::field_to_bytes,
    generate_keys,
    pin::{DeviceSecret, Pin, PinKnowledge},
    prove, CircuitProvingKey, CircuitVerifyingKey, ProveError, PublicInputs,
};

/// A deterministic RNG for fixtures (never for production keys).
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// PIN-knowledge keys from a seeded setup.
///
/// # Errors
/// Setup failures.
pub fn pin_keys() -> Result<(CircuitProvingKey, CircuitVerifyingKey), zkid_circuits::keys::KeyError>
{
    generate_keys::<PinKnowledge, _>(&mut rng(1))
}

/// A PIN-knowledge proving instance for seed-specific secrets.
pub fn pin_circuit(seed: u64) -> PinKnowledge {
    let mut rng = rng(seed);
    let secret = DeviceSecret::generate(&mut rng);
    // A fixed valid PIN: parsing it cannot fail.
    let pin = Pin::parse("13572468").unwrap_or_else(|_| unreachable!());
    PinKnowledge::new(&pin, &secret, Fr::from(seed))
}

/// A valid proof and its encoded public inputs.
///
/// # Errors
/// Proving failures.
pub fn pin_proof(
    key: &CircuitProvingKey,
    seed: u64,
) -> Result<(Vec<u8>, Vec<[u8; 32]>), ProveError> {
    let circuit = pin_circuit(seed);
    let inputs = circuit
        .public()
        .map(|p| p.to_field_elements().iter().map(field_to_bytes).collect())
        .unwrap_or_default();
    let proof = prove(key, circuit, &mut rng(seed ^ 0x5eed))?;
    Ok((proof, inputs))
}

/// A rayon pool with exactly `threads` threads, so figures state their
/// thread count instead of inheriting the machine's.
///
/// # Errors
/// The OS refused to start threads.
pub fn pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build()
}
