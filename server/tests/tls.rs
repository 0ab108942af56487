//! TLS and client certificates (mTLS) as credentials, against the real
//! server in-process. Every certificate is made here with `rcgen`: a CA, a
//! server certificate for 127.0.0.1 and localhost, client certificates,
//! and a second CA that the server does not trust.

mod common;

use std::path::Path;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code, Request,
};
use zkid_proto::v1::{self as pb, verification_client::VerificationClient, SessionState};
use zkid_server::{
    admin,
    config::{Config, TlsConfig},
    domain::model::Role,
};

/// A certificate authority that signs certificates for the tests.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn sign(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose, cn: &str) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![purpose];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.sign(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            "zkid test server",
        )
    }

    fn client(&self, cn: &str) -> Leaf {
        self.sign(&[], ExtendedKeyUsagePurpose::ClientAuth, cn)
    }
}

/// The test PKI: the CA behind the server's certificate and the clients'.
struct Pki {
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        Self {
            ca: Ca::new("zkid test CA"),
            dir: tempfile::tempdir().expect("pki dir"),
        }
    }

    /// Writes the server's files and returns its TLS configuration.
    fn server_tls(&self, mtls: bool) -> TlsConfig {
        let server = self.ca.server();
        let write = |name: &str, text: &str| {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).expect("write pem");
            path
        };
        TlsConfig {
            cert: Some(write("server.pem", &server.cert)),
            key: Some(write("server.key", &server.key)),
            client_ca: mtls.then(|| write("client-ca.pem", &self.ca.pem)),
        }
    }

    /// A client that trusts the CA, without a certificate of its own.
    fn anonymous(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca.pem))
    }

    /// A client that trusts the CA and presents `leaf`.
    fn presenting(&self, leaf: &Leaf) -> ClientTlsConfig {
        self.anonymous()
            .identity(Identity::from_pem(&leaf.cert, &leaf.key))
    }
}

async fn tls_server(dir: &Path, pki: &Pki, mtls: bool) -> TestServer {
    install_keys(dir);
    let mut config = test_config(dir);
    config.tls = Some(pki.server_tls(mtls));
    TestServer::start_with_client_tls(config, Some(pki.anonymous())).await
}

/// Registers `leaf` as a credential of `tenant` with `role`; returns its id.
async fn register(server: &TestServer, tenant: &str, role: Role, leaf: &Leaf) -> String {
    let store = admin::open_store(&server.config).await.expect("store");
    let keys = admin::signing_keys(&server.config).expect("keys");
    let (record, _) = admin::create_certificate_credential(
        &store,
        &keys,
        tenant,
        role,
        Some("desk 7".into()),
        None,
        leaf.cert.as_bytes(),
    )
    .await
    .expect("register certificate");
    store.close().await;
    record.id.to_string()
}

async fn revoke(server: &TestServer, id: &str) {
    let store = admin::open_store(&server.config).await.expect("store");
    let keys = admin::signing_keys(&server.config).expect("keys");
    admin::revoke_credential(&store, &keys, id)
        .await
        .expect("revoke");
    store.close().await;
}

async fn verification_as(server: &TestServer, tls: ClientTlsConfig) -> VerificationClient<Channel> {
    VerificationClient::new(server.connect(Some(tls)).await.expect("connect"))
}

fn start(customer: &str) -> pb::StartVerificationRequest {
    pb::StartVerificationRequest {
        customer_ref: customer.into(),
        operation: "balance_inquiry".into(),
        account_ref: None,
        step_up_from: None,
    }
}

fn get(session_id: &str) -> Request<pb::GetVerificationRequest> {
    Request::new(pb::GetVerificationRequest {
        session_id: session_id.into(),
    })
}

