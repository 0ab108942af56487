//! The storage port. The SQLite adapter implements it; a PostgreSQL one
//! will follow the same contract. Every multi-step change is one
//! transaction, and every state transition is conditional, so that
//! concurrent callers (and several server processes) cannot both win.

use async_trait::async_trait;

use super::audit::{AuditEvent, AuditRecord, TreeHead};
use super::keyring::KeyRing;
use super::model::{
    AttributeCommitment, ChangeId, CredentialChange, CredentialId, CredentialRecord, Customer,
    CustomerRef, Device, DeviceId, FraudEvent, LockoutState, Resolution, Resolved, RevertTerms,
    Session, SessionId, SubjectKind, Tenant, TenantId, Timestamp,
};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database failed; the detail is for logs.
    #[error("storage: {0}")]
    Backend(String),
}

/// Registering (or re-registering) a customer with a fresh enrollment code.
#[derive(Debug, Clone)]
pub struct CustomerRegistration {
    /// The customer.
    pub tenant: TenantId,
    /// The customer.
    pub customer_ref: CustomerRef,
    /// New attribute commitment; `None` keeps the stored one.
    pub attributes: Option<AttributeCommitment>,
    /// Customer or operator. A reference registered as one kind cannot be
    /// registered as the other ([`StoreError::Conflict`]).
    pub kind: SubjectKind,
    /// The new enrollment code's credential.
    pub code: CredentialRecord,
    /// Now.
    pub at: Timestamp,
    /// Terms of the change recorded if this replaces an issued attribute
    /// commitment while the customer has an active device.
    pub revert: RevertTerms,
}

/// Enrolling a device with an enrollment code.
#[derive(Debug, Clone)]
pub struct DeviceEnrollment {
    /// The enrollment code being used.
    pub code: CredentialId,
    /// The new device.
    pub device: Device,
    /// The new device's credential.
    pub credential: CredentialRecord,
    /// Now.
    pub at: Timestamp,
    /// Terms of the change recorded if this replaces an active device.
    pub revert: RevertTerms,
}

/// What [`Store::revert_change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertOutcome {
    /// Restored what the change replaced.
    Reverted(Box<CredentialChange>),
    /// Already reverted, its window closed, a later change exists, or
    /// restoring would conflict with the customer's current devices.
    NotRevertible(&'static str),
}

/// Audit events to append in the same transaction as the change they
/// record, and the keys to seal them with: if they cannot be written, the
/// change does not happen.
#[derive(Debug, Clone, Copy)]
pub struct AuditAppend<'a> {
    /// The events, in order.
    pub events: &'a [AuditEvent],
    /// The signing keys.
    pub keys: &'a KeyRing,
}

/// What decides whether a new session may start: read in one go by
/// [`Store::start_standing`], as of the query's `minute_ago` and `day_ago`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StartStanding {
    /// Sessions started with the caller's credential since `minute_ago`
    /// (as [`Store::sessions_by_agent_since`]).
    pub started_by_credential: u64,
    /// The subject's lockout standing (as [`Store::lockout`]).
    pub lockout: LockoutState,
    /// Sessions pushed to the subject since `day_ago` (as
    /// [`Store::sessions_for_customer_since`]).
    pub pushed_to_subject: u64,
    /// Sessions addressed to the device since `minute_ago` (as
    /// [`Store::sessions_for_device_since`]).
    pub asked_of_device: u64,
}

/// What [`Store::start_standing`] reads about.
#[derive(Debug, Clone, Copy)]
pub struct StandingQuery<'a> {
    /// The credential starting the session.
    pub credential: &'a CredentialId,
    /// The subject's tenant.
    pub tenant: &'a TenantId,
    /// The subject.
    pub subject_ref: &'a CustomerRef,
    /// The device to be asked.
    pub device: &'a DeviceId,
    /// Start of the per-minute windows.
    pub minute_ago: Timestamp,
    /// Start of the daily budget's window.
    pub day_ago: Timestamp,
}

