//! Authentication and role enforcement, for every RPC, in one tower layer.
//!
//! The layer reads `authorization: Bearer <token>`, asks the engine whose
//! token it is, checks the caller's role against the RPC's entry in
//! [`access`], and puts the [`Caller`] into the request's extensions for the
//! handler. Standard health checking and reflection are public.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tonic::Status;
use tower::{Layer, Service};

use super::Ready;
use crate::domain::{
    model::{Caller, Role, Scope},
    DomainError,
};

/// Who may call an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, without credential.
    Public,
    /// Credentials of exactly this role and scope.
    Only(Role, Scope),
    /// Nobody (unknown RPCs of our package).
    Nobody,
}

/// The access table: least privilege, one role per RPC.
pub(crate) fn access(path: &str) -> Access {
    const AGENT: Access = Access::Only(Role::Agent, Scope::Full);
    const DEVICE: Access = Access::Only(Role::Device, Scope::Full);
    const ENROLLER: Access = Access::Only(Role::Enroller, Scope::Full);
    const AUDITOR: Access = Access::Only(Role::Auditor, Scope::Full);
    const LOGIN: Access = Access::Only(Role::Login, Scope::Full);
    if path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
    {
        return Access::Public;
    }
    match path {
        // Public keys are public; they check verdicts offline.
        "/zkid.v1.Keys/GetSigningKeys" => Access::Public,
        "/zkid.v1.Enrollment/RegisterCustomer" | "/zkid.v1.Enrollment/RevokeDevice" => ENROLLER,
        "/zkid.v1.Enrollment/EnrollDevice" => Access::Only(Role::Device, Scope::Enrollment),
        "/zkid.v1.Verification/StartVerification"
        | "/zkid.v1.Verification/WatchVerification"
        | "/zkid.v1.Verification/GetVerification"
        | "/zkid.v1.Verification/CancelVerification" => AGENT,
        "/zkid.v1.Device/WatchRequests"
        | "/zkid.v1.Device/SubmitProof"
        | "/zkid.v1.Device/Decline"
        | "/zkid.v1.Device/ListProvingKeys"
        | "/zkid.v1.Device/GetProvingKey" => DEVICE,
        "/zkid.v1.Audit/ListFraudEvents"
        | "/zkid.v1.Audit/ListAuditRecords"
        | "/zkid.v1.Audit/GetSignedTreeHead"
        | "/zkid.v1.Audit/GetInclusionProof"
        | "/zkid.v1.Audit/GetConsistencyProof" => AUDITOR,
        "/zkid.v1.OperatorEnrollment/RegisterOperator" => ENROLLER,
        "/zkid.v1.OperatorLogin/BeginLogin"
        | "/zkid.v1.OperatorLogin/WatchLogin"
        | "/zkid.v1.OperatorLogin/GetLogin"
        | "/zkid.v1.OperatorLogin/CancelLogin" => LOGIN,
        _ => Access::Nobody,
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, DomainError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(DomainError::Unauthenticated("missing bearer token"))?
        .to_str()
        .map_err(|_| DomainError::Unauthenticated("malformed authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(DomainError::Unauthenticated(
            "malformed authorization header",
        ))
}

async fn authorize(
    ready: &Ready,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<Caller>, Status> {
    let (role, scope) = match access(path) {
        Access::Public => return Ok(None),
        Access::Nobody => return Err(Status::permission_denied("no such operation for anyone")),
        Access::Only(role, scope) => (role, scope),
    };
    let engine = super::engine(ready)?;
    let caller = engine.authenticate(bearer(headers)?).await?;
    if caller.role != role || caller.scope != scope {
        tracing::info!(tenant = %caller.tenant, role = %caller.role, path, "permission denied");
        return Err(
            DomainError::PermissionDenied("this credential's role may not call this").into(),
        );
    }
    Ok(Some(caller))
}

/// The layer; see the module docs.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    ready: Ready,
}

impl AuthLayer {
    pub(crate) fn new(ready: Ready) -> Self {
        Self { ready }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            ready: self.ready.clone(),
        }
    }
}

/// The service the layer wraps around every route.
#[derive(Clone)]
pub(crate) struct Auth<S> {
    inner: S,
    ready: Ready,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Auth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let ready = self.ready.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            match authorize(&ready, &path, request.headers()).await {
                Ok(Some(caller)) => {
                    request.extensions_mut().insert(caller);
                }
                Ok(None) => {}
                Err(status) => return Ok(status.into_http()),
            }
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_api_has_a_role() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(zkid_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut methods = 0;
        for file in set.file.iter().filter(|f| f.package() == "zkid.v1") {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/zkid.v1.{}/{}", service.name(), method.name());
                    let public = path == "/zkid.v1.Keys/GetSigningKeys";
                    assert!(
                        public || matches!(access(&path), Access::Only(..)),
                        "{path} has no role"
                    );
                    methods += 1;
                }
            }
        }
        assert_eq!(methods, 23);
        assert_eq!(
            access("/zkid.v1.OperatorLogin/BeginLogin"),
            Access::Only(Role::Login, Scope::Full)
        );
        assert_eq!(
            access("/zkid.v1.Enrollment/EnrollDevice"),
            Access::Only(Role::Device, Scope::Enrollment)
        );
        assert_eq!(access("/zkid.v1.Device/Nope"), Access::Nobody);
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Public);
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let mut headers = http::HeaderMap::new();
        assert!(bearer(&headers).is_err());
        headers.insert("authorization", "Basic abc".parse().expect("header"));
        assert!(bearer(&headers).is_err());
        headers.insert("authorization", "Bearer ".parse().expect("header"));
        assert!(bearer(&headers).is_err());
        headers.insert("authorization", "Bearer zkid_x".parse().expect("header"));
        assert_eq!(bearer(&headers).ok(), Some("zkid_x"));
    }
}
