//! The Keys service (public).

use tonic::{Request, Response, Status};
use zkid_proto::v1::{self as pb, keys_server::Keys};

use super::{engine, Ready};

pub(crate) struct KeysService {
    pub(crate) ready: Ready,
}

#[tonic::async_trait]
impl Keys for KeysService {
    async fn get_signing_keys(
        &self,
        _request: Request<pb::GetSigningKeysRequest>,
    ) -> Result<Response<pb::GetSigningKeysResponse>, Status> {
        let keys = engine(&self.ready)?
            .signing_keys()
            .into_iter()
            .map(|(key_id, public_key, current)| pb::SigningKey {
                key_id,
                public_key: public_key.to_vec(),
                current,
            })
            .collect();
        Ok(Response::new(pb::GetSigningKeysResponse { keys }))
    }
}
