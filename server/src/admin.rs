//! What the admin CLI does: tenants and credentials, directly on the store
//! (safe while the server runs: SQLite in WAL mode, and every credential
//! check reads the store, so a revocation takes effect at the next RPC).

use std::time::Duration;

use crate::{
    config::Config,
    domain::{
        audit::{self, AuditFinding, AuditSummary, AuditTree, TreeHead},
        certificate::{CertificateFingerprint, CredentialKind},
        keyring::KeyRing,
        model::{
            CredentialId, CredentialRecord, CustomerRef, Role, Scope, Tenant, TenantId, Timestamp,
        },
        secrets::Token,
        AuditAppend, DomainError, Store,
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
    keys: &KeyRing,
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
    let event = credential_event(&record, "credential.create", "created", now);
    store
        .insert_credential(
            &record,
            AuditAppend {
                events: std::slice::from_ref(&event),
                keys,
            },
        )
        .await?;
    Ok((record, token))
}

/// Revokes a credential (a device credential revokes its device too).
///
/// # Errors
/// InvalidArgument for a malformed id; NotFound.
pub async fn revoke_credential(
    store: &dyn Store,
    keys: &KeyRing,
    id: &str,
) -> Result<(), DomainError> {
    let id = CredentialId::parse(id)?;
    let record = store
        .credential(&id)
        .await?
        .ok_or(DomainError::NotFound("credential"))?;
    let now = Timestamp::now();
    let event = credential_event(&record, "credential.revoke", "revoked", now);
    let audit = AuditAppend {
        events: std::slice::from_ref(&event),
        keys,
    };
    if store.revoke_credential(&id, now, audit).await? {
        Ok(())
    } else {
        Err(DomainError::NotFound("credential"))
    }
}

/// Lifts a customer's lockout early: an administrator's decision after
/// checking the customer out of band. The failure count starts again; the
/// number of earlier locks is kept, so a further lock still lasts longer.
///
/// # Errors
/// InvalidArgument for a malformed tenant or customer reference; NotFound
/// if the customer is neither locked nor has failed attempts.
pub async fn lift_lockout(
    store: &dyn Store,
    keys: &KeyRing,
    tenant: &str,
    customer_ref: &str,
) -> Result<(), DomainError> {
    let tenant = TenantId::parse(tenant)?;
    let customer_ref = CustomerRef::parse(customer_ref)?;
    let event = audit::AuditEvent {
        tenant: tenant.to_string(),
        actor_id: "cli".into(),
        actor_role: "admin".into(),
        action: "unlock".into(),
        customer_ref: customer_ref.to_string(),
        session_id: String::new(),
        outcome: "lifted".into(),
        detail: "lifted by an administrator".into(),
        at: Timestamp::now(),
    };
    let audit = AuditAppend {
        events: std::slice::from_ref(&event),
        keys,
    };
    if store.lift_lockout(&tenant, &customer_ref, audit).await? {
        Ok(())
    } else {
        Err(DomainError::NotFound(
            "lock or failed attempt for that customer",
        ))
    }
}

/// The audit record of a credential change made with the admin CLI. The
/// credential's id and role are named, never its token.
fn credential_event(
    record: &CredentialRecord,
    action: &str,
    outcome: &str,
    at: Timestamp,
) -> audit::AuditEvent {
    audit::AuditEvent {
        tenant: record.tenant.to_string(),
        actor_id: "cli".into(),
        actor_role: "admin".into(),
        action: action.into(),
        customer_ref: record
            .customer
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        session_id: String::new(),
        outcome: outcome.into(),
        detail: format!("credential={} role={}", record.id, record.role),
        at,
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

/// The leaf certificate of a PEM file (the first certificate: a chain
/// lists the leaf first) and its fingerprint.
///
/// # Errors
/// InvalidArgument if the PEM is malformed or holds no certificate.
pub fn certificate_fingerprint(pem: &[u8]) -> Result<CertificateFingerprint, DomainError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    let leaf = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or(DomainError::InvalidArgument(
            "the file holds no PEM certificate",
        ))?
        .map_err(|_| DomainError::InvalidArgument("the certificate file is not valid PEM"))?;
    Ok(CertificateFingerprint::of_der(leaf.as_ref()))
}

/// Registers the client certificate `pem` (its leaf) as a credential of
/// `tenant` and `role`: the store keeps only its fingerprint. The server
/// accepts it once `tls.client_ca` is a CA that signed it.
///
/// # Errors
/// As [`create_credential`]; InvalidArgument for a file without a
/// certificate; AlreadyExists if the certificate is registered already
/// (in any tenant, even revoked).
pub async fn create_certificate_credential(
    store: &dyn Store,
    keys: &KeyRing,
    tenant: &str,
    role: Role,
    label: Option<String>,
    valid_for: Option<Duration>,
    pem: &[u8],
) -> Result<(CredentialRecord, CertificateFingerprint), DomainError> {
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
    let fingerprint = certificate_fingerprint(pem)?;
    let tenant = TenantId::parse(tenant)?;
    store
        .tenant(&tenant)
        .await?
        .ok_or(DomainError::NotFound("tenant"))?;
    let now = Timestamp::now();
    let record = CredentialRecord {
        id: CredentialId::random(),
        tenant,
        role,
        scope: Scope::Full,
        token_hash: fingerprint.0,
        customer: None,
        device: None,
        label,
        created_at: now,
        expires_at: valid_for.map(|d| now.plus(d)),
        used_at: None,
        revoked_at: None,
    };
    let mut event = credential_event(&record, "credential.create", "created", now);
    event.detail.push_str(" kind=certificate");
    store
        .insert_certificate_credential(
            &record,
            AuditAppend {
                events: std::slice::from_ref(&event),
                keys,
            },
        )
        .await?;
    Ok((record, fingerprint))
}

/// A tenant's credentials, as [`list_credentials`], each with its kind.
///
/// # Errors
/// InvalidArgument for a malformed id.
pub async fn list_credentials_with_kind(
    store: &dyn Store,
    tenant: &str,
) -> Result<Vec<(CredentialRecord, CredentialKind)>, DomainError> {
    let tenant = TenantId::parse(tenant)?;
    let certificates = store.certificate_credential_ids(&tenant).await?;
    Ok(store
        .credentials(&tenant)
        .await?
        .into_iter()
        .map(|record| {
            let kind = if certificates.contains(&record.id) {
                CredentialKind::Certificate
            } else {
                CredentialKind::Token
            };
            (record, kind)
        })
        .collect())
}

/// The configured signing keys, generating the first if the server never
/// started (for the CLI's credential commands, which are audited).
///
/// # Errors
/// Internal if they cannot be read or written.
pub fn signing_keys_or_generate(config: &Config) -> Result<KeyRing, DomainError> {
    crate::signing::load_or_generate(&crate::signing::signing_dir(&config.key_dir()))
        .map_err(|e| DomainError::Internal(e.to_string()))
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

/// What [`export_audit`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Records written.
    pub records: u64,
    /// Signed heads written.
    pub heads: u64,
}

/// Writes, for an external auditor, into `out`: `records.jsonl` (every
/// record with its leaf encoding and an inclusion proof against the newest
/// head), `heads.json` (every signed head), `consistency.json` (a proof
/// between each pair of consecutive heads) and `keys.json` (the public
/// keys). Signs a fresh head first if the log grew. Byte strings are hex.
///
/// # Errors
/// The store's failure; Internal if files cannot be written.
pub async fn export_audit(
    store: &dyn Store,
    keys: &KeyRing,
    out: &std::path::Path,
) -> Result<ExportSummary, DomainError> {
    use serde_json::json;

    let newest = audit::sign_head(store, keys).await?;
    let (tree, records) = audit::load_tree(store).await?;
    let heads = store.tree_heads().await?;
    let write = |name: &str, text: String| {
        std::fs::write(out.join(name), text)
            .map_err(|e| DomainError::Internal(format!("writing {name}: {e}")))
    };
    std::fs::create_dir_all(out)
        .map_err(|e| DomainError::Internal(format!("creating {}: {e}", out.display())))?;
    let mut lines = String::new();
    for record in records.iter().take_while(|r| r.seq <= newest.size) {
        let index = usize::try_from(record.seq - 1)
            .map_err(|_| DomainError::Internal("seq out of range".into()))?;
        // index < newest.size <= tree.len(): no panic.
        let proof = tree.prove_inclusion(index);
        let e = &record.event;
        let line = json!({
            "seq": record.seq, "at": e.at.0, "tenant": e.tenant,
            "actor_id": e.actor_id, "actor_role": e.actor_role, "action": e.action,
            "customer_ref": e.customer_ref, "session_id": e.session_id,
            "outcome": e.outcome, "detail": e.detail,
            "prev_hash": hex::encode(record.prev), "leaf": hex::encode(record.leaf()),
            "key_id": record.key_id, "signature": hex::encode(&record.signature),
            "inclusion": { "tree_size": newest.size, "proof": hex::encode(proof.as_bytes()) },
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    write("records.jsonl", lines)?;
    let head_json = |h: &TreeHead| {
        json!({
            "tree_size": h.size, "root_hash": hex::encode(h.root), "at": h.at.0,
            "key_id": h.key_id, "signature": hex::encode(&h.signature),
        })
    };
    let heads_json: Vec<_> = heads.iter().map(head_json).collect();
    write(
        "heads.json",
        serde_json::Value::from(heads_json).to_string(),
    )?;
    let mut consistency = Vec::new();
    let sizes: Vec<u64> = heads.iter().map(|h| h.size).filter(|s| *s > 0).collect();
    for pair in sizes.windows(2) {
        let (old, new) = (pair[0], pair[1]);
        let mut prefix = AuditTree::new();
        for record in records.iter().take_while(|r| r.seq <= new) {
            prefix.push(record.leaf());
        }
        let additions = usize::try_from(new - old)
            .map_err(|_| DomainError::Internal("size out of range".into()))?;
        // old >= 1, so additions < new = prefix.len(): no panic.
        let proof = prefix.prove_consistency(additions);
        consistency.push(json!({
            "old_size": old, "new_size": new, "proof": hex::encode(proof.as_bytes()),
        }));
    }
    write(
        "consistency.json",
        serde_json::Value::from(consistency).to_string(),
    )?;
    let public: Vec<_> = keys
        .public_keys()
        .iter()
        .map(|(id, key)| json!({ "key_id": id, "ed25519": hex::encode(key.as_bytes()) }))
        .collect();
    write("keys.json", serde_json::Value::from(public).to_string())?;
    Ok(ExportSummary {
        records: newest.size,
        heads: heads.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credentials_need_a_tenant_and_never_a_device_role() {
        let store = SqliteStore::in_memory().await.expect("store");
        let keys = KeyRing::new(ed25519_dalek::SigningKey::from_bytes(&[5; 32]), []);
        assert!(matches!(
            create_credential(&store, &keys, "acme", Role::Agent, None, None).await,
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
            create_credential(&store, &keys, "acme", Role::Device, None, None).await,
            Err(DomainError::InvalidArgument(_))
        ));
        let (record, token) = create_credential(
            &store,
            &keys,
            "acme",
            Role::Agent,
            Some("desk 1".into()),
            None,
        )
        .await
        .expect("credential");
        assert_eq!(record.token_hash, token.hash());
        assert_eq!(
            list_credentials(&store, "acme").await.expect("list").len(),
            1
        );
        revoke_credential(&store, &keys, record.id.as_str())
            .await
            .expect("revoke");
        let stored = store
            .credential(&record.id)
            .await
            .expect("read")
            .expect("exists");
        assert!(stored.revoked_at.is_some());
        assert!(matches!(
            revoke_credential(&store, &keys, "000000000000000000000000").await,
            Err(DomainError::NotFound(_))
        ));
        // Both changes are in the audit log, naming the credential only.
        let log = store.audit_records(None, 0, 10).await.expect("log");
        let actions: Vec<&str> = log.iter().map(|r| r.event.action.as_str()).collect();
        assert_eq!(actions, ["credential.create", "credential.revoke"]);
        assert!(log
            .iter()
            .all(|r| r.event.detail == format!("credential={} role=agent", record.id)));
        assert!(verify_audit(&store, &keys).await.expect("verify").is_ok());
    }

    #[tokio::test]
    async fn certificate_credentials_store_only_the_fingerprint_and_list_as_such() {
        let store = SqliteStore::in_memory().await.expect("store");
        let keys = KeyRing::new(ed25519_dalek::SigningKey::from_bytes(&[5; 32]), []);
        create_tenant(&store, "acme", "Acme Bank")
            .await
            .expect("tenant");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let pem = cert.pem();
        assert!(matches!(
            create_certificate_credential(
                &store,
                &keys,
                "acme",
                Role::Device,
                None,
                None,
                pem.as_bytes()
            )
            .await,
            Err(DomainError::InvalidArgument(_))
        ));
        assert!(matches!(
            create_certificate_credential(
                &store,
                &keys,
                "acme",
                Role::Agent,
                None,
                None,
                b"no pem"
            )
            .await,
            Err(DomainError::InvalidArgument(_))
        ));
        let (record, fingerprint) = create_certificate_credential(
            &store,
            &keys,
            "acme",
            Role::Agent,
            None,
            None,
            pem.as_bytes(),
        )
        .await
        .expect("registered");
        assert_eq!(
            record.token_hash,
            CertificateFingerprint::of_der(cert.der()).0
        );
        assert_eq!(fingerprint.0, record.token_hash);
        let (token_record, _) = create_credential(&store, &keys, "acme", Role::Auditor, None, None)
            .await
            .expect("token");
        let listed = list_credentials_with_kind(&store, "acme")
            .await
            .expect("list");
        let kind_of = |id: &CredentialId| listed.iter().find(|(r, _)| &r.id == id).map(|(_, k)| *k);
        assert_eq!(kind_of(&record.id), Some(CredentialKind::Certificate));
        assert_eq!(kind_of(&token_record.id), Some(CredentialKind::Token));
        let log = store.audit_records(None, 0, 10).await.expect("log");
        assert!(log[0].event.detail.ends_with("kind=certificate"));
        assert!(verify_audit(&store, &keys).await.expect("verify").is_ok());
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
