//! The domain's vocabulary: identifiers, roles, callers, sessions, devices.

use std::{fmt, str::FromStr, time::Duration};

use super::DomainError;

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// This time plus `duration` (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// Time from now until `self`, zero if past.
    pub fn remaining(self) -> Duration {
        let left = self.0.saturating_sub(Self::now().0);
        Duration::from_millis(u64::try_from(left).unwrap_or(0))
    }
}

fn valid_ref(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `text`.
            ///
            /// # Errors
            /// [`DomainError::InvalidArgument`] if it is malformed.
            pub fn parse(text: &str) -> Result<Self, DomainError> {
                let check: fn(&str) -> bool = $check;
                if check(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(DomainError::InvalidArgument(concat!("malformed ", $what)))
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A tenant: one client organization. Lower-case letters, digits and
    /// `-`, 1 to 40 characters.
    TenantId,
    "tenant id",
    |t| !t.is_empty()
        && t.len() <= 40
        && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
);
string_id!(
    /// The organization's opaque reference for a customer (never PII).
    CustomerRef,
    "customer_ref",
    |t| valid_ref(t, 128)
);
string_id!(
    /// The organization's opaque reference for an account.
    AccountRef,
    "account_ref",
    |t| valid_ref(t, 128)
);
string_id!(
    /// A verification session's id: `s_` and 32 hex digits.
    SessionId,
    "session_id",
    |t| prefixed_hex(t, "s_", 32)
);
string_id!(
    /// A device's id: `d_` and 24 hex digits.
    DeviceId,
    "device_id",
    |t| prefixed_hex(t, "d_", 24)
);
string_id!(
    /// A credential's id: 24 hex digits (also the middle of its token).
    CredentialId,
    "credential id",
    |t| prefixed_hex(t, "", 24)
);

fn prefixed_hex(text: &str, prefix: &str, digits: usize) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == digits && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

string_id!(
    /// An enrollment or credential change: `c_` and 24 hex digits.
    ChangeId,
    "change_id",
    |t| prefixed_hex(t, "c_", 24)
);

impl ChangeId {
    pub(crate) fn random() -> Self {
        Self(format!("c_{}", super::secrets::random_hex(12)))
    }
}

impl SessionId {
    pub(crate) fn random() -> Self {
        Self(format!("s_{}", super::secrets::random_hex(16)))
    }
}

impl DeviceId {
    pub(crate) fn random() -> Self {
        Self(format!("d_{}", super::secrets::random_hex(12)))
    }
}

impl CredentialId {
    pub(crate) fn random() -> Self {
        Self(super::secrets::random_hex(12))
    }
}

/// What a credential may do. Each RPC admits a fixed set of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A contact-center agent desktop: starts and follows verifications.
    Agent,
    /// A customer's phone: answers its own customer's requests.
    Device,
    /// The organization's backend: registers customers, revokes devices.
    Enroller,
    /// Reads its tenant's fraud events and audit log (`zkid.v1.Audit`).
    Auditor,
    /// Administers its tenant (no RPC yet: administration is the CLI's).
    Admin,
    /// A workstation login system: starts and follows its operators' logins
    /// (`zkid.v1.OperatorLogin`) and nothing else.
    Login,
}

impl Role {
    /// The role's name, as stored and as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Device => "device",
            Self::Enroller => "enroller",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
            Self::Login => "login",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "agent" => Self::Agent,
            "device" => Self::Device,
            "enroller" => Self::Enroller,
            "auditor" => Self::Auditor,
            "admin" => Self::Admin,
            "login" => Self::Login,
            _ => return Err(DomainError::InvalidArgument("unknown role")),
        })
    }
}

/// Whether a credential is a full credential or a one-time enrollment code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every RPC its role admits.
    Full,
    /// Only `EnrollDevice`, once (a device role enrollment code).
    Enrollment,
}

impl Scope {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Enrollment => "enrollment",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "enrollment" => Some(Self::Enrollment),
            _ => None,
        }
    }
}

/// An authenticated caller, as the auth layer found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The credential used.
    pub credential: CredentialId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its role.
    pub role: Role,
    /// Its scope.
    pub scope: Scope,
    /// For device credentials and enrollment codes: the customer.
    pub customer: Option<CustomerRef>,
    /// For device credentials: the device.
    pub device: Option<DeviceId>,
}

