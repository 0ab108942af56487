//! `zkid-server`: serves the verifier (the default), or administers
//! tenants and credentials in the configured data directory.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zkid_server::{admin, config::Config, config::Overrides, domain::model::Role};

#[derive(Parser)]
#[command(version, about = "zkid's zero-knowledge identity verifier")]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage credentials.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Check and sign the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The server's Ed25519 signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every record and signed tree head; name the first bad one.
    Verify,
    /// Sign a tree head over the whole log now.
    SignHead,
    /// Write records, signed heads, proofs and public keys for an
    /// external auditor.
    Export {
        /// The directory to write into.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print every public key: its id and hex encoding.
    Public {
        /// Print a JWK set instead (RFC 7517, OKP/Ed25519 keys), for
        /// login systems checking operator assertions.
        #[arg(long)]
        jwks: bool,
    },
    /// Add a signing key and sign with it from the next start; earlier
    /// keys stay for checking what they signed.
    Rotate,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant (a client organization).
    Create {
        /// Id: lower-case letters, digits and '-'.
        id: String,
        /// Name shown to customers, e.g. "Acme Bank".
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Create a credential; prints its bearer token once.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// agent, enroller, auditor, admin or login (a workstation login
        /// system: operator logins only).
        #[arg(long)]
        role: String,
        /// A label for operators (no personal data).
        #[arg(long)]
        label: Option<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// Revoke a credential by id.
    Revoke {
        /// The credential id (the 24 hex digits after `zkid_`).
        id: String,
    },
    /// List a tenant's credentials.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

fn install_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // arkworks' constraint spans: noise, and a cost while proving.
        .add_directive("gr1cs=off".parse().unwrap_or_default());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match real_main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    install_tracing();
    let config = Config::load(&cli.overrides)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            zkid_server::run(config, listener, shutdown_signal()).await?;
        }
        Command::Tenant(TenantCommand::Create { id, name }) => {
            let store = admin::open_store(&config).await?;
            let tenant = admin::create_tenant(&store, &id, &name).await?;
            println!("created tenant {} ({})", tenant.id, tenant.display_name);
        }
        Command::Credential(CredentialCommand::Create {
            tenant,
            role,
            label,
            expires_in_days,
        }) => {
            let role: Role = role.parse()?;
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys_or_generate(&config)?;
            let valid_for = expires_in_days.map(|d| Duration::from_secs(d * 86_400));
            let (record, token) =
                admin::create_credential(&store, &keys, &tenant, role, label, valid_for).await?;
            eprintln!(
                "created {} credential {} for tenant {}; the token is shown once:",
                record.role, record.id, record.tenant
            );
            println!("{}", token.expose());
        }
        Command::Audit(AuditCommand::Verify) => {
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys(&config)?;
            match admin::verify_audit(&store, &keys).await? {
                Ok(summary) => println!(
                    "audit log intact: {} records, {} signed tree heads",
                    summary.records, summary.heads
                ),
                Err(finding) => anyhow::bail!("audit log check failed: {finding}"),
            }
        }
        Command::Audit(AuditCommand::SignHead) => {
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys(&config)?;
            let head = admin::sign_tree_head(&store, &keys).await?;
            println!(
                "tree head: size {} root {} key {}",
                head.size,
                hex::encode(head.root),
                head.key_id
            );
        }
        Command::Audit(AuditCommand::Export { out }) => {
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys(&config)?;
            let summary = admin::export_audit(&store, &keys, &out).await?;
            println!(
                "exported {} records and {} signed tree heads to {}",
                summary.records,
                summary.heads,
                out.display()
            );
        }
        Command::Keys(KeysCommand::Public { jwks: true }) => {
            let keys = admin::signing_keys(&config)?;
            let set = zkid_server::assertion::jwks(
                keys.public_keys()
                    .iter()
                    .map(|(id, key)| (id.as_str(), key.to_bytes())),
            );
            println!("{}", serde_json::to_string_pretty(&set)?);
        }
        Command::Keys(KeysCommand::Public { jwks: false }) => {
            let keys = admin::signing_keys(&config)?;
            for (id, key) in keys.public_keys() {
                let current = if id == keys.current_id() {
                    "\tcurrent"
                } else {
                    ""
                };
                println!("{id}\ted25519:{}{current}", hex::encode(key.as_bytes()));
            }
        }
        Command::Keys(KeysCommand::Rotate) => {
            let dir = zkid_server::signing::signing_dir(&config.key_dir());
            let id = zkid_server::signing::rotate(&dir)?;
            println!("new signing key {id}; restart the server to sign with it");
        }
        Command::Credential(CredentialCommand::Revoke { id }) => {
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys_or_generate(&config)?;
            admin::revoke_credential(&store, &keys, &id).await?;
            println!("revoked credential {id}");
        }
        Command::Credential(CredentialCommand::List { tenant }) => {
            let store = admin::open_store(&config).await?;
            for c in admin::list_credentials(&store, &tenant).await? {
                let status = if c.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}",
                    c.id,
                    c.role,
                    status,
                    c.label.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}
