//! Groth16 key generation and key files.
//!
//! Each key carries its circuit's [`CircuitId`] and a [`KeyId`]: the
//! SHA-256 of the verifying key's canonical (uncompressed arkworks) bytes.
//! A proof names the key it was made for by that id, so a verifier never
//! guesses which key to try, and a key file that was altered or swapped
//! fails to load.
//!
//! File layout (both kinds): an 8-byte magic (`ZKIDPK01` / `ZKIDVK01`), the
//! circuit name and version, the key id, then the arkworks key,
//! uncompressed. Loading validates every point (on curve, in subgroup) and
//! refuses identity points in a verifying key: arkworks' `Default` key is
//! made of them and would accept anything.
//!
//! Groth16 keys are circuit-specific and come from a trusted setup: whoever
//! knows the setup randomness could forge proofs. [`generate_keys`] draws it
//! from the RNG it is given and drops it; production deployments that do
//! not trust the operator should run a multi-party ceremony instead.

use std::{
    fmt,
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::Path,
    str::FromStr,
};

use std::sync::{Arc, OnceLock};

use ark_bn254::Bn254;
use ark_ec::AffineRepr;
use ark_groth16::{Groth16, ProvingKey, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::{
    circuit::{CircuitId, PublicInputs, ZkCircuit},
    prover::ProverTables,
};

const PROVING_MAGIC: &[u8; 8] = b"ZKIDPK01";
const VERIFYING_MAGIC: &[u8; 8] = b"ZKIDVK01";

/// Identifies a verifying key: SHA-256 of its canonical bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The id of `vk`.
    pub fn of(vk: &VerifyingKey<Bn254>) -> Self {
        let mut bytes = Vec::new();
        // Serializing into a Vec cannot fail.
        let _ = vk.serialize_uncompressed(&mut bytes);
        Self(Sha256::digest(&bytes).into())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::MalformedKeyId)?;
        Ok(Self(out))
    }
}

/// Errors of key generation and key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("key file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a zkid key of the expected kind.
    #[error("not a zkid {0} key file")]
    WrongMagic(&'static str),
    /// The key inside does not decode or does not validate.
    #[error("key file is corrupt: {0}")]
    Corrupt(String),
    /// The stored key id does not match the key.
    #[error("key id in the file does not match its verifying key")]
    IdMismatch,
    /// A verifying key with an identity point would accept forged proofs.
    #[error("verifying key contains the identity point")]
    DegenerateKey,
    /// The key belongs to another circuit or version.
    #[error("key is for circuit {found}, expected {expected}")]
    WrongCircuit {
        /// The circuit the caller expected.
        expected: CircuitId,
        /// The circuit named in the file.
        found: CircuitId,
    },
    /// The key's public-input count does not match the circuit.
    #[error("key expects {found} public inputs, the circuit has {expected}")]
    WrongInputCount {
        /// The circuit's count.
        expected: usize,
        /// The key's count.
        found: usize,
    },
    /// Key generation failed in arkworks.
    #[error("setup failed: {0}")]
    Setup(String),
    /// Not a hex-encoded 32-byte key id.
    #[error("a key id is 64 hex digits")]
    MalformedKeyId,
}

/// A verifying key with its circuit and id.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitVerifyingKey {
    /// The circuit this key verifies.
    pub circuit: CircuitId,
    /// SHA-256 of `vk`'s canonical bytes.
    pub key_id: KeyId,
    /// The arkworks key.
    pub vk: VerifyingKey<Bn254>,
}

/// A proving key with its circuit and the id of its verifying key.
///
/// The prover's fixed-base tables ([`CircuitProvingKey::prepare`]) are
/// built from the key on first use and shared by clones; the arkworks key
/// is read-only, so they can never fall out of step with it.
#[derive(Clone)]
pub struct CircuitProvingKey {
    /// The circuit this key proves.
    pub circuit: CircuitId,
    /// Id of the matching verifying key.
    pub key_id: KeyId,
    /// The arkworks key (it contains the verifying key).
    pk: ProvingKey<Bn254>,
    tables: Arc<OnceLock<ProverTables>>,
}

impl fmt::Debug for CircuitProvingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitProvingKey")
            .field("circuit", &self.circuit)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Runs the Groth16 setup for `C`.
