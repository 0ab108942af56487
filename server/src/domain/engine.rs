//! The engine: every use case of the service, independent of transport.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{broadcast, mpsc, watch};

use crate::{
    metrics::{observe, Metrics, SubmitMetrics},
    verdict::SignedVerdict,
};
use zkid_circuits::{
    circuit::CircuitId,
    encoding::{field_from_bytes, PROOF_LEN},
    KeyId, Verdict,
};

use super::{
    audit::{AuditEvent, AuditRecord, AuditTree, TreeHead},
    catalog::{Catalog, ProvingKeyFile, Statement, StatementContext},
    hub::Hub,
    keyring::KeyRing,
    model::{
        AccountRef, Actor, AssuranceLevel, AttributeCommitment, Caller, ChangeId, CredentialChange,
        CredentialId, CredentialRecord, Customer, CustomerRef, Device, DeviceId, DeviceStatus,
        FraudEvent, LockoutPolicy, Resolution, RevertTerms, Role, Scope, Session, SessionId,
        SessionState, SubjectKind, TenantId, Timestamp,
    },
    policy::{self, Established, Operation},
    proofs::{ProofChecker, ProofItem},
    secrets::{self, Token},
    AuditAppend, CustomerRegistration, DeviceEnrollment, DomainError, RevertOutcome, StandingQuery,
    StartStanding, Store, StoreError,
};

// Client-certificate authentication (mTLS), beside token authentication.
mod certificate;

/// The tree of the first `size` records of the log (fewer if the log is
/// shorter), with those records.
async fn prefix_tree(
    store: &dyn Store,
    size: u64,
) -> Result<(AuditTree, Vec<AuditRecord>), DomainError> {
    let limit = u32::try_from(size).unwrap_or(u32::MAX);
    let records = store.audit_records(None, 0, limit).await?;
    let mut tree = AuditTree::new();
    for record in &records {
        tree.push(record.leaf());
    }
    Ok((tree, records))
}

/// Where session challenges come from.
///
/// The server always uses [`RandomChallenges`]: no configuration key, flag
/// or environment variable selects another source. The only other source is
/// one a program embedding the server through the library API
/// ([`crate::serve`]) passes itself, as the load generator
/// does so that each simulated phone's one precomputed proof stays valid
/// across its sessions and proving stays out of the server's figure. Every
/// check, write and verification still happens. A predictable challenge
/// would let an old proof answer a new session, so nothing but a
/// measurement harness may use one.
pub trait ChallengeSource: std::fmt::Debug + Send + Sync + 'static {
    /// The challenge of a new session: a canonically encoded field element.
    fn challenge(&self) -> [u8; 32];
}

/// Fresh uniformly random challenges from the OS CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomChallenges;

impl ChallengeSource for RandomChallenges {
    fn challenge(&self) -> [u8; 32] {
        secrets::random_challenge()
    }
}

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a verification session stays answerable.
    pub session_ttl: Duration,
    /// How long an enrollment code stays usable.
    pub enrollment_code_ttl: Duration,
    /// Lockout after repeated failed proofs.
    pub lockout: LockoutPolicy,
    /// Sessions one agent credential may start per minute.
    pub agent_sessions_per_minute: u32,
    /// Sessions one device may be asked per minute; more resolve LOCKED.
    pub device_sessions_per_minute: u32,
    /// How long a signed verdict may be relied on after resolution.
    pub verdict_ttl: Duration,
    /// Verifications pushed to one customer per 24 hours; more resolve
    /// LOCKED. Caps what repeated questions could reveal.
    pub customer_verifications_per_day: u32,
    /// How long after passing a session can be stepped up from.
    pub step_up_window: Duration,
    /// How long an enrollment or credential change stays revertible (and
    /// level-3 operations refused).
    pub change_revert_window: Duration,
    /// Where session challenges come from: [`RandomChallenges`] except in
    /// a measurement harness (see [`ChallengeSource`]).
    pub challenges: Arc<dyn ChallengeSource>,
    /// How long an operator login assertion may be relied on.
    pub operator_assertion_ttl: Duration,
}

/// Rejected revert proofs after which a change can no longer be reverted:
/// the proof is the only credential of a revert, so its guesses are
/// capped like failed verifications.
const MAX_FAILED_REVERTS: u32 = 5;

/// The window of the per-customer budget.
const BUDGET_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The window of the per-agent and per-device rate limits.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The result of registering a customer.
#[derive(Debug)]
pub struct Registration {
    /// The one-time enrollment code (a bearer token).
    pub code: Token,
    /// Its expiry.
    pub expires_at: Timestamp,
    /// Whether the customer was known before.
    pub existing_customer: bool,
}

/// The result of enrolling a device.
#[derive(Debug)]
pub struct Enrolled {
    /// The new device.
    pub device: DeviceId,
    /// Its bearer token.
    pub token: Token,
    /// Its customer.
    pub customer_ref: CustomerRef,
    /// The tenant's display name.
    pub organization: String,
    /// Devices this one replaced.
    pub replaced: Vec<DeviceId>,
}

/// A proof as submitted by a device.
#[derive(Debug, Clone)]
pub struct SubmittedProof {
    /// The key id it claims (should be 32 bytes).
    pub key_id: Vec<u8>,
    /// The proof bytes.
    pub proof: Vec<u8>,
}

/// One statement a device must prove.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// The circuit.
    pub circuit: CircuitId,
    /// Its key.
    pub key_id: KeyId,
    /// Its public inputs, in order.
    pub public_inputs: Vec<[u8; 32]>,
}

/// A request pushed to a device.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The session.
    pub session: Session,
    /// The tenant's display name.
    pub organization: String,
    /// The operation's display name.
    pub operation_display: String,
    /// The message naming organization, operation and binding code.
    pub binding_message: String,
    /// What to prove.
    pub requirements: Vec<Requirement>,
}

/// What happened to a device's enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A newer enrollment replaced it.
    Replaced,
    /// The organization revoked it.
    Revoked,
    /// The organization registered a new attribute credential; the device
    /// still answers.
    CredentialChanged,
}

impl NoticeKind {
    /// Whether the device's stream ends after it.
    pub fn ends_stream(self) -> bool {
        !matches!(self, Self::CredentialChanged)
    }
}

/// How the customer can undo a change: see `zkid.v1.RevertOffer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertOffer {
    /// The change.
    pub change: ChangeId,
    /// The challenge the revert proof answers.
    pub challenge: [u8; 32],
    /// The end of the window.
    pub until: Timestamp,
}

impl RevertOffer {
    fn of(change: &CredentialChange) -> Self {
        Self {
            change: change.id.clone(),
            challenge: change.challenge,
            until: change.revert_until,
        }
    }

    fn notice_kind(change: &CredentialChange) -> NoticeKind {
        match change.kind {
            super::model::ChangeKind::Reenrollment => NoticeKind::Replaced,
            super::model::ChangeKind::Revocation => NoticeKind::Revoked,
            super::model::ChangeKind::Attributes => NoticeKind::CredentialChanged,
        }
    }
}

/// An event on a device's push stream.
#[derive(Debug, Clone)]
pub enum DeviceUpdate {
    /// A pending request.
    Request(Box<PushRequest>),
    /// A request closed.
    Closed {
        /// The session.
        session: SessionId,
        /// Its final state.
        state: SessionState,
    },
    /// The device's enrollment or the customer's credential changed; the
    /// stream ends after this if [`NoticeKind::ends_stream`].
    Notice {
        /// What.
        kind: NoticeKind,
        /// When.
        at: Timestamp,
        /// How to undo it, while that is possible.
        revert: Option<RevertOffer>,
    },
}

#[derive(Debug, Clone)]
pub(super) enum DeviceSignal {
    /// A new pending session, as committed, with its subject as read when
    /// it started.
    Request(Box<(Session, Customer)>),
    Closed(SessionId, SessionState),
    Notice(NoticeKind, Timestamp, Option<RevertOffer>),
}

