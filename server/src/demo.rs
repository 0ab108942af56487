//! `zkid-server demo`: the whole flow in one process, for a first look.
//!
//! Nothing is simulated: the real server ([`crate::run`]) serves on
//! 127.0.0.1:0 from a temporary data directory (its keys are generated on
//! this first start), the tenant and its credentials are made through
//! [`crate::admin`], and the organization, the customer's phone, the agent
//! desktop and a workstation login system are the `zkid_prover` library
//! clients, talking gRPC to it. Each step is narrated with what each party
//! sees, and what the agent does not.
//!
//! The clients are blocking (each owns a small runtime), so the walkthrough
//! runs on its own OS threads, never inside the server's runtime.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zkid_server::demo::DemoError> {
//! zkid_server::demo::run(Box::new(std::io::stdout())).await?;
//! # Ok(())
//! # }
//! ```

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    sync::mpsc,
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::StreamExt;
use tonic::transport::Endpoint;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use zkid_circuits::pin::Pin;
use zkid_prover::{
    agent::{AgentClient, LoginSystemClient, SessionView, State},
    credential_file::CredentialFile,
    enroller::EnrollerClient,
    phone::{PendingRequest, Phone, PhoneConfig, PhoneEvent},
};

use crate::{
    admin,
    config::Config,
    domain::{model::Role, DomainError},
    ServerError,
};

const TENANT: &str = "acme";
const TENANT_NAME: &str = "Acme Bank";
const CUSTOMER: &str = "cust-1";
const ACCOUNT: &str = "ACC-1";
/// The customer's PIN, as if typed on the phone. A demo value: real PINs
/// are never printed.
const PIN: &str = "4711";
const WRONG_PIN: &str = "1234";
const OPERATOR: &str = "op-7";
const OPERATOR_PIN: &str = "2580";
const AUDIENCE: &str = "workstation:ws-12";
/// The phones' vault passphrase. The demo's vaults live in its temporary
/// directory and are deleted with it.
const PASSPHRASE: &str = "demo vault passphrase";

