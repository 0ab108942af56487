//! The agent desktop's side: start a verification for a caller and follow
//! it to its outcome. This is the reference for agent-desktop integrations:
//! the agent learns the binding code, the state and the level reached, and
//! nothing else.
//!
//! A resolved session carries the server's signed verdict, which the agent
//! checks offline with [`crate::verdict::verify`] and the keys from
//! [`AgentClient::signing_keys`].
//!
//! Also the workstation login system's side of the operator second factor
//! ([`LoginSystemClient`]): begin an operator's login, follow it, and
//! receive the signed assertion, checked offline with
//! [`crate::assertion::verify`].

use std::{collections::HashMap, fmt};

use tokio_stream::StreamExt;
use zkid_proto::v1::{
    keys_client::KeysClient, operator_login_client::OperatorLoginClient,
    verification_client::VerificationClient, AssuranceLevel, BeginLoginRequest,
    GetSigningKeysRequest, OperatorLoginSession, SessionState, StartVerificationRequest,
    VerificationSession, WatchLoginRequest, WatchVerificationRequest,
};

use crate::{
    rpc::{Connection, RpcError},
    verdict::{self, Verdict, VerdictError},
};

/// A session's state, as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the customer's phone.
    Pending,
    /// The customer proved what the operation requires.
    Passed,
    /// A proof was submitted and did not verify (e.g. a wrong PIN).
    Failed,
    /// The customer declined: "I did not call".
    Declined,
    /// Nobody answered in time.
    Expired,
    /// Too many failures: verification is locked for now.
    Locked,
    /// The agent cancelled.
    Cancelled,
}

impl State {
    pub(crate) fn from_proto(value: i32) -> Option<Self> {
        Some(match SessionState::try_from(value).ok()? {
            SessionState::Pending => Self::Pending,
            SessionState::Passed => Self::Passed,
            SessionState::Failed => Self::Failed,
            SessionState::Declined => Self::Declined,
            SessionState::Expired => Self::Expired,
            SessionState::Locked => Self::Locked,
            SessionState::Cancelled => Self::Cancelled,
            SessionState::Unspecified => return None,
        })
    }

    /// Whether the session has resolved.
    pub fn is_final(self) -> bool {
        self != Self::Pending
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "PENDING",
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
            Self::Declined => "DECLINED",
            Self::Expired => "EXPIRED",
            Self::Locked => "LOCKED",
            Self::Cancelled => "CANCELLED",
        })
    }
}

/// What the agent's screen shows about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Opaque session id.
    pub session_id: String,
    /// Current state.
    pub state: State,
    /// The operation asked for.
    pub operation: String,
    /// The level the operation requires (0 = none, 1..=3).
    pub required_level: u8,
    /// The level reached so far.
    pub level_reached: u8,
    /// The code the customer sees on the phone, to check it is the same
    /// request.
    pub binding_code: String,
    /// Once resolved: the server's signed verdict, as received (unchecked).
    pub verdict: Option<VerdictBytes>,
}

/// A signed verdict as the server sent it; check it with
/// [`crate::verdict::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictBytes {
    /// The canonical encoding.
    pub encoded: Vec<u8>,
    /// Ed25519 over `encoded`.
    pub signature: Vec<u8>,
    /// The id of the key the server says signed it.
    pub key_id: String,
}

/// Why a session's verdict cannot be relied on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictCheckError {
    /// A resolved session came without one.
    #[error("the server sent no signed verdict for the resolved session")]
    Missing,
    /// It does not verify with the published keys.
    #[error("the verdict does not check against the server's published keys: {0}")]
    Invalid(#[from] VerdictError),
    /// A genuine verdict, but about another session or outcome.
    #[error(
        "the verdict (session {session_id}, {state}, L{level}) does not match the session shown"
    )]
    Mismatch {
        /// The verdict's session.
        session_id: String,
        /// The verdict's state.
        state: String,
        /// The verdict's level.
        level: u8,
    },
}

impl SessionView {
    /// Checks the session's signed verdict offline with `public_key` (key
    /// id to Ed25519 public key, e.g. from [`AgentClient::signing_keys`]),
    /// and that it attests this very session, state and level: a genuine
    /// verdict about another session must not pass for this one.
    ///
    /// # Errors
    /// [`VerdictCheckError`].
    pub fn check_verdict(
        &self,
        public_key: impl Fn(&str) -> Option<[u8; 32]>,
    ) -> Result<Verdict, VerdictCheckError> {
        let signed = self.verdict.as_ref().ok_or(VerdictCheckError::Missing)?;
        let checked = verdict::verify(&signed.encoded, &signed.signature, public_key)?;
        if checked.session_id != self.session_id
            || checked.state != self.state.to_string().to_ascii_lowercase()
            || checked.level != self.level_reached
        {
            return Err(VerdictCheckError::Mismatch {
                session_id: checked.session_id,
                state: checked.state,
                level: checked.level,
            });
        }
        Ok(checked)
    }
}

