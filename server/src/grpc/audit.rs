//! The Audit service (auditors).

use tonic::{Request, Response, Status};
use zkid_proto::v1::{self as pb, audit_server::Audit};

use super::{caller, convert::timestamp, engine, Ready};
use crate::domain::audit::TreeHead;

fn head(head: &TreeHead) -> pb::SignedTreeHead {
    pb::SignedTreeHead {
        tree_size: head.size,
        root_hash: head.root.to_vec(),
        at: Some(timestamp(head.at)),
        key_id: head.key_id.clone(),
        signature: head.signature.clone(),
        at_unix_millis: head.at.0,
    }
}

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

    async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<Response<pb::ListAuditRecordsResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let records = engine(&self.ready)?
            .audit_records(&caller, message.after_seq, message.limit)
            .await?;
        Ok(Response::new(pb::ListAuditRecordsResponse {
            records: records
                .into_iter()
                .map(|r| {
                    let leaf = r.leaf();
                    let e = r.event;
                    pb::AuditRecord {
                        seq: r.seq,
                        at: Some(timestamp(e.at)),
                        actor_id: e.actor_id,
                        actor_role: e.actor_role,
                        action: e.action,
                        customer_ref: e.customer_ref,
                        session_id: e.session_id,
                        outcome: e.outcome,
                        detail: e.detail,
                        tenant: e.tenant,
                        prev_hash: r.prev.to_vec(),
                        leaf,
                        key_id: r.key_id,
                        signature: r.signature,
                    }
                })
                .collect(),
        }))
    }

    async fn get_signed_tree_head(
        &self,
        request: Request<pb::GetSignedTreeHeadRequest>,
    ) -> Result<Response<pb::SignedTreeHead>, Status> {
        let caller = caller(&request)?;
        let signed = engine(&self.ready)?.tree_head(&caller).await?;
        Ok(Response::new(head(&signed)))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let proof = engine(&self.ready)?
            .inclusion_proof(&caller, message.seq, message.tree_size)
            .await?;
        Ok(Response::new(pb::InclusionProof {
            leaf_index: message.seq - 1,
            tree_size: message.tree_size,
            proof,
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let proof = engine(&self.ready)?
            .consistency_proof(&caller, message.old_size, message.new_size)
            .await?;
        Ok(Response::new(pb::ConsistencyProof {
            old_size: message.old_size,
            new_size: message.new_size,
            proof,
        }))
    }
}
