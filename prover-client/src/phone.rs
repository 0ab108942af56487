//! The customer's phone: enrollment, the push stream, proving, answering.
//!
//! Everything secret stays on the phone: the device secret and the device
//! token live in the [`Vault`]; the PIN is asked for each request and never
//! stored. Proofs are made against the phone's *own* commitment
//! `Poseidon(pin, device_secret)`: with a mistyped PIN the proof is valid
//! for another commitment, the server rejects it, and the failure counts
//! towards the customer's lockout on the server, where it belongs, instead
//! of being silently swallowed by the app.
//!
//! A change to the customer's enrollment (a new device, a revocation, a new
//! attribute credential) is announced to the device active before it, with
//! an offer to undo it for a while: the phone keeps the latest offer in the
//! vault, and [`Phone::revert`] answers it with a proof of the PIN and of
//! this phone's secret, which is the only credential the server needs, as a
//! revoked phone has no other.
//!
//! Proving keys are downloaded from the server once, checked (SHA-256, key
//! id, every point validated), cached on disk and kept in memory, so the
//! first proof after start costs the same as the next.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use ark_bn254::Fr;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use zeroize::Zeroizing;
use zkid_circuits::{
    credential::AccountOwnership,
    encoding::{field_from_bytes, FIELD_LEN},
    pin::{device_commitment, DeviceSecret, Pin, PinKnowledge},
    prove, CircuitProvingKey, KeyId, ZkCircuit,
};
use zkid_proto::v1::{
    device_client::DeviceClient, device_event, device_notice, enrollment_client::EnrollmentClient,
    CircuitProof, DeclineRequest, EnrollDeviceRequest, GetProvingKeyRequest,
    ListProvingKeysRequest, RevertChangeRequest, SubmitProofRequest, WatchRequestsRequest,
};

use crate::{
    agent::{level, State},
    credential_file::{CredentialFile, CredentialFileError},
    rpc::{Connection, RpcError},
    vault::{KdfParams, Vault, VaultError},
};

/// Errors of the phone.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    /// The local vault.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Talking to the server.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The vault's contents do not parse (written by another version?).
    #[error("the device state in the vault is unreadable: {0}")]
    CorruptState(String),
    /// The server sent something the phone cannot use.
    #[error("the server sent an invalid request: {0}")]
    InvalidRequest(String),
    /// A proving key failed its integrity checks.
    #[error("proving key {0} failed its integrity check")]
    BadProvingKey(String),
    /// Writing the key cache failed.
    #[error("key cache: {0}")]
    Io(#[from] std::io::Error),
    /// The request needs a circuit this app cannot prove.
    #[error("this app cannot prove circuit {0}")]
    UnsupportedCircuit(String),
    /// The request needs the attribute credential, which is not imported.
    #[error("this request needs your organization's credential: import it first")]
    NoCredential,
    /// The credential is unusable.
    #[error(transparent)]
    Credential(#[from] CredentialFileError),
    /// Proving failed for another reason than a wrong PIN.
    #[error("proving failed: {0}")]
    Prove(String),
    /// `revert` without an offer from the server.
    #[error("there is no change to undo: the server has offered none to this phone")]
    NoRevertOffer,
    /// The pin-knowledge key is neither cached nor obtainable with this
    /// device's credential (a revoked phone that never fetched it).
    #[error("the pin-knowledge proving key is not cached and the server no longer serves it to this phone: {0}")]
    NoRevertKey(String),
}

/// Where the phone keeps its files, and how hard its vault key is to guess.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// Directory for the vault and the key cache.
    pub data_dir: PathBuf,
    /// Argon2id parameters for new vault writes.
    pub kdf: KdfParams,
}

impl PhoneConfig {
    /// The default parameters for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            kdf: KdfParams::RECOMMENDED,
        }
    }

    fn vault(&self) -> Vault {
        Vault::new(self.data_dir.join("device.vault"), self.kdf)
    }

    fn key_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }
}

