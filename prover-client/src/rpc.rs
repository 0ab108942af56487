//! Connection plumbing shared by the phone and agent clients: a blocking
//! facade over tonic, so the public API stays free of async and transport
//! types.
//!
//! An `https://` server address connects over TLS. The client then needs
//! the CA that signed the server's certificate and, for mTLS, may present a
//! certificate of its own; the binaries read these PEM files' paths from
//! `ZKID_CA_CERT`, `ZKID_CLIENT_CERT` and `ZKID_CLIENT_KEY`
//! ([`ClientTls::from_env`]), so no command needs new flags.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tonic::{
    metadata::MetadataValue,
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
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
    /// The TLS settings or files cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<Status> for RpcError {
    fn from(status: Status) -> Self {
        Self::Refused {
            code: format!("{:?}", status.code()),
            message: status.message().to_owned(),
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call; with an empty
/// token, nothing: the caller is then known by its TLS client certificate
/// (the binaries allow that only when one is configured).
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub(crate) fn new(token: &str) -> Result<Self, RpcError> {
        if token.is_empty() {
            return Ok(Self(None));
        }
        let header = Zeroizing::new(format!("Bearer {token}"));
        let mut value: MetadataValue<_> = header.parse().map_err(|_| RpcError::BadToken)?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A client's TLS files (PEM): the CA that signed the server's
/// certificate, and optionally the client's own certificate and key
/// (mTLS). Used only for `https://` server addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// The CA certificate(s) to trust for the server (`ZKID_CA_CERT`).
    pub ca_cert: Option<PathBuf>,
    /// The client's certificate chain, leaf first (`ZKID_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// The client's private key (`ZKID_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
}

fn read_file(what: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, RpcError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| RpcError::Tls(format!("cannot read {what} {}: {e}", path.display())))
}

fn read_certificates(what: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, RpcError> {
    let pem = read_file(what, path)?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| RpcError::Tls(format!("{what} {}: bad PEM: {e}", path.display())))?;
        count += 1;
    }
    if count == 0 {
        return Err(RpcError::Tls(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(pem)
}

impl ClientTls {
    /// The paths in `ZKID_CA_CERT`, `ZKID_CLIENT_CERT` and
    /// `ZKID_CLIENT_KEY` (empty values count as unset).
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        Self {
            ca_cert: var("ZKID_CA_CERT"),
            client_cert: var("ZKID_CLIENT_CERT"),
            client_key: var("ZKID_CLIENT_KEY"),
        }
    }

    /// Whether a client certificate is configured: the client can then
    /// authenticate without a bearer token.
    pub fn has_client_certificate(&self) -> bool {
        self.client_cert.is_some()
    }

    fn is_empty(&self) -> bool {
        self.ca_cert.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }

    /// The channel's TLS settings for `address`, or `None` for plaintext.
    fn for_address(&self, address: &str) -> Result<Option<ClientTlsConfig>, RpcError> {
        let scheme = address.split_once("://").map(|(scheme, _)| scheme);
        if !scheme.is_some_and(|s| s.eq_ignore_ascii_case("https")) {
            // Files for TLS but a plaintext address: most likely a typo, and
            // going on would send the credential unprotected.
            if !self.is_empty() {
                return Err(RpcError::Tls(format!(
                    "TLS files are configured (ZKID_CA_CERT, ZKID_CLIENT_CERT, ZKID_CLIENT_KEY) \
                     but the server address {address:?} is not https://"
                )));
            }
            return Ok(None);
        }
        let ca = self.ca_cert.as_deref().ok_or_else(|| {
            RpcError::Tls(
                "an https:// server needs the CA certificate that signed its certificate \
                 (ZKID_CA_CERT)"
                    .into(),
            )
        })?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
            read_certificates("CA certificate", ca)?.as_slice(),
        ));
        match (&self.client_cert, &self.client_key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let cert = read_certificates("client certificate", cert)?;
                let key_pem = read_file("client key", key)?;
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    RpcError::Tls(format!(
                        "client key {}: no usable PEM private key: {e}",
                        key.display()
                    ))
                })?;
                tls = tls.identity(Identity::from_pem(cert.as_slice(), key_pem.as_slice()));
            }
            _ => {
                return Err(RpcError::Tls(
                    "a client certificate needs its key and a key its certificate: set both \
                     ZKID_CLIENT_CERT and ZKID_CLIENT_KEY"
                        .into(),
                ))
            }
        }
        Ok(Some(tls))
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
    /// Connects with the TLS files named by the environment
    /// ([`ClientTls::from_env`]), as every zkid client does.
    pub(crate) fn open(address: &str) -> Result<Self, RpcError> {
        Self::open_with(address, &ClientTls::from_env())
    }

    pub(crate) fn open_with(address: &str, tls: &ClientTls) -> Result<Self, RpcError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RpcError::Runtime(e.to_string()))?;
        let mut endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|_| RpcError::BadAddress(address.to_owned()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(config) = tls.for_address(address)? {
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| RpcError::Tls(e.to_string()))?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<Option<ClientTlsConfig>, RpcError>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(error) => error.to_string(),
        }
    }

    /// A CA certificate, a client certificate and its key, as PEM files.
    fn files(dir: &Path) -> ClientTls {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["agent".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        ClientTls {
            ca_cert: Some(write("ca.pem", &cert.pem())),
            client_cert: Some(write("agent.pem", &cert.pem())),
            client_key: Some(write("agent.key", &key.serialize_pem())),
        }
    }

    #[test]
    fn plaintext_addresses_need_no_tls_and_refuse_tls_files() {
        assert!(ClientTls::default()
            .for_address("http://127.0.0.1:50051")
            .expect("plaintext")
            .is_none());
        let dir = tempfile::tempdir().expect("dir");
        let message = refusal(files(dir.path()).for_address("http://127.0.0.1:50051"));
        assert!(message.contains("not https://"), "{message}");
    }

    #[test]
    fn https_needs_a_ca_and_a_certificate_needs_its_key() {
        let dir = tempfile::tempdir().expect("dir");
        let good = files(dir.path());
        assert!(good
            .for_address("https://127.0.0.1:50051")
            .expect("usable")
            .is_some());
        let ca_only = ClientTls {
            ca_cert: good.ca_cert.clone(),
            ..ClientTls::default()
        };
        assert!(ca_only
            .for_address("HTTPS://localhost:50051")
            .expect("usable")
            .is_some());

        let message = refusal(ClientTls::default().for_address("https://127.0.0.1:50051"));
        assert!(message.contains("ZKID_CA_CERT"), "{message}");
        let message = refusal(
            ClientTls {
                client_key: None,
                ..good.clone()
            }
            .for_address("https://127.0.0.1:50051"),
        );
        assert!(message.contains("ZKID_CLIENT_KEY"), "{message}");
        let message = refusal(
            ClientTls {
                client_cert: None,
                ..good.clone()
            }
            .for_address("https://127.0.0.1:50051"),
        );
        assert!(message.contains("ZKID_CLIENT_CERT"), "{message}");
    }

    #[test]
    fn unreadable_or_wrong_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let good = files(dir.path());
        let message = refusal(
            ClientTls {
                ca_cert: Some(dir.path().join("absent.pem")),
                ..good.clone()
            }
            .for_address("https://127.0.0.1:50051"),
        );
        assert!(message.contains("absent.pem"), "{message}");
        // The key where the CA belongs, the certificate where the key does.
        let message = refusal(
            ClientTls {
                ca_cert: good.client_key.clone(),
                ..good.clone()
            }
            .for_address("https://127.0.0.1:50051"),
        );
        assert!(message.contains("no PEM certificate"), "{message}");
        let message = refusal(
            ClientTls {
                client_key: good.client_cert.clone(),
                ..good
            }
            .for_address("https://127.0.0.1:50051"),
        );
        assert!(message.contains("private key"), "{message}");
    }

    #[test]
    fn an_empty_token_sends_no_header() {
        let mut none = Bearer::new("").expect("empty");
        let request = none.call(Request::new(())).expect("call");
        assert!(request.metadata().get("authorization").is_none());
        let mut some = Bearer::new("zkid_x").expect("token");
        let request = some.call(Request::new(())).expect("call");
        assert_eq!(
            request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer zkid_x")
        );
    }
}
