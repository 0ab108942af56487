//! The SQLite side of client-certificate credentials: rows of the
//! `credentials` table with `kind = 'certificate'` (migration 0005).

use async_trait::async_trait;

use super::{
    append_audit_in, backend, conflict_over, credential_from, insert_credential_query, SqliteStore,
    BEGIN_WRITE,
};
use crate::domain::{
    model::{CredentialId, CredentialRecord, TenantId},
    AuditAppend, CertificateStore, StoreError,
};

#[async_trait]
impl CertificateStore for SqliteStore {
    async fn insert_certificate_credential(
        &self,
        credential: &CredentialRecord,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        insert_credential_query(credential)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Marked in the same transaction, so no reader ever sees the row as
        // a token credential; the unique index refuses a second
        // registration of the same certificate here.
        sqlx::query("UPDATE credentials SET kind = 'certificate' WHERE id = ?")
            .bind(credential.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(conflict_over("a credential for this client certificate"))?;
        append_audit_in(&mut tx, audit.events, audit.keys).await?;
        tx.commit().await.map_err(backend)
    }

    async fn certificate_credential(
        &self,
        fingerprint: &[u8; 32],
    ) -> Result<Option<CredentialRecord>, StoreError> {
        sqlx::query("SELECT * FROM credentials WHERE kind = 'certificate' AND token_hash = ?")
            .bind(fingerprint.as_slice())
            .fetch_optional(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?
            .as_ref()
            .map(credential_from)
            .transpose()
    }

    async fn certificate_credential_ids(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<CredentialId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM credentials WHERE tenant_id = ? AND kind = 'certificate' \
             ORDER BY created_at",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        ids.iter()
            .map(|id| {
                CredentialId::parse(id)
                    .map_err(|_| StoreError::Backend("corrupt row: credential id".into()))
            })
            .collect()
    }
}
