//! The OperatorEnrollment (enrollers) and OperatorLogin (workstation login
//! systems) services.

use std::pin::Pin;

use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status};
use zkid_proto::v1::{
    self as pb, operator_enrollment_server::OperatorEnrollment,
    operator_login_server::OperatorLogin,
};

use super::{
    caller,
    convert::{level, state, timestamp},
    engine, Ready,
};
use crate::domain::{
    model::{CustomerRef, SessionId},
    operator::OperatorLogin as Login,
    DomainError,
};

pub(crate) struct OperatorEnrollmentService {
    pub(crate) ready: Ready,
}

pub(crate) struct OperatorLoginService {
    pub(crate) ready: Ready,
}

fn operator_ref(text: &str) -> Result<CustomerRef, Status> {
    CustomerRef::parse(text)
        .map_err(|_| DomainError::InvalidArgument("malformed operator_ref").into())
}

/// What the login system may see; the assertion only once PASSED.
fn login_view(login: Login) -> pb::OperatorLoginSession {
    let session = login.session;
    pb::OperatorLoginSession {
        session_id: session.id.to_string(),
        operator_ref: session.customer_ref.to_string(),
        audience: login.audience,
        state: state(session.state),
        level_reached: level(session.level_reached),
        binding_code: session.binding_code,
        created_at: Some(timestamp(session.created_at)),
        expires_at: Some(timestamp(session.expires_at)),
        resolved_at: session.resolved_at.map(timestamp),
        assertion: login.assertion.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl OperatorEnrollment for OperatorEnrollmentService {
    async fn register_operator(
        &self,
        request: Request<pb::RegisterOperatorRequest>,
    ) -> Result<Response<pb::RegisterOperatorResponse>, Status> {
        let caller = caller(&request)?;
        let operator = operator_ref(&request.get_ref().operator_ref)?;
        let registration = engine(&self.ready)?
            .register_operator(&caller, operator)
            .await?;
        Ok(Response::new(pb::RegisterOperatorResponse {
            enrollment_code: registration.code.expose().to_owned(),
            code_expires_at: Some(timestamp(registration.expires_at)),
            existing_operator: registration.existing_customer,
        }))
    }
}

type LoginStream = Pin<Box<dyn Stream<Item = Result<pb::OperatorLoginSession, Status>> + Send>>;

#[tonic::async_trait]
impl OperatorLogin for OperatorLoginService {
    async fn begin_login(
        &self,
        request: Request<pb::BeginLoginRequest>,
    ) -> Result<Response<pb::OperatorLoginSession>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let operator = operator_ref(&message.operator_ref)?;
        let login = engine(&self.ready)?
            .begin_login(&caller, operator, &message.audience)
            .await?;
        Ok(Response::new(login_view(login)))
    }

    type WatchLoginStream = LoginStream;

    async fn watch_login(
        &self,
        request: Request<pb::WatchLoginRequest>,
    ) -> Result<Response<Self::WatchLoginStream>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let updates = engine(&self.ready)?.watch_login(&caller, &id).await?;
        let stream =
            ReceiverStream::new(updates).map(|update| update.map(login_view).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_login(
        &self,
        request: Request<pb::GetLoginRequest>,
    ) -> Result<Response<pb::OperatorLoginSession>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let login = engine(&self.ready)?.get_login(&caller, &id).await?;
        Ok(Response::new(login_view(login)))
    }

    async fn cancel_login(
        &self,
        request: Request<pb::CancelLoginRequest>,
    ) -> Result<Response<pb::OperatorLoginSession>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let login = engine(&self.ready)?.cancel_login(&caller, &id).await?;
        Ok(Response::new(login_view(login)))
    }
}