/// What the vault holds. Secrets are hex strings inside the encrypted blob.
#[derive(Serialize, Deserialize)]
struct StoredState {
    server: String,
    organization: String,
    customer_ref: String,
    device_id: String,
    device_token: String,
    device_secret: String,
    /// The organization-issued attribute credential, once imported.
    #[serde(default)]
    credential: Option<CredentialFile>,
    /// The latest change the server offered to undo (vaults written before
    /// reverts existed have none).
    #[serde(default)]
    revert_offer: Option<RevertOffer>,
}

impl Drop for StoredState {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.device_token.zeroize();
        self.device_secret.zeroize();
    }
}

/// What changed about the customer's enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Another device was enrolled; this one was retired.
    Reenrollment,
    /// This device was revoked.
    Revocation,
    /// A new attribute credential was registered.
    Credential,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reenrollment => "another device was enrolled for your account",
            Self::Revocation => "this device was revoked",
            Self::Credential => "a new attribute credential was registered for your account",
        })
    }
}

/// The server's offer to undo a change, until `until`, for a proof of
/// this phone's PIN and secret bound to `challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertOffer {
    /// What changed.
    pub change: Change,
    /// The server's id of the change.
    pub change_id: String,
    /// The one-time challenge the proof answers.
    pub challenge: [u8; FIELD_LEN],
    /// The end of the revert window.
    pub until: SystemTime,
}

/// The device's public facts, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The verifier's address.
    pub server: String,
    /// The organization that enrolled the customer.
    pub organization: String,
    /// The customer reference.
    pub customer_ref: String,
    /// This device's id.
    pub device_id: String,
    /// Proving keys cached on disk, by circuit.
    pub cached_keys: Vec<String>,
    /// Whether an attribute credential is imported.
    pub has_credential: bool,
    /// The latest change the server offered to undo, if any.
    pub revert_offer: Option<RevertOffer>,
}

/// One proof the server asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Circuit name.
    pub circuit: String,
    /// Circuit version.
    pub version: u32,
    /// The key to prove under.
    pub key_id: KeyId,
    /// The statement's public inputs.
    pub public_inputs: Vec<[u8; FIELD_LEN]>,
}

impl Requirement {
    /// A phrase for the customer: what proving this reveals to the server.
    pub fn describe(&self) -> String {
        match self.circuit.as_str() {
            "pin-knowledge" => "that you know your PIN and hold this phone".into(),
            "account-ownership" => {
                "that you know your PIN, hold this phone, and own the account this call is about (your account data stays on the phone)".into()
            }
            other => format!("the statement {other:?}"),
        }
    }
}

/// A verification request pushed to the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Session id.
    pub session_id: String,
    /// Who is asking.
    pub organization: String,
    /// For which operation.
    pub operation: String,
    /// The sentence to show the customer.
    pub binding_message: String,
    /// The code the agent also sees.
    pub binding_code: String,
    /// Assurance level the operation requires (1..=3).
    pub level: u8,
    /// What to prove, in order.
    pub requirements: Vec<Requirement>,
    /// The one-time challenge.
    pub challenge: [u8; FIELD_LEN],
    /// When the request lapses.
    pub expires_at: SystemTime,
}

/// Something the push stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneEvent {
    /// A new request to answer.
    Request(PendingRequest),
    /// A request was resolved elsewhere (expired, cancelled...).
    Closed {
        /// Session id.
        session_id: String,
        /// Final state.
        state: State,
    },
    /// Another device was enrolled for this customer: this one is retired
    /// (and the stream ends).
    Replaced(Option<RevertOffer>),
    /// This device was revoked (and the stream ends).
    Revoked(Option<RevertOffer>),
    /// A new attribute credential was registered for the customer; this
    /// device goes on answering.
    CredentialChanged(Option<RevertOffer>),
}

