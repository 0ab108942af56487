//! The in-process test harness: a real server on 127.0.0.1:0 with a
//! temporary data directory, generated clients, and a simulated phone.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use ark_bn254::Fr;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::StreamExt;
use tonic::{
    transport::{Channel, ClientTlsConfig, Endpoint},
    Code, Request, Status, Streaming,
};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use zkid_circuits::{
    encoding::{field_from_bytes, field_to_bytes},
    pin::{device_commitment, DeviceSecret, Pin, PinKnowledge, PinKnowledgePublic},
    prove, CircuitProvingKey, ZkCircuit,
};
use zkid_proto::v1::{
    self as pb, audit_client::AuditClient, device_client::DeviceClient,
    enrollment_client::EnrollmentClient, verification_client::VerificationClient,
};
use zkid_server::{admin, config::Config, domain::model::Role, keys::key_paths, ServerError};

/// Key files for every circuit, generated once per test binary (seeded:
/// tests only) and copied into each server's data directory.
fn shared_keys() -> &'static Path {
    static KEYS: OnceLock<tempfile::TempDir> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("key dir");
        let (pk, vk) =
            zkid_circuits::generate_keys::<PinKnowledge, _>(&mut ChaCha20Rng::seed_from_u64(11))
                .expect("setup");
        let (pk_path, vk_path) = key_paths(dir.path(), &PinKnowledge::id());
        pk.save(&pk_path).expect("save pk");
        vk.save(&vk_path).expect("save vk");
        dir
    })
    .path()
}

pub fn install_keys(data_dir: &Path) {
    let target = data_dir.join("keys");
    std::fs::create_dir_all(&target).expect("keys dir");
    for entry in std::fs::read_dir(shared_keys()).expect("read keys") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), target.join(entry.file_name())).expect("copy key");
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    /// How the harness's own channels reach a TLS server; `None`: plaintext.
    pub client_tls: Option<ClientTlsConfig>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

pub fn test_config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.to_owned(),
        sweep_interval_ms: 50,
        ..Config::default()
    }
}

impl TestServer {
    /// Starts a server on `config` (whose data dir must exist) and waits
    /// until health says SERVING.
    pub async fn start(config: Config) -> Self {
        Self::start_with_client_tls(config, None).await
    }

    /// As [`TestServer::start`], for a server with `config.tls`: the
    /// harness's channels connect with `client_tls`.
    pub async fn start_with_client_tls(
        config: Config,
        client_tls: Option<ClientTlsConfig>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(zkid_server::run(config.clone(), listener, async {
            let _ = stopped.await;
        }));
        let server = Self {
            addr,
            config,
            client_tls,
            stop: Some(stop),
            handle: Some(handle),
        };
        server.wait_serving().await;
        server
    }

    /// A server with its own data directory and pre-made keys.
    pub async fn with_dir(dir: &Path, adjust: impl FnOnce(&mut Config)) -> Self {
        install_keys(dir);
        let mut config = test_config(dir);
        adjust(&mut config);
        Self::start(config).await
    }

    pub async fn wait_serving(&self) {
        let mut health = HealthClient::new(self.channel().await);
        let mut updates = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health watch")
            .into_inner();
        let wait = async {
            while let Some(update) = updates.next().await {
                if update.expect("health update").status == ServingStatus::Serving as i32 {
                    return;
                }
            }
            panic!("health stream ended before SERVING");
        };
        tokio::time::timeout(Duration::from_secs(120), wait)
            .await
            .expect("server became ready");
    }

    pub async fn channel(&self) -> Channel {
        self.connect(self.client_tls.clone())
            .await
            .expect("connect")
    }

    /// A channel over TLS configured by `tls`, or plaintext for `None`.
    pub async fn connect(
        &self,
        tls: Option<ClientTlsConfig>,
    ) -> Result<Channel, tonic::transport::Error> {
        match tls {
            None => {
                Endpoint::from_shared(format!("http://{}", self.addr))?
                    .connect()
                    .await
            }
            Some(tls) => {
                Endpoint::from_shared(format!("https://{}", self.addr))?
                    .tls_config(tls)?
                    .connect()
                    .await
            }
        }
    }

    pub async fn enrollment(&self) -> EnrollmentClient<Channel> {
        EnrollmentClient::new(self.channel().await)
    }

    pub async fn verification(&self) -> VerificationClient<Channel> {
        VerificationClient::new(self.channel().await)
    }

    pub async fn device(&self) -> DeviceClient<Channel> {
        DeviceClient::new(self.channel().await)
    }

    pub async fn audit(&self) -> AuditClient<Channel> {
        AuditClient::new(self.channel().await)
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("shut down in time")
            .expect("server task")
    }