/// Key generation on a first start takes seconds in a release build and
/// minutes in an unoptimised one.
const READY_WITHIN: Duration = Duration::from_secs(900);
/// How long a phone waits for a pushed request, or the agent for a change.
const STEP_WITHIN: Duration = Duration::from_secs(60);
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(30);

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The temporary directory or the output.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed to start or stopped abnormally.
    #[error("the server: {0}")]
    Server(#[from] ServerError),
    /// Creating the tenant or its credentials.
    #[error("administration: {0}")]
    Admin(#[from] DomainError),
    /// A client call failed.
    #[error("{step}: {reason}")]
    Client {
        /// The step.
        step: &'static str,
        /// The client's error.
        reason: String,
    },
    /// A step did not behave as the demo expects.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

fn client<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> DemoError {
    move |e| DemoError::Client {
        step,
        reason: e.to_string(),
    }
}

/// Writes the narration. Output errors end the demo: a demo nobody can
/// read has failed.
struct Narrator {
    out: Box<dyn Write + Send>,
}

impl Narrator {
    fn line(&mut self, text: &str) -> Result<(), DemoError> {
        writeln!(self.out, "{text}")
            .and_then(|()| self.out.flush())
            .map_err(|source| DemoError::Io {
                what: "writing the demo's output",
                source,
            })
    }

    fn step(&mut self, title: &str) -> Result<(), DemoError> {
        self.line("")?;
        self.line(&format!("== {title}"))
    }

    fn party(&mut self, who: &str, text: &str) -> Result<(), DemoError> {
        self.line(&format!("  [{who:<12}] {text}"))
    }
}

/// The bearer tokens the demo's parties use.
struct Tokens {
    enroller: String,
    agent: String,
    login: String,
}

/// Runs the demo, narrating to `out`: starts a server in a temporary
/// directory, walks through enrollment, verifications and an operator
/// login, shuts the server down and removes the directory.
///
/// # Errors
/// [`DemoError`]: the first step that failed or did not end as expected.
pub async fn run(out: Box<dyn Write + Send>) -> Result<(), DemoError> {
    let mut narrator = Narrator { out };
    let dir = tempfile::Builder::new()
        .prefix("zkid-demo-")
        .tempdir()
        .map_err(|source| DemoError::Io {
            what: "creating a temporary directory",
            source,
        })?;
    let config = Config {
        listen: "127.0.0.1:0"
            .parse()
            .map_err(|_| DemoError::Unexpected("the loopback address does not parse".into()))?,
        data_dir: dir.path().join("server"),
        ..Config::default()
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| DemoError::Io {
            what: "binding 127.0.0.1:0",
            source,
        })?;
    let address = listener.local_addr().map_err(|source| DemoError::Io {
        what: "reading the bound address",
        source,
    })?;
    narrator.step("Starting the zkid server")?;
    narrator.party(
        "server",
        &format!(
            "listening on {address}, data in a temporary directory; generating its proving and verifying keys (first start: this takes a moment)..."
        ),
    )?;
    let (stop, stopped) = oneshot::channel::<()>();
    let mut server = tokio::spawn(crate::run(config.clone(), listener, async {
        let _ = stopped.await;
    }));
    let url = format!("http://{address}");
    let ready = tokio::select! {
        ready = wait_serving(&url) => ready,
        finished = &mut server => {
            return Err(match finished {
                Ok(Err(error)) => error.into(),
                Ok(Ok(())) => DemoError::Unexpected("the server stopped during start-up".into()),
                Err(join) => DemoError::Unexpected(format!("the server task failed: {join}")),
            });
        }
    };

    let walked = match ready {
        Ok(()) => walk(&config, &url, narrator).await,
        Err(error) => Err(error),
    };

    let _ = stop.send(());
    let stopped = tokio::time::timeout(SHUTDOWN_WITHIN, server).await;
    let (mut narrator, result) = match walked {
        Ok(narrator) => (Some(narrator), Ok(())),
        Err(error) => (None, Err(error)),
    };
    match stopped {
        Ok(Ok(Ok(()))) => {}
        // A server that failed is the cause of whatever the walkthrough
        // ran into (e.g. a health stream cut short): report it.
        Ok(Ok(Err(error))) => return Err(error.into()),
        Ok(Err(join)) => {
            return result.and(Err(DemoError::Unexpected(format!(
                "the server task failed: {join}"
            ))))
        }
        Err(_) => {
            return result.and(Err(DemoError::Unexpected(
                "the server did not shut down within 30 seconds".into(),
            )))
        }
    }
    result?;
    dir.close().map_err(|source| DemoError::Io {
        what: "removing the temporary directory",
        source,
    })?;
    if let Some(narrator) = narrator.as_mut() {
        narrator.step("Done")?;
        narrator.party(
            "server",
            "shut down gracefully; its temporary directory is removed",
        )?;
    }
    Ok(())
}

/// Waits until the server's health service says SERVING.
async fn wait_serving(url: &str) -> Result<(), DemoError> {
    let wait = async {
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(client("connecting to the server"))?
            .connect()
            .await
            .map_err(client("connecting to the server"))?;
        let mut updates = HealthClient::new(channel)
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(client("watching the server's health"))?
            .into_inner();
        while let Some(update) = updates.next().await {
            let update = update.map_err(client("watching the server's health"))?;
            if update.status == ServingStatus::Serving as i32 {
                return Ok(());
            }
        }
        Err(DemoError::Unexpected(
            "the server's health stream ended before it was ready".into(),
        ))
    };
    tokio::time::timeout(READY_WITHIN, wait)
        .await
        .map_err(|_| DemoError::Unexpected("the server was not ready within 15 minutes".into()))?
}

/// Creates the tenant and its credentials, then runs the walkthrough on
/// its own thread; returns the narrator for the closing lines.
async fn walk(config: &Config, url: &str, mut narrator: Narrator) -> Result<Narrator, DemoError> {
    let tokens = administer(config, &mut narrator).await?;
    let url = url.to_owned();
    let work_dir = config
        .data_dir
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| DemoError::Unexpected("the data directory has no parent".into()))?;
    let (done, finished) = oneshot::channel();
    thread::Builder::new()
        .name("zkid-demo".into())
        .spawn(move || {
            let result = walkthrough(&url, &tokens, &work_dir, &mut narrator);
            let _ = done.send(result.map(|()| narrator));
        })
        .map_err(|source| DemoError::Io {
            what: "starting the walkthrough thread",
            source,
        })?;
    finished
        .await
        .map_err(|_| DemoError::Unexpected("the walkthrough thread died".into()))?
}

async fn administer(config: &Config, narrator: &mut Narrator) -> Result<Tokens, DemoError> {
    narrator.party("server", "ready")?;
    narrator.step("The zkid administrator sets up a tenant (zkid-server tenant, credential)")?;
    let store = admin::open_store(config).await?;
    let tenant = admin::create_tenant(&store, TENANT, TENANT_NAME).await?;
    narrator.party(
        "admin",
        &format!("tenant {} ({})", tenant.id, tenant.display_name),
    )?;
    let keys = admin::signing_keys(config)?;
    let mut tokens = Vec::new();
    for (role, label, use_) in [
        (Role::Enroller, "onboarding", "the bank's onboarding system"),
        (
            Role::Agent,
            "call-centre",
            "the call-centre agent's desktop",
        ),
        (Role::Login, "workstations", "the workstation login system"),
    ] {
        let (record, token) =
            admin::create_credential(&store, &keys, TENANT, role, Some(label.into()), None).await?;
        narrator.party(
            "admin",
            &format!(
                "{} credential {} for {use_} (its bearer token is handed over once, not shown)",
                record.role, record.id
            ),
        )?;
        tokens.push(token.expose().to_owned());
    }
    store.close().await;
    let mut tokens = tokens.into_iter();
    let mut next = || {
        tokens
            .next()
            .ok_or_else(|| DemoError::Unexpected("a credential is missing".into()))
    };
    Ok(Tokens {
        enroller: next()?,
        agent: next()?,
        login: next()?,
    })
}

fn pin(text: &str) -> Result<Pin, DemoError> {
    Pin::parse(text).map_err(|e| DemoError::Unexpected(format!("the demo's PIN: {e}")))
}

/// The walkthrough proper, on a plain thread: every client here blocks.
fn walkthrough(
    url: &str,
    tokens: &Tokens,
    dir: &Path,
    narrator: &mut Narrator,
) -> Result<(), DemoError> {
    // 1. The organization registers the customer.
    narrator.step(&format!(
        "1. {TENANT_NAME} registers customer {CUSTOMER} with an attribute credential"
    ))?;
    let credential = CredentialFile::issue(
        ACCOUNT,
        "1990-01-31",
        "SW1A1AA",
        "+447700900123",
        "1234",
        &mut rand::rngs::OsRng,
    )
    .map_err(client("issuing the attribute credential"))?;
    let commitment = credential
        .commitment()
        .map_err(client("committing to the attributes"))?;
    narrator.party(
        "organization",
        &format!(
            "issues the customer's credential (account {ACCOUNT}, date of birth, postcode, phone, national id digits) to the customer's app over its own channel"
        ),
    )?;
    let enroller =
        EnrollerClient::connect(url, &tokens.enroller).map_err(client("the enroller connects"))?;
    let code = enroller
        .register_customer(CUSTOMER, Some((commitment, credential.schema_version)))
        .map_err(client("registering the customer"))?;
    narrator.party(
        "organization",
        "registers the customer with zkid and gets a one-time enrollment code for the phone (a secret: not shown)",
    )?;
    narrator.party(
        "server",
        &format!(
            "stores {CUSTOMER} and only a commitment to the attributes: {}... (no account number, no date of birth)",
            &hex::encode(commitment)[..16]
        ),
    )?;

    // 2. The phone enrolls.
    narrator.step("2. The customer's phone enrolls")?;
    let mut phone = Phone::enroll(
        PhoneConfig::new(dir.join("phone")),
        url,
        &code.code,
        &pin(PIN)?,
        PASSPHRASE,
    )
    .map_err(client("enrolling the phone"))?;
    phone
        .import_credential(credential)
        .map_err(client("importing the credential"))?;
    let status = phone.status();
    narrator.party(
        "customer",
        &format!("types the PIN {PIN} on the phone (shown here only because this is a demo)"),
    )?;
    narrator.party(
        "phone",
        &format!(
            "creates a device secret, sends Poseidon(PIN, device secret); enrolled as {} with {} as device {}",
            status.customer_ref, status.organization, status.device_id
        ),
    )?;
    narrator.party(
        "phone",
        "keeps the device secret and the credential in its encrypted vault; the PIN is never stored",
    )?;
    narrator.party(
        "server",
        "holds the device commitment: neither the PIN nor the device secret",
    )?;
    // Open the push stream now, so the first request reaches a listening
    // phone; a short wait that times out just leaves it open.
    match phone
        .next_event(Duration::from_millis(200))
        .map_err(client("the phone listens"))?
    {
        None => {}
        Some(other) => {
            return Err(DemoError::Unexpected(format!(
                "the phone got {other:?} before any request"
            )))
        }
    }

    let agent = AgentDesk {
        url,
        token: &tokens.agent,
    };
    // The agent desktop fetches the server's public keys once, to check
    // every verdict offline.
    let keys = AgentClient::connect(url, &tokens.agent)
        .and_then(|desk| desk.signing_keys())
        .map_err(client("fetching the server's public keys"))?;

    // 3. L1.
    narrator.step("3. The agent verifies the caller for balance_inquiry (level L1)")?;
    let view = verify(
        narrator,
        &agent,
        &mut phone,
        ("balance_inquiry", None),
        Answer::Approve(PIN),
    )?;
    expect(&view, State::Passed, 1)?;
    show_verdict(narrator, &keys, &view)?;
    narrator.party(
        "agent",
        "does NOT see: the PIN, the device secret, the proof, the challenge, or any attribute",
    )?;

    // 4. L2.
    narrator.step(&format!(
        "4. The agent verifies change_address for account {ACCOUNT} (level L2)"
    ))?;
    let view = verify(
        narrator,
        &agent,
        &mut phone,
        ("change_address", Some(ACCOUNT)),
        Answer::Approve(PIN),
    )?;
    expect(&view, State::Passed, 2)?;
    show_verdict(narrator, &keys, &view)?;
    narrator.party(
        "agent",
        "does NOT see: the account data on the phone; only that the caller owns the account named",
    )?;

    // 5. A wrong PIN.
    narrator.step("5. The caller types a wrong PIN")?;
    let view = verify(
        narrator,
        &agent,
        &mut phone,
        ("balance_inquiry", None),
        Answer::Approve(WRONG_PIN),
    )?;
    expect(&view, State::Failed, 0)?;
    show_verdict(narrator, &keys, &view)?;
    narrator.party(
        "server",
        "counts the failure towards the customer's lockout",
    )?;

    // 6. "I did not call".
    narrator.step("6. The customer did not call: they decline on the phone")?;
    let view = verify(
        narrator,
        &agent,
        &mut phone,
        ("balance_inquiry", None),
        Answer::Decline,
    )?;
    expect(&view, State::Declined, 0)?;
    show_verdict(narrator, &keys, &view)?;
    narrator.party(
        "server",
        "records the decline in the audit log as a fraud signal: someone claimed to be the customer",
    )?;

    // 7. Operator login.
    operator_login(url, tokens, dir, narrator)
}

/// What the phone does with the request.
#[derive(Clone, Copy)]
enum Answer<'a> {
    Approve(&'a str),
    Decline,
}

/// Shows a request to the phone's owner and answers it; returns the
/// request and the state the server answered.
fn answer(
    narrator: &mut Narrator,
    phone: &mut Phone,
    who: &str,
    answer: Answer<'_>,
) -> Result<(PendingRequest, State), DemoError> {
    let request = loop {
        match phone
            .next_event(STEP_WITHIN)
            .map_err(client("the phone waits for a request"))?
        {
            Some(PhoneEvent::Request(request)) => break request,
            // A request resolved earlier may still announce its closing.
            Some(PhoneEvent::Closed { .. }) => continue,
            Some(other) => {
                return Err(DemoError::Unexpected(format!(
                    "the phone got {other:?} instead of a request"
                )))
            }
            None => {
                return Err(DemoError::Unexpected(
                    "no request reached the phone within a minute".into(),
                ))
            }
        }
    };
    narrator.party(
        "phone",
        &format!(
            "shows \"{}\", binding code {}, level L{}",
            request.binding_message, request.binding_code, request.level
        ),
    )?;
    for requirement in &request.requirements {
        narrator.party(
            "phone",
            &format!("approving proves {}", requirement.describe()),
        )?;
    }
    let state = match answer {
        Answer::Approve(typed) => {
            narrator.party(
                who,
                &format!("checks the code, approves, types PIN {typed}"),
            )?;
            let outcome = phone
                .approve(&request, &pin(typed)?)
                .map_err(client("the phone proves"))?;
            narrator.party(
                "phone",
                &format!(
                    "proved on the phone and sent only the proof; the server answers {} ({})",
                    outcome.state,
                    shown_level(outcome.level_reached)
                ),
            )?;
            outcome.state
        }
        Answer::Decline => {
            narrator.party(who, "\"I did not call\": declines")?;
            let state = phone
                .decline(&request)
                .map_err(client("the phone declines"))?;
            narrator.party("phone", &format!("the server answers {state}"))?;
            state
        }
    };
    Ok((request, state))
}

/// Where the agent desktop connects, as whom.
struct AgentDesk<'a> {
    url: &'a str,
    token: &'a str,
}

