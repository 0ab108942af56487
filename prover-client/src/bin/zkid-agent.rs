//! `zkid-agent`: the agent desktop's command line, and the reference for
//! desktop integrations.
//!
//! The token is read from `ZKID_TOKEN` or `--token-file`, never from the
//! command line, where other users of the machine could read it.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use zkid_prover::{
    agent::{AgentClient, State},
    enroller::EnrollerClient,
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

fn token(args: &Args) -> anyhow::Result<String> {
    let token = match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
        None => std::env::var("ZKID_TOKEN")
            .context("no access token: set ZKID_TOKEN or pass --token-file")?,
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the access token is empty");
    }
    Ok(token)
}

fn run(args: Args) -> anyhow::Result<bool> {
    let token = token(&args)?;
    match args.command {
        Command::EnrollCustomer { customer } => {
            let enroller = EnrollerClient::connect(&args.server, &token)?;
            let code = enroller.register_customer(&customer, None)?;
            if code.existing_customer {
                println!("customer {customer} re-registered: their current device will be told when a new one enrolls");
            }
            println!("enrollment code {}", code.code);
            Ok(true)
        }
        Command::RevokeDevice { customer, device } => {
            EnrollerClient::connect(&args.server, &token)?.revoke_device(&customer, &device)?;
            println!("device {device} revoked");
            Ok(true)
        }
        Command::Verify {
            customer,
            operation,
            account,
        } => {
            let client = AgentClient::connect(&args.server, &token)?;
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
