//! Key files: every circuit an operation uses has a proving and a
//! verifying key in `<data dir>/keys/`, named `<circuit>-v<version>.pk` and
//! `.vk` (zkid_circuits' key file format).
//!
//! At start the server loads them, checking that each file is for the
//! expected circuit and that both halves carry the same key id. If neither
//! file of a circuit exists, it runs the Groth16 setup with the OS RNG and
//! writes both (atomically: temporary file, then rename), so that a first
//! start needs no other set-up. If only one exists the start fails rather
//! than silently replacing a key that devices may rely on.
//!
//! Whoever knows a setup's randomness could forge proofs: deployments that
//! do not trust the operator should place keys from a multi-party ceremony
//! in the directory before the first start.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zkid_circuits::{
    circuit::CircuitId,
    keys::KeyError,
    registry::{self, RegistryError},
    CircuitProvingKey, CircuitVerifyingKey, Verifier,
};

use crate::domain::catalog::{CircuitEntry, ProvingKeyFile, Statement};

/// Why keys could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum KeySetupError {
    /// The server has no statement or generator for this circuit.
    #[error("circuit {0} is not supported by this server")]
    UnknownCircuit(String),
    /// The Groth16 setup failed.
    #[error("setup of circuit {circuit}: {source}")]
    Setup {
        /// The circuit.
        circuit: String,
        /// The cause.
        source: RegistryError,
    },
    /// File system trouble.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A key file is invalid.
    #[error("key file {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: KeyError,
    },
    /// One half of a key pair is missing.
    #[error("key file {missing} is missing while its pair exists; restore it, or remove both to generate new keys")]
    Incomplete {
        /// The missing file.
        missing: PathBuf,
    },
    /// The files do not belong together or to this circuit.
    #[error("key files {0} do not match each other or their circuit")]
    Mismatch(PathBuf),
}

/// Keys ready for use.
pub struct LoadedKeys {
    /// A verifier with every verifying key registered.
    pub verifier: Verifier,
    /// One entry per circuit.
    pub circuits: Vec<CircuitEntry>,
}

/// The file names of `id`'s key pair in `dir`.
pub fn key_paths(dir: &Path, id: &CircuitId) -> (PathBuf, PathBuf) {
    let stem = format!("{}-v{}", id.name, id.version);
    (
        dir.join(format!("{stem}.pk")),
        dir.join(format!("{stem}.vk")),
    )
}

/// Loads, or generates on first start, the keys of `circuits` in `dir`.
/// Slow when generating (seconds): call it off the async runtime.
///
/// # Errors
/// See [`KeySetupError`].
pub fn load_or_generate(dir: &Path, circuits: &[String]) -> Result<LoadedKeys, KeySetupError> {
    fs::create_dir_all(dir).map_err(|source| KeySetupError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut verifier = Verifier::new();
    let mut entries = Vec::with_capacity(circuits.len());
    for name in circuits {
        // The circuits crate's registry names every circuit and runs its
        // setup; the server additionally needs to know its statement.
        let id =
            registry::id_by_name(name).map_err(|_| KeySetupError::UnknownCircuit(name.clone()))?;
        let statement = Statement::for_circuit(&id.name)
            .ok_or_else(|| KeySetupError::UnknownCircuit(name.clone()))?;
        let (pk_path, vk_path) = key_paths(dir, &id);
        match (pk_path.exists(), vk_path.exists()) {
            (false, false) => {
                tracing::info!(circuit = %id, "no keys found: running the Groth16 setup");
                let (pk, vk) =
                    registry::generate_by_name(&id.to_string(), &mut OsRng).map_err(|source| {
                        KeySetupError::Setup {
                            circuit: id.to_string(),
                            source,
                        }
                    })?;
                write_atomically(&pk_path, |p| pk.save(p))?;
                write_atomically(&vk_path, |p| vk.save(p))?;
            }
            (true, false) => return Err(KeySetupError::Incomplete { missing: vk_path }),
            (false, true) => return Err(KeySetupError::Incomplete { missing: pk_path }),
            (true, true) => {}
        }
        let vk = CircuitVerifyingKey::load(&vk_path).map_err(|source| KeySetupError::Key {
            path: vk_path.clone(),
            source,
        })?;
        let bytes = fs::read(&pk_path).map_err(|source| KeySetupError::Io {
            path: pk_path.clone(),
            source,
        })?;
        let pk = CircuitProvingKey::read_from(bytes.as_slice()).map_err(|source| {
            KeySetupError::Key {
                path: pk_path.clone(),
                source,
            }
        })?;
        if vk.circuit != id || pk.circuit != id || pk.key_id != vk.key_id {
            return Err(KeySetupError::Mismatch(pk_path));
        }
        let key_id = verifier.register(&vk);
        tracing::info!(circuit = %id, key_id = %key_id, "keys loaded");
        entries.push(CircuitEntry {
            id: id.clone(),
            key_id,
            statement,
            proving_key: Arc::new(ProvingKeyFile {
                circuit: id,
                key_id,
                sha256: Sha256::digest(&bytes).into(),
                bytes: Arc::from(bytes),
            }),
        });
    }
    Ok(LoadedKeys {
        verifier,
        circuits: entries,
    })
}

fn write_atomically(
    path: &Path,
    save: impl FnOnce(&Path) -> Result<(), KeyError>,
) -> Result<(), KeySetupError> {
    let temporary = path.with_extension("partial");
    save(&temporary).map_err(|source| KeySetupError::Key {
        path: temporary.clone(),
        source,
    })?;
    fs::rename(&temporary, path).map_err(|source| KeySetupError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkid_circuits::ZkCircuit;

    #[test]
    fn unknown_circuits_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            load_or_generate(dir.path(), &["no-such-circuit".into()]),
            Err(KeySetupError::UnknownCircuit(_))
        ));
    }

    #[test]
    fn a_lone_half_of_a_key_pair_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pk, _) = key_paths(dir.path(), &zkid_circuits::pin::PinKnowledge::id());
        fs::write(&pk, b"x").expect("write");
        assert!(matches!(
            load_or_generate(dir.path(), &["pin-knowledge".into()]),
            Err(KeySetupError::Incomplete { .. })
        ));
    }
}