///
/// # Errors
/// [`KeyError::Setup`] if arkworks fails to synthesize the blank circuit.
pub fn generate_keys<C: ZkCircuit, R: RngCore + CryptoRng>(
    rng: &mut R,
) -> Result<(CircuitProvingKey, CircuitVerifyingKey), KeyError> {
    let pk = Groth16::<Bn254>::generate_random_parameters_with_reduction(C::blank(), rng)
        .map_err(|e| KeyError::Setup(e.to_string()))?;
    let key_id = KeyId::of(&pk.vk);
    let vk = CircuitVerifyingKey {
        circuit: C::id(),
        key_id,
        vk: pk.vk.clone(),
    };
    Ok((CircuitProvingKey::new(C::id(), key_id, pk), vk))
}

fn write_header(
    out: &mut impl Write,
    magic: &[u8; 8],
    circuit: &CircuitId,
    key_id: &KeyId,
) -> Result<(), KeyError> {
    out.write_all(magic)?;
    circuit
        .name
        .serialize_uncompressed(&mut *out)
        .and_then(|()| circuit.version.serialize_uncompressed(&mut *out))
        .map_err(|e| KeyError::Corrupt(e.to_string()))?;
    out.write_all(&key_id.0)?;
    Ok(())
}

fn read_header(
    input: &mut impl Read,
    magic: &[u8; 8],
    kind: &'static str,
) -> Result<(CircuitId, KeyId), KeyError> {
    let mut found = [0u8; 8];
    input.read_exact(&mut found)?;
    if &found != magic {
        return Err(KeyError::WrongMagic(kind));
    }
    let corrupt = |e: ark_serialize::SerializationError| KeyError::Corrupt(e.to_string());
    let name = String::deserialize_uncompressed(&mut *input).map_err(corrupt)?;
    if name.len() > 64 {
        return Err(KeyError::Corrupt("circuit name too long".into()));
    }
    let version = u32::deserialize_uncompressed(&mut *input).map_err(corrupt)?;
    let mut id = [0u8; 32];
    input.read_exact(&mut id)?;
    Ok((CircuitId { name, version }, KeyId(id)))
}

fn validate_vk(vk: &VerifyingKey<Bn254>) -> Result<(), KeyError> {
    let degenerate = vk.alpha_g1.is_zero()
        || vk.beta_g2.is_zero()
        || vk.gamma_g2.is_zero()
        || vk.delta_g2.is_zero()
        || vk.gamma_abc_g1.is_empty()
        || vk.gamma_abc_g1.iter().any(AffineRepr::is_zero);
    if degenerate {
        Err(KeyError::DegenerateKey)
    } else {
        Ok(())
    }
}

impl CircuitVerifyingKey {
    /// Number of public inputs the key expects.
    pub fn public_input_count(&self) -> usize {
        self.vk.gamma_abc_g1.len().saturating_sub(1)
    }

    /// Checks that this key is for `C`, with `C`'s number of inputs.
    ///
    /// # Errors
    /// [`KeyError::WrongCircuit`] or [`KeyError::WrongInputCount`].
    pub fn expect_circuit<C: ZkCircuit>(&self) -> Result<(), KeyError> {
        expect_circuit::<C>(&self.circuit, self.public_input_count())
    }

    /// Writes the key file format.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_to(&self, mut out: impl Write) -> Result<(), KeyError> {
        write_header(&mut out, VERIFYING_MAGIC, &self.circuit, &self.key_id)?;
        self.vk
            .serialize_uncompressed(&mut out)
            .map_err(|e| KeyError::Corrupt(e.to_string()))?;
        Ok(())
    }

    /// Reads and validates a key file.
    ///
    /// # Errors
    /// See [`KeyError`].
    pub fn read_from(mut input: impl Read) -> Result<Self, KeyError> {
        let (circuit, key_id) = read_header(&mut input, VERIFYING_MAGIC, "verifying")?;
        let vk =
            VerifyingKey::<Bn254>::deserialize_with_mode(&mut input, Compress::No, Validate::Yes)
                .map_err(|e| KeyError::Corrupt(e.to_string()))?;
        validate_vk(&vk)?;
        if KeyId::of(&vk) != key_id {
            return Err(KeyError::IdMismatch);
        }
        Ok(Self {
            circuit,
            key_id,
            vk,
        })
    }

    /// Writes the key to `path`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        save_with(path, |out| self.write_to(out))
    }

    /// Reads the key at `path`.
    ///
    /// # Errors
    /// See [`KeyError`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::read_from(BufReader::new(File::open(path)?))
    }
}