#[tokio::test]
async fn bearer_tokens_work_over_tls_without_client_ca() {
    let dir = data_dir();
    let pki = Pki::new();
    let server = tls_server(dir.path(), &pki, false).await;
    // The harness enrolls and starts a session with tokens, over TLS.
    let acme = server.tenant("acme", "Acme Bank").await;
    let _phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let session = server.start_session(&acme, "cust-1").await;
    assert_eq!(session.state, SessionState::Pending as i32);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_registered_client_certificate_runs_a_whole_verification() {
    let dir = data_dir();
    let pki = Pki::new();
    let server = tls_server(dir.path(), &pki, true).await;
    // Enrollment with tokens over the same mTLS server: a client without a
    // certificate still gets through the handshake.
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;

    let desk = pki.ca.client("agent desk 7");
    register(&server, "acme", Role::Agent, &desk).await;
    let mut agent = verification_as(&server, pki.presenting(&desk)).await;
    // No authorization header at all: the certificate is the credential.
    let session = agent
        .start_verification(Request::new(start("cust-1")))
        .await
        .expect("start with a certificate")
        .into_inner();
    assert_eq!(session.state, SessionState::Pending as i32);

    let request = next_request(&mut push).await;
    assert_eq!(request.session_id, session.session_id);
    let key_id = request.requirements[0].key_id.clone();
    let key = server.proving_key(&phone, &key_id).await;
    let proof = phone.prove(&key, &request);
    let answer = submit(&server, &phone, &session.session_id, &key_id, proof)
        .await
        .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);

    let seen = agent
        .get_verification(get(&session.session_id))
        .await
        .expect("get with a certificate")
        .into_inner();
    assert_eq!(seen.state, SessionState::Passed as i32);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn certificates_are_refused_unless_registered_active_and_of_the_right_role() {
    let dir = data_dir();
    let pki = Pki::new();
    let server = tls_server(dir.path(), &pki, true).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let _phone = server.phone(&acme, "cust-1", "4711", 1).await;

    // CA-valid but not registered, no token: UNAUTHENTICATED, naming the
    // certificate's fingerprint so that an admin can register it.
    let stranger = pki.ca.client("unregistered desk");
    let fingerprint = admin::certificate_fingerprint(stranger.cert.as_bytes())
        .expect("fingerprint")
        .to_string();
    let mut client = verification_as(&server, pki.presenting(&stranger)).await;
    let status = assert_code(
        client
            .start_verification(Request::new(start("cust-1")))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("not registered"), "{status:?}");
    assert!(status.message().contains(&fingerprint), "{status:?}");
    // The same unregistered certificate with a valid token: the token is
    // the credential (e.g. a service mesh's workload certificate).
    let session = client
        .start_verification(authed(start("cust-1"), &acme.agent))
        .await
        .expect("token beside an unregistered certificate")
        .into_inner();

    // A registered certificate and a token at once: refused, whichever
    // would have been allowed.
    let desk = pki.ca.client("agent desk 7");
    let desk_id = register(&server, "acme", Role::Agent, &desk).await;
    let mut client = verification_as(&server, pki.presenting(&desk)).await;
    let status = assert_code(
        client
            .get_verification(authed(
                pb::GetVerificationRequest {
                    session_id: session.session_id.clone(),
                },
                &acme.agent,
            ))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("use one"), "{status:?}");
    client
        .get_verification(get(&session.session_id))
        .await
        .expect("the certificate alone");

    // Revoked: refused at the next RPC, on an open connection, and a token
    // beside it does not help.
    revoke(&server, &desk_id).await;
    let status = assert_code(
        client.get_verification(get(&session.session_id)).await,
        Code::Unauthenticated,
    );
    assert_eq!(status.message(), "credential revoked");
    assert_code(
        client
            .get_verification(authed(
                pb::GetVerificationRequest {
                    session_id: session.session_id.clone(),
                },
                &acme.agent,
            ))
            .await,
        Code::Unauthenticated,
    );
    // And it cannot be registered again.
    let store = admin::open_store(&server.config).await.expect("store");
    let keys = admin::signing_keys(&server.config).expect("keys");
    let again = admin::create_certificate_credential(
        &store,
        &keys,
        "acme",
        Role::Agent,
        None,
        None,
        desk.cert.as_bytes(),
    )
    .await;
    assert!(
        matches!(
            again,
            Err(zkid_server::domain::DomainError::AlreadyExists(_))
        ),
        "{again:?}"
    );
    store.close().await;

    // A certificate registered for another role: PERMISSION_DENIED, as for
    // a token of that role.
    let auditor = pki.ca.client("auditor");
    register(&server, "acme", Role::Auditor, &auditor).await;
    let mut client = verification_as(&server, pki.presenting(&auditor)).await;
    assert_code(
        client
            .start_verification(Request::new(start("cust-1")))
            .await,
        Code::PermissionDenied,
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_certificate_of_another_tenant_sees_nothing_of_this_one() {
    let dir = data_dir();
    let pki = Pki::new();
    let server = tls_server(dir.path(), &pki, true).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let _phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let session = server.start_session(&acme, "cust-1").await;
    server.tenant("beta", "Beta Insurance").await;
    let beta_desk = pki.ca.client("beta desk");
    register(&server, "beta", Role::Agent, &beta_desk).await;

    // Refused exactly as a token of beta's agent is (see access.rs).
    let mut beta = verification_as(&server, pki.presenting(&beta_desk)).await;
    assert_code(
        beta.get_verification(get(&session.session_id)).await,
        Code::PermissionDenied,
    );
    assert_code(
        beta.cancel_verification(Request::new(pb::CancelVerificationRequest {
            session_id: session.session_id.clone(),
        }))
        .await,
        Code::PermissionDenied,
    );
    // Beta's customer namespace is its own: acme's customer is unknown.
    assert_code(
        beta.start_verification(Request::new(start("cust-1"))).await,
        Code::NotFound,
    );
    assert_eq!(
        server.get(&acme, &session.session_id).await.state,
        SessionState::Pending as i32
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn foreign_certificates_and_plaintext_clients_never_reach_a_handler() {
    let dir = data_dir();
    let pki = Pki::new();
    let server = tls_server(dir.path(), &pki, true).await;
    let acme = server.tenant("acme", "Acme Bank").await;

    // A certificate from a CA the server does not trust, even one
    // registered as a credential: the handshake fails, so no RPC is
    // answered by zkid (no UNAUTHENTICATED or PERMISSION_DENIED from the
    // auth layer, no result).
    let other = Ca::new("another CA");
    let forged = other.client("agent desk 7");
    register(&server, "acme", Role::Agent, &forged).await;
    let refused = match server.connect(Some(pki.presenting(&forged))).await {
        Err(_) => None,
        // TLS 1.3: the client may finish first and hear the server's alert
        // on its first request.
        Ok(channel) => Some(
            VerificationClient::new(channel)
                .start_verification(authed(start("cust-1"), &acme.agent))
                .await
                .expect_err("no RPC over a refused handshake"),
        ),
    };
    if let Some(status) = refused {
        assert!(
            matches!(status.code(), Code::Unavailable | Code::Unknown),
            "{status:?}"
        );
    }

    // Plaintext HTTP/2 against the TLS port: nothing is answered.
    let plaintext = match server.connect(None).await {
        Err(_) => None,
        Ok(channel) => Some(
            VerificationClient::new(channel)
                .start_verification(authed(start("cust-1"), &acme.agent))
                .await
                .expect_err("no RPC in plaintext"),
        ),
    };
    if let Some(status) = plaintext {
        assert!(
            matches!(status.code(), Code::Unavailable | Code::Unknown),
            "{status:?}"
        );
    }

    // The server itself is unharmed.
    let mut client = verification_as(&server, pki.anonymous()).await;
    assert_code(
        client
            .start_verification(authed(start("nobody"), &acme.agent))
            .await,
        Code::NotFound,
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_server_with_a_broken_tls_file_does_not_start() {
    let dir = data_dir();
    let pki = Pki::new();
    let mut tls = pki.server_tls(true);
    let ca = tls.client_ca.clone().expect("client ca");
    std::fs::write(&ca, "not a certificate").expect("write");
    install_keys(dir.path());
    let config = Config {
        tls: Some(tls),
        ..test_config(dir.path())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = zkid_server::run(config, listener, std::future::pending())
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("tls.client_ca"), "{error}");
    tls = pki.server_tls(true);
    tls.key = None;
    let message = Config {
        tls: Some(tls),
        ..Config::default()
    }
    .validate()
    .expect_err("no key")
    .to_string();
    assert!(message.contains("tls.key"), "{message}");
}
