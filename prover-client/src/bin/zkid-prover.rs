//! `zkid-prover`: the customer's phone, as a command line.
//!
//! The vault passphrase comes from `ZKID_PASSPHRASE` or a prompt; the PIN
//! from a prompt without echo, or from standard input with `--stdin` (for
//! scripts and tests). Neither is ever accepted as an argument.

use std::{
    io::{BufRead, Write},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;
use zkid_circuits::pin::Pin;
use zkid_prover::{
    agent::State,
    credential_file::CredentialFile,
    phone::{PendingRequest, Phone, PhoneConfig, PhoneEvent, Progress, RevertOffer},
};

#[derive(Parser)]
#[command(
    version,
    about = "zkid on the customer's phone: prove who you are without telling"
)]
struct Args {
    /// Where the encrypted vault and the key cache live.
    #[arg(long, env = "ZKID_PHONE_DIR", default_value = "zkid-phone")]
    data_dir: PathBuf,
    /// Read answers (approval, PIN, passphrase) from standard input, one per
    /// line, instead of prompting.
    #[arg(long, global = true)]
    stdin: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this device with the code your organization gave you.
    Enroll {
        /// The verifier's address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        server: String,
        /// The one-time enrollment code (else `ZKID_ENROLLMENT_CODE`).
        #[arg(long, env = "ZKID_ENROLLMENT_CODE", hide_env_values = true)]
        code: String,
    },
    /// Wait for verification requests and answer them.
    Listen {
        /// Stop after answering one request.
        #[arg(long)]
        once: bool,
        /// Give up after this many seconds without a request (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Decline the next request: "I did not call".
    Decline {
        /// Give up after this many seconds without a request.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Import the attribute credential your organization issued (a file);
    /// it is sealed in the vault, and the file can then be deleted.
    ImportCredential {
        /// The credential file.
        file: PathBuf,
    },
    /// Show this device's enrollment.
    Status,
    /// Undo the change the server last told this phone about (a new device,
    /// a revocation, a new credential) while its window is open: proves
    /// your PIN and this phone's secret.
    Revert,
}

struct Answers {
    stdin: bool,
}

impl Answers {
    fn line(&self, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
        if self.stdin {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin().lock().read_line(&mut line)?;
            if line.is_empty() {
                bail!("standard input ended while waiting for: {prompt}");
            }
            Ok(Zeroizing::new(
                line.trim_end_matches(['\r', '\n']).to_owned(),
            ))
        } else {
            print!("{prompt}");
            std::io::stdout().flush()?;
            let mut line = Zeroizing::new(String::new());
            std::io::stdin().lock().read_line(&mut line)?;
            Ok(Zeroizing::new(line.trim().to_owned()))
        }
    }

    fn secret(&self, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
        if self.stdin {
            self.line(prompt)
        } else {
            Ok(Zeroizing::new(rpassword::prompt_password(prompt)?))
        }
    }

    fn passphrase(&self) -> anyhow::Result<Zeroizing<String>> {
        match std::env::var("ZKID_PASSPHRASE") {
            Ok(p) => Ok(Zeroizing::new(p)),
            Err(_) => self.secret("vault passphrase: "),
        }
    }

    fn pin(&self) -> anyhow::Result<Pin> {
        let text = self.secret("PIN: ")?;
        Pin::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

fn show(request: &PendingRequest) {
    let left = request
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    println!();
    println!("{}", request.binding_message);
    println!("  organization  {}", request.organization);
    println!(
        "  operation     {} (level L{})",
        request.operation, request.level
    );
    println!(
        "  binding code  {}  <- check the agent reads you the same code",
        request.binding_code
    );
    println!("  expires in    {}s", left.as_secs());
    println!("  you will prove:");
    for requirement in &request.requirements {
        println!("    - {}", requirement.describe());
    }
}

/// A progress display on standard error for the phone's slow work (key
/// download and preparation, proving); indicatif draws nothing when
/// standard error is not a terminal, so scripts see only the result lines.
fn show_progress(phone: &mut Phone) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let style = |template: &str| {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
    };
    let spinner = style("{spinner} {msg} {elapsed}");
    let download = style("{spinner} downloading proving key {bytes}/{total_bytes} {wide_bar}");
    let shown = bar.clone();
    let mut downloading = false;
    phone.on_progress(move |progress| match progress {
        Progress::Downloading { received, total } => {
            if !downloading {
                downloading = true;
                shown.set_style(download.clone());
            }
            shown.set_length(total.max(received));
            shown.set_position(received);
        }
        Progress::Preparing => {
            downloading = false;
            shown.set_style(spinner.clone());
            shown.set_message("preparing proving key");
        }
        Progress::Proving { index, count } => {
            downloading = false;
            shown.set_style(spinner.clone());
            shown.set_message(format!("proving {}/{count}", index + 1));
        }
    });
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn answer(phone: &mut Phone, answers: &Answers, request: &PendingRequest) -> anyhow::Result<State> {
    show(request);
    let approve = answers.line("approve? [y/N] ")?;
    if !matches!(approve.to_ascii_lowercase().as_str(), "y" | "yes") {
        let state = phone.decline(request)?;
        println!("declined: {state}");
        return Ok(state);
    }
    let pin = answers.pin()?;
    let bar = show_progress(phone);
    let prepared = phone.prepare(request);
    let started = Instant::now();
    let outcome = prepared.and_then(|()| phone.approve(request, &pin));
    bar.finish_and_clear();
    let outcome = outcome?;
    eprintln!("proved in {} ms", started.elapsed().as_millis());
    println!("outcome {} level L{}", outcome.state, outcome.level_reached);
    Ok(outcome.state)
}

/// `at` as an RFC 3339 UTC time, to the second.
fn utc(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Tells the customer what changed and, if it can be undone, how.
fn notice(what: &str, offer: Option<&RevertOffer>, data_dir: &std::path::Path) {
    println!("NOTICE: {what}.");
    match offer {
        Some(offer) => {
            let left = offer
                .until
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            println!(
                "If this was not you, undo it before {} (in {} min) with:",
                utc(offer.until),
                left.as_secs() / 60
            );
            println!("  zkid-prover --data-dir {} revert", data_dir.display());
            println!("and contact your organization.");
        }
        None => println!("If this was not you, contact your organization now."),
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    let answers = Answers { stdin: args.stdin };
    let config = PhoneConfig::new(&args.data_dir);
    match args.command {
        Command::Enroll { server, code } => {
            let pin = answers.pin()?;
            let passphrase = answers.passphrase()?;
            let phone = Phone::enroll(config, &server, &code, &pin, &passphrase)
                .context("enrollment failed")?;
            let status = phone.status();
            println!(
                "enrolled device {} for {} at {}",
                status.device_id, status.customer_ref, status.organization
            );
            Ok(true)
        }
        Command::Status => {
            let passphrase = answers.passphrase()?;
            let phone = Phone::open(config, &passphrase)?;
            let status = phone.status();
            println!("server        {}", status.server);
            println!("organization  {}", status.organization);
            println!("customer      {}", status.customer_ref);
            println!("device        {}", status.device_id);
            println!(
                "credential    {}",
                if status.has_credential {
                    "imported"
                } else {
                    "none"
                }
            );
            for key in status.cached_keys {
                println!("proving key   {key}");
            }
            if let Some(offer) = status.revert_offer {
                println!(
                    "revertible    {} (until {})",
                    offer.change,
                    utc(offer.until)
                );
            }
            Ok(true)
        }
        Command::Revert => {
            let passphrase = answers.passphrase()?;
            let mut phone = Phone::open(config, &passphrase)?;
            let offer = phone
                .status()
                .revert_offer
                .context("there is no change to undo: the server has offered none to this phone")?;
            println!(
                "undoing: {} (revertible until {})",
                offer.change,
                utc(offer.until)
            );
            let pin = answers.pin()?;
            let bar = show_progress(&mut phone);
            let reverted = phone.revert(&pin);
            bar.finish_and_clear();
            let reverted_at = reverted.context("the change was not undone")?;
            println!("change undone at {}", utc(reverted_at));
            Ok(true)
        }
        Command::ImportCredential { file } => {
            let credential = CredentialFile::read(&file)
                .with_context(|| format!("cannot import {}", file.display()))?;
            let passphrase = answers.passphrase()?;
            let mut phone = Phone::open(config, &passphrase)?;
            phone.import_credential(credential)?;
            println!(
                "credential imported into the vault; you may now delete {}",
                file.display()
            );
            Ok(true)
        }
        Command::Listen { once, timeout } => {
            let passphrase = answers.passphrase()?;
            let mut phone = Phone::open(config, &passphrase)?;
            let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_secs(timeout));
            // While this device is in good standing: a revoked one can no
            // longer fetch the key its revert proof needs.
            let bar = show_progress(&mut phone);
            let cached = phone.cache_revert_key();
            bar.finish_and_clear();
            if let Err(e) = cached {
                eprintln!("note: the key for undoing changes is not cached: {e}");
            }
            phone.watch()?;
            println!("listening for verification requests...");
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    println!("no request within {timeout}s");
                    return Ok(false);
                }
                match phone.next_event(Duration::from_secs(1))? {
                    None => continue,
                    Some(PhoneEvent::Request(request)) => {
                        let state = answer(&mut phone, &answers, &request)?;
                        if once {
                            return Ok(state == State::Passed);
                        }
                    }
                    Some(PhoneEvent::Closed { session_id, state }) => {
                        println!("request {session_id} closed: {state}");
                    }
                    Some(PhoneEvent::Replaced(offer)) => {
                        notice(
                            "another device was enrolled for your account",
                            offer.as_ref(),
                            &args.data_dir,
                        );
                        return Ok(false);
                    }
                    Some(PhoneEvent::Revoked(offer)) => {
                        notice("this device was revoked", offer.as_ref(), &args.data_dir);
                        return Ok(false);
                    }
                    Some(PhoneEvent::CredentialChanged(offer)) => {
                        notice(
                            "a new attribute credential was registered for your account",
                            offer.as_ref(),
                            &args.data_dir,
                        );
                    }
                }
            }
        }
        Command::Decline { timeout } => {
            let passphrase = answers.passphrase()?;
            let mut phone = Phone::open(config, &passphrase)?;
            let deadline = Instant::now() + Duration::from_secs(timeout);
            while Instant::now() < deadline {
                if let Some(PhoneEvent::Request(request)) =
                    phone.next_event(Duration::from_secs(1))?
                {
                    show(&request);
                    let state = phone.decline(&request)?;
                    println!("declined: {state}");
                    return Ok(true);
                }
            }
            bail!("no request within {timeout}s")
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("zkid-prover: {err:#}");
            ExitCode::from(2)
        }
    }
}