/// A stored credential. `token_hash` is the SHA-256 of the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Id.
    pub id: CredentialId,
    /// Tenant.
    pub tenant: TenantId,
    /// Role.
    pub role: Role,
    /// Scope.
    pub scope: Scope,
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// The customer (device credentials and enrollment codes).
    pub customer: Option<CustomerRef>,
    /// The device (device credentials).
    pub device: Option<DeviceId>,
    /// A label for operators (e.g. "desk 12"); not PII.
    pub label: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// When an enrollment code was used.
    pub used_at: Option<Timestamp>,
    /// When revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// The organization's name as customers know it (shown on the phone).
    pub display_name: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A commitment to a customer's attested attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeCommitment {
    /// The commitment, a canonical field element.
    pub commitment: [u8; 32],
    /// The attribute schema's version (at least 1).
    pub schema_version: u32,
}

/// A registered customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Tenant.
    pub tenant: TenantId,
    /// Reference.
    pub customer_ref: CustomerRef,
    /// Attribute commitment, once issued.
    pub attributes: Option<AttributeCommitment>,
    /// When the current attribute commitment was registered.
    pub attributes_at: Option<Timestamp>,
    /// Customer or operator.
    pub kind: SubjectKind,
}

/// What changed about a customer's enrollment or credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new device replaced the earlier one.
    Reenrollment,
    /// The organization revoked the device.
    Revocation,
    /// The organization registered a new attribute commitment.
    Attributes,
}

impl ChangeKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reenrollment => "reenrollment",
            Self::Revocation => "revocation",
            Self::Attributes => "attributes",
        }
    }

    /// From the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "reenrollment" => Some(Self::Reenrollment),
            "revocation" => Some(Self::Revocation),
            "attributes" => Some(Self::Attributes),
            _ => None,
        }
    }
}

/// The terms under which a change can be reverted, chosen by the engine
/// and stored with the change if the store finds one happened.
#[derive(Clone, PartialEq, Eq)]
pub struct RevertTerms {
    /// The change's id.
    pub id: ChangeId,
    /// The one-time challenge the revert proof answers.
    pub challenge: [u8; 32],
    /// The end of the revert window.
    pub until: Timestamp,
}

impl fmt::Debug for RevertTerms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevertTerms")
            .field("id", &self.id)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// A recorded change, revertible by the earlier device within its window.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialChange {
    /// Id.
    pub id: ChangeId,
    /// Tenant.
    pub tenant: TenantId,
    /// The customer.
    pub customer_ref: CustomerRef,
    /// What changed.
    pub kind: ChangeKind,
    /// When.
    pub at: Timestamp,
    /// End of the revert window.
    pub revert_until: Timestamp,
    /// The device active before the change: its proof reverts it.
    pub earlier_device: DeviceId,
    /// The device enrolled by the change (re-enrollment).
    pub new_device: Option<DeviceId>,
    /// The attribute commitment before the change (attributes).
    pub earlier_attributes: Option<AttributeCommitment>,
    /// When that commitment had been registered.
    pub earlier_attributes_at: Option<Timestamp>,
    /// The revert proof's challenge.
    pub challenge: [u8; 32],
    /// Revert proofs rejected so far.
    pub failed_attempts: u32,
    /// When it was reverted.
    pub reverted_at: Option<Timestamp>,
}

impl fmt::Debug for CredentialChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChange")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("at", &self.at)
            .field("revert_until", &self.revert_until)
            .field("reverted_at", &self.reverted_at)
            .finish_non_exhaustive()
    }
}

/// Who a subject (a row of `customers`) is. Customers are verified by
/// agents; operators log in to workstations. One never stands in for the
/// other: each flow refuses the other kind as if it did not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// A customer of the organization.
    Customer,
    /// A BPO operator of the tenant.
    Operator,
}

impl SubjectKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Operator => "operator",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Self::Customer),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }
}

/// A device's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Answers requests.
    Active,
    /// Superseded by a newer enrollment of the same customer.
    Replaced,
    /// Revoked by the organization.
    Revoked,
}

