//! zkid's prover client: the customer's phone side of a verification.
//!
//! It enrolls the device, keeps the device secret and the organization's
//! attribute credential in an encrypted [`vault`], receives verification
//! requests, proves and submits. Its public API uses plain types, so that it
//! can be wrapped for iOS and Android.

pub mod agent;
// The server's own offline check of operator login assertions, built here
// from the same file: it depends on nothing else of the server, and a
// login client should not pull in the server's storage and gRPC stack.
#[path = "../../server/src/assertion.rs"]
pub mod assertion;
pub mod credential_file;
pub mod enroller;
pub mod phone;
pub mod rpc;
pub mod vault;
// The server's offline check of signed verdicts, from the same file, for
// the same reason as `assertion`.
#[path = "../../server/src/verdict.rs"]
pub mod verdict;