impl CircuitProvingKey {
    fn new(circuit: CircuitId, key_id: KeyId, pk: ProvingKey<Bn254>) -> Self {
        Self {
            circuit,
            key_id,
            pk,
            tables: Arc::default(),
        }
    }

    /// The arkworks proving key.
    pub fn pk(&self) -> &ProvingKey<Bn254> {
        &self.pk
    }

    /// Builds the prover's fixed-base tables now rather than inside the
    /// first proof. A phone should call this right after loading a key (it
    /// takes tens of milliseconds and a few MiB for the PIN circuit); a
    /// server that only stores and serves keys never needs it.
    pub fn prepare(&self) {
        self.prover_tables();
        // Synthesis derives Poseidon's round constants (a Grain LFSR) on
        // first use; derive them here so the first proof does not pay.
        for inputs in 1..=crate::poseidon::MAX_INPUTS {
            // Every arity up to the maximum is supported.
            let _ = crate::poseidon::params(inputs);
        }
    }

    /// The prover's tables, built on first use.
    pub(crate) fn prover_tables(&self) -> &ProverTables {
        self.tables.get_or_init(|| ProverTables::new(&self.pk))
    }

    /// The verifying half of this key.
    pub fn verifying_key(&self) -> CircuitVerifyingKey {
        CircuitVerifyingKey {
            circuit: self.circuit.clone(),
            key_id: self.key_id,
            vk: self.pk.vk.clone(),
        }
    }

    /// Checks that this key is for `C`, with `C`'s number of inputs.
    ///
    /// # Errors
    /// [`KeyError::WrongCircuit`] or [`KeyError::WrongInputCount`].
    pub fn expect_circuit<C: ZkCircuit>(&self) -> Result<(), KeyError> {
        expect_circuit::<C>(
            &self.circuit,
            self.pk.vk.gamma_abc_g1.len().saturating_sub(1),
        )
    }

    /// Writes the key file format.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_to(&self, mut out: impl Write) -> Result<(), KeyError> {
        write_header(&mut out, PROVING_MAGIC, &self.circuit, &self.key_id)?;
        self.pk
            .serialize_uncompressed(&mut out)
            .map_err(|e| KeyError::Corrupt(e.to_string()))?;
        Ok(())
    }

    /// Reads and validates a key file.
    ///
    /// # Errors
    /// See [`KeyError`].
    pub fn read_from(mut input: impl Read) -> Result<Self, KeyError> {
        let (circuit, key_id) = read_header(&mut input, PROVING_MAGIC, "proving")?;
        let pk =
            ProvingKey::<Bn254>::deserialize_with_mode(&mut input, Compress::No, Validate::Yes)
                .map_err(|e| KeyError::Corrupt(e.to_string()))?;
        validate_vk(&pk.vk)?;
        if KeyId::of(&pk.vk) != key_id {
            return Err(KeyError::IdMismatch);
        }
        Ok(Self::new(circuit, key_id, pk))
    }

    /// Writes the key to `path`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        save_with(path, |out| self.write_to(out))
    }

    /// Reads the key at `path`.
    ///
    /// # Errors
    /// See [`KeyError`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::read_from(BufReader::new(File::open(path)?))
    }

    /// The circuit and key id named in the file's header, without reading
    /// or validating the key itself. Use [`CircuitProvingKey::load`] before
    /// trusting the key.
    ///
    /// # Errors
    /// I/O errors or a file that is not a proving key.
    pub fn read_identity(path: &Path) -> Result<(CircuitId, KeyId), KeyError> {
        read_header(
            &mut BufReader::new(File::open(path)?),
            PROVING_MAGIC,
            "proving",
        )
    }
}

/// Writes a key file through a buffer and flushes it, so a write error is
/// reported rather than lost on drop.
fn save_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), KeyError>,
) -> Result<(), KeyError> {
    let mut out = BufWriter::new(File::create(path)?);
    write(&mut out)?;
    out.flush()?;
    Ok(())
}

fn expect_circuit<C: ZkCircuit>(found: &CircuitId, inputs: usize) -> Result<(), KeyError> {
    if *found != C::id() {
        return Err(KeyError::WrongCircuit {
            expected: C::id(),
            found: found.clone(),
        });
    }
    let expected = <C::Public as PublicInputs>::COUNT;
    if inputs != expected {
        return Err(KeyError::WrongInputCount {
            expected,
            found: inputs,
        });
    }
    Ok(())
}
