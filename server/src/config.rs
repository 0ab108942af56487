//! Configuration, layered: built-in defaults, then a TOML file, then
//! environment variables `ZKID_<KEY>` (nested keys with `__`, e.g.
//! `ZKID_TLS__CERT`), then command-line flags. [`Config::validate`] checks
//! the result at start and names the offending key.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `listen` | `127.0.0.1:50051` | gRPC listen address |
//! | `metrics_listen` | unset | address of the Prometheus endpoint (`GET /metrics`, OpenMetrics text); unauthenticated, so bind it to an internal interface |
//! | `data_dir` | `./zkid-data` | database (`zkid.sqlite3`) and `keys/` |
//! | `session_ttl_secs` | 120 | how long a verification stays answerable (1..=3600) |
//! | `enrollment_code_ttl_secs` | 3600 | how long an enrollment code works (60..=2592000) |
//! | `request_timeout_secs` | 30 | deadline of unary RPCs (1..=300); streams are not cut |
//! | `max_message_bytes` | 16384 | largest request message accepted (1024..=1048576) |
//! | `sweep_interval_ms` | 1000 | how often due sessions are expired (50..=60000) |
//! | `shutdown_grace_secs` | 10 | how long shutdown waits for in-flight RPCs (1..=300) |
//! | `lockout_max_failures` | 5 | consecutive failed proofs that lock a customer (1..=100, NIST SP 800-63B) |
//! | `lockout_base_secs` | 60 | the first lock's length; each further lock doubles it (1..=86400) |
//! | `lockout_max_secs` | 86400 | the longest lock (`lockout_base_secs`..=2592000) |
//! | `agent_sessions_per_minute` | 30 | sessions one agent credential may start per minute; more get RESOURCE_EXHAUSTED (1..=10000) |
//! | `device_sessions_per_minute` | 5 | requests one device may receive per minute; more resolve LOCKED (1..=1000) |
//! | `audit_head_interval_secs` | 300 | how often the server signs a head of the audit log's Merkle tree, if it grew (1..=86400) |
//! | `verdict_ttl_secs` | 600 | how long a signed verdict may be relied on after its session resolved (1..=86400) |
//! | `customer_verifications_per_day` | 20 | verifications pushed to one customer per 24 hours; more resolve LOCKED (1..=1000) |
//! | `max_in_flight_rpcs` | 256 | unary RPCs handled at once; more are refused at once with RESOURCE_EXHAUSTED (streams do not count) (1..=100000) |
//! | `policy_dir` | `<data_dir>/policies` | assurance policies: `default.toml` for every tenant, `<tenant-id>.toml` for one; without them, the shipped default |
//! | `step_up_window_secs` | 300 | how long a PASSED session can be stepped up from (10..=3600) |
//! | `change_revert_secs` | 259200 | how long a customer can revert an enrollment or credential change; level-3 operations are refused meanwhile (60..=2592000) |
//! | `verifier.queue_capacity` | 1024 | proof submissions that may wait for verification; more are shed with RESOURCE_EXHAUSTED (1..=1000000) |
//! | `verifier.max_batch` | 16 | proofs verified together in one batch (1..=4096) |
//! | `verifier.batch_window_micros` | 0 | how long after its oldest submission a batch may wait for more, when submissions arrive faster than one per window or the batch already holds several; a lone proof at low load never waits (0..=100000) |
//! | `operator_assertion_ttl_secs` | 60 | how long an operator login assertion may be relied on (1..=3600) |
//! | `tls.cert`, `tls.key` | unset | PEM server certificate chain and key: enables TLS |
//! | `tls.client_ca` | unset | PEM CA bundle: the server asks for client certificates and verifies them against it (mTLS); needs `tls.cert` and `tls.key` |
//!
//! With `tls.client_ca`, a client certificate is optional at the handshake
//! (a client without one still authenticates with a bearer token), but one
//! that is presented must chain to that CA; a registered certificate is a
//! credential of its own (see `grpc::auth`).
//!
//! The TOML file is the one named by `--config` or `ZKID_CONFIG`; without
//! either, `zkid.toml` in the working directory if it exists.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// `ZKID_*` variables that belong to zkid's other tools (the agent and
/// phone CLIs) or name the config file itself: a shell that exports them
/// must still be able to start the server, so they are not config keys.
/// Any other unknown `ZKID_*` variable is still refused as a likely typo.
const CLIENT_VARIABLES: &[&str] = &[
    "config",
    "token",
    "server",
    "passphrase",
    "phone_dir",
    "enrollment_code",
    "ca_cert",
    "client_cert",
    "client_key",
];

