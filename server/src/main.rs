//! `zkid-server`: serves the verifier (the default), or administers
//! tenants and credentials in the configured data directory.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zkid_server::{admin, config::Config, config::Overrides, domain::model::Role};

// glibc's malloc took 8.5% of the CPU at 64 sessions in flight (perf),
// much of it consolidating and unlinking free chunks; with mimalloc the
// server's CPU per session fell by 4 to 6% and its peak RSS rose by about
// 35 MiB (benches/RESULTS.md, 2026-12-03).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Customers' lockouts.
    #[command(subcommand)]
    Lockout(LockoutCommand),
    /// Assurance policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the whole flow once in this process, narrated: a throwaway
    /// server, a customer's enrollment, verifications and an operator
    /// login. Uses a temporary directory, not the configured one.
    Demo,
}

#[derive(Subcommand)]
enum LockoutCommand {
    /// Lift a customer's lock now (audited), after checking them out of
    /// band. Further failures lock again, for longer.
    Lift {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The customer's reference.
        #[arg(long)]
        customer: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check a policy file and print what each operation requires.
    Check {
        /// The TOML file.
        file: std::path::PathBuf,
    },
    /// Print the policy a tenant gets from the configured policy directory.
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

fn print_policy(policy: &zkid_server::domain::policy::Policy) {
    for op in policy.operations() {
        let requirements: Vec<&str> = op.requirements.iter().map(|r| r.as_str()).collect();
        println!(
            "{}\tL{}\t{}\tproves {} (circuits {})",
            op.name,
            op.level as u8,
            op.display_name,
            requirements.join(" + "),
            op.circuits.join(", ")
        );
        if let Some(l3) = op.level3 {
            println!(
                "\t\tand at start: credential at least {} days old, no change in {} days",
                l3.credential_min_age.as_secs() / 86_400,
                l3.no_change_within.as_secs() / 86_400
            );
        }
    }
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
    /// Create a credential; prints its bearer token once. With
    /// --client-cert, registers that TLS client certificate instead (no
    /// token): the server then needs tls.client_ca.
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
        /// A PEM client certificate (its leaf, the first in the file):
        /// only its SHA-256 fingerprint is stored.
        #[arg(long)]
        client_cert: Option<std::path::PathBuf>,
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

fn install_tracing(default: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default))
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
    if matches!(cli.command, Some(Command::Demo)) {
        // The narration is the demo's output; the server's own log lines
        // would drown it, so only warnings and errors by default.
        install_tracing("warn");
        zkid_server::name_verification_threads();
        // On Ctrl-C the demo's future is dropped, and with it the
        // temporary directory.
        tokio::select! {
            result = zkid_server::demo::run(Box::new(std::io::stdout())) => result?,
            () = shutdown_signal() => anyhow::bail!("demo interrupted"),
        }
        return Ok(());
    }
    install_tracing("info");
    let config = Config::load(&cli.overrides)?;
    match cli.command.unwrap_or(Command::Serve) {
        // Run above, before the configuration is loaded: it uses none.
        Command::Demo => {}
        Command::Serve => {
            zkid_server::name_verification_threads();
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
            client_cert,
        }) => {
            let role: Role = role.parse()?;
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys_or_generate(&config)?;
            let valid_for = expires_in_days.map(|d| Duration::from_secs(d * 86_400));
            if let Some(path) = client_cert {
                let pem = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let (record, fingerprint) = admin::create_certificate_credential(
                    &store, &keys, &tenant, role, label, valid_for, &pem,
                )
                .await
                .with_context(|| format!("registering {}", path.display()))?;
                println!(
                    "created {} credential {} for tenant {}: client certificate SHA-256 {fingerprint}",
                    record.role, record.id, record.tenant
                );
                return Ok(());
            }
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
        Command::Lockout(LockoutCommand::Lift { tenant, customer }) => {
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys_or_generate(&config)?;
            admin::lift_lockout(&store, &keys, &tenant, &customer).await?;
            println!("lifted the lock of {customer} in {tenant}");
        }
        Command::Policy(PolicyCommand::Check { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let policy = zkid_server::domain::policy::Policy::parse(&text)
                .with_context(|| format!("policy {}", file.display()))?;
            print_policy(&policy);
        }
        Command::Policy(PolicyCommand::Show { tenant }) => {
            let policies = zkid_server::domain::policy::Policies::load(&config.policy_dir())?;
            print_policy(policies.for_tenant(&tenant));
        }
        Command::Credential(CredentialCommand::Revoke { id }) => {
            let store = admin::open_store(&config).await?;
            let keys = admin::signing_keys_or_generate(&config)?;
            admin::revoke_credential(&store, &keys, &id).await?;
            println!("revoked credential {id}");
        }
        Command::Credential(CredentialCommand::List { tenant }) => {
            let store = admin::open_store(&config).await?;
            for (c, kind) in admin::list_credentials_with_kind(&store, &tenant).await? {
                let status = if c.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{kind}",
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
