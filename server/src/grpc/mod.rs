//! The gRPC adapter: tonic services over the [`crate::domain::Engine`].
//!
//! Handlers are thin: read the caller (put into the request's extensions by
//! [`auth::AuthLayer`]), convert the message to domain types, call the
//! engine, convert back. Domain errors become statuses in one place
//! ([`status`]).

mod audit;
pub(crate) mod auth;
mod convert;
mod device;
mod enrollment;
mod keys;
mod operator;
pub(crate) mod status;
mod verification;

use std::sync::{Arc, OnceLock};

use tonic::{Request, Status};

pub(crate) use audit::AuditService;
pub(crate) use device::DeviceService;
pub(crate) use enrollment::EnrollmentService;
pub(crate) use keys::KeysService;
pub(crate) use operator::{OperatorEnrollmentService, OperatorLoginService};
pub(crate) use verification::VerificationService;

use crate::domain::{model::Caller, DomainError, Engine};

/// The engine, once storage and keys are ready.
pub(crate) type Ready = Arc<OnceLock<Arc<Engine>>>;

/// Largest response message: proving-key chunks are 32 KiB.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Size of a proving-key chunk.
pub(crate) const KEY_CHUNK_BYTES: usize = 32 * 1024;

fn engine(ready: &Ready) -> Result<Arc<Engine>, Status> {
    ready
        .get()
        .cloned()
        .ok_or_else(|| DomainError::Unavailable("the server is starting").into())
}

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    // The auth layer admits no request to these services without one.
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing credential"))
}
