//! The Enrollment service.

use tonic::{Request, Response, Status};
use zkid_proto::v1::{self as pb, enrollment_server::Enrollment};

use super::{caller, convert::timestamp, engine, Ready};
use crate::domain::{
    model::{AttributeCommitment, CustomerRef, DeviceId},
    DomainError,
};

pub(crate) struct EnrollmentService {
    pub(crate) ready: Ready,
}

fn field_bytes(bytes: &[u8], what: &'static str) -> Result<[u8; 32], Status> {
    bytes
        .try_into()
        .map_err(|_| DomainError::InvalidArgument(what).into())
}

#[tonic::async_trait]
impl Enrollment for EnrollmentService {
    async fn register_customer(
        &self,
        request: Request<pb::RegisterCustomerRequest>,
    ) -> Result<Response<pb::RegisterCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let customer_ref = CustomerRef::parse(&message.customer_ref)?;
        let attributes = message
            .attributes
            .map(|a| {
                Ok::<_, Status>(AttributeCommitment {
                    commitment: field_bytes(
                        &a.commitment,
                        "attribute commitment must be 32 bytes",
                    )?,
                    schema_version: a.schema_version,
                })
            })
            .transpose()?;
        let registration = engine(&self.ready)?
            .register_customer(&caller, customer_ref, attributes)
            .await?;
        Ok(Response::new(pb::RegisterCustomerResponse {
            enrollment_code: registration.code.expose().to_owned(),
            code_expires_at: Some(timestamp(registration.expires_at)),
            existing_customer: registration.existing_customer,
        }))
    }

    async fn enroll_device(
        &self,
        request: Request<pb::EnrollDeviceRequest>,
    ) -> Result<Response<pb::EnrollDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let commitment = field_bytes(
            &request.get_ref().device_commitment,
            "device commitment must be 32 bytes",
        )?;
        let enrolled = engine(&self.ready)?
            .enroll_device(&caller, commitment)
            .await?;
        Ok(Response::new(pb::EnrollDeviceResponse {
            device_id: enrolled.device.to_string(),
            device_token: enrolled.token.expose().to_owned(),
            customer_ref: enrolled.customer_ref.to_string(),
            organization: enrolled.organization,
            replaced_device_ids: enrolled.replaced.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn revoke_device(
        &self,
        request: Request<pb::RevokeDeviceRequest>,
    ) -> Result<Response<pb::RevokeDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let customer_ref = CustomerRef::parse(&message.customer_ref)?;
        let device = DeviceId::parse(&message.device_id)?;
        let at = engine(&self.ready)?
            .revoke_device(&caller, &customer_ref, &device)
            .await?;
        Ok(Response::new(pb::RevokeDeviceResponse {
            revoked_at: Some(timestamp(at)),
        }))
    }
}
