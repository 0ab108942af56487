//! Proof verification, off the async runtime.
//!
//! A Groth16 verification costs about 1.3 ms of CPU; done on a tokio worker
//! it would stall every other RPC on that worker. [`ProofChecker`] runs it
//! on rayon's pool and awaits the verdicts through a oneshot channel.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
};

use tokio::sync::oneshot;
use zkid_circuits::{encoding::FIELD_LEN, KeyId, Verdict, Verifier};

use super::DomainError;

/// One proof with the statement the server expects it to prove.
#[derive(Clone)]
pub(crate) struct ProofItem {
    pub(crate) key_id: KeyId,
    pub(crate) proof: Vec<u8>,
    pub(crate) public_inputs: Vec<[u8; FIELD_LEN]>,
}

/// Verifies proofs on rayon's thread pool.
#[derive(Clone)]
pub struct ProofChecker {
    verifier: Arc<Verifier>,
}

impl ProofChecker {
    /// Wraps a verifier with every key registered.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
        }
    }

    /// Each item's verdict, in order.
    pub(crate) async fn verify(&self, items: Vec<ProofItem>) -> Result<Vec<Verdict>, DomainError> {
        let verifier = Arc::clone(&self.verifier);
        let (tx, rx) = oneshot::channel();
        rayon::spawn(move || {
            let verdicts = catch_unwind(AssertUnwindSafe(|| {
                items
                    .iter()
                    .map(|item| verifier.verify(&item.key_id, &item.proof, &item.public_inputs))
                    .collect::<Vec<_>>()
            }));
            // The receiver is gone only if the RPC was dropped.
            let _ = tx.send(verdicts);
        });
        match rx.await {
            Ok(Ok(verdicts)) => Ok(verdicts),
            Ok(Err(_)) => Err(DomainError::Internal("proof verification panicked".into())),
            Err(_) => Err(DomainError::Internal("verification task vanished".into())),
        }
    }
}
