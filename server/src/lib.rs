//! zkid's verifier service: CIBA-style verification sessions over gRPC.
//!
//! An agent starts a verification for a customer and an operation
//! (`zkid.v1.Verification`); the server pushes a request with a one-time
//! challenge to the customer's enrolled phone (`zkid.v1.Device`); the phone
//! proves in zero knowledge that it holds the device secret and the
//! customer knows the PIN behind the enrolled commitment; the agent sees
//! PASSED, FAILED, DECLINED, EXPIRED or CANCELLED, never a secret.
//! Customers and phones are enrolled through `zkid.v1.Enrollment`.
//!
//! Layout:
//! - [`domain`]: sessions, enrollment, credentials, proof checking; no
//!   gRPC or SQL in it;
//! - [`store`]: the SQLite adapter of the domain's storage port;
//! - `grpc`: the tonic services, the auth layer, the status mapping;
//! - [`keys`]: key files, generated on first start;
//! - [`signing`]: the server's Ed25519 signing keys (audit records, tree
//!   heads, verdicts), generated on first start, rotatable;
//! - [`verdict`]: signed verdicts and their offline check, for clients;
//! - [`assertion`]: operator login assertions (EdDSA JWTs) and their
//!   offline check, for workstation login systems;
//! - [`config`]: layered configuration;
//! - [`metrics`]: Prometheus metrics of the verifier and SubmitProof's
//!   stages, served at `GET /metrics` when `metrics_listen` is set;
//! - [`admin`]: what the admin CLI does (tenants, credentials).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use zkid_server::{config::Config, run};
//!
//! let config = Config::default();
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! run(config, listener, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod assertion;
pub mod config;
pub mod demo;
pub mod domain;
mod grpc;
pub mod keys;
pub mod metrics;
pub mod signing;
pub mod store;
pub mod verdict;

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::{server::HealthReporter, ServingStatus};
use zkid_proto::v1::{
    audit_server::AuditServer, device_server::DeviceServer, enrollment_server::EnrollmentServer,
    keys_server::KeysServer, operator_enrollment_server::OperatorEnrollmentServer,
    operator_login_server::OperatorLoginServer, verification_server::VerificationServer,
};

use crate::{
    config::Config,
    domain::{
        catalog::{Catalog, CatalogError},
        policy::{Policies, PolicyError},
        ChallengeSource, DomainError, Engine, EngineSettings, ProofChecker, RandomChallenges,
        StoreError,
    },
    grpc::{
        auth::AuthLayer, AuditService, DeviceService, EnrollmentService, KeysService,
        OperatorEnrollmentService, OperatorLoginService, Ready, VerificationService,
    },
    keys::KeySetupError,
    metrics::Metrics,
    store::SqliteStore,
};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key files.
    #[error(transparent)]
    Keys(#[from] KeySetupError),
    /// The signing key files.
    #[error(transparent)]
    SigningKeys(#[from] signing::SigningKeyError),
    /// The operations.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The assurance policies.
    #[error("assurance policy: {0}")]
    Policy(#[from] PolicyError),
    /// Files of the data directory or TLS.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The gRPC transport.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection setup.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A start-up task died.
    #[error("start-up task failed: {0}")]
    Task(String),
    /// The configuration (e.g. TLS files that changed since it was loaded).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

const SERVICES: [&str; 7] = [
    "zkid.v1.Enrollment",
    "zkid.v1.Verification",
    "zkid.v1.Device",
    "zkid.v1.Audit",
    "zkid.v1.Keys",
    "zkid.v1.OperatorEnrollment",
    "zkid.v1.OperatorLogin",
];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// The server's TLS settings. With `tls.client_ca`, the handshake asks for
/// a client certificate and refuses one that does not chain to that CA, but
/// lets a client without one through: it must then present a bearer token,
/// which the auth layer checks like on any connection.
fn tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, ServerError> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let files = tls.read()?;
    let mut server = ServerTlsConfig::new().identity(Identity::from_pem(files.cert, files.key));
    if let Some(ca) = files.client_ca {
        server = server
            .client_ca_root(Certificate::from_pem(ca))
            .client_auth_optional(true);
    }
    Ok(Some(server))
}

/// Opens the store, loads (or on first start generates) the keys, and
/// builds the engine.
async fn start_engine(
    config: &Config,
    stop: watch::Receiver<bool>,
    challenges: Arc<dyn ChallengeSource>,
    metrics: &Metrics,
) -> Result<(Arc<Engine>, SqliteStore), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::Io {
        what: format!("creating data directory {}", config.data_dir.display()),
        source,
    })?;
    let store = SqliteStore::open_observed(&config.database_path(), metrics.store.clone()).await?;
    let policies = Policies::load(&config.policy_dir())?;
    let circuits = Catalog::circuits_used(&policies);
    let key_dir = config.key_dir();
    let keys = tokio::task::spawn_blocking(move || keys::load_or_generate(&key_dir, &circuits))
        .await
        .map_err(|e| ServerError::Task(e.to_string()))??;
    let catalog = Catalog::new(policies, keys.circuits)?;
    let signing_keys = signing::load_or_generate(&signing::signing_dir(&config.key_dir()))?;
    let engine = Engine::new(
        Arc::new(store.clone()),
        catalog,
        ProofChecker::with_metrics(
            keys.verifier,
            config.verifier.batch_settings(),
            metrics.verifier.clone(),
        ),
        Arc::new(signing_keys),
        EngineSettings {
            session_ttl: config.session_ttl(),
            enrollment_code_ttl: Duration::from_secs(config.enrollment_code_ttl_secs),
            lockout: config.lockout(),
            agent_sessions_per_minute: config.agent_sessions_per_minute,
            device_sessions_per_minute: config.device_sessions_per_minute,
            verdict_ttl: Duration::from_secs(config.verdict_ttl_secs),
            customer_verifications_per_day: config.customer_verifications_per_day,
            step_up_window: Duration::from_secs(config.step_up_window_secs),
            change_revert_window: Duration::from_secs(config.change_revert_secs),
            challenges,
            operator_assertion_ttl: Duration::from_secs(config.operator_assertion_ttl_secs),
        },
        stop,
    )
    .with_metrics(metrics);
    engine.ping().await.map_err(|e| match e {
        DomainError::Internal(detail) => ServerError::Store(StoreError::Backend(detail)),
        other => ServerError::Task(other.to_string()),
    })?;
    Ok((Arc::new(engine), store))
}

/// Starts rayon's global pool, where proofs are verified, with its threads
/// named `zkid-verify-N`. Unnamed, they take the name of the thread that
/// first used the pool (a tokio worker), and `top -H` or a profile then
/// counts verification as async work. Call it before anything uses rayon;
/// once the pool runs, this returns false and changes nothing.
pub fn name_verification_threads() -> bool {
    rayon::ThreadPoolBuilder::new()
        .thread_name(|index| format!("zkid-verify-{index}"))
        .build_global()
        .is_ok()
}

/// The sockets one server answers on.
#[derive(Debug)]
pub struct Listeners {
    /// zkid's gRPC services, health checking and reflection.
    pub grpc: TcpListener,
    /// `GET /metrics` ([`metrics`]), if it is served.
    pub metrics: Option<TcpListener>,
}

/// Serves zkid on `listener` (and its metrics on `metrics_listen`, if set)
/// until `shutdown` completes, then finishes the RPCs in flight (open
/// streams end) and returns.
///
/// Health checking and reflection answer at once, with NOT_SERVING until
/// the store is open and the keys are loaded (generated on a first start,
/// which takes seconds), and again from the moment `shutdown` completes;
/// zkid's own RPCs answer UNAVAILABLE until then.
///
/// # Errors
/// [`ServerError`] if TLS, storage, keys or the transport fail, or the
/// metrics address cannot be bound; a failure during start-up stops the
/// server.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let metrics = match config.metrics_listen {
        Some(address) => {
            Some(
                TcpListener::bind(address)
                    .await
                    .map_err(|source| ServerError::Io {
                        what: format!("binding the metrics address {address} (metrics_listen)"),
                        source,
                    })?,
            )
        }
        None => None,
    };
    let listeners = Listeners {
        grpc: listener,
        metrics,
    };
    serve(config, listeners, shutdown, Arc::new(RandomChallenges)).await
}