/// The agent starts a verification on its own thread; the phone answers.
/// The agent's thread is not scoped: if the phone's side fails, the demo
/// ends at once and the thread ends with the server's shutdown.
fn verify(
    narrator: &mut Narrator,
    agent: &AgentDesk<'_>,
    phone: &mut Phone,
    (operation, account): (&str, Option<&str>),
    reply: Answer<'_>,
) -> Result<SessionView, DemoError> {
    let (views, seen) = mpsc::channel::<SessionView>();
    let (url, token) = (agent.url.to_owned(), agent.token.to_owned());
    let (op, acc) = (operation.to_owned(), account.map(str::to_owned));
    let agent_side = thread::Builder::new()
        .name("zkid-demo-agent".into())
        .spawn(move || {
            AgentClient::connect(&url, &token)?.verify(CUSTOMER, &op, acc.as_deref(), |view| {
                let _ = views.send(view.clone());
            })
        })
        .map_err(|source| DemoError::Io {
            what: "starting the agent's thread",
            source,
        })?;
    {
        let started = match seen.recv_timeout(STEP_WITHIN) {
            Ok(view) => view,
            Err(_) => {
                return Err(if agent_side.is_finished() {
                    match agent_side.join() {
                        Ok(Err(e)) => client("the agent starts the verification")(e),
                        _ => DemoError::Unexpected("the agent's thread ended early".into()),
                    }
                } else {
                    DemoError::Unexpected("the agent's verification did not start".into())
                })
            }
        };
        narrator.party(
            "agent",
            &format!(
                "starts {operation} for {CUSTOMER}{}: needs L{}; screen shows binding code {}, {}",
                account.map(|a| format!(" on {a}")).unwrap_or_default(),
                started.required_level,
                started.binding_code,
                started.state
            ),
        )?;
        let (request, phone_state) = answer(narrator, phone, "customer", reply)?;
        let view = agent_side
            .join()
            .map_err(|_| DemoError::Unexpected("the agent's thread panicked".into()))?
            .map_err(client("the agent follows the verification"))?;
        if request.binding_code != view.binding_code {
            return Err(DemoError::Unexpected(format!(
                "the phone showed binding code {} but the agent {}",
                request.binding_code, view.binding_code
            )));
        }
        if phone_state != view.state {
            return Err(DemoError::Unexpected(format!(
                "the phone was told {phone_state} but the agent sees {}",
                view.state
            )));
        }
        narrator.party(
            "agent",
            &format!(
                "sees {} {} (same binding code {} on both screens)",
                view.state,
                shown_level(view.level_reached),
                view.binding_code
            ),
        )?;
        Ok(view)
    }
}

