//! The Audit service (auditors).

use tonic::{Request, Response, Status};
use zkid_proto::v1::{self as pb, audit_server::Audit};

use super::{caller, convert::timestamp, engine, Ready};

pub(crate) struct AuditService {
    pub(crate) ready: Ready,
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn list_fraud_events(
        &self,
        request: Request<pb::ListFraudEventsRequest>,
    ) -> Result<Response<pb::ListFraudEventsResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let events = engine(&self.ready)?
            .fraud_events(&caller, message.after_id, message.limit)
            .await?;
        Ok(Response::new(pb::ListFraudEventsResponse {
            events: events
                .into_iter()
                .map(|e| pb::FraudEvent {
                    id: e.id,
                    customer_ref: e.customer_ref.to_string(),
                    session_id: e.session.to_string(),
                    kind: e.kind,
                    at: Some(timestamp(e.at)),
                })
                .collect(),
        }))
    }
}