/// How far the slow work of a request has come, for a progress display
/// ([`Phone::on_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Downloading a proving key: bytes so far, of `total` (0 while
    /// unknown).
    Downloading {
        /// Bytes received.
        received: u64,
        /// The key's size.
        total: u64,
    },
    /// Loading, checking and preparing a proving key.
    Preparing,
    /// Proving the statement `index` (from 0) of `count`.
    Proving {
        /// Which one.
        index: usize,
        /// How many.
        count: usize,
    },
}

type ProgressHook = Box<dyn FnMut(Progress) + Send>;

/// The server's answer to a submitted proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Final state.
    pub state: State,
    /// Level reached.
    pub level_reached: u8,
}

/// An enrolled phone.
pub struct Phone {
    config: PhoneConfig,
    connection: Connection,
    state: StoredState,
    passphrase: Zeroizing<String>,
    secret: DeviceSecret,
    keys: HashMap<KeyId, CircuitProvingKey>,
    events: Option<tonic::Streaming<zkid_proto::v1::DeviceEvent>>,
    progress: Option<ProgressHook>,
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Phone")
            .field("server", &self.state.server)
            .field("device_id", &self.state.device_id)
            .finish_non_exhaustive()
    }
}

fn state(value: i32) -> Result<State, PhoneError> {
    State::from_proto(value)
        .ok_or_else(|| PhoneError::InvalidRequest("unknown session state".into()))
}

fn field_bytes(bytes: &[u8], what: &str) -> Result<[u8; FIELD_LEN], PhoneError> {
    let array: [u8; FIELD_LEN] = bytes
        .try_into()
        .map_err(|_| PhoneError::InvalidRequest(format!("{what} is not {FIELD_LEN} bytes")))?;
    field_from_bytes(&array)
        .map_err(|_| PhoneError::InvalidRequest(format!("{what} is not a field element")))?;
    Ok(array)
}

