//! Domain ↔ proto conversions.

use zkid_proto::v1 as pb;

use crate::verdict::SignedVerdict;

use crate::domain::{
    model::{AssuranceLevel, Session, SessionState, Timestamp},
    DeviceUpdate, NoticeKind, PushRequest,
};

pub(super) fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1000),
        // Below 1e9, so it fits.
        nanos: i32::try_from(t.0.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

pub(super) fn state(state: SessionState) -> i32 {
    (match state {
        SessionState::Pending => pb::SessionState::Pending,
        SessionState::Passed => pb::SessionState::Passed,
        SessionState::Failed => pb::SessionState::Failed,
        SessionState::Declined => pb::SessionState::Declined,
        SessionState::Expired => pb::SessionState::Expired,
        SessionState::Locked => pb::SessionState::Locked,
        SessionState::Cancelled => pb::SessionState::Cancelled,
    }) as i32
}

pub(super) fn level(level: AssuranceLevel) -> i32 {
    (match level {
        AssuranceLevel::None => pb::AssuranceLevel::None,
        AssuranceLevel::L1 => pb::AssuranceLevel::L1,
        AssuranceLevel::L2 => pb::AssuranceLevel::L2,
        AssuranceLevel::L3 => pb::AssuranceLevel::L3,
    }) as i32
}

/// What the agent may see: no challenge, commitment or customer data.
pub(super) fn agent_view(
    session: &Session,
    verdict: Option<SignedVerdict>,
) -> pb::VerificationSession {
    pb::VerificationSession {
        session_id: session.id.to_string(),
        state: state(session.state),
        operation: session.operation.clone(),
        required_level: level(session.required_level),
        level_reached: level(session.level_reached),
        binding_code: session.binding_code.clone(),
        created_at: Some(timestamp(session.created_at)),
        expires_at: Some(timestamp(session.expires_at)),
        resolved_at: session.resolved_at.map(timestamp),
        verdict: verdict.map(|v| {
            // The key id sits inside the encoding; repeated for convenience.
            let key_id = crate::verdict::Verdict::from_bytes(&v.encoded)
                .map(|d| d.key_id)
                .unwrap_or_default();
            pb::SignedVerdict {
                encoded: v.encoded,
                signature: v.signature.to_vec(),
                key_id,
            }
        }),
    }
}

fn push_request(request: PushRequest) -> pb::VerificationRequest {
    let session = request.session;
    pb::VerificationRequest {
        session_id: session.id.to_string(),
        organization: request.organization,
        operation: session.operation,
        binding_message: request.binding_message,
        binding_code: session.binding_code,
        level: level(session.required_level),
        requirements: request
            .requirements
            .into_iter()
            .map(|r| pb::ProofRequirement {
                circuit: r.circuit.name,
                circuit_version: r.circuit.version,
                key_id: r.key_id.0.to_vec(),
                public_inputs: r.public_inputs.iter().map(|x| x.to_vec()).collect(),
            })
            .collect(),
        challenge: session.challenge.to_vec(),
        expires_at: Some(timestamp(session.expires_at)),
        created_at: Some(timestamp(session.created_at)),
    }
}

pub(super) fn device_event(update: DeviceUpdate) -> pb::DeviceEvent {
    use pb::device_event::Event;
    let event = match update {
        DeviceUpdate::Request(request) => Event::Request(push_request(*request)),
        DeviceUpdate::Closed { session, state: s } => Event::Closed(pb::RequestClosed {
            session_id: session.to_string(),
            state: state(s),
        }),
        DeviceUpdate::Notice { kind, at, revert } => Event::Notice(pb::DeviceNotice {
            kind: (match kind {
                NoticeKind::Replaced => pb::device_notice::Kind::Replaced,
                NoticeKind::Revoked => pb::device_notice::Kind::Revoked,
                NoticeKind::CredentialChanged => pb::device_notice::Kind::CredentialChanged,
            }) as i32,
            at: Some(timestamp(at)),
            revert: revert.map(|offer| pb::RevertOffer {
                change_id: offer.change.to_string(),
                challenge: offer.challenge.to_vec(),
                until: Some(timestamp(offer.until)),
            }),
        }),
    };
    pb::DeviceEvent { event: Some(event) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_milliseconds() {
        let t = timestamp(Timestamp(1_700_000_000_123));
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let t = timestamp(Timestamp(-1));
        assert_eq!((t.seconds, t.nanos), (-1, 999_000_000));
    }
}
