//! The BPO operator second factor: operators enroll like customers, in
//! their employer's tenant, and a workstation login system (role `login`)
//! asks the operator's phone for a proof before letting them in.
//!
//! An operator is a subject of kind [`SubjectKind::Operator`]: the same
//! devices, sessions, lockout, rate limits, budget and audit records as a
//! customer, but invisible to customer verification (and customers to
//! operator logins). A login session proves `pin-knowledge` (PIN + device,
//! level L1) over a fresh challenge; once it PASSED, the login system gets
//! a short-lived assertion signed with the verdict key
//! ([`crate::assertion`]), which it checks offline.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{
    catalog::StatementContext,
    engine::{require, DeviceSignal, Registration},
    model::{
        Actor, AssuranceLevel, Caller, CredentialId, CredentialRecord, CustomerRef, Resolution,
        Role, Scope, Session, SessionId, SessionState, SubjectKind, Timestamp,
    },
    secrets::Token,
    CustomerRegistration, DomainError, Engine,
};
use crate::assertion::{self, Claims};

/// The operation name of operator login sessions. It is no catalog
/// operation, so an agent can never start one.
pub const LOGIN_OPERATION: &str = "workstation_login";

/// The circuit an operator login proves: PIN + device.
const LOGIN_CIRCUIT: &str = "pin-knowledge";

/// Longest audience accepted.
const MAX_AUDIENCE: usize = 256;

/// An operator login as its login system may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorLogin {
    /// The session (its `customer_ref` is the operator's reference).
    pub session: Session,
    /// The audience it was started for.
    pub audience: String,
    /// Once PASSED: the signed assertion (a compact JWS).
    pub assertion: Option<String>,
}

fn valid_audience(audience: &str) -> Result<(), DomainError> {
    // Printable ASCII without spaces: URLs and workstation names fit; no
    // room for a token or personal data to hide in whitespace or controls.
    if !audience.is_empty()
        && audience.len() <= MAX_AUDIENCE
        && audience.bytes().all(|b| b.is_ascii_graphic())
    {
        Ok(())
    } else {
        Err(DomainError::InvalidArgument(
            "audience must be 1 to 256 printable ASCII characters without spaces",
        ))
    }
}