    /// A tenant with an agent, an enroller, an auditor and an admin.
    pub async fn tenant(&self, id: &str, name: &str) -> Tenant {
        let store = admin::open_store(&self.config).await.expect("store");
        admin::create_tenant(&store, id, name)
            .await
            .expect("tenant");
        let keys = admin::signing_keys(&self.config).expect("signing keys");
        let mut tokens = Vec::new();
        for role in [Role::Agent, Role::Enroller, Role::Auditor, Role::Admin] {
            let (record, token) = admin::create_credential(&store, &keys, id, role, None, None)
                .await
                .expect("credential");
            tokens.push((record.id.to_string(), token.expose().to_owned()));
        }
        store.close().await;
        let mut tokens = tokens.into_iter();
        let mut next = || tokens.next().expect("token");
        let (agent_id, agent) = next();
        Tenant {
            id: id.to_owned(),
            agent,
            agent_id,
            enroller: next().1,
            auditor: next().1,
            admin: next().1,
        }
    }

    /// Registers `customer_ref` and enrolls a phone with `pin`.
    pub async fn phone(&self, tenant: &Tenant, customer_ref: &str, pin: &str, seed: u64) -> Phone {
        let code = self.enrollment_code(tenant, customer_ref).await;
        self.enroll(&code, customer_ref, pin, seed).await
    }

    pub async fn enrollment_code(&self, tenant: &Tenant, customer_ref: &str) -> String {
        self.enrollment()
            .await
            .register_customer(authed(
                pb::RegisterCustomerRequest {
                    customer_ref: customer_ref.into(),
                    attributes: Some(pb::AttributeCommitment {
                        commitment: field_to_bytes(&Fr::from(77u64)).to_vec(),
                        schema_version: 1,
                    }),
                },
                &tenant.enroller,
            ))
            .await
            .expect("register customer")
            .into_inner()
            .enrollment_code
    }

    pub async fn enroll(&self, code: &str, customer_ref: &str, pin: &str, seed: u64) -> Phone {
        let pin = Pin::parse(pin).expect("pin");
        let secret = DeviceSecret::generate(&mut ChaCha20Rng::seed_from_u64(seed));
        let commitment = device_commitment(&pin, &secret);
        let enrolled = self
            .enrollment()
            .await
            .enroll_device(authed(
                pb::EnrollDeviceRequest {
                    device_commitment: field_to_bytes(&commitment).to_vec(),
                },
                code,
            ))
            .await
            .expect("enroll device")
            .into_inner();
        assert_eq!(enrolled.customer_ref, customer_ref);
        Phone {
            pin,
            secret,
            commitment,
            token: enrolled.device_token,
            device_id: enrolled.device_id,
            seed,
        }
    }

    /// Starts a verification as `tenant`'s agent.
    pub async fn start_session(
        &self,
        tenant: &Tenant,
        customer_ref: &str,
    ) -> pb::VerificationSession {
        self.verification()
            .await
            .start_verification(authed(
                pb::StartVerificationRequest {
                    customer_ref: customer_ref.into(),
                    operation: "balance_inquiry".into(),
                    account_ref: None,
                    step_up_from: None,
                },
                &tenant.agent,
            ))
            .await
            .expect("start verification")
            .into_inner()
    }

    pub async fn get(&self, tenant: &Tenant, session_id: &str) -> pb::VerificationSession {
        self.verification()
            .await
            .get_verification(authed(
                pb::GetVerificationRequest {
                    session_id: session_id.into(),
                },
                &tenant.agent,
            ))
            .await
            .expect("get verification")
            .into_inner()
    }

    /// Downloads a proving key through GetProvingKey and checks it.
    pub async fn proving_key(&self, phone: &Phone, key_id: &[u8]) -> CircuitProvingKey {
        let mut chunks = self
            .device()
            .await
            .get_proving_key(authed(
                pb::GetProvingKeyRequest {
                    key_id: key_id.to_vec(),
                },
                &phone.token,
            ))
            .await
            .expect("get proving key")
            .into_inner();
        let mut bytes = Vec::new();
        let mut info = None;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.expect("chunk");
            assert_eq!(chunk.offset as usize, bytes.len());
            assert!(chunk.data.len() <= 32 * 1024);
            if let Some(i) = chunk.info {
                assert!(info.is_none(), "info only in the first chunk");
                info = Some(i);
            }
            bytes.extend_from_slice(&chunk.data);
        }
        let info = info.expect("info");
        assert_eq!(info.size_bytes as usize, bytes.len());
        assert_eq!(info.sha256, Sha256::digest(&bytes).to_vec());
        let key = CircuitProvingKey::read_from(bytes.as_slice()).expect("valid key");
        assert_eq!(key.key_id.0.to_vec(), key_id);
        key
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Tenant {
    pub id: String,
    pub agent: String,
    pub agent_id: String,
    pub enroller: String,
    pub auditor: String,
    pub admin: String,
}

pub struct Phone {
    pub pin: Pin,
    pub secret: DeviceSecret,
    pub commitment: Fr,
    pub token: String,
    pub device_id: String,
    pub seed: u64,
}

impl Phone {
    /// Opens the push stream.
    pub async fn listen(&self, server: &TestServer) -> Streaming<pb::DeviceEvent> {
        server
            .device()
            .await
            .watch_requests(authed(pb::WatchRequestsRequest {}, &self.token))
            .await
            .expect("watch requests")
            .into_inner()
    }

