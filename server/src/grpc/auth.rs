//! Authentication and role enforcement, for every RPC, in one tower layer.
//!
//! The layer finds the caller's credential, checks the caller's role
//! against the RPC's entry in [`access`], and puts the [`Caller`] into the
//! request's extensions for the handler. Standard health checking and
//! reflection are public.
//!
//! A caller presents one credential: `authorization: Bearer <token>`, or,
//! when the server has `tls.client_ca`, a TLS client certificate that an
//! admin registered for a tenant and a role. The rule, in [`credential`]:
//! - a registered certificate and no token: the certificate's credential;
//! - a registered certificate and a token: refused (UNAUTHENTICATED), and
//!   so is a revoked or expired certificate credential with or without a
//!   token: a request that names two identities is a client mistake, and
//!   silently preferring either would let a misconfigured client act with
//!   the wrong role or tenant, or keep using a certificate after its
//!   revocation;
//! - a token and a certificate that is no credential (a CA-valid
//!   certificate, e.g. a workload identity of a service mesh): the token;
//! - neither: UNAUTHENTICATED, saying what was missing.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::Semaphore;

use tonic::{
    transport::server::{TcpConnectInfo, TlsConnectInfo},
    Status,
};
use tower::{Layer, Service};

use super::Ready;
use crate::domain::{
    certificate::CertificateFingerprint,
    model::{Caller, Role, Scope},
    DomainError, Engine,
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
        // The proof is the credential: a revoked device has none left.
        "/zkid.v1.Device/RevertChange" => Access::Public,
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

/// The bearer token, if the request carries an `authorization` header.
fn bearer(headers: &http::HeaderMap) -> Result<Option<&str>, DomainError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| DomainError::Unauthenticated("malformed authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(Some)
        .ok_or(DomainError::Unauthenticated(
            "malformed authorization header",
        ))
}

/// The fingerprint of the client's leaf certificate, if it presented one.
/// rustls only completes a handshake whose client certificate chains to
/// `tls.client_ca`, so a certificate here is a verified one.
fn client_certificate(extensions: &http::Extensions) -> Option<CertificateFingerprint> {
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    certs
        .first()
        .map(|leaf| CertificateFingerprint::of_der(leaf.as_ref()))
}

/// The caller's credential; see the module docs for the rule.
async fn credential(
    engine: &Engine,
    headers: &http::HeaderMap,
    certificate: Option<CertificateFingerprint>,
) -> Result<Caller, Status> {
    let token = bearer(headers)?;
    let by_certificate = match &certificate {
        Some(fingerprint) => engine.authenticate_certificate(fingerprint).await?,
        None => None,
    };
    match (by_certificate, token) {
        (Some(_), Some(_)) => Err(DomainError::Unauthenticated(
            "both a registered client certificate and a bearer token were presented: use one",
        )
        .into()),
        (Some(caller), None) => Ok(caller),
        (None, Some(token)) => Ok(engine.authenticate(token).await?),
        (None, None) => Err(match certificate {
            // The client's own certificate's fingerprint: what its admin
            // needs to register it, and nothing the client did not have.
            Some(fingerprint) => Status::unauthenticated(format!(
                "the client certificate (SHA-256 {fingerprint}) is not registered as a \
                 credential, and no bearer token was presented"
            )),
            None => DomainError::Unauthenticated("missing bearer token").into(),
        }),
    }
}

async fn authorize(
    ready: &Ready,
    path: &str,
    headers: &http::HeaderMap,
    certificate: Option<CertificateFingerprint>,
) -> Result<Option<Caller>, Status> {
    let (role, scope) = match access(path) {
        Access::Public => return Ok(None),
        Access::Nobody => return Err(Status::permission_denied("no such operation for anyone")),
        Access::Only(role, scope) => (role, scope),
    };
    let engine = super::engine(ready)?;
    let caller = credential(&engine, headers, certificate).await?;
    if caller.role != role || caller.scope != scope {
        tracing::info!(tenant = %caller.tenant, role = %caller.role, path, "permission denied");
        return Err(
            DomainError::PermissionDenied("this credential's role may not call this").into(),
        );
    }
    Ok(Some(caller))
}

/// RPCs that stream for as long as the client listens: they do not count
/// against the in-flight limit, which bounds work, not listeners.
fn is_long_lived(path: &str) -> bool {
    matches!(
        path,
        "/zkid.v1.Device/WatchRequests"
            | "/zkid.v1.Device/GetProvingKey"
            | "/zkid.v1.Verification/WatchVerification"
            | "/zkid.v1.OperatorLogin/WatchLogin"
    ) || path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.")
}

/// The layer; see the module docs. It also bounds the unary RPCs in
/// flight: beyond `max_in_flight_rpcs` a call is refused at once with
/// RESOURCE_EXHAUSTED, so that past saturation the server sheds instead of
/// queueing every caller into a growing delay.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    ready: Ready,
    in_flight: Arc<Semaphore>,
}