/// An assurance level as a number (0 for none or unknown).
pub(crate) fn level(value: i32) -> u8 {
    match AssuranceLevel::try_from(value) {
        Ok(AssuranceLevel::L1) => 1,
        Ok(AssuranceLevel::L2) => 2,
        Ok(AssuranceLevel::L3) => 3,
        _ => 0,
    }
}

fn view(session: VerificationSession) -> Result<SessionView, RpcError> {
    let state = State::from_proto(session.state).ok_or_else(|| RpcError::Refused {
        code: "Internal".into(),
        message: "server sent an unknown session state".into(),
    })?;
    Ok(SessionView {
        session_id: session.session_id,
        state,
        operation: session.operation,
        required_level: level(session.required_level),
        level_reached: level(session.level_reached),
        binding_code: session.binding_code,
        verdict: session.verdict.map(|v| VerdictBytes {
            encoded: v.encoded,
            signature: v.signature,
            key_id: v.key_id,
        }),
    })
}

/// A connection to the verifier with an agent's credential.
pub struct AgentClient {
    connection: Connection,
    token: String,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("server", &self.connection.address)
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    /// Connects to `server` (e.g. `http://127.0.0.1:50051`) with an agent
    /// token.
    ///
    /// # Errors
    /// Bad address or unreachable server.
    pub fn connect(server: &str, token: &str) -> Result<Self, RpcError> {
        Ok(Self {
            connection: Connection::open(server)?,
            token: token.to_owned(),
        })
    }

    /// Starts a verification and calls `on_update` with the new session at
    /// once (so the binding code can be shown), then with every change until
    /// the session resolves; returns the final view.
    ///
    /// # Errors
    /// The server refused or the connection broke.
    pub fn verify(
        &self,
        customer_ref: &str,
        operation: &str,
        account_ref: Option<&str>,
        mut on_update: impl FnMut(&SessionView),
    ) -> Result<SessionView, RpcError> {
        let mut client = VerificationClient::new(self.connection.with_token(&self.token)?);
        self.connection.block_on(async {
            let started = client
                .start_verification(StartVerificationRequest {
                    customer_ref: customer_ref.to_owned(),
                    operation: operation.to_owned(),
                    account_ref: account_ref.map(str::to_owned),
                    step_up_from: None,
                })
                .await?
                .into_inner();
            let mut current = view(started)?;
            on_update(&current);
            if current.state.is_final() {
                return Ok(current);
            }
            let mut stream = client
                .watch_verification(WatchVerificationRequest {
                    session_id: current.session_id.clone(),
                })
                .await?
                .into_inner();
            while let Some(update) = stream.next().await {
                let next = view(update?)?;
                if next != current {
                    on_update(&next);
                }
                current = next;
                if current.state.is_final() {
                    return Ok(current);
                }
            }
            Err(RpcError::Refused {
                code: "Unavailable".into(),
                message: "the server closed the watch before the session resolved".into(),
            })
        })
    }

    /// The server's public signing keys by id (`Keys.GetSigningKeys`), to
    /// check verdicts offline.
    ///
    /// # Errors
    /// The server refused, or sent a key that is not 32 bytes.
    pub fn signing_keys(&self) -> Result<HashMap<String, [u8; 32]>, RpcError> {
        signing_keys(&self.connection, &self.token)
    }
}

/// An operator login, as the workstation login system sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginView {
    /// Opaque session id (the assertion's `jti`).
    pub session_id: String,
    /// Current state.
    pub state: State,
    /// The operator logging in.
    pub operator_ref: String,
    /// The audience the assertion is for.
    pub audience: String,
    /// The level reached so far.
    pub level_reached: u8,
    /// The code the operator sees on their phone.
    pub binding_code: String,
    /// Once PASSED: the signed assertion (a compact JWS).
    pub assertion: Option<String>,
}

fn login_view(login: OperatorLoginSession) -> Result<LoginView, RpcError> {
    let state = State::from_proto(login.state).ok_or_else(|| RpcError::Refused {
        code: "Internal".into(),
        message: "server sent an unknown session state".into(),
    })?;
    Ok(LoginView {
        session_id: login.session_id,
        state,
        operator_ref: login.operator_ref,
        audience: login.audience,
        level_reached: level(login.level_reached),
        binding_code: login.binding_code,
        assertion: (!login.assertion.is_empty()).then_some(login.assertion),
    })
}

/// A connection with a workstation login system's credential (role
/// `login`): the reference for login-system integrations.
pub struct LoginSystemClient {
    connection: Connection,
    token: String,
}

impl fmt::Debug for LoginSystemClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginSystemClient")
            .field("server", &self.connection.address)
            .finish_non_exhaustive()
    }
}