    /// Proves a request as the honest app does: the statement is the
    /// request's, checked against what the phone knows.
    pub fn prove(&self, key: &CircuitProvingKey, request: &pb::VerificationRequest) -> Vec<u8> {
        let requirement = &request.requirements[0];
        assert_eq!(requirement.circuit, PinKnowledge::NAME);
        let challenge = field(&request.challenge);
        assert_eq!(field(&requirement.public_inputs[0]), self.commitment);
        assert_eq!(field(&requirement.public_inputs[1]), challenge);
        self.prove_challenge(key, challenge)
    }

    /// A proof with this phone's PIN and secret for `challenge`.
    pub fn prove_challenge(&self, key: &CircuitProvingKey, challenge: Fr) -> Vec<u8> {
        let circuit = PinKnowledge::new(&self.pin, &self.secret, challenge);
        prove(
            key,
            circuit,
            &mut ChaCha20Rng::seed_from_u64(self.seed + 1000),
        )
        .expect("prove")
    }

    /// Tries to prove the enrolled statement with another PIN.
    pub fn prove_with_pin(
        &self,
        key: &CircuitProvingKey,
        pin: &Pin,
        challenge: Fr,
    ) -> Result<Vec<u8>, zkid_circuits::ProveError> {
        let statement = PinKnowledgePublic {
            commitment: self.commitment,
            challenge,
        };
        prove(
            key,
            PinKnowledge::for_statement(statement, pin, &self.secret),
            &mut ChaCha20Rng::seed_from_u64(self.seed + 2000),
        )
    }
}

pub fn field(bytes: &[u8]) -> Fr {
    field_from_bytes(bytes.try_into().expect("32 bytes")).expect("canonical")
}

pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// The next event of a push stream, within a few seconds.
pub async fn next_event(stream: &mut Streaming<pb::DeviceEvent>) -> pb::device_event::Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event")
        .event
        .expect("event set")
}

/// The next pushed request.
pub async fn next_request(stream: &mut Streaming<pb::DeviceEvent>) -> pb::VerificationRequest {
    match next_event(stream).await {
        pb::device_event::Event::Request(request) => request,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// Submits one proof for the request's first requirement.
pub async fn submit(
    server: &TestServer,
    phone: &Phone,
    session_id: &str,
    key_id: &[u8],
    proof: Vec<u8>,
) -> Result<pb::SubmitProofResponse, Status> {
    server
        .device()
        .await
        .submit_proof(authed(
            pb::SubmitProofRequest {
                session_id: session_id.into(),
                proofs: vec![pb::CircuitProof {
                    key_id: key_id.to_vec(),
                    proof,
                }],
            },
            &phone.token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("data dir")
}

pub fn path_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_owned()
}

impl TestServer {
    /// As [`TestServer::with_dir`], with the metrics endpoint on a port of
    /// its own; returns its address too.
    pub async fn with_metrics(dir: &Path, adjust: impl FnOnce(&mut Config)) -> (Self, SocketAddr) {
        install_keys(dir);
        let mut config = test_config(dir);
        adjust(&mut config);
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let metrics = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = grpc.local_addr().expect("addr");
        let metrics_addr = metrics.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = zkid_server::Listeners {
            grpc,
            metrics: Some(metrics),
        };
        let handle = tokio::spawn(zkid_server::serve(
            config.clone(),
            listeners,
            async {
                let _ = stopped.await;
            },
            std::sync::Arc::new(zkid_server::domain::RandomChallenges),
        ));
        let server = Self {
            addr,
            config,
            client_tls: None,
            stop: Some(stop),
            handle: Some(handle),
        };
        server.wait_serving().await;
        (server, metrics_addr)
    }
}

/// An HTTP GET of `path` on `addr`: the status, the content type and the
/// body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    use http_body_util::BodyExt;

    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    drop(sender);
    let _ = connection.await;
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}