fn expect(view: &SessionView, state: State, level: u8) -> Result<(), DemoError> {
    if view.state != state || view.level_reached != level {
        return Err(DemoError::Unexpected(format!(
            "{} ended {} at level L{}, expected {state} at L{level}",
            view.operation, view.state, view.level_reached
        )));
    }
    Ok(())
}

/// Shows the session's signed verdict, checked offline against the
/// server's published keys and against the session the agent saw.
fn show_verdict(
    narrator: &mut Narrator,
    keys: &HashMap<String, [u8; 32]>,
    view: &SessionView,
) -> Result<(), DemoError> {
    let verdict = view
        .check_verdict(|id| keys.get(id).copied())
        .map_err(client("checking the verdict offline"))?;
    narrator.party(
        "agent",
        &format!(
            "signed verdict: {} {} for {}, signed by key {}, checked offline",
            verdict.state,
            shown_level(verdict.level),
            verdict.operation,
            verdict.key_id
        ),
    )
}

/// A level as the screens show it: `L1`..`L3`, or none reached.
fn shown_level(level: u8) -> String {
    if level == 0 {
        "no level".into()
    } else {
        format!("L{level}")
    }
}

fn unix_now() -> Result<i64, DemoError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| DemoError::Unexpected("the clock is before 1970".into()))?
        .as_secs();
    i64::try_from(secs).map_err(|_| DemoError::Unexpected("the clock is out of range".into()))
}

