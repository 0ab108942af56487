//! Connection plumbing shared by the phone and agent clients: a blocking
//! facade over tonic, so the public API stays free of async and transport
//! types.

use std::{future::Future, time::Duration};

use tonic::{
    metadata::MetadataValue,
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Channel, Endpoint},
    Request, Status,
};
use zeroize::Zeroizing;

/// Errors talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The server address is not a valid URL.
    #[error("invalid server address {0:?}")]
    BadAddress(String),
    /// Could not connect.
    #[error("cannot reach the server at {address}: {reason}")]
    Unreachable {
        /// The address tried.
        address: String,
        /// Why.
        reason: String,
    },
    /// The server refused the call; its message is shown as is.
    #[error("{code}: {message}")]
    Refused {
        /// The gRPC status code, in words.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The local async runtime could not start.
    #[error("cannot start the client runtime: {0}")]
    Runtime(String),
    /// The token cannot be sent as a header.
    #[error("the access token contains characters not allowed in a header")]
    BadToken,
}

impl From<Status> for RpcError {
    fn from(status: Status) -> Self {
        Self::Refused {
            code: format!("{:?}", status.code()),
            message: status.message().to_owned(),
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub(crate) struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    pub(crate) fn new(token: &str) -> Result<Self, RpcError> {
        let header = Zeroizing::new(format!("Bearer {token}"));
        let mut value: MetadataValue<_> = header.parse().map_err(|_| RpcError::BadToken)?;
        value.set_sensitive(true);
        Ok(Self(value))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub(crate) type AuthChannel = InterceptedService<Channel, Bearer>;

/// A current-thread runtime and a lazily connected channel.
pub(crate) struct Connection {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) channel: Channel,
    pub(crate) address: String,
}

impl Connection {
    pub(crate) fn open(address: &str) -> Result<Self, RpcError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RpcError::Runtime(e.to_string()))?;
        let endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|_| RpcError::BadAddress(address.to_owned()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = runtime
            .block_on(endpoint.connect())
            .map_err(|e| RpcError::Unreachable {
                address: address.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            runtime,
            channel,
            address: address.to_owned(),
        })
    }

    pub(crate) fn with_token(&self, token: &str) -> Result<AuthChannel, RpcError> {
        Ok(InterceptedService::new(
            self.channel.clone(),
            Bearer::new(token)?,
        ))
    }

    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}