impl DeviceStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Replaced => "replaced",
            Self::Revoked => "revoked",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "replaced" => Some(Self::Replaced),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Id.
    pub id: DeviceId,
    /// Tenant.
    pub tenant: TenantId,
    /// The customer it answers for.
    pub customer_ref: CustomerRef,
    /// Poseidon(PIN, device secret), canonical encoding.
    pub commitment: [u8; 32],
    /// Its credential.
    pub credential: CredentialId,
    /// Standing.
    pub status: DeviceStatus,
    /// Enrollment time.
    pub enrolled_at: Timestamp,
    /// When it was replaced or revoked.
    pub changed_at: Option<Timestamp>,
}

/// A session's state. See `zkid.v1.SessionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Waiting for the device.
    Pending,
    /// Every proof verified.
    Passed,
    /// A proof did not verify.
    Failed,
    /// The customer declined.
    Declined,
    /// Nobody answered in time.
    Expired,
    /// Refused: the customer is locked out, or the device is asked too
    /// often. Resolved at start; nothing is pushed.
    Locked,
    /// The agent cancelled.
    Cancelled,
}

impl SessionState {
    /// Whether the state is final.
    pub fn is_final(self) -> bool {
        self != Self::Pending
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Locked => "locked",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "passed" => Self::Passed,
            "failed" => Self::Failed,
            "declined" => Self::Declined,
            "expired" => Self::Expired,
            "locked" => Self::Locked,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// Assurance levels; see `zkid.v1.AssuranceLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssuranceLevel {
    /// Nothing reached.
    None = 0,
    /// Device factor (PIN + device).
    L1 = 1,
    /// L1 + account ownership.
    L2 = 2,
    /// L2 + credential-age conditions.
    L3 = 3,
}

impl AssuranceLevel {
    /// From the stored integer.
    pub fn from_i64(value: i64) -> Option<Self> {
        Some(match value {
            0 => Self::None,
            1 => Self::L1,
            2 => Self::L2,
            3 => Self::L3,
            _ => return None,
        })
    }
}

/// A verification session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Tenant.
    pub tenant: TenantId,
    /// The customer verified.
    pub customer_ref: CustomerRef,
    /// The account concerned, if any.
    pub account_ref: Option<AccountRef>,
    /// The device asked.
    pub device: DeviceId,
    /// The agent credential that started it.
    pub agent_credential: CredentialId,
    /// The operation's name.
    pub operation: String,
    /// Level the operation requires.
    pub required_level: AssuranceLevel,
    /// Level reached.
    pub level_reached: AssuranceLevel,
    /// Circuit names to prove, in order (from the operation's mapping).
    pub circuits: Vec<String>,
    /// The one-time challenge, a canonical field element.
    pub challenge: [u8; 32],
    /// The code both sides see.
    pub binding_code: String,
    /// State.
    pub state: SessionState,
    /// Start.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Resolution.
    pub resolved_at: Option<Timestamp>,
    /// The PASSED session this one steps up from.
    pub step_up_of: Option<SessionId>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The challenge is not secret, but it has no business in logs.
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("operation", &self.operation)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// How a session resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The final state.
    pub state: SessionState,
    /// The level reached.
    pub level_reached: AssuranceLevel,
    /// When.
    pub at: Timestamp,
    /// A fraud signal to record with it, e.g. `declined`.
    pub fraud_signal: Option<&'static str>,
    /// For PASSED and FAILED: the lockout policy to update the customer's
    /// standing with, in the same transaction.
    pub lockout: Option<LockoutPolicy>,
    /// Who resolves it, for the audit record.
    pub actor: Actor,
    /// What the audit record adds (e.g. the circuits and key ids checked).
    pub detail: String,
}

/// Who acted, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A credential id, or `server`.
    pub id: String,
    /// A role, or `system`.
    pub role: String,
}

impl Actor {
    /// The caller.
    pub fn of(caller: &Caller) -> Self {
        Self {
            id: caller.credential.to_string(),
            role: caller.role.to_string(),
        }
    }

    /// The server itself (expiry, lock ends, tree heads).
    pub fn server() -> Self {
        Self {
            id: "server".into(),
            role: "system".into(),
        }
    }
}

/// A resolved session and what its resolution set off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The session, as resolved.
    pub session: Session,
    /// The end of the lock the resolution set, if it locked the customer.
    pub locked_until: Option<Timestamp>,
}

