//! The agent desktop's side: start a verification for a caller and follow
//! it to its outcome. This is the reference for agent-desktop integrations:
//! the agent learns the binding code, the state and the level reached, and
//! nothing else.
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

use crate::rpc::{Connection, RpcError};

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