impl Phone {
    /// Enrolls this phone: creates the device secret, registers
    /// `Poseidon(pin, secret)` with the enrollment code the organization
    /// issued, and seals the secret and the device token in a new vault.
    ///
    /// # Errors
    /// A vault already exists; the server refused; I/O.
    pub fn enroll(
        config: PhoneConfig,
        server: &str,
        enrollment_code: &str,
        pin: &Pin,
        passphrase: &str,
    ) -> Result<Self, PhoneError> {
        let vault = config.vault();
        if vault.exists() {
            return Err(VaultError::AlreadyExists(vault.path().to_owned()).into());
        }
        let connection = Connection::open(server)?;
        let secret = DeviceSecret::generate(&mut OsRng);
        let commitment = zkid_circuits::encoding::field_to_bytes(&device_commitment(pin, &secret));
        let mut client = EnrollmentClient::new(connection.with_token(enrollment_code)?);
        let response = connection
            .block_on(client.enroll_device(EnrollDeviceRequest {
                device_commitment: commitment.to_vec(),
            }))
            .map_err(RpcError::from)?
            .into_inner();
        let state = StoredState {
            server: server.to_owned(),
            organization: response.organization,
            customer_ref: response.customer_ref,
            device_id: response.device_id,
            device_token: response.device_token,
            device_secret: hex::encode(secret.to_bytes()),
            credential: None,
            revert_offer: None,
        };
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&state).map_err(|e| PhoneError::CorruptState(e.to_string()))?,
        );
        vault.create(passphrase, &plaintext)?;
        Ok(Self {
            config,
            connection,
            state,
            passphrase: Zeroizing::new(passphrase.to_owned()),
            secret,
            keys: HashMap::new(),
            events: None,
            progress: None,
        })
    }

    /// Opens an enrolled phone's vault and connects to its server.
    ///
    /// # Errors
    /// Missing vault, wrong passphrase, unreachable server.
    pub fn open(config: PhoneConfig, passphrase: &str) -> Result<Self, PhoneError> {
        let plaintext = config.vault().open(passphrase)?;
        let state: StoredState = serde_json::from_slice(&plaintext)
            .map_err(|e| PhoneError::CorruptState(e.to_string()))?;
        let mut secret_bytes = Zeroizing::new([0u8; FIELD_LEN]);
        hex::decode_to_slice(&state.device_secret, secret_bytes.as_mut_slice())
            .map_err(|_| PhoneError::CorruptState("device secret".into()))?;
        let secret = DeviceSecret::from_bytes(&secret_bytes)
            .map_err(|_| PhoneError::CorruptState("device secret".into()))?;
        let connection = Connection::open(&state.server)?;
        Ok(Self {
            config,
            connection,
            state,
            passphrase: Zeroizing::new(passphrase.to_owned()),
            secret,
            keys: HashMap::new(),
            events: None,
            progress: None,
        })
    }

    /// The device's public facts.
    pub fn status(&self) -> DeviceStatus {
        let mut cached_keys: Vec<String> = std::fs::read_dir(self.config.key_dir())
            .map(|dir| {
                // Only the headers: validating every point of every key
                // is for when a key is used, not for a status line.
                dir.filter_map(Result::ok)
                    .filter_map(|e| CircuitProvingKey::read_identity(&e.path()).ok())
                    .map(|(circuit, key_id)| format!("{circuit} ({key_id})"))
                    .collect()
            })
            .unwrap_or_default();
        cached_keys.sort();
        DeviceStatus {
            server: self.state.server.clone(),
            organization: self.state.organization.clone(),
            customer_ref: self.state.customer_ref.clone(),
            device_id: self.state.device_id.clone(),
            cached_keys,
            has_credential: self.state.credential.is_some(),
            revert_offer: self.state.revert_offer.clone(),
        }
    }

    /// Imports the attribute credential the organization issued into the
    /// vault (replacing an earlier one).
    ///
    /// # Errors
    /// An invalid credential, or a vault write failure.
    pub fn import_credential(&mut self, file: CredentialFile) -> Result<(), PhoneError> {
        file.credential()?;
        let previous = self.state.credential.replace(file);
        if let Err(e) = self.save() {
            self.state.credential = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Writes the state back into the vault.
    fn save(&self) -> Result<(), PhoneError> {
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&self.state).map_err(|e| PhoneError::CorruptState(e.to_string()))?,
        );
        self.config.vault().update(&self.passphrase, &plaintext)?;
        Ok(())
    }

    /// Keeps `offer` as the one `revert` answers. The server resends open
    /// offers on every new stream: an unchanged one costs no vault write.
    fn remember_offer(&mut self, offer: &RevertOffer) -> Result<(), PhoneError> {
        if self.state.revert_offer.as_ref() == Some(offer) {
            return Ok(());
        }
        let previous = self.state.revert_offer.replace(offer.clone());
        if let Err(e) = self.save() {
            self.state.revert_offer = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Calls `hook` as key downloads, key preparation and proving advance
    /// (from the calling thread, while the phone works).
    pub fn on_progress(&mut self, hook: impl FnMut(Progress) + Send + 'static) {
        self.progress = Some(Box::new(hook));
    }

    fn report(&mut self, progress: Progress) {
        if let Some(hook) = self.progress.as_mut() {
            hook(progress);
        }
    }

    fn device_client(&self) -> Result<DeviceClient<crate::rpc::AuthChannel>, PhoneError> {
        Ok(DeviceClient::new(
            self.connection.with_token(&self.state.device_token)?,
        ))
    }

    /// Opens the push stream now, if it is not open yet: from its return
    /// on, no event for this device is missed. [`Phone::next_event`] opens
    /// it too.
    ///
    /// # Errors
    /// The server refused the stream.
    pub fn watch(&mut self) -> Result<(), PhoneError> {
        if self.events.is_none() {
            let mut client = self.device_client()?;
            let stream = self
                .connection
                .block_on(client.watch_requests(WatchRequestsRequest {}))
                .map_err(RpcError::from)?
                .into_inner();
            self.events = Some(stream);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the next push event; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// The server refused the stream, or sent something invalid.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<PhoneEvent>, PhoneError> {
        self.watch()?;
        let Some(stream) = self.events.as_mut() else {
            return Ok(None);
        };
        let next = self
            .connection
            .block_on(async { tokio::time::timeout(timeout, stream.next()).await });
        let event = match next {
            Err(_elapsed) => return Ok(None),
            Ok(None) => {
                self.events = None;
                return Err(RpcError::Refused {
                    code: "Unavailable".into(),
                    message: "the server ended the push stream".into(),
                }
                .into());
            }
            Ok(Some(Err(status))) => {
                self.events = None;
                return Err(RpcError::from(status).into());
            }
            Ok(Some(Ok(event))) => event,
        };
        match event.event {
            Some(device_event::Event::Request(request)) => {
                let requirements = request
                    .requirements
                    .iter()
                    .map(|r| {
                        let key_id = KeyId(
                            r.key_id
                                .as_slice()
                                .try_into()
                                .map_err(|_| PhoneError::InvalidRequest("key id".into()))?,
                        );
                        Ok(Requirement {
                            circuit: r.circuit.clone(),
                            version: r.circuit_version,
                            key_id,
                            public_inputs: r
                                .public_inputs
                                .iter()
                                .map(|b| field_bytes(b, "public input"))
                                .collect::<Result<_, _>>()?,
                        })
                    })
                    .collect::<Result<Vec<_>, PhoneError>>()?;
                let expires_at = request
                    .expires_at
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .ok_or_else(|| PhoneError::InvalidRequest("missing expiry".into()))?;
                Ok(Some(PhoneEvent::Request(PendingRequest {
                    session_id: request.session_id,
                    organization: request.organization,
                    operation: request.operation,
                    binding_message: request.binding_message,
                    binding_code: request.binding_code,
                    level: level(request.level),
                    requirements,
                    challenge: field_bytes(&request.challenge, "challenge")?,
                    expires_at,
                })))
            }
            Some(device_event::Event::Closed(closed)) => Ok(Some(PhoneEvent::Closed {
                session_id: closed.session_id,
                state: state(closed.state)?,
            })),
            Some(device_event::Event::Notice(notice)) => {
                let change = match device_notice::Kind::try_from(notice.kind) {
                    Ok(device_notice::Kind::Replaced) => Change::Reenrollment,
                    Ok(device_notice::Kind::Revoked) => Change::Revocation,
                    Ok(device_notice::Kind::CredentialChanged) => Change::Credential,
                    _ => return Err(PhoneError::InvalidRequest("unknown notice".into())),
                };
                let offer = notice
                    .revert
                    .map(|offer| {
                        Ok::<_, PhoneError>(RevertOffer {
                            change,
                            change_id: offer.change_id,
                            challenge: field_bytes(&offer.challenge, "revert challenge")?,
                            until: offer
                                .until
                                .and_then(|t| SystemTime::try_from(t).ok())
                                .ok_or_else(|| {
                                    PhoneError::InvalidRequest("revert offer without an end".into())
                                })?,
                        })
                    })
                    .transpose()?;
                if let Some(offer) = &offer {
                    self.remember_offer(offer)?;
                }
                Ok(Some(match change {
                    Change::Reenrollment => PhoneEvent::Replaced(offer),
                    Change::Revocation => PhoneEvent::Revoked(offer),
                    Change::Credential => PhoneEvent::CredentialChanged(offer),
                }))
            }
            None => Err(PhoneError::InvalidRequest("empty event".into())),
        }
    }

    /// Downloads (or loads from the cache) every key the request needs and
    /// keeps them in memory.
    ///
    /// # Errors
    /// Download or integrity failures.
    pub fn prepare(&mut self, request: &PendingRequest) -> Result<(), PhoneError> {
        for requirement in &request.requirements {
            self.proving_key(&requirement.key_id)?;
        }
        Ok(())
    }

    fn proving_key(&mut self, key_id: &KeyId) -> Result<&CircuitProvingKey, PhoneError> {
        if !self.keys.contains_key(key_id) {
            self.report(Progress::Preparing);
            let path = self.config.key_dir().join(format!("{key_id}.pk"));
            let key = match CircuitProvingKey::load(&path) {
                Ok(key) if key.key_id == *key_id => key,
                _ => self.download_key(key_id, &path)?,
            };
            self.report(Progress::Preparing);
            // Tables built now, while the customer reads the request, so the
            // first proof after start is as fast as the next ones.
            key.prepare();
            self.keys.insert(*key_id, key);
        }
        self.keys
            .get(key_id)
            .ok_or_else(|| PhoneError::BadProvingKey(key_id.to_string()))
    }

    fn download_key(
        &mut self,
        key_id: &KeyId,
        path: &Path,
    ) -> Result<CircuitProvingKey, PhoneError> {
        let mut client = self.device_client()?;
        let progress = &mut self.progress;
        let bytes = self.connection.block_on(async {
            let mut stream = client
                .get_proving_key(GetProvingKeyRequest {
                    key_id: key_id.0.to_vec(),
                })
                .await?
                .into_inner();
            let mut bytes = Vec::new();
            let mut expected_hash = None;
            let mut total = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if let Some(info) = chunk.info {
                    expected_hash = Some(info.sha256);
                    total = info.size_bytes;
                }
                if chunk.offset != bytes.len() as u64 {
                    return Err(RpcError::Refused {
                        code: "DataLoss".into(),
                        message: "proving key chunks out of order".into(),
                    });
                }
                bytes.extend_from_slice(&chunk.data);
                if let Some(hook) = progress.as_mut() {
                    hook(Progress::Downloading {
                        received: bytes.len() as u64,
                        total,
                    });
                }
            }
            Ok((bytes, expected_hash))
        })?;
        let (bytes, expected_hash) = bytes;
        let hash = Sha256::digest(&bytes);
        if expected_hash.as_deref() != Some(hash.as_slice()) {
            return Err(PhoneError::BadProvingKey(key_id.to_string()));
        }
        let key = CircuitProvingKey::read_from(bytes.as_slice())
            .map_err(|_| PhoneError::BadProvingKey(key_id.to_string()))?;
        if key.key_id != *key_id {
            return Err(PhoneError::BadProvingKey(key_id.to_string()));
        }
        std::fs::create_dir_all(self.config.key_dir())?;
        let temp = path.with_extension("pk.partial");
        std::fs::write(&temp, &bytes)?;
        std::fs::rename(&temp, path)?;
        Ok(key)
    }

    /// Proves what `request` requires with the PIN the customer typed, and
    /// submits the proofs.
    ///
    /// # Errors
    /// Key, proving or server errors. A wrong PIN is not an error: the
    /// server answers FAILED.
    pub fn approve(&mut self, request: &PendingRequest, pin: &Pin) -> Result<Outcome, PhoneError> {
        self.prepare(request)?;
        let challenge = field_from_bytes(&request.challenge)
            .map_err(|_| PhoneError::InvalidRequest("challenge".into()))?;
        let mut proofs = Vec::with_capacity(request.requirements.len());
        for (index, requirement) in request.requirements.iter().enumerate() {
            self.report(Progress::Proving {
                index,
                count: request.requirements.len(),
            });
            let proof = self.prove_requirement(requirement, pin, challenge)?;
            proofs.push(CircuitProof {
                key_id: requirement.key_id.0.to_vec(),
                proof,
            });
        }
        let mut client = self.device_client()?;
        let response = self
            .connection
            .block_on(client.submit_proof(SubmitProofRequest {
                session_id: request.session_id.clone(),
                proofs,
            }))
            .map_err(RpcError::from)?
            .into_inner();
        Ok(Outcome {
            state: state(response.state)?,
            level_reached: level(response.level_reached),
        })
    }

    fn prove_requirement(
        &mut self,
        requirement: &Requirement,
        pin: &Pin,
        challenge: Fr,
    ) -> Result<Vec<u8>, PhoneError> {
        // Each circuit is proven for the phone's own statement (its own
        // commitments and, for account ownership, its own account): if that
        // is not the statement the server expects, the server rejects it.
        match requirement.circuit.as_str() {
            name if name == PinKnowledge::NAME => {
                let circuit = PinKnowledge::new(pin, &self.secret, challenge);
                self.prove_with(requirement, circuit)
            }
            name if name == AccountOwnership::NAME => {
                let credential = self
                    .state
                    .credential
                    .as_ref()
                    .ok_or(PhoneError::NoCredential)?
                    .credential()?;
                let circuit = AccountOwnership::new(pin, &self.secret, &credential, challenge)
                    .map_err(|e| PhoneError::Prove(e.to_string()))?;
                self.prove_with(requirement, circuit)
            }
            other => Err(PhoneError::UnsupportedCircuit(other.to_owned())),
        }
    }

    fn prove_with<C: ZkCircuit>(
        &mut self,
        requirement: &Requirement,
        circuit: C,
    ) -> Result<Vec<u8>, PhoneError> {
        let key = self.proving_key(&requirement.key_id)?;
        if key.circuit != C::id() || key.circuit.version != requirement.version {
            return Err(PhoneError::BadProvingKey(requirement.key_id.to_string()));
        }
        prove(key, circuit, &mut OsRng).map_err(|e| PhoneError::Prove(e.to_string()))
    }

    /// Makes sure the pin-knowledge proving key is cached on disk, so that
    /// this phone can still answer a revert offer after it is revoked (when
    /// the server no longer serves it keys).
    ///
    /// # Errors
    /// The server refused, or the key failed its checks.
    pub fn cache_revert_key(&mut self) -> Result<(), PhoneError> {
        let key_id = self.current_pin_key_id()?;
        let path = self.config.key_dir().join(format!("{key_id}.pk"));
        if !matches!(CircuitProvingKey::read_identity(&path), Ok((_, id)) if id == key_id) {
            self.download_key(&key_id, &path)?;
        }
        Ok(())
    }

    /// The pin-knowledge key the server uses now (asks with the device's
    /// credential).
    fn current_pin_key_id(&self) -> Result<KeyId, PhoneError> {
        let mut client = self.device_client()?;
        let keys = self
            .connection
            .block_on(client.list_proving_keys(ListProvingKeysRequest {}))
            .map_err(RpcError::from)?
            .into_inner()
            .keys;
        let info = keys
            .iter()
            .find(|k| k.circuit == PinKnowledge::NAME)
            .ok_or_else(|| PhoneError::UnsupportedCircuit(PinKnowledge::NAME.into()))?;
        Ok(KeyId(info.key_id.as_slice().try_into().map_err(|_| {
            PhoneError::InvalidRequest("key id".into())
        })?))
    }

    /// The pin-knowledge key to prove a revert with: the server's current
    /// one if it still answers this device, else the cached one (newest
    /// circuit version first).
    fn revert_key_id(&self) -> Result<KeyId, PhoneError> {
        let refused = match self.current_pin_key_id() {
            Ok(key_id) => return Ok(key_id),
            Err(e) => e.to_string(),
        };
        std::fs::read_dir(self.config.key_dir())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| CircuitProvingKey::read_identity(&e.path()).ok())
            .filter(|(circuit, _)| circuit.name == PinKnowledge::NAME)
            .max_by_key(|(circuit, _)| circuit.version)
            .map(|(_, key_id)| key_id)
            .ok_or(PhoneError::NoRevertKey(refused))
    }

    /// Undoes the change of the latest offer the server made to this phone:
    /// proves the PIN and this phone's secret for the offer's challenge and
    /// sends the proof, without the device token (a revoked phone has
    /// none that works; the proof is the credential). Returns when the
    /// server reverted it.
    ///
    /// # Errors
    /// No offer; the key is unavailable; the server refused (a wrong PIN
    /// is `Unauthenticated`, and the offer stays for another attempt; a
    /// closed window or an already reverted change, `FailedPrecondition`).
    pub fn revert(&mut self, pin: &Pin) -> Result<SystemTime, PhoneError> {
        let offer = self
            .state
            .revert_offer
            .clone()
            .ok_or(PhoneError::NoRevertOffer)?;
        let key_id = self.revert_key_id()?;
        let challenge = field_from_bytes(&offer.challenge)
            .map_err(|_| PhoneError::InvalidRequest("revert challenge".into()))?;
        let requirement = Requirement {
            circuit: PinKnowledge::NAME.into(),
            version: PinKnowledge::id().version,
            key_id,
            public_inputs: Vec::new(),
        };
        self.proving_key(&key_id)?;
        self.report(Progress::Proving { index: 0, count: 1 });
        let circuit = PinKnowledge::new(pin, &self.secret, challenge);
        let proof = self.prove_with(&requirement, circuit)?;
        let mut client = DeviceClient::new(self.connection.with_token("")?);
        let response = self
            .connection
            .block_on(client.revert_change(RevertChangeRequest {
                change_id: offer.change_id.clone(),
                proof: Some(CircuitProof {
                    key_id: key_id.0.to_vec(),
                    proof,
                }),
            }))
            .map_err(RpcError::from)?
            .into_inner();
        let reverted_at = response
            .reverted_at
            .and_then(|t| SystemTime::try_from(t).ok())
            .unwrap_or_else(SystemTime::now);
        if self.state.revert_offer.as_ref() == Some(&offer) {
            let previous = self.state.revert_offer.take();
            if let Err(e) = self.save() {
                self.state.revert_offer = previous;
                return Err(e);
            }
        }
        Ok(reverted_at)
    }

    /// Declines a request: "I did not call". The server records it as a
    /// fraud signal.
    ///
    /// # Errors
    /// Server errors.
    pub fn decline(&self, request: &PendingRequest) -> Result<State, PhoneError> {
        let mut client = self.device_client()?;
        let response = self
            .connection
            .block_on(client.decline(DeclineRequest {
                session_id: request.session_id.clone(),
            }))
            .map_err(RpcError::from)?
            .into_inner();
        state(response.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(extra: &str) -> String {
        format!(
            r#"{{"server":"http://127.0.0.1:1","organization":"Acme","customer_ref":"c",
            "device_id":"d","device_token":"t","device_secret":"00"{extra}}}"#
        )
    }

    #[test]
    fn a_vault_written_before_revert_offers_still_opens() {
        let state: StoredState = serde_json::from_str(&stored("")).expect("old state");
        assert!(state.revert_offer.is_none());
        assert!(state.credential.is_none());
    }

    #[test]
    fn a_revert_offer_survives_the_vault() {
        let offer = RevertOffer {
            change: Change::Revocation,
            change_id: "chg_1".into(),
            challenge: [7; FIELD_LEN],
            until: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let dir = tempfile::tempdir().expect("dir");
        let config = PhoneConfig {
            data_dir: dir.path().to_owned(),
            kdf: KdfParams::INSECURE_FOR_TESTS,
        };
        let mut state: StoredState = serde_json::from_str(&stored("")).expect("state");
        state.revert_offer = Some(offer.clone());
        let plaintext = serde_json::to_vec(&state).expect("encode");
        config.vault().create("pass", &plaintext).expect("create");
        let read: StoredState =
            serde_json::from_slice(&config.vault().open("pass").expect("open")).expect("decode");
        assert_eq!(read.revert_offer, Some(offer));
    }
}
