//! Authentication by client certificate: the counterpart of
//! [`Engine::authenticate`] for callers that present a TLS client
//! certificate instead of a bearer token.

use super::Engine;
use crate::domain::{
    certificate::CertificateFingerprint,
    model::{Caller, Scope, Timestamp},
    DomainError,
};

impl Engine {
    /// The caller whose credential is the certificate with `fingerprint`,
    /// or `None` if no credential names that certificate. The TLS layer
    /// has already checked the certificate against the client CA and the
    /// client's possession of its key; this checks the credential exactly
    /// as [`Engine::authenticate`] checks a token's.
    ///
    /// # Errors
    /// [`DomainError::Unauthenticated`] for a revoked or expired
    /// credential; Internal for a store failure.
    pub async fn authenticate_certificate(
        &self,
        fingerprint: &CertificateFingerprint,
    ) -> Result<Option<Caller>, DomainError> {
        let Some(record) = self.store.certificate_credential(&fingerprint.0).await? else {
            return Ok(None);
        };
        // The store looked the row up by this very hash; comparing again
        // keeps one rule for every kind of credential and guards the
        // lookup against a store that matches loosely.
        if !fingerprint.matches(&record.token_hash) {
            return Ok(None);
        }
        if record.revoked_at.is_some() {
            return Err(DomainError::Unauthenticated("credential revoked"));
        }
        if record.expires_at.is_some_and(|t| t <= Timestamp::now()) {
            return Err(DomainError::Unauthenticated("credential expired"));
        }
        // Certificates are registered only as full credentials of a
        // non-device role (see `admin::create_certificate_credential`); a
        // row that says otherwise was not written by us.
        if record.scope != Scope::Full || record.customer.is_some() || record.device.is_some() {
            return Err(DomainError::Internal(format!(
                "certificate credential {} has a device or enrollment shape",
                record.id
            )));
        }
        Ok(Some(Caller {
            credential: record.id,
            tenant: record.tenant,
            role: record.role,
            scope: record.scope,
            customer: None,
            device: None,
        }))
    }
}
