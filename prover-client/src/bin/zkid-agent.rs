//! `zkid-agent`: the agent desktop's command line, and the reference for
//! desktop integrations.
//!
//! The token is read from `ZKID_TOKEN` or `--token-file`, never from the
//! command line, where other users of the machine could read it. Over TLS
//! (an `https://` server), `ZKID_CA_CERT` names the server's CA, and a
//! client certificate registered as a credential (`ZKID_CLIENT_CERT`,
//! `ZKID_CLIENT_KEY`) can stand in for the token.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{bail, Context};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use clap::{Parser, Subcommand};
use zkid_prover::{
    agent::{AgentClient, LoginSystemClient, State},
    assertion,
    credential_file::CredentialFile,
    enroller::EnrollerClient,
    rpc::ClientTls,
};

#[derive(Parser)]
#[command(
    version,
    about = "zkid agent desktop: verify a caller without seeing their data"
)]
struct Args {
    /// The verifier's address.
    #[arg(long, env = "ZKID_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// File holding the agent's access token (else `ZKID_TOKEN`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify the caller for an operation; exits 0 only if PASSED.
    Verify {
        /// The customer reference from the CRM.
        #[arg(long)]
        customer: String,
        /// The operation, e.g. `balance_inquiry`.
        #[arg(long)]
        operation: String,
        /// The account the call is about, for operations that need it.
        #[arg(long)]
        account: Option<String>,
    },
    /// As the organization's backend (enroller token): register a customer
    /// and print the one-time code their phone enrolls with.
    EnrollCustomer {
        /// The customer reference from the CRM.
        #[arg(long)]
        customer: String,
        /// The customer's attribute credential (from `issue-credential`):
        /// only its commitment is sent.
        #[arg(long)]
        credential: Option<PathBuf>,
    },
    /// As the organization's system of record: issue a customer's
    /// attribute credential as a file for their phone (no server involved).
    IssueCredential {
        /// Account id.
        #[arg(long)]
        account: String,
        /// Date of birth, YYYY-MM-DD.
        #[arg(long)]
        date_of_birth: String,
        /// Postcode, canonical form (upper case, no spaces).
        #[arg(long)]
        postcode: String,
        /// Phone number, E.164 (e.g. +447700900123).
        #[arg(long)]
        phone: String,
        /// Last four characters of the national id.
        #[arg(long)]
        national_id_last4: String,
        /// Where to write the credential (created with mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// As the BPO's backend (enroller token): register an operator and
    /// print the one-time code their phone enrolls with (`zkid-prover
    /// enroll --code ...`).
    EnrollOperator {
        /// The operator's reference (e.g. a staff number; not a name).
        #[arg(long)]
        operator: String,
    },
    /// As a workstation login system (login token): ask the operator's
    /// phone for the second factor; on PASSED print the signed assertion
    /// and check it offline. Exits 0 only if PASSED and the check holds.
    OperatorLogin {
        /// The operator's reference.
        #[arg(long)]
        operator: String,
        /// The assertion's audience: this login system's name.
        #[arg(long, default_value = "zkid-agent")]
        audience: String,
    },
    /// As the organization's backend (enroller token): revoke a device.
    RevokeDevice {
        /// The customer reference.
        #[arg(long)]
        customer: String,
        /// The device id the phone printed at enrollment.
        #[arg(long)]
        device: String,
    },
}

/// The access token; empty when there is none but a TLS client
/// certificate is configured (`ZKID_CLIENT_CERT`), which is then the
/// credential.
fn token(token_file: Option<&Path>) -> anyhow::Result<String> {
    let token = match token_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
        None => match std::env::var("ZKID_TOKEN") {
            Ok(token) => token,
            Err(_) if ClientTls::from_env().has_client_certificate() => return Ok(String::new()),
            Err(_) => bail!(
                "no access token: set ZKID_TOKEN, pass --token-file, or use a registered client \
                 certificate (ZKID_CLIENT_CERT and ZKID_CLIENT_KEY)"
            ),
        },
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the access token is empty");
    }
    Ok(token)
}