/// Validated server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Metrics endpoint address; `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Session lifetime, seconds.
    pub session_ttl_secs: u64,
    /// Enrollment code lifetime, seconds.
    pub enrollment_code_ttl_secs: u64,
    /// Unary RPC deadline, seconds.
    pub request_timeout_secs: u64,
    /// Request size limit, bytes.
    pub max_message_bytes: usize,
    /// Expiry sweep interval, milliseconds.
    pub sweep_interval_ms: u64,
    /// Longest wait for in-flight RPCs at shutdown, seconds.
    pub shutdown_grace_secs: u64,
    /// Consecutive failed proofs that lock a customer.
    pub lockout_max_failures: u32,
    /// First lock's length, seconds.
    pub lockout_base_secs: u64,
    /// Longest lock, seconds.
    pub lockout_max_secs: u64,
    /// Sessions per agent credential per minute.
    pub agent_sessions_per_minute: u32,
    /// Requests per device per minute.
    pub device_sessions_per_minute: u32,
    /// Audit tree head signing interval, seconds.
    pub audit_head_interval_secs: u64,
    /// Signed verdict lifetime, seconds.
    pub verdict_ttl_secs: u64,
    /// Verifications per customer per 24 hours.
    pub customer_verifications_per_day: u32,
    /// Unary RPCs in flight before shedding.
    pub max_in_flight_rpcs: usize,
    /// Policy directory; `None` means `<data_dir>/policies`.
    pub policy_dir: Option<PathBuf>,
    /// Step-up window, seconds.
    pub step_up_window_secs: u64,
    /// Revert window after an enrollment or credential change, seconds.
    pub change_revert_secs: u64,
    /// Operator login assertion lifetime, seconds.
    pub operator_assertion_ttl_secs: u64,
    /// Optional TLS.
    pub tls: Option<TlsConfig>,
    /// Proof queueing and batching.
    pub verifier: VerifierConfig,
}

/// Proof queueing and batching (see [`crate::domain::BatchSettings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifierConfig {
    /// Submissions that may wait; more are shed.
    pub queue_capacity: usize,
    /// Proofs per batch.
    pub max_batch: usize,
    /// How long a batch may wait for more under load, microseconds.
    pub batch_window_micros: u64,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        let defaults = crate::domain::BatchSettings::default();
        Self {
            queue_capacity: defaults.queue_capacity,
            max_batch: defaults.max_batch,
            batch_window_micros: u64::try_from(defaults.window.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl VerifierConfig {
    /// The batching settings.
    pub fn batch_settings(&self) -> crate::domain::BatchSettings {
        crate::domain::BatchSettings {
            queue_capacity: self.queue_capacity,
            max_batch: self.max_batch,
            window: Duration::from_micros(self.batch_window_micros),
        }
    }
}

/// TLS files (PEM). `cert` and `key` are options only so that a missing
/// one is reported by [`Config::validate`] by name, not as a parse error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Server certificate chain, leaf first. Required.
    pub cert: Option<PathBuf>,
    /// Server private key. Required.
    pub key: Option<PathBuf>,
    /// CA bundle for client certificates; set to ask for them (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// The TLS files' contents, read and checked: what the server is started
/// with.
#[derive(Clone)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: Vec<u8>,
    /// The private key (PEM).
    pub key: Vec<u8>,
    /// The client CA bundle (PEM), if mTLS is on.
    pub client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret.
        f.debug_struct("TlsFiles")
            .field("client_ca", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

fn read_tls_file(key: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Invalid {
        key,
        problem: format!("cannot read {}: {e}", path.display()),
    })
}

/// Checks that `pem` holds at least one certificate and nothing malformed.
fn check_certificates(key: &'static str, path: &Path, pem: &[u8]) -> Result<(), ConfigError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    let invalid = |problem: String| ConfigError::Invalid {
        key,
        problem: format!("{}: {problem}", path.display()),
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| invalid(format!("malformed PEM: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid("holds no PEM certificate".into()));
    }
    Ok(())
}

impl TlsConfig {
    /// Reads the files and checks that they are what their keys say: a
    /// certificate chain, a private key, a CA bundle.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key: a missing `tls.cert` or
    /// `tls.key`, an unreadable file, PEM without the expected item.
    pub fn read(&self) -> Result<TlsFiles, ConfigError> {
        use rustls_pki_types::{pem::PemObject, PrivateKeyDer};
        let required = |key: &'static str, path: &Option<PathBuf>| {
            path.clone().ok_or_else(|| ConfigError::Invalid {
                key,
                problem: "must be set when any `tls` key is (the server's certificate and \
                          key enable TLS, which `tls.client_ca` builds on)"
                    .into(),
            })
        };
        let cert_path = required("tls.cert", &self.cert)?;
        let key_path = required("tls.key", &self.key)?;
        let cert = read_tls_file("tls.cert", &cert_path)?;
        check_certificates("tls.cert", &cert_path, &cert)?;
        let key = read_tls_file("tls.key", &key_path)?;
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| ConfigError::Invalid {
            key: "tls.key",
            problem: format!("{}: no usable PEM private key: {e}", key_path.display()),
        })?;
        let client_ca = match &self.client_ca {
            Some(path) => {
                let pem = read_tls_file("tls.client_ca", path)?;
                check_certificates("tls.client_ca", path, &pem)?;
                Some(pem)
            }
            None => None,
        };
        Ok(TlsFiles {
            cert,
            key,
            client_ca,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: None,
            data_dir: PathBuf::from("./zkid-data"),
            session_ttl_secs: 120,
            enrollment_code_ttl_secs: 3600,
            request_timeout_secs: 30,
            max_message_bytes: 16 * 1024,
            sweep_interval_ms: 1000,
            shutdown_grace_secs: 10,
            lockout_max_failures: 5,
            lockout_base_secs: 60,
            lockout_max_secs: 86_400,
            agent_sessions_per_minute: 30,
            device_sessions_per_minute: 5,
            audit_head_interval_secs: 300,
            verdict_ttl_secs: 600,
            customer_verifications_per_day: 20,
            max_in_flight_rpcs: 256,
            policy_dir: None,
            step_up_window_secs: 300,
            change_revert_secs: 72 * 3600,
            operator_assertion_ttl_secs: 60,
            tls: None,
            verifier: VerifierConfig::default(),
        }
    }
}

/// Flags that override the other layers (only those given).
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// TOML configuration file [env: ZKID_CONFIG].
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:50051.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Data directory (database and keys).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Verification session lifetime in seconds.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ttl_secs: Option<u64>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or parsed.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The named file does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value is out of range.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn range(key: &'static str, value: u64, low: u64, high: u64) -> Result<(), ConfigError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            problem: format!("{value} is outside {low}..={high}"),
        })
    }
}

