//! The Device service (phones).

use std::pin::Pin;

use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status};
use zkid_proto::v1::{self as pb, device_server::Device};

use super::{
    caller,
    convert::{device_event, level, state, timestamp},
    engine, Ready, KEY_CHUNK_BYTES,
};
use crate::domain::{
    catalog::ProvingKeyFile,
    model::{ChangeId, SessionId},
    SubmittedProof,
};

pub(crate) struct DeviceService {
    pub(crate) ready: Ready,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::DeviceEvent, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ProvingKeyChunk, Status>> + Send>>;

fn key_info(key: &ProvingKeyFile) -> pb::ProvingKeyInfo {
    pb::ProvingKeyInfo {
        circuit: key.circuit.name.clone(),
        circuit_version: key.circuit.version,
        key_id: key.key_id.0.to_vec(),
        size_bytes: key.bytes.len() as u64,
        sha256: key.sha256.to_vec(),
    }
}

#[tonic::async_trait]
impl Device for DeviceService {
    type WatchRequestsStream = EventStream;

    async fn watch_requests(
        &self,
        request: Request<pb::WatchRequestsRequest>,
    ) -> Result<Response<Self::WatchRequestsStream>, Status> {
        let caller = caller(&request)?;
        let updates = engine(&self.ready)?.device_feed(&caller).await?;
        let stream = ReceiverStream::new(updates)
            .map(|update| update.map(device_event).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn submit_proof(
        &self,
        request: Request<pb::SubmitProofRequest>,
    ) -> Result<Response<pb::SubmitProofResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        let id = SessionId::parse(&message.session_id)?;
        let proofs = message
            .proofs
            .into_iter()
            .map(|p| SubmittedProof {
                key_id: p.key_id,
                proof: p.proof,
            })
            .collect();
        let session = engine(&self.ready)?
            .submit_proof(&caller, &id, proofs)
            .await?;
        Ok(Response::new(pb::SubmitProofResponse {
            state: state(session.state),
            level_reached: level(session.level_reached),
        }))
    }

    async fn decline(
        &self,
        request: Request<pb::DeclineRequest>,
    ) -> Result<Response<pb::DeclineResponse>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let session = engine(&self.ready)?.decline(&caller, &id).await?;
        Ok(Response::new(pb::DeclineResponse {
            state: state(session.state),
        }))
    }

    async fn revert_change(
        &self,
        request: Request<pb::RevertChangeRequest>,
    ) -> Result<Response<pb::RevertChangeResponse>, Status> {
        let message = request.into_inner();
        let id = ChangeId::parse(&message.change_id)?;
        let proof = message
            .proof
            .ok_or_else(|| Status::invalid_argument("a revert needs a proof"))?;
        let change = engine(&self.ready)?
            .revert_change(
                &id,
                SubmittedProof {
                    key_id: proof.key_id,
                    proof: proof.proof,
                },
            )
            .await?;
        Ok(Response::new(pb::RevertChangeResponse {
            reverted_at: change.reverted_at.map(timestamp),
        }))
    }

    async fn list_proving_keys(
        &self,
        request: Request<pb::ListProvingKeysRequest>,
    ) -> Result<Response<pb::ListProvingKeysResponse>, Status> {
        let caller = caller(&request)?;
        let keys = engine(&self.ready)?.proving_keys(&caller)?;
        Ok(Response::new(pb::ListProvingKeysResponse {
            keys: keys.iter().map(|k| key_info(k)).collect(),
        }))
    }

    type GetProvingKeyStream = ChunkStream;

    async fn get_proving_key(
        &self,
        request: Request<pb::GetProvingKeyRequest>,
    ) -> Result<Response<Self::GetProvingKeyStream>, Status> {
        let caller = caller(&request)?;
        let key = engine(&self.ready)?.proving_key(&caller, &request.get_ref().key_id)?;
        let info = key_info(&key);
        let chunks = key.bytes.len().div_ceil(KEY_CHUNK_BYTES).max(1);
        let stream = tokio_stream::iter(0..chunks).map(move |index| {
            let start = index * KEY_CHUNK_BYTES;
            let end = (start + KEY_CHUNK_BYTES).min(key.bytes.len());
            Ok(pb::ProvingKeyChunk {
                info: (index == 0).then(|| info.clone()),
                offset: start as u64,
                data: key.bytes[start..end].to_vec(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
