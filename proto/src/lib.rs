//! zkid's gRPC API, proto package `zkid.v1`: prost messages and tonic
//! clients and servers generated from `proto/zkid/v1/*.proto` by protox
//! (no system `protoc`), plus the file descriptor set for server reflection.
//!
//! The services, each for one kind of caller:
//! - [`v1::enrollment_server::Enrollment`]: the organization's backend
//!   registers customers; the phone enrolls its device commitment.
//! - [`v1::verification_server::Verification`]: the agent desktop starts a
//!   verification and watches it resolve.
//! - [`v1::device_server::Device`]: the phone's push stream, proof
//!   submission, decline, and proving-key download.
//! - [`v1::audit_server::Audit`]: the tenant's auditors read fraud events
//!   and the tamper-evident audit log with its proofs.
//! - [`v1::keys_server::Keys`]: the server's public signing keys (public).
//! - [`v1::operator_enrollment_server::OperatorEnrollment`] and
//!   [`v1::operator_login_server::OperatorLogin`]: BPO operators enroll
//!   their phones, and workstation login systems use them as a second
//!   factor, receiving a signed assertion.
//!
//! The `.proto` files document every message and field, the roles each RPC
//! admits and its errors. This crate holds generated code only; it knows
//! nothing of the circuits (proofs and field elements cross as bytes).
//!
//! ```no_run
//! use zkid_proto::v1::{verification_client::VerificationClient, StartVerificationRequest};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = VerificationClient::connect("http://127.0.0.1:50051").await?;
//! let mut request = tonic::Request::new(StartVerificationRequest {
//!     customer_ref: "cust-0042".into(),
//!     operation: "balance_inquiry".into(),
//!     account_ref: None,
//!     step_up_from: None,
//! });
//! request.metadata_mut().insert("authorization", "Bearer zkid_...".parse()?);
//! let session = client.start_verification(request).await?.into_inner();
//! println!("binding code {}", session.binding_code);
//! # Ok(()) }
//! ```

/// Messages and services of `zkid.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("zkid.v1");
}

/// The encoded `FileDescriptorSet` of `zkid.v1` (and its imports), for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/zkid_v1_descriptor.bin"));