impl Config {
    /// Reads the layers and validates the result.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = overrides
            .config
            .clone()
            .or_else(|| std::env::var_os("ZKID_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path)),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("zkid.toml").is_file() => {
                figment = figment.merge(Toml::file("zkid.toml"));
            }
            None => {}
        }
        let config: Config = figment
            .merge(Env::prefixed("ZKID_").ignore(CLIENT_VARIABLES).split("__"))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::Invalid {
                key: "metrics_listen",
                problem: format!("{} is also `listen`, the gRPC address", self.listen),
            });
        }
        range("session_ttl_secs", self.session_ttl_secs, 1, 3600)?;
        range(
            "enrollment_code_ttl_secs",
            self.enrollment_code_ttl_secs,
            60,
            30 * 24 * 3600,
        )?;
        range("request_timeout_secs", self.request_timeout_secs, 1, 300)?;
        range(
            "max_message_bytes",
            self.max_message_bytes as u64,
            1024,
            1024 * 1024,
        )?;
        range("sweep_interval_ms", self.sweep_interval_ms, 50, 60_000)?;
        range("shutdown_grace_secs", self.shutdown_grace_secs, 1, 300)?;
        range(
            "lockout_max_failures",
            u64::from(self.lockout_max_failures),
            1,
            100,
        )?;
        range("lockout_base_secs", self.lockout_base_secs, 1, 86_400)?;
        range("verdict_ttl_secs", self.verdict_ttl_secs, 1, 86_400)?;
        range(
            "operator_assertion_ttl_secs",
            self.operator_assertion_ttl_secs,
            1,
            3600,
        )?;
        range(
            "customer_verifications_per_day",
            u64::from(self.customer_verifications_per_day),
            1,
            1000,
        )?;
        range(
            "audit_head_interval_secs",
            self.audit_head_interval_secs,
            1,
            86_400,
        )?;
        range(
            "lockout_max_secs",
            self.lockout_max_secs,
            self.lockout_base_secs,
            30 * 24 * 3600,
        )?;
        range(
            "agent_sessions_per_minute",
            u64::from(self.agent_sessions_per_minute),
            1,
            10_000,
        )?;
        range(
            "device_sessions_per_minute",
            u64::from(self.device_sessions_per_minute),
            1,
            1000,
        )?;
        range("step_up_window_secs", self.step_up_window_secs, 10, 3600)?;
        range(
            "max_in_flight_rpcs",
            self.max_in_flight_rpcs as u64,
            1,
            100_000,
        )?;
        range(
            "change_revert_secs",
            self.change_revert_secs,
            60,
            30 * 24 * 3600,
        )?;
        range(
            "verifier.queue_capacity",
            self.verifier.queue_capacity as u64,
            1,
            1_000_000,
        )?;
        range(
            "verifier.max_batch",
            self.verifier.max_batch as u64,
            1,
            4096,
        )?;
        range(
            "verifier.batch_window_micros",
            self.verifier.batch_window_micros,
            0,
            100_000,
        )?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "data_dir",
                problem: "must not be empty".into(),
            });
        }
        if let Some(tls) = &self.tls {
            tls.read()?;
        }
        Ok(())
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("zkid.sqlite3")
    }

    /// The key directory.
    pub fn key_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// The policy directory.
    pub fn policy_dir(&self) -> PathBuf {
        self.policy_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("policies"))
    }

    /// Session lifetime.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    /// The lockout policy.
    pub fn lockout(&self) -> crate::domain::model::LockoutPolicy {
        crate::domain::model::LockoutPolicy {
            max_failures: self.lockout_max_failures,
            base: Duration::from_secs(self.lockout_base_secs),
            max: Duration::from_secs(self.lockout_max_secs),
        }
    }
}