impl Engine {
    /// Registers or re-registers an operator of the caller's tenant and
    /// issues an enrollment code for the operator's phone (which enrolls
    /// with `Enrollment.EnrollDevice`, as a customer's does).
    ///
    /// # Errors
    /// PermissionDenied for a non-enroller; AlreadyExists if the reference
    /// is a customer's.
    pub async fn register_operator(
        &self,
        caller: &Caller,
        operator_ref: CustomerRef,
    ) -> Result<Registration, DomainError> {
        require(caller, Role::Enroller, Scope::Full)?;
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
            customer: Some(operator_ref.clone()),
            device: None,
            label: None,
            created_at: now,
            expires_at: Some(expires_at),
            used_at: None,
            revoked_at: None,
        };
        let event = Self::event(caller, "operator.register", &operator_ref, "code_issued");
        let existing_customer = self
            .store
            .register_customer(
                &CustomerRegistration {
                    tenant: caller.tenant.clone(),
                    customer_ref: operator_ref,
                    attributes: None,
                    kind: SubjectKind::Operator,
                    code: record,
                    at: now,
                    revert: self.revert_terms(now),
                },
                self.audit(std::slice::from_ref(&event)),
            )
            .await?;
        tracing::info!(tenant = %caller.tenant, existing = existing_customer, "operator registered");
        Ok(Registration {
            code,
            expires_at,
            existing_customer,
        })
    }

    /// Begins an operator login: a session pushed to the operator's phone,
    /// which must prove PIN + device over its challenge for `audience`.
    ///
    /// An operator locked out after repeated failures, over the day's
    /// budget, or whose phone was asked too often in the last minute gets
    /// a session that is LOCKED at once and pushed to nobody.
    ///
    /// # Errors
    /// PermissionDenied for a non-login-system; InvalidArgument for a bad
    /// audience; NotFound for an unknown operator (customers included);
    /// FailedPrecondition if the operator has no active device;
    /// ResourceExhausted if this credential began too many logins in the
    /// last minute.
    pub async fn begin_login(
        &self,
        caller: &Caller,
        operator_ref: CustomerRef,
        audience: &str,
    ) -> Result<OperatorLogin, DomainError> {
        require(caller, Role::Login, Scope::Full)?;
        valid_audience(audience)?;
        let (operator, device) = self
            .subject_with_device(&caller.tenant, &operator_ref, SubjectKind::Operator)
            .await?;
        let entry = self.catalog().circuit(LOGIN_CIRCUIT).ok_or_else(|| {
            DomainError::Internal(format!("operator login needs circuit {LOGIN_CIRCUIT}"))
        })?;
        let now = Timestamp::now();
        let standing = self.start_standing(caller, &operator, &device, now).await?;
        self.check_start_rate(
            caller,
            &standing,
            "too many logins begun with this credential; retry in a minute",
        )?;
        let mut session = self.new_session(
            caller,
            operator_ref,
            &device,
            (LOGIN_OPERATION, AssuranceLevel::L1),
            vec![LOGIN_CIRCUIT.into()],
            now,
        );
        // A corrupt device commitment shows here, not on the phone.
        entry.statement.public_inputs(&StatementContext {
            challenge: &session.challenge,
            device: &device,
            customer: &operator,
            account: None,
        })?;
        // The audience first: a stored login session always has one.
        self.store
            .insert_login_audience(&caller.tenant, &session.id, audience, now)
            .await?;
        let locked = self.refused(&session, now, &standing).await?;
        if locked {
            session.state = SessionState::Locked;
            session.resolved_at = Some(now);
        }
        let mut event = self.start_event(caller, &session, now);
        event.detail = format!("{} audience={audience}", event.detail);
        self.store
            .insert_session(&session, self.audit(std::slice::from_ref(&event)))
            .await?;
        if locked {
            tracing::info!(tenant = %caller.tenant, session = %session.id, "operator login refused: locked");
        } else {
            self.devices.publish(
                &device.id,
                DeviceSignal::Request(Box::new((session.clone(), operator))),
            );
            tracing::info!(tenant = %caller.tenant, session = %session.id, "operator login begun");
        }
        self.login_view(session).await
    }

    /// The login, as its login system may see it.
    ///
    /// # Errors
    /// PermissionDenied for a non-login-system or a session another
    /// credential began; NotFound.
    pub async fn get_login(
        &self,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<OperatorLogin, DomainError> {
        let session = self.visible_login(caller, id).await?;
        self.login_view(session).await
    }

    /// Cancels a pending login; the phone's request is withdrawn.
    ///
    /// # Errors
    /// As [`Engine::get_login`]; FailedPrecondition if it already resolved.
    pub async fn cancel_login(
        &self,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<OperatorLogin, DomainError> {
        self.visible_login(caller, id).await?;
        let resolution = Resolution {
            state: SessionState::Cancelled,
            level_reached: AssuranceLevel::None,
            at: Timestamp::now(),
            fraud_signal: None,
            lockout: None,
            actor: Actor::of(caller),
            detail: String::new(),
        };
        let session = self
            .resolve(id, &resolution)
            .await?
            .ok_or(DomainError::FailedPrecondition("login already resolved"))?;
        self.login_view(session).await
    }

    /// A stream of the login's snapshots: the current one, then one per
    /// change, ending after the final state (or at shutdown).
    ///
    /// # Errors
    /// As [`Engine::get_login`], before the stream starts.
    pub async fn watch_login(
        self: &Arc<Self>,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<mpsc::Receiver<Result<OperatorLogin, DomainError>>, DomainError> {
        // Subscribe before reading, so no change slips between the two.
        let changes = self.sessions.subscribe(id);
        let first = self.visible_login(caller, id).await?;
        Ok(
            self.follow_session(first, changes, |engine, session| async move {
                engine.login_view(session).await
            }),
        )
    }

    /// Loads a login session the caller began, expiring it first if due.
    /// A login system sees only its own logins: not another's, and no
    /// customer verification.
    async fn visible_login(&self, caller: &Caller, id: &SessionId) -> Result<Session, DomainError> {
        require(caller, Role::Login, Scope::Full)?;
        let session = self
            .store
            .session(id)
            .await?
            .ok_or(DomainError::NotFound("login"))?;
        if session.tenant != caller.tenant
            || session.operation != LOGIN_OPERATION
            || session.agent_credential != caller.credential
        {
            return Err(DomainError::PermissionDenied(
                "login belongs to someone else",
            ));
        }
        if session.state == SessionState::Pending && session.expires_at <= Timestamp::now() {
            return self.expire(&session.id).await;
        }
        Ok(session)
    }

    async fn login_view(&self, session: Session) -> Result<OperatorLogin, DomainError> {
        let audience = self
            .store
            .login_audience(&session.id)
            .await?
            .ok_or_else(|| DomainError::Internal("operator login without audience".into()))?;
        let assertion = self.login_assertion(&session, &audience);
        Ok(OperatorLogin {
            session,
            audience,
            assertion,
        })
    }

    /// The assertion of a PASSED login, signed with the current key.
    /// Ed25519 is deterministic: the same login and key always give the
    /// same assertion, so reading it again mints nothing new.
    fn login_assertion(&self, session: &Session, audience: &str) -> Option<String> {
        if session.state != SessionState::Passed {
            return None;
        }
        let resolved_at = session.resolved_at?;
        let issued_at = resolved_at.0.div_euclid(1000);
        let ttl = i64::try_from(self.settings.operator_assertion_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            iss: assertion::ISSUER.into(),
            sub: session.customer_ref.to_string(),
            aud: audience.into(),
            iat: issued_at,
            exp: issued_at.saturating_add(ttl),
            jti: session.id.to_string(),
            tenant: session.tenant.to_string(),
            level: session.level_reached as u8,
            amr: assertion::LOGIN_AMR.iter().map(|m| (*m).into()).collect(),
        };
        Some(assertion::sign(
            &claims,
            self.keys.current_id(),
            |message| self.keys.sign(message).1,
        ))
    }
}
