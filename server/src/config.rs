//! Configuration, layered: built-in defaults, then a TOML file, then
//! environment variables `ZKID_<KEY>` (nested keys with `__`, e.g.
//! `ZKID_TLS__CERT`), then command-line flags. [`Config::validate`] checks
//! the result at start and names the offending key.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `listen` | `127.0.0.1:50051` | gRPC listen address |
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
//! | `operator_assertion_ttl_secs` | 60 | how long an operator login assertion may be relied on (1..=3600) |
//! | `tls.cert`, `tls.key` | unset | PEM server certificate chain and key: enables TLS |
//! | `tls.client_ca` | unset | PEM CA: requires client certificates (mTLS) |
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
];

/// Validated server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
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
    /// Operator login assertion lifetime, seconds.
    pub operator_assertion_ttl_secs: u64,
    /// Optional TLS.
    pub tls: Option<TlsConfig>,
}

/// TLS files (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// CA for client certificates; set to require mTLS.
    pub client_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
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
            operator_assertion_ttl_secs: 60,
            tls: None,
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
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "data_dir",
                problem: "must not be empty".into(),
            });
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [
                ("tls.cert", Some(&tls.cert)),
                ("tls.key", Some(&tls.key)),
                ("tls.client_ca", tls.client_ca.as_ref()),
            ] {
                if let Some(path) = path {
                    if !path.is_file() {
                        return Err(ConfigError::Invalid {
                            key,
                            problem: format!("{} is not a readable file", path.display()),
                        });
                    }
                }
            }
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
