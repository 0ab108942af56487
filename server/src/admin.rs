//! What the admin CLI does: tenants and credentials, directly on the store
//! (safe while the server runs: SQLite in WAL mode, and every credential
//! check reads the store, so a revocation takes effect at the next RPC).

use std::time::Duration;

use crate::{
    config::Config,
    domain::{
        audit::{self, AuditFinding, AuditSummary, TreeHead},
        keyring::KeyRing,
        model::{CredentialId, CredentialRecord, Role, Scope, Tenant, TenantId, Timestamp},
        secrets::Token,
        DomainError, Store,
    },
    store::SqliteStore,
};

/// Opens the configured store (creating the data directory).
///
/// # Errors
/// The directory or database cannot be opened.
pub async fn open_store(config: &Config) -> Result<SqliteStore, DomainError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        DomainError::Internal(format!(
            "creating data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    Ok(SqliteStore::open(&config.database_path()).await?)
}

/// Creates a tenant.
///
/// # Errors
/// InvalidArgument for a malformed id or empty name; AlreadyExists.
pub async fn create_tenant(
    store: &dyn Store,
    id: &str,
    display_name: &str,
) -> Result<Tenant, DomainError> {
    let display_name = display_name.trim();
    if display_name.is_empty() || display_name.len() > 100 {
        return Err(DomainError::InvalidArgument(
            "a tenant's display name is 1 to 100 characters",
        ));
    }
    let tenant = Tenant {
        id: TenantId::parse(id)?,
        display_name: display_name.to_owned(),
        created_at: Timestamp::now(),
    };
    store.create_tenant(&tenant).await?;
    Ok(tenant)
}

/// Creates a credential and returns it with its token (shown once).
/// Device credentials come only from device enrollment.
///
/// # Errors
/// InvalidArgument for the device role or a malformed label; NotFound for
/// an unknown tenant.
pub async fn create_credential(
    store: &dyn Store,
    tenant: &str,
    role: Role,
    label: Option<String>,
    valid_for: Option<Duration>,
) -> Result<(CredentialRecord, Token), DomainError> {
    if role == Role::Device {
        return Err(DomainError::InvalidArgument(
            "device credentials are issued by device enrollment",
        ));
    }
    if label
        .as_deref()
        .is_some_and(|l| l.is_empty() || l.len() > 100 || l.chars().any(char::is_control))
    {
        return Err(DomainError::InvalidArgument(
            "a label is 1 to 100 printable characters",
        ));
    }
    let tenant = TenantId::parse(tenant)?;
    store
        .tenant(&tenant)
        .await?
        .ok_or(DomainError::NotFound("tenant"))?;
    let now = Timestamp::now();
    let id = CredentialId::random();
    let token = Token::generate(&id);
    let record = CredentialRecord {
        id,
        tenant,
        role,
        scope: Scope::Full,
        token_hash: token.hash(),
        customer: None,
        device: None,
        label,
        created_at: now,
        expires_at: valid_for.map(|d| now.plus(d)),
        used_at: None,
        revoked_at: None,
    };
    store.insert_credential(&record).await?;
    Ok((record, token))
}

/// Revokes a credential (a device credential revokes its device too).
///
/// # Errors
/// InvalidArgument for a malformed id; NotFound.
pub async fn revoke_credential(store: &dyn Store, id: &str) -> Result<(), DomainError> {
    let id = CredentialId::parse(id)?;
    if store.revoke_credential(&id, Timestamp::now()).await? {
        Ok(())
    } else {
        Err(DomainError::NotFound("credential"))
    }
}

/// A tenant's credentials (not enrollment codes).
///
/// # Errors
/// InvalidArgument for a malformed id.
pub async fn list_credentials(
    store: &dyn Store,
    tenant: &str,
) -> Result<Vec<CredentialRecord>, DomainError> {
    Ok(store.credentials(&TenantId::parse(tenant)?).await?)
}

/// The configured signing keys (none are generated here).
///
/// # Errors
/// Internal if they cannot be read (e.g. the server never started).
pub fn signing_keys(config: &Config) -> Result<KeyRing, DomainError> {
    crate::signing::load(&crate::signing::signing_dir(&config.key_dir()))
        .map_err(|e| DomainError::Internal(e.to_string()))
}

/// Checks the whole audit log against its signatures and signed tree
/// heads: `Ok(Err(finding))` names the first bad record or head.
///
/// # Errors
/// The store's failure.
pub async fn verify_audit(
    store: &dyn Store,
    keys: &KeyRing,
) -> Result<Result<AuditSummary, AuditFinding>, DomainError> {
    let records = store.audit_records(None, 0, u32::MAX).await?;
    let heads = store.tree_heads().await?;
    Ok(audit::verify_log(&records, &heads, keys))
}

/// Signs a tree head over the whole audit log now (if it grew).
///
/// # Errors
/// The store's failure.
pub async fn sign_tree_head(store: &dyn Store, keys: &KeyRing) -> Result<TreeHead, DomainError> {
    audit::sign_head(store, keys).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credentials_need_a_tenant_and_never_a_device_role() {
        let store = SqliteStore::in_memory().await.expect("store");
        assert!(matches!(
            create_credential(&store, "acme", Role::Agent, None, None).await,
            Err(DomainError::NotFound("tenant"))
        ));
        create_tenant(&store, "acme", "Acme Bank")
            .await
            .expect("tenant");
        assert!(matches!(
            create_tenant(&store, "acme", "Acme again").await,
            Err(DomainError::AlreadyExists(_))
        ));
        assert!(matches!(
            create_credential(&store, "acme", Role::Device, None, None).await,
            Err(DomainError::InvalidArgument(_))
        ));
        let (record, token) =
            create_credential(&store, "acme", Role::Agent, Some("desk 1".into()), None)
                .await
                .expect("credential");
        assert_eq!(record.token_hash, token.hash());
        assert_eq!(
            list_credentials(&store, "acme").await.expect("list").len(),
            1
        );
        revoke_credential(&store, record.id.as_str())
            .await
            .expect("revoke");
        let stored = store
            .credential(&record.id)
            .await
            .expect("read")
            .expect("exists");
        assert!(stored.revoked_at.is_some());
        assert!(matches!(
            revoke_credential(&store, "000000000000000000000000").await,
            Err(DomainError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn tenant_ids_are_validated() {
        let store = SqliteStore::in_memory().await.expect("store");
        for bad in ["", "Acme", "a b", "x".repeat(41).as_str()] {
            assert!(create_tenant(&store, bad, "Name").await.is_err(), "{bad}");
        }
        assert!(create_tenant(&store, "ok", "  ").await.is_err());
    }
}
