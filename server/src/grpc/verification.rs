//! The Verification service (agents).

use std::pin::Pin;

use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status};
use zkid_proto::v1::{self as pb, verification_server::Verification};

use super::{caller, convert::agent_view, engine, Ready};
use crate::domain::model::{AccountRef, CustomerRef, SessionId};

pub(crate) struct VerificationService {
    pub(crate) ready: Ready,
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::VerificationSession, Status>> + Send>>;

#[tonic::async_trait]
impl Verification for VerificationService {
    async fn start_verification(
        &self,
        request: Request<pb::StartVerificationRequest>,
    ) -> Result<Response<pb::VerificationSession>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let customer_ref = CustomerRef::parse(&message.customer_ref)?;
        let account_ref = message
            .account_ref
            .as_deref()
            .map(AccountRef::parse)
            .transpose()?;
        let step_up_from = message
            .step_up_from
            .as_deref()
            .map(SessionId::parse)
            .transpose()?;
        let engine = engine(&self.ready)?;
        let session = engine
            .start_verification(
                &caller,
                customer_ref,
                &message.operation,
                account_ref,
                step_up_from,
            )
            .await?;
        Ok(Response::new(agent_view(
            &session,
            engine.signed_verdict(&session),
        )))
    }

    type WatchVerificationStream = SessionStream;

    async fn watch_verification(
        &self,
        request: Request<pb::WatchVerificationRequest>,
    ) -> Result<Response<Self::WatchVerificationStream>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let engine = engine(&self.ready)?;
        let updates = engine.watch_session(&caller, &id).await?;
        let stream = ReceiverStream::new(updates).map(move |update| {
            update
                .map(|session| agent_view(&session, engine.signed_verdict(&session)))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_verification(
        &self,
        request: Request<pb::GetVerificationRequest>,
    ) -> Result<Response<pb::VerificationSession>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let engine = engine(&self.ready)?;
        let session = engine.get_session(&caller, &id).await?;
        Ok(Response::new(agent_view(
            &session,
            engine.signed_verdict(&session),
        )))
    }

    async fn cancel_verification(
        &self,
        request: Request<pb::CancelVerificationRequest>,
    ) -> Result<Response<pb::VerificationSession>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let engine = engine(&self.ready)?;
        let session = engine.cancel(&caller, &id).await?;
        Ok(Response::new(agent_view(
            &session,
            engine.signed_verdict(&session),
        )))
    }
}
