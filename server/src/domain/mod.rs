//! The verifier's domain: tenants, credentials, enrollment, CIBA-style
//! verification sessions, proof checking. It knows nothing of gRPC or SQL:
//! the gRPC services ([`crate::grpc`]) and the store ([`crate::store`]) are
//! adapters around it, and it reaches storage only through the [`Store`]
//! port.

pub mod audit;
pub mod catalog;
pub mod certificate;
mod engine;
mod hub;
pub mod keyring;
pub mod model;
pub mod operator;
pub mod policy;
mod proofs;
pub mod secrets;
mod store;

pub use engine::{
    ChallengeSource, DeviceUpdate, Engine, EngineSettings, Enrolled, NoticeKind, PushRequest,
    RandomChallenges, Registration, Requirement, SubmittedProof,
};
pub use proofs::{BatchSettings, ProofChecker};
pub use store::{
    AuditAppend, CertificateStore, CustomerRegistration, DeviceEnrollment, RevertOutcome,
    StandingQuery, StartStanding, Store, StoreError,
};

/// Completes once `stop` turns true (or its sender is gone). The guard
/// `wait_for` returns is dropped here, so callers' futures stay `Send`.
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// What can go wrong in the domain. The gRPC layer maps each variant to a
/// status code in exactly one place; [`DomainError::Internal`]'s detail is
/// logged there and never sent to the caller.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// No valid credential.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid credential that may not do this.
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// A malformed request.
    #[error("{0}")]
    InvalidArgument(&'static str),
    /// A proof that is malformed (as opposed to false).
    #[error("proof {index} is malformed: {reason}")]
    MalformedProof {
        /// Its position in the request.
        index: usize,
        /// Why (from the circuits crate's checks).
        reason: String,
    },
    /// The thing addressed does not exist (in the caller's tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed but the state does not allow it.
    #[error("{0}")]
    FailedPrecondition(&'static str),
    /// It exists already.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A rate limit was reached; retry later.
    #[error("{0}")]
    ResourceExhausted(&'static str),
    /// The server is starting or stopping.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The proof verifier's queue is full: the request was shed before
    /// anything was consumed, so the same request may be retried.
    #[error("{0}")]
    Overloaded(&'static str),
    /// A fault of ours; the detail is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Self::AlreadyExists(what),
            StoreError::Backend(detail) => Self::Internal(detail),
        }
    }
}