/// The lockout policy: after `max_failures` consecutive failed proofs a
/// customer is locked for `base`, doubled at every further lock, never
/// longer than `max`. A passed session resets failures and the doubling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock (1..=100, after NIST SP 800-63B).
    pub max_failures: u32,
    /// The first lock's duration.
    pub base: Duration,
    /// The longest lock.
    pub max: Duration,
}

/// A customer's standing against the [`LockoutPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockoutState {
    /// Consecutive failed proofs since the last success or lock.
    pub failures: u32,
    /// Locks since the last success: the next lock lasts `base * 2^locks`.
    pub locks: u32,
    /// Until when the customer is locked, if a lock was set (it may have
    /// passed; see [`LockoutState::is_locked`]).
    pub locked_until: Option<Timestamp>,
}

impl LockoutState {
    /// Whether verifications are refused at `now`.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

impl LockoutPolicy {
    /// How long the lock numbered `locks` (0 for the first) lasts.
    pub fn backoff(&self, locks: u32) -> Duration {
        // 2^31 seconds and more saturate at `max` anyway.
        let factor = 1u32.checked_shl(locks.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The standing after a session resolved as `outcome` at `at`, and the
    /// end of the lock it sets, if it sets one. Only PASSED and FAILED
    /// count: a decline or expiry is no guess at the PIN.
    pub fn after(
        &self,
        state: LockoutState,
        outcome: SessionState,
        at: Timestamp,
    ) -> (LockoutState, Option<Timestamp>) {
        match outcome {
            SessionState::Passed => (LockoutState::default(), None),
            SessionState::Failed => {
                let failures = state.failures.saturating_add(1);
                if failures >= self.max_failures {
                    let until = at.plus(self.backoff(state.locks));
                    let locked = LockoutState {
                        failures: 0,
                        locks: state.locks.saturating_add(1),
                        locked_until: Some(until),
                    };
                    (locked, Some(until))
                } else {
                    (LockoutState { failures, ..state }, None)
                }
            }
            _ => (state, None),
        }
    }
}

/// A fraud event a tenant can watch: a customer declining a request they
/// did not ask for, or a lockout after repeated failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudEvent {
    /// Its number, increasing.
    pub id: i64,
    /// Tenant.
    pub tenant: TenantId,
    /// The customer concerned (opaque reference).
    pub customer_ref: CustomerRef,
    /// The session that raised it.
    pub session: SessionId,
    /// `declined` or `locked`.
    pub kind: String,
    /// When.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 3,
            base: Duration::from_secs(60),
            max: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_nth_failure_locks_and_each_lock_doubles_up_to_the_cap() {
        let p = policy();
        let t = Timestamp(1_000_000);
        let mut state = LockoutState::default();
        let mut locks = Vec::new();
        for _ in 0..(3 * 6) {
            let (next, lock) = p.after(state, SessionState::Failed, t);
            state = next;
            if let Some(until) = lock {
                locks.push((until.0 - t.0) / 1000);
                assert!(state.is_locked(t));
                assert!(!state.is_locked(until));
            }
        }
        assert_eq!(locks, vec![60, 120, 240, 480, 600, 600]);
    }

    #[test]
    fn fewer_failures_do_not_lock_and_success_resets_everything() {
        let p = policy();
        let t = Timestamp(5);
        let (state, lock) = p.after(LockoutState::default(), SessionState::Failed, t);
        let (state, lock2) = p.after(state, SessionState::Failed, t);
        assert_eq!((lock, lock2, state.failures), (None, None, 2));
        assert!(!state.is_locked(t));
        // Declines and expiries neither count nor reset.
        let (state, _) = p.after(state, SessionState::Declined, t);
        let (state, _) = p.after(state, SessionState::Expired, t);
        assert_eq!(state.failures, 2);
        let (state, _) = p.after(state, SessionState::Failed, t);
        assert!(state.is_locked(t));
        assert_eq!(state.locks, 1);
        let (state, lock) = p.after(state, SessionState::Passed, t);
        assert_eq!((state, lock), (LockoutState::default(), None));
    }

    #[test]
    fn huge_lock_counts_saturate() {
        let p = policy();
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(600));
        assert_eq!(p.backoff(0), Duration::from_secs(60));
    }
}