impl LoginSystemClient {
    /// Connects to `server` with a login system token.
    ///
    /// # Errors
    /// Bad address or unreachable server.
    pub fn connect(server: &str, token: &str) -> Result<Self, RpcError> {
        Ok(Self {
            connection: Connection::open(server)?,
            token: token.to_owned(),
        })
    }

    /// Begins an operator login for `audience` and calls `on_update` with
    /// the new login at once (so the binding code can be shown), then with
    /// every change until it resolves; returns the final view.
    ///
    /// # Errors
    /// The server refused or the connection broke.
    pub fn login(
        &self,
        operator_ref: &str,
        audience: &str,
        mut on_update: impl FnMut(&LoginView),
    ) -> Result<LoginView, RpcError> {
        let mut client = OperatorLoginClient::new(self.connection.with_token(&self.token)?);
        self.connection.block_on(async {
            let begun = client
                .begin_login(BeginLoginRequest {
                    operator_ref: operator_ref.to_owned(),
                    audience: audience.to_owned(),
                })
                .await?
                .into_inner();
            let mut current = login_view(begun)?;
            on_update(&current);
            if current.state.is_final() {
                return Ok(current);
            }
            let mut stream = client
                .watch_login(WatchLoginRequest {
                    session_id: current.session_id.clone(),
                })
                .await?
                .into_inner();
            while let Some(update) = stream.next().await {
                let next = login_view(update?)?;
                if next != current {
                    on_update(&next);
                }
                current = next;
                if current.state.is_final() {
                    return Ok(current);
                }
            }
            Err(RpcError::Refused {
                code: "Unavailable".into(),
                message: "the server closed the watch before the login resolved".into(),
            })
        })
    }

    /// The server's public signing keys by id (`Keys.GetSigningKeys`), to
    /// check assertions offline.
    ///
    /// # Errors
    /// The server refused, or sent a key that is not 32 bytes.
    pub fn signing_keys(&self) -> Result<HashMap<String, [u8; 32]>, RpcError> {
        signing_keys(&self.connection, &self.token)
    }
}

/// Fetches the server's public signing keys (a public RPC: the token is
/// sent but not needed).
fn signing_keys(
    connection: &Connection,
    token: &str,
) -> Result<HashMap<String, [u8; 32]>, RpcError> {
    let mut client = KeysClient::new(connection.with_token(token)?);
    let keys = connection
        .block_on(client.get_signing_keys(GetSigningKeysRequest {}))?
        .into_inner()
        .keys;
    keys.into_iter()
        .map(|k| {
            let key: [u8; 32] = k.public_key.try_into().map_err(|_| RpcError::Refused {
                code: "Internal".into(),
                message: format!("server sent a malformed public key {}", k.key_id),
            })?;
            Ok((k.key_id, key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn passed(key: &SigningKey) -> SessionView {
        let public = key.verifying_key().to_bytes();
        let encoded = Verdict {
            tenant: "acme".into(),
            session_id: "s_1".into(),
            operation: "balance_inquiry".into(),
            state: "passed".into(),
            level: 1,
            issued_at: 1,
            expires_at: 2,
            key_id: verdict::key_id(&public),
        }
        .to_bytes();
        let signature = key.sign(&encoded).to_bytes().to_vec();
        SessionView {
            session_id: "s_1".into(),
            state: State::Passed,
            operation: "balance_inquiry".into(),
            required_level: 1,
            level_reached: 1,
            binding_code: "123-456".into(),
            verdict: Some(VerdictBytes {
                encoded,
                signature,
                key_id: verdict::key_id(&public),
            }),
        }
    }

    #[test]
    fn a_verdict_checks_only_for_its_own_session_and_outcome() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let public = key.verifying_key().to_bytes();
        let id = verdict::key_id(&public);
        let keys = |k: &str| (k == id).then_some(public);
        let view = passed(&key);
        assert_eq!(view.check_verdict(keys).expect("checks").level, 1);

        let mut other_session = view.clone();
        other_session.session_id = "s_2".into();
        assert!(matches!(
            other_session.check_verdict(keys),
            Err(VerdictCheckError::Mismatch { .. })
        ));
        let mut other_state = view.clone();
        other_state.state = State::Failed;
        assert!(matches!(
            other_state.check_verdict(keys),
            Err(VerdictCheckError::Mismatch { .. })
        ));
        let mut forged = view.clone();
        if let Some(v) = forged.verdict.as_mut() {
            v.signature[0] ^= 1;
        }
        assert_eq!(
            forged.check_verdict(keys),
            Err(VerdictCheckError::Invalid(VerdictError::BadSignature))
        );
        let unknown = SigningKey::from_bytes(&[6; 32]);
        assert!(matches!(
            passed(&unknown).check_verdict(keys),
            Err(VerdictCheckError::Invalid(VerdictError::UnknownKey(_)))
        ));
        let mut missing = view;
        missing.verdict = None;
        assert_eq!(missing.check_verdict(keys), Err(VerdictCheckError::Missing));
    }
}