/// [`run`] on listeners the caller bound (`config.metrics_listen` is not
/// read), with session challenges from `challenges`. Outside tests and
/// load measurement (see [`ChallengeSource`]), `challenges` is
/// [`RandomChallenges`]: the production binary calls [`run`], and nothing
/// outside this library API can choose another source.
///
/// # Errors
/// As [`run`].
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    challenges: Arc<dyn ChallengeSource>,
) -> Result<(), ServerError> {
    let Listeners {
        grpc: listener,
        metrics: metrics_listener,
    } = listeners;
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(zkid_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let ready: Ready = Arc::new(OnceLock::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    let metrics = Arc::new(Metrics::new());
    let metrics_server = metrics_listener.map(|listener| {
        tracing::info!(address = ?listener.local_addr().ok(), "metrics listening");
        let mut stop = stop_rx.clone();
        tokio::spawn(metrics::serve(Arc::clone(&metrics), listener, async move {
            domain::stopped(&mut stop).await;
        }))
    });

    let startup = {
        let config = config.clone();
        let ready = Arc::clone(&ready);
        let reporter = reporter.clone();
        let mut stop = stop_rx.clone();
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let (engine, store) =
                match start_engine(&config, stop.clone(), challenges, &metrics).await {
                    Ok(started) => started,
                    Err(error) => {
                        let _ = failed_tx.send(());
                        return Err(error);
                    }
                };
            // `ready` is set here only, once.
            let _ = ready.set(Arc::clone(&engine));
            set_health(&reporter, ServingStatus::Serving).await;
            tracing::info!("ready");
            let mut sweep = tokio::time::interval(Duration::from_millis(config.sweep_interval_ms));
            let mut heads =
                tokio::time::interval(Duration::from_secs(config.audit_head_interval_secs));
            loop {
                tokio::select! {
                    _ = heads.tick() => {
                        if let Err(error) = engine.sign_tree_head().await {
                            tracing::error!(%error, "signing an audit tree head failed");
                        }
                    }
                    _ = sweep.tick() => {
                        if let Err(error) = engine.sweep().await {
                            tracing::error!(%error, "expiry sweep failed");
                        }
                    }
                    () = domain::stopped(&mut stop) => break,
                }
            }
            Ok(store)
        })
    };

    let max_in = config.max_message_bytes;
    let max_out = grpc::MAX_RESPONSE_BYTES;
    let mut builder = Server::builder();
    if let Some(tls) = tls_config(&config)? {
        builder = builder.tls_config(tls)?;
    }
    let local = listener.local_addr().ok();
    let router = builder
        .timeout(Duration::from_secs(config.request_timeout_secs))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .layer(AuthLayer::new(
            Arc::clone(&ready),
            config.max_in_flight_rpcs,
        ))
        .add_service(health)
        .add_service(reflection)
        .add_service(
            EnrollmentServer::new(EnrollmentService {
                ready: Arc::clone(&ready),
            })
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        )
        .add_service(
            VerificationServer::new(VerificationService {
                ready: Arc::clone(&ready),
            })
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        )
        .add_service(
            DeviceServer::new(DeviceService {
                ready: Arc::clone(&ready),
            })
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        )
        .add_service(
            KeysServer::new(KeysService {
                ready: Arc::clone(&ready),
            })
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        )
        .add_service(
            AuditServer::new(AuditService {
                ready: Arc::clone(&ready),
            })
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        )
        .add_service(
            OperatorEnrollmentServer::new(OperatorEnrollmentService {
                ready: Arc::clone(&ready),
            })
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        )
        .add_service(
            OperatorLoginServer::new(OperatorLoginService {
                ready: Arc::clone(&ready),
            })
            .max_decoding_message_size(max_in)
            .max_encoding_message_size(max_out),
        );
    tracing::info!(address = ?local, tls = config.tls.is_some(), "listening");
    let signal = {
        let reporter = reporter.clone();
        async move {
            tokio::select! {
                () = shutdown => tracing::info!("shutting down"),
                _ = failed_rx => {}
            }
            set_health(&reporter, ServingStatus::NotServing).await;
            // Ends open streams, so that in-flight RPCs can finish.
            let _ = stop_tx.send(true);
        }
    };
    // tonic's own tcp_nodelay applies only to listeners it binds itself.
    // Without it, small replies (a verdict on a watch stream) wait for the
    // peer's delayed ACK: about 40 ms per exchange on Linux loopback.
    let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |stream| {
        if let Ok(stream) = &stream {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "could not set TCP_NODELAY");
            }
        }
        stream
    });
    let serve = router.serve_with_incoming_shutdown(incoming, signal);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let mut stopping = stop_rx.clone();
    let served = tokio::select! {
        served = serve => served,
        () = async {
            domain::stopped(&mut stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            // A client holding a stream open (e.g. a health watch) must not
            // keep the process alive forever.
            tracing::warn!("shutdown grace period over: dropping remaining connections");
            Ok(())
        }
    };
    let started = startup
        .await
        .map_err(|e| ServerError::Task(e.to_string()))?;
    if let Ok(store) = &started {
        store.close().await;
    }
    if let Some(mut metrics_server) = metrics_server {
        // A scraper holding its connection open must not keep the process
        // alive either.
        match tokio::time::timeout(grace, &mut metrics_server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::error!(%error, "the metrics endpoint failed"),
            Ok(Err(error)) => tracing::error!(%error, "the metrics endpoint's task died"),
            Err(_) => metrics_server.abort(),
        }
    }
    served?;
    started.map(|_| ())
}