fn run(args: Args) -> anyhow::Result<bool> {
    let Args {
        server,
        token_file,
        command,
    } = args;
    let token = || token(token_file.as_deref());
    match command {
        Command::IssueCredential {
            account,
            date_of_birth,
            postcode,
            phone,
            national_id_last4,
            out,
        } => {
            let file = CredentialFile::issue(
                &account,
                &date_of_birth,
                &postcode,
                &phone,
                &national_id_last4,
                &mut rand::rngs::OsRng,
            )?;
            file.write_new(&out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("credential written to {}", out.display());
            Ok(true)
        }
        Command::EnrollCustomer {
            customer,
            credential,
        } => {
            let attributes = match credential {
                Some(path) => {
                    let file = CredentialFile::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Some((file.commitment()?, file.schema_version))
                }
                None => None,
            };
            let enroller = EnrollerClient::connect(&server, &token()?)?;
            let code = enroller.register_customer(&customer, attributes)?;
            if code.existing_customer {
                println!("customer {customer} re-registered: their current device will be told when a new one enrolls");
            }
            println!("enrollment code {}", code.code);
            Ok(true)
        }
        Command::EnrollOperator { operator } => {
            let code = EnrollerClient::connect(&server, &token()?)?.register_operator(&operator)?;
            if code.existing_customer {
                println!("operator {operator} re-registered: their current phone will be told when a new one enrolls");
            }
            println!("enrollment code {}", code.code);
            Ok(true)
        }
        Command::OperatorLogin { operator, audience } => {
            let client = LoginSystemClient::connect(&server, &token()?)?;
            let outcome = client.login(&operator, &audience, |view| {
                if view.state == State::Pending {
                    println!(
                        "binding code {}  (the operator sees the same code on their phone)",
                        view.binding_code
                    );
                    println!("waiting for the operator's phone...");
                } else {
                    println!("{}", view.state);
                }
            })?;
            println!(
                "outcome {} level L{} session {}",
                outcome.state, outcome.level_reached, outcome.session_id
            );
            if outcome.state != State::Passed {
                return Ok(false);
            }
            let token = outcome
                .assertion
                .context("the server sent no assertion for a passed login")?;
            println!("assertion {token}");
            let keys = client.signing_keys()?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the clock is before 1970")?
                .as_secs();
            let now = i64::try_from(now).context("the clock is out of range")?;
            let claims = assertion::verify(&token, &audience, now, |id| keys.get(id).copied())
                .context("the assertion does not check")?;
            if claims.sub != operator {
                bail!(
                    "the assertion names operator {}, not {operator}",
                    claims.sub
                );
            }
            println!(
                "assertion checked offline: operator {} tenant {} audience {} level L{} expires in {}s",
                claims.sub,
                claims.tenant,
                claims.aud,
                claims.level,
                claims.exp - now
            );
            Ok(true)
        }
        Command::RevokeDevice { customer, device } => {
            EnrollerClient::connect(&server, &token()?)?.revoke_device(&customer, &device)?;
            println!("device {device} revoked");
            Ok(true)
        }
        Command::Verify {
            customer,
            operation,
            account,
        } => {
            let client = AgentClient::connect(&server, &token()?)?;
            let outcome = client.verify(&customer, &operation, account.as_deref(), |view| {
                if view.state == State::Pending {
                    println!(
                        "binding code {}  (the caller sees the same code on their phone)",
                        view.binding_code
                    );
                    println!("waiting for the caller's phone...");
                } else {
                    println!("{}", view.state);
                }
            })?;
            println!(
                "outcome {} level L{} (required L{}) session {}",
                outcome.state, outcome.level_reached, outcome.required_level, outcome.session_id
            );
            let signed = outcome
                .verdict
                .as_ref()
                .context("the server sent no signed verdict for the resolved session")?;
            println!(
                "verdict: {}.{} (key {})",
                BASE64.encode(&signed.encoded),
                BASE64.encode(&signed.signature),
                signed.key_id
            );
            let keys = client.signing_keys()?;
            let checked = outcome.check_verdict(|id| keys.get(id).copied())?;
            println!("verdict signature checked against key {}", checked.key_id);
            Ok(outcome.state == State::Passed)
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("zkid-agent: {err:#}");
            ExitCode::from(2)
        }
    }
}