#[cfg(test)]
// figment's Jail closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.data_dir, PathBuf::from("./zkid-data"));
        assert_eq!(config.session_ttl_secs, 120);
    }

    #[test]
    fn validation_names_the_key() {
        let config = Config {
            session_ttl_secs: 0,
            ..Config::default()
        };
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("session_ttl_secs"), "{message}");
        let config = Config {
            max_message_bytes: 100 * 1024 * 1024,
            ..Config::default()
        };
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("max_message_bytes"), "{message}");
        // NIST SP 800-63B: no more than 100 consecutive failures.
        let config = Config {
            lockout_max_failures: 101,
            ..Config::default()
        };
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("lockout_max_failures"), "{message}");
        assert!(Config {
            lockout_max_failures: 100,
            ..Config::default()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn verifier_keys_are_read_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "zkid.toml",
                "[verifier]\nqueue_capacity = 10\nmax_batch = 8",
            )?;
            jail.set_env("ZKID_VERIFIER__BATCH_WINDOW_MICROS", "250");
            let config = Config::load(&Overrides::default()).expect("valid");
            let settings = config.verifier.batch_settings();
            assert_eq!(settings.queue_capacity, 10);
            assert_eq!(settings.max_batch, 8);
            assert_eq!(settings.window, Duration::from_micros(250));
            Ok(())
        });
        let config = Config {
            verifier: VerifierConfig {
                queue_capacity: 0,
                ..VerifierConfig::default()
            },
            ..Config::default()
        };
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("verifier.queue_capacity"), "{message}");
    }

    #[test]
    fn the_metrics_address_is_read_from_the_environment_and_checked() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(&Overrides::default()).expect("valid");
            assert_eq!(config.metrics_listen, None);
            jail.set_env("ZKID_METRICS_LISTEN", "127.0.0.1:9464");
            let config = Config::load(&Overrides::default()).expect("valid");
            assert_eq!(
                config.metrics_listen,
                Some("127.0.0.1:9464".parse().expect("addr"))
            );
            jail.set_env("ZKID_METRICS_LISTEN", "not an address");
            let message = Config::load(&Overrides::default())
                .expect_err("invalid")
                .to_string();
            // figment names the variable: ZKID_ and METRICS_LISTEN.
            assert!(message.contains("METRICS_LISTEN"), "{message}");
            Ok(())
        });
        let config = Config {
            metrics_listen: Some(Config::default().listen),
            ..Config::default()
        };
        let message = config.validate().expect_err("invalid").to_string();
        assert!(message.contains("metrics_listen"), "{message}");
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                "session_ttl_secs = 30\nsweep_interval_ms = 200\nlisten = \"127.0.0.1:6000\"",
            )?;
            jail.set_env("ZKID_TOKEN", "a client's token, not a config key");
            jail.set_env("ZKID_PASSPHRASE", "a phone's passphrase");
            jail.set_env("ZKID_SWEEP_INTERVAL_MS", "300");
            jail.set_env("ZKID_LISTEN", "127.0.0.1:7000");
            let overrides = Overrides {
                config: Some("custom.toml".into()),
                listen: Some("127.0.0.1:8000".parse().expect("addr")),
                ..Overrides::default()
            };
            let config = Config::load(&overrides).expect("valid");
            assert_eq!(config.session_ttl_secs, 30); // file
            assert_eq!(config.sweep_interval_ms, 300); // env over file
            assert_eq!(config.listen.to_string(), "127.0.0.1:8000"); // flag over env
            assert_eq!(config.request_timeout_secs, 30); // default
            Ok(())
        });
    }

    /// A self-signed certificate and its key, PEM, written to `dir`.
    fn tls_files(dir: &Path) -> TlsConfig {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        TlsConfig {
            cert: Some(write("cert.pem", &cert.pem())),
            key: Some(write("key.pem", &key.serialize_pem())),
            client_ca: Some(write("ca.pem", &cert.pem())),
        }
    }

    fn tls_problem(tls: TlsConfig) -> String {
        Config {
            tls: Some(tls),
            ..Config::default()
        }
        .validate()
        .expect_err("invalid")
        .to_string()
    }

    #[test]
    fn tls_files_are_checked_at_start() {
        let dir = tempfile::tempdir().expect("dir");
        let good = tls_files(dir.path());
        let config = Config {
            tls: Some(good.clone()),
            ..Config::default()
        };
        assert!(config.validate().is_ok());
        let files = good.read().expect("readable");
        assert!(files.client_ca.is_some());
        assert!(!format!("{files:?}").contains("PRIVATE KEY"));

        // client_ca alone: TLS needs the server's own certificate and key.
        let message = tls_problem(TlsConfig {
            cert: None,
            key: None,
            client_ca: good.client_ca.clone(),
        });
        assert!(message.contains("`tls.cert`"), "{message}");
        let message = tls_problem(TlsConfig {
            key: None,
            ..good.clone()
        });
        assert!(message.contains("`tls.key`"), "{message}");

        let message = tls_problem(TlsConfig {
            client_ca: Some(dir.path().join("absent.pem")),
            ..good.clone()
        });
        assert!(
            message.contains("`tls.client_ca`") && message.contains("absent.pem"),
            "{message}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "no PEM here").expect("write");
        let message = tls_problem(TlsConfig {
            client_ca: Some(garbage.clone()),
            ..good.clone()
        });
        assert!(
            message.contains("`tls.client_ca`") && message.contains("no PEM certificate"),
            "{message}"
        );
        let message = tls_problem(TlsConfig {
            key: Some(garbage.clone()),
            ..good.clone()
        });
        assert!(message.contains("`tls.key`"), "{message}");
        // A key where the certificate belongs.
        let message = tls_problem(TlsConfig {
            cert: good.key.clone(),
            ..good.clone()
        });
        assert!(message.contains("`tls.cert`"), "{message}");

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let message = tls_problem(TlsConfig {
            client_ca: Some(broken),
            ..good
        });
        assert!(message.contains("malformed PEM"), "{message}");
    }

    #[test]
    fn tls_keys_load_from_the_environment_and_client_variables_are_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        let good = tls_files(dir.path());
        figment::Jail::expect_with(|jail| {
            let path = |p: &Option<PathBuf>| p.as_ref().expect("path").display().to_string();
            jail.set_env("ZKID_TLS__CERT", path(&good.cert));
            jail.set_env("ZKID_TLS__KEY", path(&good.key));
            jail.set_env("ZKID_TLS__CLIENT_CA", path(&good.client_ca));
            // The clients' TLS variables are not the server's keys.
            jail.set_env("ZKID_CA_CERT", "/nonexistent/ca.pem");
            jail.set_env("ZKID_CLIENT_CERT", "/nonexistent/agent.pem");
            jail.set_env("ZKID_CLIENT_KEY", "/nonexistent/agent.key");
            let config = Config::load(&Overrides::default()).expect("valid");
            assert_eq!(config.tls.as_ref(), Some(&good));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_reported() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("zkid.toml", "sesion_ttl_secs = 30")?;
            let message = Config::load(&Overrides::default())
                .expect_err("typo")
                .to_string();
            assert!(message.contains("sesion_ttl_secs"), "{message}");
            let overrides = Overrides {
                config: Some("absent.toml".into()),
                ..Overrides::default()
            };
            assert!(matches!(
                Config::load(&overrides),
                Err(ConfigError::MissingFile(_))
            ));
            Ok(())
        });
    }
}
