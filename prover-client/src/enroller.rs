//! The organization backend's side of enrollment: register a customer (and
//! the commitment to their attested attributes) and obtain the one-time
//! code their phone enrolls with. Used by `zkid-agent enroll-customer`; a
//! bank's onboarding system calls the same RPC.

use std::{fmt, time::SystemTime};

use zkid_proto::v1::{
    enrollment_client::EnrollmentClient, operator_enrollment_client::OperatorEnrollmentClient,
    AttributeCommitment, RegisterCustomerRequest, RegisterOperatorRequest, RevokeDeviceRequest,
};

use crate::rpc::{Connection, RpcError};

/// The code a customer's phone enrolls with. Its `Debug` hides it.
pub struct EnrollmentCode {
    /// The code (a bearer secret: hand it only to the customer's phone).
    pub code: String,
    /// When it stops working.
    pub expires_at: Option<SystemTime>,
    /// Whether the customer was already registered (a credential change).
    pub existing_customer: bool,
}

impl fmt::Debug for EnrollmentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentCode")
            .field("expires_at", &self.expires_at)
            .field("existing_customer", &self.existing_customer)
            .finish_non_exhaustive()
    }
}

/// A connection with an enroller's credential.
pub struct EnrollerClient {
    connection: Connection,
    token: String,
}

impl fmt::Debug for EnrollerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollerClient")
            .field("server", &self.connection.address)
            .finish_non_exhaustive()
    }
}

impl EnrollerClient {
    /// Connects with an enroller token.
    ///
    /// # Errors
    /// Bad address or unreachable server.
    pub fn connect(server: &str, token: &str) -> Result<Self, RpcError> {
        Ok(Self {
            connection: Connection::open(server)?,
            token: token.to_owned(),
        })
    }

    /// Registers (or re-registers) a customer, optionally with the
    /// commitment to their attributes (32 bytes) and its schema version.
    ///
    /// # Errors
    /// The server refused.
    pub fn register_customer(
        &self,
        customer_ref: &str,
        attributes: Option<([u8; 32], u32)>,
    ) -> Result<EnrollmentCode, RpcError> {
        let mut client = EnrollmentClient::new(self.connection.with_token(&self.token)?);
        let response = self
            .connection
            .block_on(client.register_customer(RegisterCustomerRequest {
                customer_ref: customer_ref.to_owned(),
                attributes: attributes.map(|(commitment, schema_version)| AttributeCommitment {
                    commitment: commitment.to_vec(),
                    schema_version,
                }),
            }))?
            .into_inner();
        Ok(EnrollmentCode {
            code: response.enrollment_code,
            expires_at: response
                .code_expires_at
                .and_then(|t| SystemTime::try_from(t).ok()),
            existing_customer: response.existing_customer,
        })
    }

    /// Revokes a customer's device.
    ///
    /// # Errors
    /// The server refused (e.g. no such device).
    pub fn revoke_device(&self, customer_ref: &str, device_id: &str) -> Result<(), RpcError> {
        let mut client = EnrollmentClient::new(self.connection.with_token(&self.token)?);
        self.connection
            .block_on(client.revoke_device(RevokeDeviceRequest {
                customer_ref: customer_ref.to_owned(),
                device_id: device_id.to_owned(),
            }))?;
        Ok(())
    }

    /// Registers (or re-registers) a BPO operator of the tenant; the
    /// operator's phone enrolls with the code as a customer's does.
    ///
    /// # Errors
    /// The server refused (e.g. the reference is a customer's).
    pub fn register_operator(&self, operator_ref: &str) -> Result<EnrollmentCode, RpcError> {
        let mut client = OperatorEnrollmentClient::new(self.connection.with_token(&self.token)?);
        let response = self
            .connection
            .block_on(client.register_operator(RegisterOperatorRequest {
                operator_ref: operator_ref.to_owned(),
            }))?
            .into_inner();
        Ok(EnrollmentCode {
            code: response.enrollment_code,
            expires_at: response
                .code_expires_at
                .and_then(|t| SystemTime::try_from(t).ok()),
            existing_customer: response.existing_operator,
        })
    }
}
