//! The one place where domain errors become gRPC statuses.

use tonic::{Code, Status};

use crate::domain::DomainError;

impl From<DomainError> for Status {
    fn from(error: DomainError) -> Self {
        let code = match &error {
            DomainError::Unauthenticated(_) => Code::Unauthenticated,
            DomainError::PermissionDenied(_) => Code::PermissionDenied,
            DomainError::InvalidArgument(_) | DomainError::MalformedProof { .. } => {
                Code::InvalidArgument
            }
            DomainError::NotFound(_) => Code::NotFound,
            DomainError::FailedPrecondition(_) => Code::FailedPrecondition,
            DomainError::AlreadyExists(_) => Code::AlreadyExists,
            DomainError::ResourceExhausted(_) | DomainError::Overloaded(_) => {
                Code::ResourceExhausted
            }
            DomainError::Unavailable(_) => Code::Unavailable,
            DomainError::Internal(detail) => {
                // The detail may name tables or files: log it, say nothing.
                tracing::error!(error = %detail, "internal error");
                return Status::internal("internal error");
            }
        };
        Status::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_in_the_log() {
        let status = Status::from(DomainError::Internal("table sessions is corrupt".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn shed_submissions_are_resource_exhausted() {
        let status = Status::from(DomainError::Overloaded("the verifier is at capacity"));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("capacity"));
    }

    #[test]
    fn malformed_proofs_are_invalid_arguments() {
        let status = Status::from(DomainError::MalformedProof {
            index: 0,
            reason: "proof point B is not on the curve".into(),
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("not on the curve"));
    }
}