impl AuthLayer {
    pub(crate) fn new(ready: Ready, max_in_flight: usize) -> Self {
        Self {
            ready,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            ready: self.ready.clone(),
            in_flight: Arc::clone(&self.in_flight),
        }
    }
}

/// The service the layer wraps around every route.
#[derive(Clone)]
pub(crate) struct Auth<S> {
    inner: S,
    ready: Ready,
    in_flight: Arc<Semaphore>,
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
        let path = request.uri().path().to_owned();
        let permit = if is_long_lived(&path) {
            None
        } else {
            match Arc::clone(&self.in_flight).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(path, "shedding: too many RPCs in flight");
                    let busy = Status::resource_exhausted("the server is busy; retry shortly");
                    return Box::pin(async move { Ok(busy.into_http()) });
                }
            }
        };
        Box::pin(async move {
            // Held until the response is ready.
            let _permit = permit;
            let certificate = client_certificate(request.extensions());
            match authorize(&ready, &path, request.headers(), certificate).await {
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

    #[tokio::test]
    async fn beyond_the_in_flight_limit_calls_are_shed_at_once() {
        use tower::ServiceExt;
        let (release, released) = tokio::sync::watch::channel(false);
        let inner = tower::service_fn(move |_: http::Request<()>| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok::<_, std::convert::Infallible>(http::Response::new(()))
            }
        });
        let ready: Ready = Arc::new(std::sync::OnceLock::new());
        let layer = AuthLayer::new(ready, 1);
        let service = layer.layer(inner);
        // A public RPC: no engine needed to pass authentication.
        let call = || {
            http::Request::builder()
                .uri("/zkid.v1.Keys/GetSigningKeys")
                .body(())
                .expect("request")
        };
        let first = tokio::spawn(service.clone().oneshot(call()));
        while layer.in_flight.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let shed = service.clone().oneshot(call()).await.expect("response");
        let status = Status::from_header_map(shed.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        // Streams are listeners, not work: never shed.
        let stream = http::Request::builder()
            .uri("/zkid.v1.Device/WatchRequests")
            .body(())
            .expect("request");
        let listening = tokio::spawn(service.clone().oneshot(stream));
        release.send(true).expect("release");
        let done = first.await.expect("task").expect("response");
        assert!(Status::from_header_map(done.headers()).is_none());
        listening.await.expect("task").expect("response");
        let again = service.oneshot(call()).await.expect("response");
        assert!(Status::from_header_map(again.headers()).is_none());
    }

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
                    let public = matches!(
                        path.as_str(),
                        "/zkid.v1.Keys/GetSigningKeys" | "/zkid.v1.Device/RevertChange"
                    );
                    assert!(
                        public || matches!(access(&path), Access::Only(..)),
                        "{path} has no role"
                    );
                    methods += 1;
                }
            }
        }
        assert_eq!(methods, 24);
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
        assert_eq!(bearer(&headers).ok(), Some(None));
        headers.insert("authorization", "Basic abc".parse().expect("header"));
        assert!(bearer(&headers).is_err());
        headers.insert("authorization", "Bearer ".parse().expect("header"));
        assert!(bearer(&headers).is_err());
        headers.insert("authorization", "Bearer zkid_x".parse().expect("header"));
        assert_eq!(bearer(&headers).ok(), Some(Some("zkid_x")));
    }

    #[test]
    fn plaintext_connections_have_no_client_certificate() {
        let mut extensions = http::Extensions::new();
        assert_eq!(client_certificate(&extensions), None);
        // A plain TCP connection's info is not a TLS one.
        extensions.insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: None,
        });
        assert_eq!(client_certificate(&extensions), None);
    }
}