/// The service's use cases. Cheap to share behind an `Arc`.
pub struct Engine {
    pub(super) store: Arc<dyn Store>,
    catalog: Catalog,
    proofs: ProofChecker,
    pub(super) keys: Arc<KeyRing>,
    pub(super) settings: EngineSettings,
    /// Each session's committed changes, as snapshots.
    pub(super) sessions: Hub<SessionId, Session>,
    pub(super) devices: Hub<DeviceId, DeviceSignal>,
    pub(super) shutdown: watch::Receiver<bool>,
    submit_metrics: SubmitMetrics,
}

pub(super) fn require(caller: &Caller, role: Role, scope: Scope) -> Result<(), DomainError> {
    if caller.role == role && caller.scope == scope {
        Ok(())
    } else {
        Err(DomainError::PermissionDenied(
            "this credential may not call this",
        ))
    }
}

impl Engine {
    /// An engine over `store`, verifying `catalog`'s circuits with
    /// `proofs`. Streams end when `shutdown` turns true.
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Catalog,
        proofs: ProofChecker,
        keys: Arc<KeyRing>,
        settings: EngineSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            catalog,
            proofs,
            keys,
            settings,
            sessions: Hub::new(),
            devices: Hub::new(),
            shutdown,
            submit_metrics: SubmitMetrics::unregistered(),
        }
    }

    /// Observes SubmitProof's stages in `metrics` (by default, in metrics
    /// that no registry exposes).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.submit_metrics = metrics.submit.clone();
        self
    }

    pub(super) fn audit<'a>(&'a self, events: &'a [AuditEvent]) -> AuditAppend<'a> {
        AuditAppend {
            events,
            keys: &self.keys,
        }
    }

    pub(super) fn event(
        caller: &Caller,
        action: &str,
        customer_ref: &CustomerRef,
        outcome: &str,
    ) -> AuditEvent {
        AuditEvent {
            tenant: caller.tenant.to_string(),
            actor_id: caller.credential.to_string(),
            actor_role: caller.role.to_string(),
            action: action.into(),
            customer_ref: customer_ref.to_string(),
            session_id: String::new(),
            outcome: outcome.into(),
            detail: String::new(),
            at: Timestamp::now(),
        }
    }

    /// The signed verdict of a resolved session (`None` while pending),
    /// signed with the current key. Ed25519 is deterministic: the same
    /// session and key always give the same verdict.
    pub fn signed_verdict(&self, session: &Session) -> Option<SignedVerdict> {
        let resolved_at = session.resolved_at?;
        if !session.state.is_final() {
            return None;
        }
        let verdict = crate::verdict::Verdict {
            tenant: session.tenant.to_string(),
            session_id: session.id.to_string(),
            operation: session.operation.clone(),
            state: session.state.as_str().into(),
            level: session.level_reached as u8,
            issued_at: resolved_at.0,
            expires_at: resolved_at.plus(self.settings.verdict_ttl).0,
            key_id: self.keys.current_id().into(),
        };
        let encoded = verdict.to_bytes();
        let (_, signature) = self.keys.sign(&encoded);
        Some(SignedVerdict { encoded, signature })
    }

    /// The server's public signing keys: (id, Ed25519 public key, whether
    /// it is the one signing now).
    pub fn signing_keys(&self) -> Vec<(String, [u8; 32], bool)> {
        self.keys
            .public_keys()
            .iter()
            .map(|(id, key)| (id.clone(), key.to_bytes(), id == self.keys.current_id()))
            .collect()
    }

    /// The catalog of operations and circuits.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Whether storage answers.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn ping(&self) -> Result<(), DomainError> {
        Ok(self.store.ping().await?)
    }

    // ----- authentication -------------------------------------------------

    /// Finds the caller a bearer token belongs to.
    ///
    /// # Errors
    /// [`DomainError::Unauthenticated`] for a malformed, unknown, wrong,
    /// revoked, expired or used token.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, DomainError> {
        let invalid = DomainError::Unauthenticated("invalid credential");
        let Some(id) = secrets::claimed_credential(token) else {
            return Err(invalid);
        };
        let Some(record) = self.store.credential(&id).await? else {
            return Err(invalid);
        };
        if !secrets::hashes_match(&secrets::hash_token(token), &record.token_hash) {
            return Err(invalid);
        }
        if record.revoked_at.is_some() {
            return Err(DomainError::Unauthenticated("credential revoked"));
        }
        if record.expires_at.is_some_and(|t| t <= Timestamp::now()) {
            return Err(DomainError::Unauthenticated("credential expired"));
        }
        if record.scope == Scope::Enrollment && record.used_at.is_some() {
            return Err(DomainError::Unauthenticated("enrollment code already used"));
        }
        Ok(Caller {
            credential: record.id,
            tenant: record.tenant,
            role: record.role,
            scope: record.scope,
            customer: record.customer,
            device: record.device,
        })
    }

    // ----- enrollment -----------------------------------------------------

    /// Registers or re-registers a customer and issues an enrollment code.
    ///
    /// # Errors
    /// PermissionDenied for a non-enroller; InvalidArgument for a
    /// non-canonical commitment or a zero schema version.
    pub async fn register_customer(
        &self,
        caller: &Caller,
        customer_ref: CustomerRef,
        attributes: Option<AttributeCommitment>,
    ) -> Result<Registration, DomainError> {
        require(caller, Role::Enroller, Scope::Full)?;
        if let Some(attributes) = &attributes {
            if field_from_bytes(&attributes.commitment).is_err() {
                return Err(DomainError::InvalidArgument(
                    "attribute commitment is not a canonical field element",
                ));
            }
            if attributes.schema_version == 0 {
                return Err(DomainError::InvalidArgument(
                    "attribute schema_version must be at least 1",
                ));
            }
        }
        let now = Timestamp::now();
        let id = CredentialId::random();
        let code = Token::generate(&id);
        let expires_at = now.plus(self.settings.enrollment_code_ttl);
        let record = CredentialRecord {
            id,
            tenant: caller.tenant.clone(),
            role: Role::Device,
            scope: Scope::Enrollment,
            token_hash: code.hash(),
            customer: Some(customer_ref.clone()),
            device: None,
            label: None,
            created_at: now,
            expires_at: Some(expires_at),
            used_at: None,
            revoked_at: None,
        };
        let mut event = Self::event(caller, "customer.register", &customer_ref, "code_issued");
        event.detail = if attributes.is_some() {
            "attributes=set".into()
        } else {
            "attributes=kept".into()
        };
        let revert = self.revert_terms(now);
        let existing_customer = self
            .store
            .register_customer(
                &CustomerRegistration {
                    tenant: caller.tenant.clone(),
                    customer_ref,
                    attributes,
                    kind: SubjectKind::Customer,
                    code: record,
                    at: now,
                    revert: revert.clone(),
                },
                self.audit(std::slice::from_ref(&event)),
            )
            .await?;
        self.announce_change(&revert.id).await?;
        tracing::info!(tenant = %caller.tenant, existing_customer, "customer registered");
        Ok(Registration {
            code,
            expires_at,
            existing_customer,
        })
    }

    /// Enrolls the calling phone with its enrollment code.
    ///
    /// # Errors
    /// PermissionDenied unless called with an enrollment code;
    /// InvalidArgument for a non-canonical commitment; Unauthenticated if
    /// the code was used meanwhile.
    pub async fn enroll_device(
        &self,
        caller: &Caller,
        commitment: [u8; 32],
    ) -> Result<Enrolled, DomainError> {
        require(caller, Role::Device, Scope::Enrollment)?;
        let customer_ref = caller
            .customer
            .clone()
            .ok_or_else(|| DomainError::Internal("enrollment code without customer".into()))?;
        if field_from_bytes(&commitment).is_err() {
            return Err(DomainError::InvalidArgument(
                "device commitment is not a canonical field element",
            ));
        }
        let now = Timestamp::now();
        let device_id = DeviceId::random();
        let credential_id = CredentialId::random();
        let token = Token::generate(&credential_id);
        let credential = CredentialRecord {
            id: credential_id.clone(),
            tenant: caller.tenant.clone(),
            role: Role::Device,
            scope: Scope::Full,
            token_hash: token.hash(),
            customer: Some(customer_ref.clone()),
            device: Some(device_id.clone()),
            label: None,
            created_at: now,
            expires_at: None,
            used_at: None,
            revoked_at: None,
        };
        let device = Device {
            id: device_id.clone(),
            tenant: caller.tenant.clone(),
            customer_ref: customer_ref.clone(),
            commitment,
            credential: credential_id,
            status: DeviceStatus::Active,
            enrolled_at: now,
            changed_at: None,
        };
        let mut event = Self::event(caller, "device.enroll", &customer_ref, "enrolled");
        event.detail = format!("device={device_id}");
        let revert = self.revert_terms(now);
        let replaced = self
            .store
            .enroll_device(
                &DeviceEnrollment {
                    code: caller.credential.clone(),
                    device,
                    credential,
                    at: now,
                    revert: revert.clone(),
                },
                self.audit(std::slice::from_ref(&event)),
            )
            .await?
            .ok_or(DomainError::Unauthenticated("enrollment code already used"))?;
        if !self.announce_change(&revert.id).await? {
            for old in &replaced {
                self.devices
                    .publish(old, DeviceSignal::Notice(NoticeKind::Replaced, now, None));
            }
        }
        let organization = self.organization(&caller.tenant).await?;
        tracing::info!(tenant = %caller.tenant, device = %device_id, replaced = replaced.len(), "device enrolled");
        Ok(Enrolled {
            device: device_id,
            token,
            customer_ref,
            organization,
            replaced,
        })
    }

    /// Revokes a customer's device.
    ///
    /// # Errors
    /// PermissionDenied for a non-enroller; NotFound if the tenant has no
    /// such device for that customer.
    pub async fn revoke_device(
        &self,
        caller: &Caller,
        customer_ref: &CustomerRef,
        device: &DeviceId,
    ) -> Result<Timestamp, DomainError> {
        require(caller, Role::Enroller, Scope::Full)?;
        let found = self
            .store
            .device(device)
            .await?
            .ok_or(DomainError::NotFound("device"))?;
        if found.tenant != caller.tenant {
            return Err(DomainError::PermissionDenied(
                "device belongs to another tenant",
            ));
        }
        let mut event = Self::event(caller, "device.revoke", customer_ref, "revoked");
        event.detail = format!("device={device}");
        let now = Timestamp::now();
        let revert = self.revert_terms(now);
        let at = self
            .store
            .revoke_device(
                &caller.tenant,
                customer_ref,
                device,
                now,
                &revert,
                self.audit(std::slice::from_ref(&event)),
            )
            .await?
            .ok_or(DomainError::NotFound("device"))?;
        if !self.announce_change(&revert.id).await? {
            self.devices
                .publish(device, DeviceSignal::Notice(NoticeKind::Revoked, at, None));
        }
        tracing::info!(tenant = %caller.tenant, device = %device, "device revoked");
        Ok(at)
    }

    pub(super) fn revert_terms(&self, at: Timestamp) -> RevertTerms {
        RevertTerms {
            id: ChangeId::random(),
            challenge: secrets::random_challenge(),
            until: at.plus(self.settings.change_revert_window),
        }
    }

    /// Tells the device that was active before change `id` (if the store
    /// recorded one under that id) how to undo it. Returns whether there
    /// was a change.
    async fn announce_change(&self, id: &ChangeId) -> Result<bool, DomainError> {
        let Some(change) = self.store.change(id).await? else {
            return Ok(false);
        };
        self.devices.publish(
            &change.earlier_device,
            DeviceSignal::Notice(
                RevertOffer::notice_kind(&change),
                change.at,
                Some(RevertOffer::of(&change)),
            ),
        );
        tracing::info!(tenant = %change.tenant, change = %change.id, kind = change.kind.as_str(), "credential change recorded; earlier device told");
        Ok(true)
    }

    pub(super) async fn organization(&self, tenant: &TenantId) -> Result<String, DomainError> {
        Ok(self
            .store
            .tenant(tenant)
            .await?
            .ok_or_else(|| DomainError::Internal("credential of a missing tenant".into()))?
            .display_name)
    }

    // ----- the agent's side -----------------------------------------------

    /// Starts a verification session and pushes it to the customer's device.
    ///
    /// # Errors
    /// A customer locked out after repeated failures, or who spent the
    /// day's verification budget, or whose device was asked too often in
    /// the last minute, gets a session that is LOCKED at once and pushed to
    /// nobody: the agent sees LOCKED, never why.
    ///
    /// # Errors
    /// PermissionDenied for a non-agent; InvalidArgument for an unknown
    /// operation; NotFound for an unknown customer; FailedPrecondition if
    /// the customer has no active device, or does not meet a level-3
    /// operation's conditions now (the agent is not told which: the audit
    /// log is), or `step_up_from` cannot be stepped up from;
    /// ResourceExhausted if the agent credential started too many sessions
    /// in the last minute.
    ///
    /// With `step_up_from`, the session asks only for what that PASSED
    /// session did not establish, and passes at once if nothing is missing.
    pub async fn start_verification(
        &self,
        caller: &Caller,
        customer_ref: CustomerRef,
        operation: &str,
        account_ref: Option<AccountRef>,
        step_up_from: Option<SessionId>,
    ) -> Result<Session, DomainError> {
        require(caller, Role::Agent, Scope::Full)?;
        let operation = self
            .catalog
            .operation(&caller.tenant, operation)
            .ok_or(DomainError::InvalidArgument("unknown operation"))?;
        let (customer, device) = self
            .subject_with_device(&caller.tenant, &customer_ref, SubjectKind::Customer)
            .await?;
        let now = Timestamp::now();
        let standing = self.start_standing(caller, &customer, &device, now).await?;
        self.check_start_rate(
            caller,
            &standing,
            "too many verifications started with this credential; retry in a minute",
        )?;
        let (circuits, step_up_of) = match step_up_from {
            None => (operation.circuits.clone(), None),
            Some(earlier) => {
                let earlier = self
                    .step_up_base(caller, &earlier, &customer_ref, &device, now)
                    .await?;
                let earlier_operation = self
                    .catalog
                    .operation(&caller.tenant, &earlier.operation)
                    .ok_or(DomainError::FailedPrecondition(
                        "the earlier session's operation is no longer in the policy",
                    ))?;
                let missing = policy::missing(
                    &operation.requirements,
                    account_ref.as_ref(),
                    &Established {
                        requirements: &earlier_operation.requirements,
                        account: earlier.account_ref.as_ref(),
                    },
                );
                (policy::circuits_for(&missing), Some(earlier.id))
            }
        };
        if let Some(reason) = self
            .level3_shortfall(operation, &customer, &device, now)
            .await?
        {
            let mut event = Self::event(caller, "session.refused", &customer_ref, "refused");
            event.detail = format!("operation={} reason={reason}", operation.name);
            self.store
                .append_audit(self.audit(std::slice::from_ref(&event)))
                .await?;
            tracing::info!(tenant = %caller.tenant, operation = %operation.name, "level-3 operation refused by policy");
            return Err(DomainError::FailedPrecondition(
                "the customer does not meet this operation's assurance policy at present",
            ));
        }
        let mut session = self.new_session(
            caller,
            customer_ref,
            &device,
            (&operation.name, operation.level),
            circuits,
            now,
        );
        session.account_ref = account_ref;
        session.step_up_of = step_up_of;
        // Refuse at once what could never pass (no credential, no account
        // reference), instead of pushing an unanswerable request.
        let context = StatementContext {
            challenge: &session.challenge,
            device: &device,
            customer: &customer,
            account: session.account_ref.as_ref(),
        };
        for name in &session.circuits {
            let entry = self.catalog.circuit(name).ok_or_else(|| {
                DomainError::Internal(format!("operation needs unknown circuit {name}"))
            })?;
            entry.statement.public_inputs(&context)?;
        }
        if self.refused(&session, now, &standing).await? {
            session.state = SessionState::Locked;
            session.resolved_at = Some(now);
        } else if session.circuits.is_empty() {
            // A step-up whose earlier session already established all the
            // operation requires: that proof, minutes old, answers it.
            session.state = SessionState::Passed;
            session.level_reached = session.required_level;
            session.resolved_at = Some(now);
        }
        let event = self.start_event(caller, &session, now);
        self.store
            .insert_session(&session, self.audit(std::slice::from_ref(&event)))
            .await?;
        match session.state {
            SessionState::Pending => {
                self.devices.publish(
                    &device.id,
                    DeviceSignal::Request(Box::new((session.clone(), customer))),
                );
                tracing::info!(tenant = %caller.tenant, session = %session.id, operation = %session.operation, "verification started");
            }
            SessionState::Locked => {
                tracing::info!(tenant = %caller.tenant, session = %session.id, "verification refused: locked");
            }
            _ => {
                tracing::info!(tenant = %caller.tenant, session = %session.id, "step-up passed on the earlier session's proof");
            }
        }
        Ok(session)
    }

    pub(super) fn start_event(
        &self,
        caller: &Caller,
        session: &Session,
        at: Timestamp,
    ) -> AuditEvent {
        AuditEvent::for_session(
            &Actor::of(caller),
            "session.start",
            session,
            session.state.as_str(),
            match &session.step_up_of {
                None => format!(
                    "operation={} circuits={}",
                    session.operation,
                    session.circuits.join(",")
                ),
                Some(earlier) => format!(
                    "operation={} circuits={} step_up_of={earlier}",
                    session.operation,
                    session.circuits.join(",")
                ),
            },
            at,
        )
    }

    /// The subject of `kind` called `subject_ref` in `tenant`, with its
    /// active device. A subject of the other kind is not found: customers
    /// and operators never stand in for each other.
    pub(super) async fn subject_with_device(
        &self,
        tenant: &TenantId,
        subject_ref: &CustomerRef,
        kind: SubjectKind,
    ) -> Result<(Customer, Device), DomainError> {
        let (missing, no_device) = match kind {
            SubjectKind::Customer => ("customer", "customer has no active device"),
            SubjectKind::Operator => ("operator", "operator has no active device"),
        };
        let (subject, device) = self
            .store
            .subject_with_device(tenant, subject_ref)
            .await?
            .filter(|(s, _)| s.kind == kind)
            .ok_or(DomainError::NotFound(missing))?;
        let device = device.ok_or(DomainError::FailedPrecondition(no_device))?;
        Ok((subject, device))
    }

    /// The rate, lockout and budget standing a new session of `subject` on
    /// `device`, started by `caller`, is judged by (one read).
    pub(super) async fn start_standing(
        &self,
        caller: &Caller,
        subject: &Customer,
        device: &Device,
        now: Timestamp,
    ) -> Result<StartStanding, DomainError> {
        let before = |window: Duration| Timestamp(now.0.saturating_sub(window.as_millis() as i64));
        Ok(self
            .store
            .start_standing(&StandingQuery {
                credential: &caller.credential,
                tenant: &subject.tenant,
                subject_ref: &subject.customer_ref,
                device: &device.id,
                minute_ago: before(RATE_WINDOW),
                day_ago: before(BUDGET_WINDOW),
            })
            .await?)
    }

    /// Refuses a caller whose credential started its minute's share of
    /// sessions already.
    pub(super) fn check_start_rate(
        &self,
        caller: &Caller,
        standing: &StartStanding,
        refusal: &'static str,
    ) -> Result<(), DomainError> {
        if standing.started_by_credential >= u64::from(self.settings.agent_sessions_per_minute) {
            tracing::warn!(tenant = %caller.tenant, credential = %caller.credential, role = %caller.role, "start rate limit reached");
            return Err(DomainError::ResourceExhausted(refusal));
        }
        Ok(())
    }

    /// A pending session of `operation` for `subject_ref`, asked of
    /// `device`, with a fresh challenge and binding code.
    pub(super) fn new_session(
        &self,
        caller: &Caller,
        subject_ref: CustomerRef,
        device: &Device,
        (operation, level): (&str, AssuranceLevel),
        circuits: Vec<String>,
        now: Timestamp,
    ) -> Session {
        Session {
            id: SessionId::random(),
            tenant: caller.tenant.clone(),
            customer_ref: subject_ref,
            account_ref: None,
            device: device.id.clone(),
            agent_credential: caller.credential.clone(),
            operation: operation.to_owned(),
            required_level: level,
            level_reached: AssuranceLevel::None,
            circuits,
            challenge: self.settings.challenges.challenge(),
            binding_code: secrets::binding_code(),
            state: SessionState::Pending,
            created_at: now,
            expires_at: now.plus(self.settings.session_ttl),
            resolved_at: None,
            step_up_of: None,
        }
    }

    /// The PASSED session a step-up builds on, if it may.
    async fn step_up_base(
        &self,
        caller: &Caller,
        id: &SessionId,
        customer_ref: &CustomerRef,
        device: &Device,
        now: Timestamp,
    ) -> Result<Session, DomainError> {
        let earlier = self
            .store
            .session(id)
            .await?
            .filter(|s| s.tenant == caller.tenant)
            .ok_or(DomainError::NotFound("step_up_from session"))?;
        // The step-up continues one call: the agent who verified.
        if earlier.agent_credential != caller.credential {
            return Err(DomainError::PermissionDenied(
                "step_up_from must be a session started with this credential",
            ));
        }
        if &earlier.customer_ref != customer_ref {
            return Err(DomainError::InvalidArgument(
                "step_up_from is a session of another customer",
            ));
        }
        if earlier.state != SessionState::Passed {
            return Err(DomainError::FailedPrecondition(
                "step_up_from must be a PASSED session",
            ));
        }
        let resolved = earlier.resolved_at.unwrap_or(earlier.created_at);
        if resolved.plus(self.settings.step_up_window) <= now {
            return Err(DomainError::FailedPrecondition(
                "the step_up_from session is too old; start a new verification",
            ));
        }
        if earlier.device != device.id {
            return Err(DomainError::FailedPrecondition(
                "the customer's device changed since the step_up_from session",
            ));
        }
        Ok(earlier)
    }

    /// Why `operation`'s level-3 conditions do not hold now (for the audit
    /// log only), or `None` if they hold or it has none.
    async fn level3_shortfall(
        &self,
        operation: &Operation,
        customer: &Customer,
        device: &Device,
        now: Timestamp,
    ) -> Result<Option<&'static str>, DomainError> {
        let Some(conditions) = operation.level3 else {
            return Ok(None);
        };
        let before = |period: Duration| {
            let millis = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
            Timestamp(now.0.saturating_sub(millis))
        };
        let Some(issued) = customer.attributes_at else {
            return Ok(Some("no attribute credential"));
        };
        if issued > before(conditions.credential_min_age) {
            return Ok(Some("attribute credential younger than the minimum age"));
        }
        let quiet_since = before(conditions.no_change_within);
        if device.enrolled_at > quiet_since {
            return Ok(Some("device enrolled within the quiet period"));
        }
        if let Some(change) = self
            .store
            .latest_change(&customer.tenant, &customer.customer_ref)
            .await?
        {
            if change.revert_until > now {
                return Ok(Some("a credential change is still revertible"));
            }
            if change.at > quiet_since {
                return Ok(Some("credential change within the quiet period"));
            }
        }
        Ok(None)
    }

    /// Whether a new session must resolve LOCKED: its customer is locked
    /// out or spent the day's budget, or its device was asked too often.
    /// Clears a lock that ended.
    pub(super) async fn refused(
        &self,
        session: &Session,
        now: Timestamp,
        standing: &StartStanding,
    ) -> Result<bool, DomainError> {
        if standing.lockout.is_locked(now) {
            return Ok(true);
        }
        if let Some(until) = standing.lockout.locked_until {
            if self
                .store
                .clear_lock(&session.tenant, &session.customer_ref, until, &self.keys)
                .await?
            {
                tracing::info!(tenant = %session.tenant, "customer lock ended");
            }
        }
        if standing.pushed_to_subject >= u64::from(self.settings.customer_verifications_per_day) {
            tracing::warn!(tenant = %session.tenant, "customer's daily verification budget spent");
            return Ok(true);
        }
        if standing.asked_of_device >= u64::from(self.settings.device_sessions_per_minute) {
            tracing::warn!(tenant = %session.tenant, device = %session.device, "device rate limit reached");
            return Ok(true);
        }
        Ok(false)
    }

    /// Loads a session the caller may see, expiring it first if due.
    async fn visible_session(
        &self,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<Session, DomainError> {
        let session = self
            .store
            .session(id)
            .await?
            .ok_or(DomainError::NotFound("session"))?;
        self.expired_if_due(caller, session).await
    }

    /// [`Engine::visible_session`] with its subject, from `read`: what
    /// [`Store::session_with_subject`] returned (one read for both).
    async fn visible_session_with_subject(
        &self,
        caller: &Caller,
        read: Result<Option<(Session, Option<Customer>)>, StoreError>,
    ) -> Result<(Session, Customer), DomainError> {
        let (session, subject) = read?.ok_or(DomainError::NotFound("session"))?;
        let session = self.expired_if_due(caller, session).await?;
        let subject =
            subject.ok_or_else(|| DomainError::Internal("session of a missing customer".into()))?;
        Ok((session, subject))
    }

    /// Refuses a session the caller may not see; expires it if due.
    async fn expired_if_due(
        &self,
        caller: &Caller,
        session: Session,
    ) -> Result<Session, DomainError> {
        let allowed = session.tenant == caller.tenant
            && match caller.role {
                // Operator logins are the login system's business.
                Role::Agent => session.operation != super::operator::LOGIN_OPERATION,
                Role::Device => caller.device.as_ref() == Some(&session.device),
                _ => false,
            };
        if !allowed {
            return Err(DomainError::PermissionDenied(
                "session belongs to someone else",
            ));
        }
        if session.state == SessionState::Pending && session.expires_at <= Timestamp::now() {
            return self.expire(&session.id).await;
        }
        Ok(session)
    }

    /// Expires a session if it is due, and returns its current state.
    pub(super) async fn expire(&self, id: &SessionId) -> Result<Session, DomainError> {
        let resolution = Resolution {
            state: SessionState::Expired,
            level_reached: AssuranceLevel::None,
            at: Timestamp::now(),
            fraud_signal: None,
            lockout: None,
            actor: Actor::server(),
            detail: String::new(),
        };
        if let Some(session) = self.resolve(id, &resolution).await? {
            return Ok(session);
        }
        self.store
            .session(id)
            .await?
            .ok_or(DomainError::NotFound("session"))
    }

    pub(super) async fn resolve(
        &self,
        id: &SessionId,
        resolution: &Resolution,
    ) -> Result<Option<Session>, DomainError> {
        let Some(resolved) = self
            .store
            .resolve_session(id, resolution, &self.keys)
            .await?
        else {
            return Ok(None);
        };
        let session = resolved.session;
        if let Some(until) = resolved.locked_until {
            tracing::warn!(tenant = %session.tenant, session = %id, until = until.0, "customer locked after repeated failed proofs");
        }
        self.sessions.publish(id, session.clone());
        self.devices.publish(
            &session.device,
            DeviceSignal::Closed(id.clone(), session.state),
        );
        tracing::info!(tenant = %session.tenant, session = %id, state = session.state.as_str(), "session resolved");
        Ok(Some(session))
    }

    /// The session, as the agent may see it.
    ///
    /// # Errors
    /// PermissionDenied for a non-agent or another tenant's session;
    /// NotFound.
    pub async fn get_session(
        &self,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<Session, DomainError> {
        require(caller, Role::Agent, Scope::Full)?;
        self.visible_session(caller, id).await
    }

    /// Cancels a pending session.
    ///
    /// # Errors
    /// As [`Engine::get_session`]; FailedPrecondition if it already resolved.
    pub async fn cancel(&self, caller: &Caller, id: &SessionId) -> Result<Session, DomainError> {
        require(caller, Role::Agent, Scope::Full)?;
        self.visible_session(caller, id).await?;
        let resolution = Resolution {
            state: SessionState::Cancelled,
            level_reached: AssuranceLevel::None,
            at: Timestamp::now(),
            fraud_signal: None,
            lockout: None,
            actor: Actor::of(caller),
            detail: String::new(),
        };
        self.resolve(id, &resolution)
            .await?
            .ok_or(DomainError::FailedPrecondition("session already resolved"))
    }

    /// A stream of the session's snapshots: the current one, then one per
    /// change, ending after the final state (or at shutdown).
    ///
    /// # Errors
    /// As [`Engine::get_session`], before the stream starts.
    pub async fn watch_session(
        self: &Arc<Self>,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<mpsc::Receiver<Result<Session, DomainError>>, DomainError> {
        require(caller, Role::Agent, Scope::Full)?;
        // Subscribe before reading, so no change slips between the two.
        let changes = self.sessions.subscribe(id);
        let first = self.visible_session(caller, id).await?;
        Ok(self.follow_session(first, changes, |_, session| async move { Ok(session) }))
    }

    /// Follows a session: sends `view` of its current snapshot, then of each
    /// change, and ends after the final state (expiring it when due), when
    /// the receiver goes, or at shutdown. `changes` must be subscribed
    /// before `first` was read, so that no change slips between the two.
    /// A change carries the committed snapshot, so following costs no
    /// read; after a lag or an expiry timer the store is read again.
    pub(super) fn follow_session<T, F, Fut>(
        self: &Arc<Self>,
        first: Session,
        mut changes: broadcast::Receiver<Session>,
        view: F,
    ) -> mpsc::Receiver<Result<T, DomainError>>
    where
        T: Send + 'static,
        F: Fn(Arc<Self>, Session) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, DomainError>> + Send,
    {
        let (tx, rx) = mpsc::channel(4);
        let engine = Arc::clone(self);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut current = first;
            let mut last_sent: Option<Session> = None;
            loop {
                if last_sent.as_ref() != Some(&current) {
                    let update = view(Arc::clone(&engine), current.clone()).await;
                    let failed = update.is_err();
                    if tx.send(update).await.is_err() || failed {
                        return;
                    }
                    last_sent = Some(current.clone());
                }
                if current.state.is_final() {
                    return;
                }
                let expiry = tokio::time::sleep(current.expires_at.remaining());
                let snapshot = tokio::select! {
                    signal = changes.recv() => match signal {
                        Ok(snapshot) => Some(snapshot),
                        Err(broadcast::error::RecvError::Lagged(_)) => None,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = expiry => None,
                    () = tx.closed() => return,
                    () = super::stopped(&mut shutdown) => return,
                };
                let next = if let Some(snapshot) = snapshot {
                    Ok(snapshot)
                } else if current.expires_at <= Timestamp::now() {
                    engine.expire(&current.id).await
                } else {
                    engine
                        .store
                        .session(&current.id)
                        .await
                        .map_err(DomainError::from)
                        .and_then(|s| s.ok_or(DomainError::NotFound("session")))
                };
                match next {
                    Ok(session) => current = session,
                    Err(error) => {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                }
            }
        });
        rx
    }

    // ----- the device's side ----------------------------------------------

    async fn active_caller_device(&self, caller: &Caller) -> Result<Device, DomainError> {
        require(caller, Role::Device, Scope::Full)?;
        let id = caller
            .device
            .as_ref()
            .ok_or_else(|| DomainError::Internal("device credential without device".into()))?;
        let device =
            self.store.device(id).await?.ok_or_else(|| {
                DomainError::Internal("device credential of a missing device".into())
            })?;
        if device.tenant != caller.tenant {
            return Err(DomainError::Internal("device in another tenant".into()));
        }
        Ok(device)
    }

    async fn push_request(
        &self,
        session: Session,
        customer: &Customer,
        device: &Device,
        organization: &str,
    ) -> Result<PushRequest, DomainError> {
        let context = StatementContext {
            challenge: &session.challenge,
            device,
            customer,
            account: session.account_ref.as_ref(),
        };
        let requirements = session
            .circuits
            .iter()
            .map(|name| {
                let entry = self.catalog.circuit(name).ok_or_else(|| {
                    DomainError::Internal(format!("session needs unknown circuit {name}"))
                })?;
                Ok(Requirement {
                    circuit: entry.id.clone(),
                    key_id: entry.key_id,
                    public_inputs: entry.statement.public_inputs(&context)?,
                })
            })
            .collect::<Result<Vec<_>, DomainError>>()?;
        let operation_display = self
            .catalog
            .operation(&session.tenant, &session.operation)
            .map_or_else(|| session.operation.clone(), |op| op.display_name.clone());
        let binding_message = format!(
            "{organization} asks you to confirm: {operation_display}. Code {}.",
            session.binding_code
        );
        let delivered = AuditEvent::for_session(
            &Actor::server(),
            "push",
            &session,
            "delivered",
            format!("device={}", device.id),
            Timestamp::now(),
        );
        self.store
            .append_audit(self.audit(std::slice::from_ref(&delivered)))
            .await?;
        Ok(PushRequest {
            session,
            organization: organization.to_owned(),
            operation_display,
            binding_message,
            requirements,
        })
    }

    /// The device's push stream: pending requests at once, then new
    /// requests, closings and notices. A replaced or revoked device gets its
    /// notice and the stream ends.
    ///
    /// # Errors
    /// PermissionDenied for a non-device, before the stream starts.
    pub async fn device_feed(
        self: &Arc<Self>,
        caller: &Caller,
    ) -> Result<mpsc::Receiver<Result<DeviceUpdate, DomainError>>, DomainError> {
        require(caller, Role::Device, Scope::Full)?;
        let device_id = caller
            .device
            .clone()
            .ok_or_else(|| DomainError::Internal("device credential without device".into()))?;
        let mut signals = self.devices.subscribe(&device_id);
        let device = self.active_caller_device(caller).await?;
        let organization = self.organization(&caller.tenant).await?;
        let (tx, rx) = mpsc::channel(8);
        let engine = Arc::clone(self);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let notice = match device.status {
                DeviceStatus::Active => None,
                DeviceStatus::Replaced => Some(NoticeKind::Replaced),
                DeviceStatus::Revoked => Some(NoticeKind::Revoked),
            };
            let open_changes = match engine
                .store
                .open_changes_for_device(&device.id, Timestamp::now())
                .await
            {
                Ok(changes) => changes,
                Err(error) => {
                    let _ = tx.send(Err(error.into())).await;
                    return;
                }
            };
            if let Some(kind) = notice {
                let at = device.changed_at.unwrap_or(device.enrolled_at);
                let revert = open_changes
                    .iter()
                    .rev()
                    .find(|c| RevertOffer::notice_kind(c) == kind)
                    .map(RevertOffer::of);
                let _ = tx.send(Ok(DeviceUpdate::Notice { kind, at, revert })).await;
                return;
            }
            // An active device still hears of credential changes it can undo.
            for change in &open_changes {
                let update = DeviceUpdate::Notice {
                    kind: RevertOffer::notice_kind(change),
                    at: change.at,
                    revert: Some(RevertOffer::of(change)),
                };
                if tx.send(Ok(update)).await.is_err() {
                    return;
                }
            }
            // The resync on connect and the signal for a session created
            // meanwhile can both name the same session: a phone must see
            // each request once.
            let mut pushed: std::collections::HashSet<SessionId> = std::collections::HashSet::new();
            let mut resync = true;
            loop {
                if resync {
                    resync = false;
                    let pending = match engine
                        .store
                        .pending_sessions(&device.id, Timestamp::now())
                        .await
                    {
                        Ok(pending) => pending,
                        Err(error) => {
                            let _ = tx.send(Err(error.into())).await;
                            return;
                        }
                    };
                    let fresh: Vec<Session> = pending
                        .into_iter()
                        .filter(|s| !pushed.contains(&s.id))
                        .collect();
                    if fresh.is_empty() {
                        continue;
                    }
                    // One device, one subject: read once per resync.
                    let customer = match engine
                        .store
                        .customer(&device.tenant, &device.customer_ref)
                        .await
                    {
                        Ok(Some(customer)) => customer,
                        Ok(None) => {
                            let missing =
                                DomainError::Internal("device of a missing customer".into());
                            let _ = tx.send(Err(missing)).await;
                            return;
                        }
                        Err(error) => {
                            let _ = tx.send(Err(error.into())).await;
                            return;
                        }
                    };
                    for session in fresh {
                        pushed.insert(session.id.clone());
                        let update = engine
                            .push_request(session, &customer, &device, &organization)
                            .await
                            .map(|r| DeviceUpdate::Request(Box::new(r)));
                        let failed = update.is_err();
                        if tx.send(update).await.is_err() || failed {
                            return;
                        }
                    }
                }
                let signal = tokio::select! {
                    signal = signals.recv() => signal,
                    () = tx.closed() => return,
                    () = super::stopped(&mut shutdown) => return,
                };
                let update = match signal {
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        resync = true;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                    Ok(DeviceSignal::Closed(session, state)) => {
                        Ok(DeviceUpdate::Closed { session, state })
                    }
                    Ok(DeviceSignal::Notice(kind, at, revert)) => {
                        let update = DeviceUpdate::Notice { kind, at, revert };
                        if tx.send(Ok(update)).await.is_err() || kind.ends_stream() {
                            return;
                        }
                        continue;
                    }
                    Ok(DeviceSignal::Request(request)) if pushed.contains(&request.0.id) => {
                        continue
                    }
                    // The snapshot was committed pending just before it was
                    // published; if it has closed since, its Closed signal
                    // follows on this same channel.
                    Ok(DeviceSignal::Request(request)) => {
                        let (session, customer) = *request;
                        pushed.insert(session.id.clone());
                        engine
                            .push_request(session, &customer, &device, &organization)
                            .await
                            .map(|r| DeviceUpdate::Request(Box::new(r)))
                    }
                };
                let failed = update.is_err();
                if tx.send(update).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// Answers a session with proofs. The server builds each statement
    /// itself; the first well-formed answer resolves the session.
    ///
    /// # Errors
    /// PermissionDenied for another device's session or an inactive device;
    /// InvalidArgument / MalformedProof for malformed proofs (the session
    /// stays pending); FailedPrecondition if the session is no longer
    /// pending (a replay) or expired.
    pub async fn submit_proof(
        &self,
        caller: &Caller,
        id: &SessionId,
        proofs: Vec<SubmittedProof>,
    ) -> Result<Session, DomainError> {
        let started = Instant::now();
        require(caller, Role::Device, Scope::Full)?;
        // The two reads are independent: waiting for both at once saves a
        // round trip to a connection's worker thread, and under load a
        // wake-up on the runtime's queue. The session is only looked at
        // once the device has passed, as if read after it.
        let (device, session) = tokio::join!(
            self.active_caller_device(caller),
            self.store.session_with_subject(id)
        );
        let device = device?;
        if device.status != DeviceStatus::Active {
            return Err(DomainError::PermissionDenied("device is no longer active"));
        }
        let (session, customer) = self.visible_session_with_subject(caller, session).await?;
        let looked_up = Instant::now();
        match session.state {
            SessionState::Pending => {}
            SessionState::Expired => {
                return Err(DomainError::FailedPrecondition("session expired"))
            }
            _ => {
                return Err(DomainError::FailedPrecondition(
                    "session is no longer pending",
                ))
            }
        }
        if proofs.len() != session.circuits.len() {
            return Err(DomainError::InvalidArgument(
                "one proof per requirement is needed",
            ));
        }
        let context = StatementContext {
            challenge: &session.challenge,
            device: &device,
            customer: &customer,
            account: session.account_ref.as_ref(),
        };
        let mut items = Vec::with_capacity(proofs.len());
        for (index, (proof, name)) in proofs.into_iter().zip(&session.circuits).enumerate() {
            let entry = self.catalog.circuit(name).ok_or_else(|| {
                DomainError::Internal(format!("session needs unknown circuit {name}"))
            })?;
            if proof.key_id.as_slice() != entry.key_id.0.as_slice() {
                return Err(DomainError::MalformedProof {
                    index,
                    reason: "it names another key than the requirement".into(),
                });
            }
            if proof.proof.len() != PROOF_LEN {
                return Err(DomainError::MalformedProof {
                    index,
                    reason: format!("a proof is {PROOF_LEN} bytes, got {}", proof.proof.len()),
                });
            }
            items.push(ProofItem {
                key_id: entry.key_id,
                proof: proof.proof,
                public_inputs: entry.statement.public_inputs(&context)?,
            });
        }
        let handed_over = Instant::now();
        let verdicts = self.proofs.verify(items).await?;
        let verified = Instant::now();
        for (index, verdict) in verdicts.iter().enumerate() {
            if let Verdict::Rejected(rejection) = verdict {
                if rejection.is_malformed() {
                    return Err(DomainError::MalformedProof {
                        index,
                        reason: rejection.to_string(),
                    });
                }
            }
        }
        let passed = verdicts.iter().all(Verdict::is_accepted);
        // Which circuit and key judged each proof, and how.
        let detail = session
            .circuits
            .iter()
            .zip(&verdicts)
            .map(|(name, verdict)| {
                let key = self
                    .catalog
                    .circuit(name)
                    .map(|c| hex::encode(c.key_id.0))
                    .unwrap_or_default();
                let judged = if verdict.is_accepted() {
                    "accepted"
                } else {
                    "rejected"
                };
                format!("{name} key={key} {judged}")
            })
            .collect::<Vec<_>>()
            .join("; ");
        let resolution = Resolution {
            state: if passed {
                SessionState::Passed
            } else {
                SessionState::Failed
            },
            level_reached: if passed {
                session.required_level
            } else {
                AssuranceLevel::None
            },
            at: Timestamp::now(),
            fraud_signal: None,
            lockout: Some(self.settings.lockout),
            actor: Actor::of(caller),
            detail,
        };
        let resolved = self.resolve(id, &resolution).await?;
        let metrics = &self.submit_metrics;
        observe(&metrics.lookup, looked_up - started);
        observe(&metrics.verify, verified - handed_over);
        observe(&metrics.record, verified.elapsed());
        observe(&metrics.total, started.elapsed());
        match resolved {
            Some(session) => Ok(session),
            None => Err(self.why_not_pending(id).await),
        }
    }

    async fn why_not_pending(&self, id: &SessionId) -> DomainError {
        match self.expire(id).await {
            Ok(s) if s.state == SessionState::Expired => {
                DomainError::FailedPrecondition("session expired")
            }
            Ok(_) => DomainError::FailedPrecondition("session is no longer pending"),
            Err(error) => error,
        }
    }

    /// Declines a session ("I did not call") and records a fraud signal.
    ///
    /// # Errors
    /// As [`Engine::submit_proof`].
    pub async fn decline(&self, caller: &Caller, id: &SessionId) -> Result<Session, DomainError> {
        let device = self.active_caller_device(caller).await?;
        if device.status != DeviceStatus::Active {
            return Err(DomainError::PermissionDenied("device is no longer active"));
        }
        self.visible_session(caller, id).await?;
        let resolution = Resolution {
            state: SessionState::Declined,
            level_reached: AssuranceLevel::None,
            at: Timestamp::now(),
            fraud_signal: Some("declined"),
            lockout: None,
            actor: Actor::of(caller),
            detail: String::new(),
        };
        match self.resolve(id, &resolution).await? {
            Some(session) => {
                tracing::warn!(tenant = %session.tenant, session = %id, "customer declined a verification: fraud signal recorded");
                Ok(session)
            }
            None => Err(self.why_not_pending(id).await),
        }
    }

    /// Undoes an enrollment or credential change, for whoever proves the
    /// PIN and device secret of the device that was active before it
    /// (pin-knowledge, for that device's commitment and the change's
    /// one-time challenge). Needs no credential: a revoked device has
    /// none, and the proof is a stronger one.
    ///
    /// # Errors
    /// InvalidArgument / MalformedProof for a malformed proof or a proof
    /// under another key; NotFound for an unknown change;
    /// FailedPrecondition if it can no longer be reverted (see
    /// [`RevertOutcome::NotRevertible`]); Unauthenticated if the proof is
    /// rejected (counted: after five, the change stays).
    pub async fn revert_change(
        &self,
        id: &ChangeId,
        proof: SubmittedProof,
    ) -> Result<CredentialChange, DomainError> {
        let change = self
            .store
            .change(id)
            .await?
            .ok_or(DomainError::NotFound("change"))?;
        let now = Timestamp::now();
        if change.reverted_at.is_some() {
            return Err(DomainError::FailedPrecondition(
                "the change was already reverted",
            ));
        }
        if change.revert_until <= now {
            return Err(DomainError::FailedPrecondition(
                "the change's revert window has closed",
            ));
        }
        if change.failed_attempts >= MAX_FAILED_REVERTS {
            return Err(DomainError::FailedPrecondition(
                "too many rejected revert proofs for this change",
            ));
        }
        let device = self
            .store
            .device(&change.earlier_device)
            .await?
            .ok_or_else(|| DomainError::Internal("change of a missing device".into()))?;
        let customer = self
            .store
            .customer(&change.tenant, &change.customer_ref)
            .await?
            .ok_or_else(|| DomainError::Internal("change of a missing customer".into()))?;
        let entry = self
            .catalog
            .circuits()
            .find(|c| c.statement == Statement::PinKnowledge)
            .ok_or_else(|| DomainError::Internal("no pin-knowledge key loaded".into()))?;
        if proof.key_id.as_slice() != entry.key_id.0.as_slice() {
            return Err(DomainError::MalformedProof {
                index: 0,
                reason: "a revert is proven with the pin-knowledge key".into(),
            });
        }
        if proof.proof.len() != PROOF_LEN {
            return Err(DomainError::MalformedProof {
                index: 0,
                reason: format!("a proof is {PROOF_LEN} bytes, got {}", proof.proof.len()),
            });
        }
        let public_inputs = entry.statement.public_inputs(&StatementContext {
            challenge: &change.challenge,
            device: &device,
            customer: &customer,
            account: None,
        })?;
        let verdicts = self
            .proofs
            .verify(vec![ProofItem {
                key_id: entry.key_id,
                proof: proof.proof,
                public_inputs,
            }])
            .await?;
        let verdict = verdicts
            .into_iter()
            .next()
            .ok_or_else(|| DomainError::Internal("no verdict for the revert proof".into()))?;
        let event = |outcome: &str, detail: String| AuditEvent {
            tenant: change.tenant.to_string(),
            actor_id: device.id.to_string(),
            actor_role: Role::Device.to_string(),
            action: "change.revert".into(),
            customer_ref: change.customer_ref.to_string(),
            session_id: String::new(),
            outcome: outcome.into(),
            detail,
            at: now,
        };
        match verdict {
            Verdict::Rejected(rejection) if rejection.is_malformed() => {
                Err(DomainError::MalformedProof {
                    index: 0,
                    reason: rejection.to_string(),
                })
            }
            Verdict::Rejected(_) => {
                let rejected = event(
                    "rejected",
                    format!("change={} kind={}", change.id, change.kind.as_str()),
                );
                self.store
                    .count_failed_revert(&change.id, self.audit(std::slice::from_ref(&rejected)))
                    .await?;
                tracing::warn!(tenant = %change.tenant, change = %change.id, "revert proof rejected");
                Err(DomainError::Unauthenticated(
                    "the proof does not answer this change's challenge for the earlier device",
                ))
            }
            Verdict::Accepted => {
                let reverted = event(
                    "reverted",
                    format!(
                        "change={} kind={} key={}",
                        change.id,
                        change.kind.as_str(),
                        hex::encode(entry.key_id.0)
                    ),
                );
                match self
                    .store
                    .revert_change(
                        &change.id,
                        now,
                        MAX_FAILED_REVERTS,
                        self.audit(std::slice::from_ref(&reverted)),
                    )
                    .await?
                {
                    RevertOutcome::Reverted(change) => {
                        if let Some(new_device) = &change.new_device {
                            self.devices.publish(
                                new_device,
                                DeviceSignal::Notice(NoticeKind::Revoked, now, None),
                            );
                        }
                        tracing::warn!(tenant = %change.tenant, change = %change.id, kind = change.kind.as_str(), "customer reverted a credential change");
                        Ok(*change)
                    }
                    RevertOutcome::NotRevertible(why) => Err(DomainError::FailedPrecondition(why)),
                }
            }
        }
    }

    /// Every proving key in use.
    ///
    /// # Errors
    /// PermissionDenied for a non-device.
    pub fn proving_keys(&self, caller: &Caller) -> Result<Vec<Arc<ProvingKeyFile>>, DomainError> {
        require(caller, Role::Device, Scope::Full)?;
        Ok(self
            .catalog
            .circuits()
            .map(|c| Arc::clone(&c.proving_key))
            .collect())
    }

    /// One proving key by its key id.
    ///
    /// # Errors
    /// PermissionDenied for a non-device; InvalidArgument for a malformed
    /// id; NotFound.
    pub fn proving_key(
        &self,
        caller: &Caller,
        key_id: &[u8],
    ) -> Result<Arc<ProvingKeyFile>, DomainError> {
        require(caller, Role::Device, Scope::Full)?;
        let key_id = KeyId(
            key_id
                .try_into()
                .map_err(|_| DomainError::InvalidArgument("a key id is 32 bytes"))?,
        );
        self.catalog
            .proving_key(&key_id)
            .cloned()
            .ok_or(DomainError::NotFound("proving key"))
    }

    // ----- housekeeping ---------------------------------------------------

    /// Expires every due session (so devices and watchers learn of it even
    /// if nobody asks) and drops idle hub topics. Returns how many expired.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn sweep(&self) -> Result<usize, DomainError> {
        let due = self.store.due_sessions(Timestamp::now(), 500).await?;
        let mut expired = 0;
        for id in &due {
            if self.expire(id).await?.state == SessionState::Expired {
                expired += 1;
            }
        }
        self.sessions.prune();
        self.devices.prune();
        Ok(expired)
    }

    /// Signs a tree head over the whole audit log if it grew since the
    /// newest signed head, and returns the newest head.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn sign_tree_head(&self) -> Result<TreeHead, DomainError> {
        super::audit::sign_head(self.store.as_ref(), &self.keys).await
    }

    /// The caller's tenant's audit records with `seq` above `after`, at
    /// most `limit` (1..=1000).
    ///
    /// # Errors
    /// PermissionDenied for a non-auditor; InvalidArgument for a bad limit.
    pub async fn audit_records(
        &self,
        caller: &Caller,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, DomainError> {
        require(caller, Role::Auditor, Scope::Full)?;
        check_page_limit(limit)?;
        Ok(self
            .store
            .audit_records(Some(&caller.tenant), after, limit)
            .await?)
    }

    /// The newest signed tree head, signed now if the log grew.
    ///
    /// # Errors
    /// PermissionDenied for a non-auditor; the store's failure.
    pub async fn tree_head(&self, caller: &Caller) -> Result<TreeHead, DomainError> {
        require(caller, Role::Auditor, Scope::Full)?;
        self.sign_tree_head().await
    }

    /// An inclusion proof of record `seq` in the tree of the first
    /// `tree_size` records: the concatenated sibling hashes.
    ///
    /// # Errors
    /// PermissionDenied for a non-auditor; InvalidArgument unless
    /// 1 <= seq <= tree_size <= the log's size; NotFound for another
    /// tenant's record.
    pub async fn inclusion_proof(
        &self,
        caller: &Caller,
        seq: u64,
        tree_size: u64,
    ) -> Result<Vec<u8>, DomainError> {
        require(caller, Role::Auditor, Scope::Full)?;
        let (tree, records) = prefix_tree(self.store.as_ref(), tree_size).await?;
        if seq == 0 || seq > tree.len() || tree.len() < tree_size {
            return Err(DomainError::InvalidArgument(
                "need 1 <= seq <= tree_size <= the log's size",
            ));
        }
        let index = usize::try_from(seq - 1)
            .map_err(|_| DomainError::InvalidArgument("seq out of range"))?;
        if records[index].event.tenant != caller.tenant.as_str() {
            return Err(DomainError::NotFound("audit record"));
        }
        // index < tree.len(), checked above, so this does not panic.
        Ok(tree.prove_inclusion(index).as_bytes().to_vec())
    }

    /// A consistency proof between the trees of the first `old_size` and
    /// `new_size` records.
    ///
    /// # Errors
    /// PermissionDenied for a non-auditor; InvalidArgument unless
    /// 1 <= old_size <= new_size <= the log's size.
    pub async fn consistency_proof(
        &self,
        caller: &Caller,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<u8>, DomainError> {
        require(caller, Role::Auditor, Scope::Full)?;
        let (tree, _) = prefix_tree(self.store.as_ref(), new_size).await?;
        if old_size == 0 || old_size > new_size || tree.len() < new_size {
            return Err(DomainError::InvalidArgument(
                "need 1 <= old_size <= new_size <= the log's size",
            ));
        }
        let additions = usize::try_from(new_size - old_size)
            .map_err(|_| DomainError::InvalidArgument("size out of range"))?;
        // additions < new_size = tree.len() since old_size >= 1: no panic.
        Ok(tree.prove_consistency(additions).as_bytes().to_vec())
    }

    /// The caller's tenant's fraud events (declines, lockouts) with an id
    /// above `after`, oldest first, at most `limit` (1..=1000).
    ///
    /// # Errors
    /// PermissionDenied for a non-auditor; InvalidArgument for a bad limit.
    pub async fn fraud_events(
        &self,
        caller: &Caller,
        after: i64,
        limit: u32,
    ) -> Result<Vec<FraudEvent>, DomainError> {
        require(caller, Role::Auditor, Scope::Full)?;
        check_page_limit(limit)?;
        Ok(self
            .store
            .fraud_events(&caller.tenant, after, limit)
            .await?)
    }

    /// Fraud signals recorded for a customer of the caller's tenant.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn fraud_signal_count(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<u64, DomainError> {
        Ok(self.store.fraud_signal_count(tenant, customer_ref).await?)
    }
}

/// Listing RPCs return pages of 1 to 1000 items.
fn check_page_limit(limit: u32) -> Result<(), DomainError> {
    if (1..=1000).contains(&limit) {
        Ok(())
    } else {
        Err(DomainError::InvalidArgument("limit must be 1 to 1000"))
    }
}