fn operator_login(
    url: &str,
    tokens: &Tokens,
    dir: &Path,
    narrator: &mut Narrator,
) -> Result<(), DemoError> {
    narrator.step(&format!(
        "7. Operator {OPERATOR} logs in to a workstation with their phone as second factor"
    ))?;
    let enroller =
        EnrollerClient::connect(url, &tokens.enroller).map_err(client("the enroller connects"))?;
    let code = enroller
        .register_operator(OPERATOR)
        .map_err(client("registering the operator"))?;
    let phone_dir: PathBuf = dir.join("operator-phone");
    let mut phone = Phone::enroll(
        PhoneConfig::new(phone_dir),
        url,
        &code.code,
        &pin(OPERATOR_PIN)?,
        PASSPHRASE,
    )
    .map_err(client("enrolling the operator's phone"))?;
    narrator.party(
        "operator",
        &format!("enrolls their phone with PIN {OPERATOR_PIN} (shown only in this demo)"),
    )?;
    phone
        .next_event(Duration::from_millis(200))
        .map_err(client("the operator's phone listens"))?;
    let (views, seen) = mpsc::channel();
    let (login_url, login_token) = (url.to_owned(), tokens.login.clone());
    let login_side = thread::Builder::new()
        .name("zkid-demo-login".into())
        .spawn(move || {
            let login = LoginSystemClient::connect(&login_url, &login_token)?;
            let view = login.login(OPERATOR, AUDIENCE, move |view| {
                let _ = views.send(view.binding_code.clone());
            })?;
            Ok::<_, zkid_prover::rpc::RpcError>((view, login.signing_keys()?))
        })
        .map_err(|source| DemoError::Io {
            what: "starting the login system's thread",
            source,
        })?;
    let code = seen
        .recv_timeout(STEP_WITHIN)
        .map_err(|_| DemoError::Unexpected("the login system's login did not start".into()))?;
    narrator.party(
        "login system",
        &format!("asks for {OPERATOR} at {AUDIENCE}; screen shows binding code {code}"),
    )?;
    let (_, state) = answer(
        narrator,
        &mut phone,
        "operator",
        Answer::Approve(OPERATOR_PIN),
    )?;
    let (view, keys) = login_side
        .join()
        .map_err(|_| DemoError::Unexpected("the login system's thread panicked".into()))?
        .map_err(client("the login system follows the login"))?;
    if state != view.state {
        return Err(DemoError::Unexpected(format!(
            "the phone was told {state} but the login system sees {}",
            view.state
        )));
    }
    if view.state != State::Passed {
        return Err(DemoError::Unexpected(format!(
            "the operator login ended {}, expected PASSED",
            view.state
        )));
    }
    let assertion = view
        .assertion
        .ok_or_else(|| DemoError::Unexpected("a passed login came without an assertion".into()))?;
    let now = unix_now()?;
    let claims = crate::assertion::verify(&assertion, AUDIENCE, now, |id| keys.get(id).copied())
        .map_err(client("checking the login assertion offline"))?;
    if claims.sub != OPERATOR || claims.tenant != TENANT {
        return Err(DemoError::Unexpected(format!(
            "the assertion names {} in {}, expected {OPERATOR} in {TENANT}",
            claims.sub, claims.tenant
        )));
    }
    narrator.party(
        "login system",
        &format!(
            "PASSED L{}: signed assertion checked offline: operator {} tenant {} audience {} expires in {}s",
            claims.level,
            claims.sub,
            claims.tenant,
            claims.aud,
            claims.exp - now
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: State, level_reached: u8) -> SessionView {
        SessionView {
            session_id: "s_1".into(),
            state,
            operation: "balance_inquiry".into(),
            required_level: 1,
            level_reached,
            binding_code: "123-456".into(),
            verdict: None,
        }
    }

    #[test]
    fn an_outcome_as_expected_passes() {
        assert!(expect(&view(State::Passed, 1), State::Passed, 1).is_ok());
        assert!(expect(&view(State::Declined, 0), State::Declined, 0).is_ok());
    }

    #[test]
    fn another_state_or_level_stops_the_demo_with_both_named() {
        let error = expect(&view(State::Failed, 0), State::Passed, 1)
            .expect_err("a failure is not a pass")
            .to_string();
        assert!(error.contains("ended FAILED"), "{error}");
        assert!(error.contains("expected PASSED at L1"), "{error}");
        assert!(expect(&view(State::Passed, 1), State::Passed, 2).is_err());
    }

    #[test]
    fn no_level_is_not_shown_as_l0() {
        assert_eq!(shown_level(0), "no level");
        assert_eq!(shown_level(2), "L2");
    }

    /// A writer that refuses everything, like a closed pipe.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_that_cannot_be_written_is_an_error() {
        let mut narrator = Narrator {
            out: Box::new(Closed),
        };
        let error = narrator.step("x").expect_err("broken pipe");
        assert!(matches!(error, DemoError::Io { .. }), "{error}");
    }
}