/// The store. See the module docs for its guarantees.
#[async_trait]
pub trait Store: CertificateStore + Send + Sync + 'static {
    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a tenant. [`StoreError::Conflict`] if the id is taken.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// A tenant.
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;

    /// Stores a credential.
    async fn insert_credential(
        &self,
        credential: &CredentialRecord,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;
    /// A credential.
    async fn credential(&self, id: &CredentialId) -> Result<Option<CredentialRecord>, StoreError>;
    /// Revokes a credential (and the device it belongs to, if any); returns
    /// whether it existed.
    async fn revoke_credential(
        &self,
        id: &CredentialId,
        at: Timestamp,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;
    /// A tenant's credentials (without enrollment codes).
    async fn credentials(&self, tenant: &TenantId) -> Result<Vec<CredentialRecord>, StoreError>;

    /// In one transaction: upserts the customer, revokes the customer's
    /// unused enrollment codes, stores the new code. Returns whether the
    /// customer existed.
    async fn register_customer(
        &self,
        reg: &CustomerRegistration,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;
    /// A customer.
    async fn customer(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<Option<Customer>, StoreError>;

    /// In one transaction: consumes the enrollment code (if unused,
    /// unrevoked and unexpired), marks the customer's active devices
    /// replaced, stores the device and its credential. Returns the replaced
    /// devices, or `None` if the code could not be consumed.
    async fn enroll_device(
        &self,
        enrollment: &DeviceEnrollment,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Vec<DeviceId>>, StoreError>;
    /// A subject (customer or operator) with their active device, if they
    /// have one, in one read.
    async fn subject_with_device(
        &self,
        tenant: &TenantId,
        subject_ref: &CustomerRef,
    ) -> Result<Option<(Customer, Option<Device>)>, StoreError>;
    /// A device.
    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError>;
    /// The customer's active device.
    async fn active_device(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<Option<Device>, StoreError>;
    /// Revokes a device and its credential. Returns when it was revoked
    /// (earlier if it already was), or `None` if the tenant has no such
    /// device for that customer. Revoking the active device records a
    /// change under `revert`.
    async fn revoke_device(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        device: &DeviceId,
        at: Timestamp,
        revert: &RevertTerms,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Timestamp>, StoreError>;

    /// Stores a new session.
    async fn insert_session(
        &self,
        session: &Session,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;
    /// A session.
    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;
    /// A session with its subject (`None` if the subject is missing), in
    /// one read.
    async fn session_with_subject(
        &self,
        id: &SessionId,
    ) -> Result<Option<(Session, Option<Customer>)>, StoreError>;
    /// Pending, unexpired sessions addressed to a device, oldest first.
    async fn pending_sessions(
        &self,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError>;
    /// Resolves a session exactly once: only if it is pending and, for
    /// EXPIRED, its expiry has passed at `resolution.at`, for any other
    /// state, not yet. In the same transaction: records the fraud signal,
    /// and with a lockout policy updates the customer's standing
    /// ([`super::model::LockoutPolicy::after`]), recording a `locked` fraud
    /// signal if it locks; appends the audit records of
    /// [`super::audit::resolution_events`], sealed with `keys`. Returns the
    /// resolution, or `None` if the condition failed.
    async fn resolve_session(
        &self,
        id: &SessionId,
        resolution: &Resolution,
        keys: &KeyRing,
    ) -> Result<Option<Resolved>, StoreError>;
    /// A customer's lockout standing (the default if none is stored).
    async fn lockout(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<LockoutState, StoreError>;
    /// Clears a lock that ended, if it is still the one ending at `until`;
    /// returns whether this call cleared it (so one caller reports it).
    /// Appends the `unlock` audit record in the same transaction.
    async fn clear_lock(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        until: Timestamp,
        keys: &KeyRing,
    ) -> Result<bool, StoreError>;
    /// Everything [`StartStanding`] holds, in one read.
    async fn start_standing(&self, query: &StandingQuery<'_>) -> Result<StartStanding, StoreError>;
    /// Sessions started with an agent credential since `since`.
    async fn sessions_by_agent_since(
        &self,
        agent: &CredentialId,
        since: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Sessions pushed to a customer (so not LOCKED) since `since`.
    async fn sessions_for_customer_since(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        since: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Sessions addressed to a device since `since`.
    async fn sessions_for_device_since(
        &self,
        device: &DeviceId,
        since: Timestamp,
    ) -> Result<u64, StoreError>;
    /// A tenant's fraud events with an id above `after`, oldest first.
    async fn fraud_events(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<FraudEvent>, StoreError>;
    /// Ids of pending sessions whose expiry has passed.
    async fn due_sessions(&self, now: Timestamp, limit: u32) -> Result<Vec<SessionId>, StoreError>;
    /// Number of fraud signals recorded for a customer.
    async fn fraud_signal_count(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<u64, StoreError>;

    /// Appends audit records on their own.
    async fn append_audit(&self, audit: AuditAppend<'_>) -> Result<(), StoreError>;
    /// Audit records with `seq` above `after`, in order, at most `limit`;
    /// with a tenant, only that tenant's.
    async fn audit_records(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// A recorded enrollment or credential change.
    async fn change(&self, id: &ChangeId) -> Result<Option<CredentialChange>, StoreError>;
    /// The customer's latest change.
    async fn latest_change(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<Option<CredentialChange>, StoreError>;
    /// Changes not reverted whose window is open at `now` and whose earlier
    /// device is `device`: what that device should be told about.
    async fn open_changes_for_device(
        &self,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<Vec<CredentialChange>, StoreError>;
    /// Counts a rejected revert proof, with its audit record.
    async fn count_failed_revert(
        &self,
        id: &ChangeId,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;
    /// In one transaction, if the change is still revertible at `at` (not
    /// reverted, window open, fewer than `max_failed` rejected attempts,
    /// the customer's latest change): restores what it replaced, marks it
    /// reverted, appends the audit records.
    async fn revert_change(
        &self,
        id: &ChangeId,
        at: Timestamp,
        max_failed: u32,
        audit: AuditAppend<'_>,
    ) -> Result<RevertOutcome, StoreError>;
    /// Lifts a customer's lock and failure count at once (an administrator's
    /// decision), with its audit record. Returns whether there was
    /// anything to lift.
    async fn lift_lockout(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Stores a signed tree head (once per size).
    async fn insert_tree_head(&self, head: &TreeHead) -> Result<(), StoreError>;
    /// The signed tree heads, by size.
    async fn tree_heads(&self) -> Result<Vec<TreeHead>, StoreError>;

    /// Records the audience an operator login is started for. Called
    /// before the session is stored, so that a stored login session always
    /// has one. [`StoreError::Conflict`] if the session id has one.
    async fn insert_login_audience(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        audience: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// The audience an operator login was started for.
    async fn login_audience(&self, session: &SessionId) -> Result<Option<String>, StoreError>;
}

/// The store's part for client-certificate credentials
/// ([`super::certificate`]). Their `token_hash` is the certificate's
/// fingerprint; they are read, listed and revoked through [`Store`] like
/// every credential.
#[async_trait]
pub trait CertificateStore {
    /// Stores a certificate credential (`credential.token_hash` is the
    /// fingerprint). [`StoreError::Conflict`] if that certificate is
    /// registered already, in any tenant, even revoked: one certificate
    /// is never two credentials, and a revoked one stays revoked.
    async fn insert_certificate_credential(
        &self,
        credential: &CredentialRecord,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError>;
    /// The credential registered for the certificate with `fingerprint`.
    async fn certificate_credential(
        &self,
        fingerprint: &[u8; 32],
    ) -> Result<Option<CredentialRecord>, StoreError>;
    /// The ids of a tenant's certificate credentials.
    async fn certificate_credential_ids(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<CredentialId>, StoreError>;
}
