//! zkid-loadgen: the verifier under load, over real gRPC on loopback.
//!
//! Starts the real server in a process of its own (this binary, re-run
//! with a hidden flag) on 127.0.0.1:0, with SQLite in a temporary
//! directory: sessions, verdicts and audit records are persisted. It creates
//! a tenant with agent and enroller credentials, enrolls simulated phones,
//! and drives verification sessions: agents call StartVerification and
//! WatchVerification, phones receive the push on WatchRequests and answer
//! with SubmitProof.
//!
//! Proving stays out of the server's figure: the server process is started
//! with a fixed challenge source ([`zkid_server::serve`],
//! reachable only through the library API, never from `zkid-server`), so
//! each phone's one proof, computed before the measurement, answers every
//! one of its sessions. The server still authenticates, reads, verifies and
//! writes everything.
//!
//! It reports, per step: sessions per second, latency from proof
//! submission to the agent's outcome (p50/p99/p999) and to SubmitProof's
//! reply (sent once the verdict is verified and committed), the shed rate,
//! the CPU time per session of the server process and of the load
//! generator, the server's context switches per session, and the server
//! process's peak RSS and the size of its SQLite write-ahead log
//! (the file keeps its largest size while the server runs). A second
//! table gives the server's own split of SubmitProof's time per step, from
//! its metrics endpoint (scraped before and after the step): the engine's
//! whole part, the reads before verification, the wait for a verification
//! batch, the batch itself, and the commit of the verdict (its wait for a
//! group commit, and the group's transaction).
//! Steps: closed loops at rising concurrency until throughput stops rising,
//! then open-loop arrivals at shares of the peak (`--open-shares`, by
//! default 80% and 150%). It also measures, in the same run, the
//! in-process `verify_batch` throughput, the transport floor (health
//! checks: the cheapest RPC the server answers), and the customer flow
//! (push reaching the phone to PASSED at the agent, with a real proof, on
//! a second server with random challenges) against proving alone.
//!
//! ```sh
//! cargo run --release -p zkid-benches --bin zkid-loadgen -- --help
//! ```

mod stages;

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use ark_bn254::Fr;
use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot, Mutex},
    task::JoinSet,
};
use tokio_stream::StreamExt;
use tonic::{
    transport::{Channel, Endpoint},
    Code, Request,
};
use zkid_circuits::{
    batch::BatchItem,
    encoding::{field_from_bytes, field_to_bytes},
    pin::{device_commitment, DeviceSecret, Pin, PinKnowledge},
    prove, CircuitProvingKey, CircuitVerifyingKey, Verifier, ZkCircuit,
};
use zkid_proto::v1::{
    self as pb, device_client::DeviceClient, enrollment_client::EnrollmentClient,
    verification_client::VerificationClient,
};
use zkid_server::{
    admin,
    config::{Config, VerifierConfig},
    domain::{model::Role, ChallengeSource, RandomChallenges},
    keys::key_paths,
    Listeners,
};

// The served process runs this binary, so it takes zkid-server's allocator
// (see there) to be measured as zkid-server runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    about = "Drives the zkid server over real gRPC on loopback and reports throughput, latency, shedding and RSS"
)]
struct Args {
    /// Simulated phones (each with its own connection and push stream).
    #[arg(long, default_value_t = 256)]
    phones: usize,
    /// Closed-loop concurrency steps (sessions in flight), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4,8,16,32,64,128,256"
    )]
    concurrency: Vec<usize>,
    /// Open-loop steps after the closed loops, each a share of the
    /// closed-loop peak, comma-separated (the p99 target is read at 0.8).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.8,1.5",
        value_parser = parse_share
    )]
    open_shares: Vec<f64>,
    /// Length of each step, seconds.
    #[arg(long, default_value_t = 5.0)]
    step_secs: f64,
    #[command(flatten)]
    server: ServerArgs,
    /// Customer flows (push to PASSED with real proving) to time.
    #[arg(long, default_value_t = 20)]
    flows: usize,
    /// Health checks in flight for the transport floor (0: skip it).
    #[arg(long, default_value_t = 64)]
    floor_concurrency: usize,
    /// Internal: run as the server process of a load run, on this data
    /// directory.
    #[arg(long, hide = true)]
    serve_data_dir: Option<std::path::PathBuf>,
    /// Internal: the server process's fixed challenge, hex.
    #[arg(long, hide = true)]
    serve_challenge: Option<String>,
}

/// The open-loop share of the closed-loop peak that the p99 target is read at.
const TARGET_SHARE: f64 = 0.8;

/// The share of the in-process batched throughput that the server's
/// saturation is held to.
const THROUGHPUT_TARGET: f64 = 0.7;

/// Exchanges between generator and server in one session: StartVerification,
/// WatchVerification and SubmitProof, and the push on the phone's open
/// feed. Each costs at least a health check's CPU on either side, so four
/// health checks are a lower bound on a session's transport.
const SESSION_EXCHANGES: f64 = 4.0;

/// What the throughput target leaves a session, from one run's own
/// figures (all in milliseconds of CPU per session, server and generator
/// together).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Budget {
    /// All that `cores` can spend per session at the target's rate.
    allowed: f64,
    /// The proof's verification, at the in-process rate on the same cores.
    proof: f64,
    /// The transport's lower bound, when the transport floor was measured.
    transport: Option<f64>,
    /// What is left for authentication, storage, audit and the rest.
    rest: f64,
}

/// The [`Budget`] of a session at `THROUGHPUT_TARGET` of `batched` proofs
/// per second on `cores`, with the health check costing
/// `floor_check_ms` on both sides together.
fn budget(cores: usize, batched: f64, floor_check_ms: Option<f64>) -> Budget {
    let allowed = cores as f64 * 1e3 / (THROUGHPUT_TARGET * batched);
    let proof = cores as f64 * 1e3 / batched;
    let transport = floor_check_ms.map(|check| SESSION_EXCHANGES * check);
    Budget {
        allowed,
        proof,
        transport,
        rest: allowed - proof - transport.unwrap_or(0.0),
    }
}

/// One open-loop step's share of the closed-loop peak: a positive,
/// finite factor, so that the offered rate is a rate.
fn parse_share(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if share.is_finite() && share > 0.0 && share <= 10.0 {
        Ok(share)
    } else {
        Err(format!("{text:?} must be above 0 and at most 10"))
    }
}

/// The server's settings under test.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The server's `verifier.queue_capacity`.
    #[arg(long, default_value_t = 64)]
    queue_capacity: usize,
    /// The server's `verifier.max_batch` (default: the server's).
    #[arg(long, default_value_t = VerifierConfig::default().max_batch)]
    max_batch: usize,
    /// The server's `verifier.batch_window_micros` (default: the server's).
    #[arg(long, default_value_t = VerifierConfig::default().batch_window_micros)]
    window_micros: u64,
    /// The server's `max_in_flight_rpcs` (unary RPCs before shedding).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
}

/// The load measurement's challenge: one fixed field element, so that a
/// precomputed proof answers every session of its phone.
#[derive(Debug)]
struct FixedChallenge([u8; 32]);

impl ChallengeSource for FixedChallenge {
    fn challenge(&self) -> [u8; 32] {
        self.0
    }
}

fn authed<T>(message: T, token: &str) -> Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

async fn connect(addr: std::net::SocketAddr) -> Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

/// CPU time, context switches and peak resident set of a process, from
/// `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct ProcessUsage {
    /// User plus system time of all its threads.
    cpu: Duration,
    /// Context switches, voluntary or not, of its live threads (a thread
    /// that has exited takes its count with it; the server's threads live
    /// as long as it does).
    switches: u64,
    /// Peak resident set (VmHWM), in MiB.
    peak_rss_mib: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times: USER_HZ is part
/// of Linux's user-space ABI and is 100 on every architecture we run on.
const USER_HZ: f64 = 100.0;

impl ProcessUsage {
    /// `pid` of `None` is this process. `None` off Linux or if `/proc`
    /// cannot be read.
    fn of(pid: Option<u32>) -> Option<Self> {
        let dir = match pid {
            Some(pid) => format!("/proc/{pid}"),
            None => "/proc/self".to_owned(),
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // The command name in parentheses may hold spaces: count fields
        // after its closing parenthesis. utime and stime are fields 14 and
        // 15, the 12th and 13th after the name.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let mut fields = after_name.split_whitespace().skip(11);
        let utime: f64 = fields.next()?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(Self {
            cpu: Duration::from_secs_f64((utime + stime) / USER_HZ),
            switches: thread_switches(&dir),
            peak_rss_mib: kib / 1024.0,
        })
    }
}

/// The context switches of every thread under `/proc/<pid>`: the
/// process's own `status` counts its main thread only.
fn thread_switches(process_dir: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("{process_dir}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .map(|status| status_switches(&status))
        .sum()
}

/// Voluntary plus involuntary context switches in one `status` file.
fn status_switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|line| line.contains("ctxt_switches:"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The server's configuration for a load run: abuse limits lifted (the
/// load is many customers' worth of sessions from few credentials), the
/// verifier and in-flight bounds from the command line.
fn server_config(args: &ServerArgs, data_dir: &std::path::Path) -> Result<Config> {
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data_dir.to_owned(),
        agent_sessions_per_minute: 10_000,
        device_sessions_per_minute: 1000,
        customer_verifications_per_day: 1000,
        max_in_flight_rpcs: args.max_in_flight,
        verifier: VerifierConfig {
            queue_capacity: args.queue_capacity,
            max_batch: args.max_batch,
            batch_window_micros: args.window_micros,
        },
        ..Config::default()
    };
    config.validate()?;
    Ok(config)
}

/// The server side of a load run, in a process of its own (this binary
/// started with `--serve-data-dir`), so that its CPU time and peak RSS are
/// its own, not the load generator's. It prints its gRPC and metrics
/// addresses on one line of stdout and shuts down gracefully when stdin
/// closes.
fn serve(args: &Args, data_dir: &std::path::Path) -> Result<()> {
    let config = server_config(&args.server, data_dir)?;
    let challenges: Arc<dyn ChallengeSource> = match &args.serve_challenge {
        Some(hex) => {
            let bytes: [u8; 32] = hex::decode(hex)
                .context("--serve-challenge is hex")?
                .try_into()
                .map_err(|_| anyhow::anyhow!("--serve-challenge is 32 bytes"))?;
            Arc::new(FixedChallenge(bytes))
        }
        None => Arc::new(RandomChallenges),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let metrics = TcpListener::bind("127.0.0.1:0").await?;
        println!("{} {}", grpc.local_addr()?, metrics.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            // EOF (or an error) on stdin: the load generator is done or gone.
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = stop.send(());
        });
        let shutdown = async {
            let _ = stopped.await;
        };
        let listeners = Listeners {
            grpc,
            metrics: Some(metrics),
        };
        zkid_server::serve(config, listeners, shutdown, challenges).await?;
        Ok(())
    })
}

/// A server running in a child process (see [`serve`]).
struct Server {
    addr: std::net::SocketAddr,
    metrics_addr: std::net::SocketAddr,
    config: Config,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(
        args: &Args,
        keys_from: Option<&std::path::Path>,
        challenge: Option<[u8; 32]>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        if let Some(from) = keys_from {
            let target = dir.path().join("keys");
            std::fs::create_dir_all(&target)?;
            for entry in std::fs::read_dir(from)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    std::fs::copy(entry.path(), target.join(entry.file_name()))?;
                }
            }
        }
        let config = server_config(&args.server, dir.path())?;
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .arg("--serve-data-dir")
            .arg(dir.path())
            .args(["--max-in-flight", &args.server.max_in_flight.to_string()])
            .args(["--queue-capacity", &args.server.queue_capacity.to_string()])
            .args(["--max-batch", &args.server.max_batch.to_string()])
            .args(["--window-micros", &args.server.window_micros.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if let Some(challenge) = challenge {
            command.args(["--serve-challenge", &hex::encode(challenge)]);
        }
        let mut child = command.spawn().context("starting the server process")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                .map(|_| line)
        })
        .await??;
        let unexpected = || format!("the server process printed {line:?}, not its addresses");
        let (addr, metrics_addr) = line.trim().split_once(' ').with_context(unexpected)?;
        let server = Self {
            addr: addr.parse().with_context(unexpected)?,
            metrics_addr: metrics_addr.parse().with_context(unexpected)?,
            config,
            child,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    fn usage(&self) -> ProcessUsage {
        ProcessUsage::of(Some(self.child.id())).unwrap_or_default()
    }

    /// The size of the database's write-ahead log, in MiB: SQLite writes
    /// it from the start again after each restart checkpoint but does not
    /// shrink it, so this is the largest it has been.
    fn wal_mib(&self) -> f64 {
        let mut wal = self.config.database_path().into_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
    }

    async fn wait_ready(&self) -> Result<()> {
        let channel = connect(self.addr).await?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let mut updates = health
            .watch(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner();
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        while let Some(update) = updates.next().await {
            if update?.status == serving {
                return Ok(());
            }
        }
        bail!("the server stopped before it was ready")
    }

    async fn stop(mut self) -> Result<()> {
        // Closing its stdin asks the server to shut down.
        drop(self.child.stdin.take());
        let status = tokio::task::spawn_blocking(move || self.child.wait()).await??;
        if !status.success() {
            bail!("the server process ended with {status}");
        }
        Ok(())
    }
}

/// A tenant's credentials.
struct Tenant {
    agents: Vec<String>,
    enroller: String,
}

async fn tenant(server: &Server, agents: usize) -> Result<Tenant> {
    let store = admin::open_store(&server.config).await?;
    admin::create_tenant(&store, "load", "Load Test Bank").await?;
    let keys = admin::signing_keys(&server.config)?;
    let mut tokens = Vec::new();
    for role in std::iter::repeat_n(Role::Agent, agents).chain([Role::Enroller]) {
        let (_, token) = admin::create_credential(&store, &keys, "load", role, None, None).await?;
        tokens.push(token.expose().to_owned());
    }
    store.close().await;
    let enroller = tokens.pop().context("enroller token")?;
    Ok(Tenant {
        agents: tokens,
        enroller,
    })
}

/// A simulated phone with its push stream.
struct Phone {
    customer_ref: String,
    token: String,
    key_id: Vec<u8>,
    pin: Pin,
    secret: DeviceSecret,
    /// Its one proof for the fixed challenge.
    proof: Vec<u8>,
    client: DeviceClient<Channel>,
    /// Requests pushed to it, with when they arrived.
    pushed: mpsc::Receiver<(pb::VerificationRequest, Instant)>,
}

async fn enroll_phone(
    server: &Server,
    tenant: &Tenant,
    index: usize,
    pk: &CircuitProvingKey,
    challenge: Option<Fr>,
) -> Result<Phone> {
    let channel = connect(server.addr).await?;
    let customer_ref = format!("cust-{index}");
    let code = EnrollmentClient::new(channel.clone())
        .register_customer(authed(
            pb::RegisterCustomerRequest {
                customer_ref: customer_ref.clone(),
                attributes: None,
            },
            &tenant.enroller,
        )?)
        .await?
        .into_inner()
        .enrollment_code;
    let pin = Pin::parse("482913")?;
    let secret = DeviceSecret::generate(&mut ChaCha20Rng::seed_from_u64(index as u64));
    let commitment = device_commitment(&pin, &secret);
    let token = EnrollmentClient::new(channel.clone())
        .enroll_device(authed(
            pb::EnrollDeviceRequest {
                device_commitment: field_to_bytes(&commitment).to_vec(),
            },
            &code,
        )?)
        .await?
        .into_inner()
        .device_token;
    let proof = match challenge {
        Some(challenge) => prove(
            pk,
            PinKnowledge::new(&pin, &secret, challenge),
            &mut ChaCha20Rng::seed_from_u64(1_000_000 + index as u64),
        )?,
        None => Vec::new(),
    };
    let mut client = DeviceClient::new(channel);
    let mut stream = client
        .watch_requests(authed(pb::WatchRequestsRequest {}, &token)?)
        .await?
        .into_inner();
    let (tx, pushed) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            if let Some(pb::device_event::Event::Request(request)) = event.event {
                if tx.send((request, Instant::now())).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Phone {
        customer_ref,
        token,
        key_id: pk.key_id.0.to_vec(),
        pin,
        secret,
        proof,
        client,
        pushed,
    })
}

/// How one session ended, from the load generator's side.
enum Outcome {
    /// PASSED at the agent.
    Passed {
        /// From submitting the proof to the outcome on the agent's watch.
        outcome: Duration,
        /// From submitting the proof to SubmitProof's reply, which the
        /// server sends once the verdict is verified and committed: the
        /// rest of `outcome` is the fan-out to the agent's stream.
        reply: Duration,
    },
    /// The submission was shed (RESOURCE_EXHAUSTED); the session was
    /// cancelled.
    Shed,
    /// Anything else: a failure of the run.
    Failed(String),
}

/// The agents' side: connections and credentials, used round-robin.
struct Agents {
    channels: Vec<Channel>,
    clients: Vec<VerificationClient<Channel>>,
    tokens: Vec<String>,
}

/// Waits for the request of `session_id` on the phone's push stream.
async fn pushed_request(
    phone: &mut Phone,
    session_id: &str,
) -> Result<(pb::VerificationRequest, Instant)> {
    let wait = async {
        while let Some((request, at)) = phone.pushed.recv().await {
            // Requests of earlier (cancelled) sessions may still arrive.
            if request.session_id == session_id {
                return Ok((request, at));
            }
        }
        bail!("push stream ended")
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .context("no push within 30 s")?
}

/// One session: start, watch, push, submit, outcome. `prove_now` proves
/// the pushed challenge on the spot (the customer flow) instead of sending
/// the precomputed proof. Returns the outcome and, for the customer flow,
/// the time from the push reaching the phone to PASSED.
async fn session(
    agents: &Agents,
    which: usize,
    phone: &mut Phone,
    prove_now: Option<&CircuitProvingKey>,
) -> Result<(Outcome, Option<Duration>)> {
    let mut agent = agents.clients[which % agents.clients.len()].clone();
    let token = &agents.tokens[which % agents.tokens.len()];
    let started = match agent
        .start_verification(authed(
            pb::StartVerificationRequest {
                customer_ref: phone.customer_ref.clone(),
                operation: "balance_inquiry".into(),
                account_ref: None,
                step_up_from: None,
            },
            token,
        )?)
        .await
    {
        Ok(started) => started.into_inner(),
        // Shed by the server's in-flight limit: nothing was started.
        Err(status) if status.code() == Code::ResourceExhausted => {
            return Ok((Outcome::Shed, None))
        }
        Err(status) => return Err(status.into()),
    };
    let session_id = started.session_id;
    if started.state != pb::SessionState::Pending as i32 {
        return Ok((
            Outcome::Failed(format!("session started in state {}", started.state)),
            None,
        ));
    }
    let mut watch = agent
        .watch_verification(authed(
            pb::WatchVerificationRequest {
                session_id: session_id.clone(),
            },
            token,
        )?)
        .await?
        .into_inner();
    let (request, pushed_at) = pushed_request(phone, &session_id).await?;
    let proof = match prove_now {
        Some(pk) => {
            let challenge = field_from_bytes(
                request
                    .challenge
                    .as_slice()
                    .try_into()
                    .context("challenge is 32 bytes")?,
            )?;
            prove(
                pk,
                PinKnowledge::new(&phone.pin, &phone.secret, challenge),
                &mut ChaCha20Rng::from_entropy(),
            )?
        }
        None => phone.proof.clone(),
    };
    let submitted_at = Instant::now();
    let submit = phone
        .client
        .submit_proof(authed(
            pb::SubmitProofRequest {
                session_id: session_id.clone(),
                proofs: vec![pb::CircuitProof {
                    key_id: phone.key_id.clone(),
                    proof,
                }],
            },
            &phone.token,
        )?)
        .await;
    let reply = submitted_at.elapsed();
    match submit {
        Ok(_) => {}
        Err(status) if status.code() == Code::ResourceExhausted => {
            // Best effort: under overload the cancel may be shed too, and
            // the session then simply expires.
            let _ = agent
                .cancel_verification(authed(pb::CancelVerificationRequest { session_id }, token)?)
                .await;
            return Ok((Outcome::Shed, None));
        }
        Err(status) => return Ok((Outcome::Failed(format!("submit: {status}")), None)),
    }
    while let Some(update) = watch.next().await {
        let update = update?;
        if update.state == pb::SessionState::Pending as i32 {
            continue;
        }
        let done = Instant::now();
        return Ok(if update.state == pb::SessionState::Passed as i32 {
            (
                Outcome::Passed {
                    outcome: done - submitted_at,
                    reply,
                },
                Some(done - pushed_at),
            )
        } else {
            (Outcome::Failed(format!("outcome {}", update.state)), None)
        });
    }
    Ok((
        Outcome::Failed("watch ended before the outcome".into()),
        None,
    ))
}

/// What one step measured.
#[derive(Default)]
struct Step {
    label: String,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Submission to SubmitProof's reply, for the same sessions.
    replies: Vec<Duration>,
    shed: usize,
    failed: usize,
    first_failure: Option<String>,
    /// CPU time the server process and the load generator spent in it.
    server_cpu: Duration,
    generator_cpu: Duration,
    /// Context switches of the server's threads in it.
    server_switches: u64,
    /// The server process's peak RSS at its end.
    server_peak_rss_mib: f64,
    /// The server's write-ahead log at its end.
    wal_mib: f64,
    /// The server's metrics observed in it.
    stages: stages::Snapshot,
}

impl Step {
    fn record(&mut self, outcome: Result<(Outcome, Option<Duration>)>) {
        match outcome {
            Ok((Outcome::Passed { outcome, reply }, _)) => {
                self.latencies.push(outcome);
                self.replies.push(reply);
            }
            Ok((Outcome::Shed, _)) => self.shed += 1,
            Ok((Outcome::Failed(why), _)) => self.fail(why),
            Err(error) => self.fail(format!("{error:#}")),
        }
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        self.first_failure.get_or_insert(why);
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }

    /// `total` per PASSED session (NaN when none passed).
    fn per_session(&self, total: f64) -> f64 {
        if self.latencies.is_empty() {
            f64::NAN
        } else {
            total / self.latencies.len() as f64
        }
    }

    /// Server and generator CPU per PASSED session, in milliseconds.
    fn cpu_per_session_ms(&self) -> f64 {
        self.per_session((self.server_cpu + self.generator_cpu).as_secs_f64() * 1e3)
    }

    fn row(&self) -> String {
        let attempts = self.latencies.len() + self.shed + self.failed;
        let shed_rate = if attempts == 0 {
            0.0
        } else {
            100.0 * self.shed as f64 / attempts as f64
        };
        let per_session = |total: f64| self.per_session(total);
        let cpu_ms = |cpu: Duration| cpu.as_secs_f64() * 1e3;
        format!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}% | {} | {:.3} | {:.3} | {:.1} | {:.0} | {:.1} |",
            self.label,
            self.throughput(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.percentile_ms(0.999),
            percentile(&self.replies, 0.50),
            percentile(&self.replies, 0.99),
            shed_rate,
            self.failed,
            per_session(cpu_ms(self.server_cpu)),
            per_session(cpu_ms(self.generator_cpu)),
            per_session(self.server_switches as f64),
            self.server_peak_rss_mib,
            self.wal_mib,
        )
    }
}

/// CPU time the server process and this one spent, and the server's peak
/// RSS and write-ahead log at the end.
struct Charged {
    server_cpu: Duration,
    generator_cpu: Duration,
    server_switches: u64,
    server_peak_rss_mib: f64,
    wal_mib: f64,
}

/// Runs `work` and charges it the CPU time both processes spent meanwhile.
async fn charged<T>(server: &Server, work: impl std::future::Future<Output = T>) -> (T, Charged) {
    let server_before = server.usage();
    let own_before = ProcessUsage::of(None).unwrap_or_default();
    let output = work.await;
    let server_after = server.usage();
    let own_after = ProcessUsage::of(None).unwrap_or_default();
    let charge = Charged {
        server_cpu: server_after.cpu.saturating_sub(server_before.cpu),
        generator_cpu: own_after.cpu.saturating_sub(own_before.cpu),
        server_switches: server_after.switches.saturating_sub(server_before.switches),
        server_peak_rss_mib: server_after.peak_rss_mib,
        wal_mib: server.wal_mib(),
    };
    (output, charge)
}

/// Runs one step, charges it the CPU time both processes spent in it, and
/// reads what the server's metrics observed in it. The scrapes lie outside
/// the charged time.
async fn measured(server: &Server, step: impl std::future::Future<Output = Step>) -> Step {
    let before = stages::scrape(server.metrics_addr).await;
    let (mut step, charge) = charged(server, step).await;
    match (before, stages::scrape(server.metrics_addr).await) {
        (Ok(before), Ok(after)) => step.stages = stages::between(&before, &after),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!(
                "{}: the server's metrics could not be read: {error:#}",
                step.label
            );
        }
    }
    step.server_cpu = charge.server_cpu;
    step.generator_cpu = charge.generator_cpu;
    step.server_switches = charge.server_switches;
    step.server_peak_rss_mib = charge.server_peak_rss_mib;
    step.wal_mib = charge.wal_mib;
    step
}

/// The transport floor: the cheapest RPC the server answers (a health
/// check: no authentication, no storage), `concurrency` in flight over the
/// agents' connections for `length`. Returns checks per second and the
/// server's and the generator's CPU per check.
async fn transport_floor(
    server: &Server,
    agents: &Agents,
    concurrency: usize,
    length: Duration,
) -> Result<(f64, Duration, Duration)> {
    let begin = Instant::now();
    let deadline = begin + length;
    let (checks, charge) = charged(server, async {
        let mut workers = JoinSet::new();
        for worker in 0..concurrency {
            let channel = agents.channels[worker % agents.channels.len()].clone();
            workers.spawn(async move {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let mut checks = 0u64;
                while Instant::now() < deadline {
                    health
                        .check(tonic_health::pb::HealthCheckRequest {
                            service: String::new(),
                        })
                        .await?;
                    checks += 1;
                }
                Ok::<_, tonic::Status>(checks)
            });
        }
        let mut checks = 0u64;
        while let Some(joined) = workers.join_next().await {
            checks += joined??;
        }
        Ok::<_, anyhow::Error>(checks)
    })
    .await;
    let checks = checks?;
    let elapsed = begin.elapsed();
    let per_check = |cpu: Duration| cpu.div_f64(checks.max(1) as f64);
    Ok((
        checks as f64 / elapsed.as_secs_f64(),
        per_check(charge.server_cpu),
        per_check(charge.generator_cpu),
    ))
}

/// The `p` quantile of `samples`, in milliseconds (nearest rank).
fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

type Pool = Arc<Mutex<VecDeque<Phone>>>;

/// `concurrency` sessions in flight at all times for `length`.
async fn closed_loop(
    agents: &Arc<Agents>,
    pool: &Pool,
    concurrency: usize,
    length: Duration,
) -> Step {
    let deadline = Instant::now() + length;
    let begin = Instant::now();
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let agents = Arc::clone(agents);
        let pool = Arc::clone(pool);
        workers.spawn(async move {
            let mut step = Step::default();
            let mut round = 0;
            while Instant::now() < deadline {
                let Some(mut phone) = pool.lock().await.pop_front() else {
                    step.fail("more sessions in flight than phones".into());
                    break;
                };
                let outcome = session(&agents, worker + round, &mut phone, None).await;
                pool.lock().await.push_back(phone);
                step.record(outcome);
                round += 1;
            }
            step
        });
    }
    let mut total = Step {
        label: format!("closed, {concurrency} in flight"),
        ..Step::default()
    };
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(step) => {
                total.latencies.extend(step.latencies);
                total.replies.extend(step.replies);
                total.shed += step.shed;
                total.failed += step.failed;
                if total.first_failure.is_none() {
                    total.first_failure = step.first_failure;
                }
            }
            Err(error) => total.fail(format!("worker: {error}")),
        }
    }
    total.elapsed = begin.elapsed();
    total
}

/// Sessions started at `rate` per second for `length`, whatever their
/// progress (open loop). An arrival finding no idle phone is counted as a
/// failure of the run (the generator, not the server, ran out).
async fn open_loop(agents: &Arc<Agents>, pool: &Pool, rate: f64, length: Duration) -> Step {
    let begin = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sessions = JoinSet::new();
    let mut step = Step {
        label: format!("open, {rate:.0}/s offered"),
        ..Step::default()
    };
    let mut index = 0;
    while begin.elapsed() < length {
        ticker.tick().await;
        let Some(mut phone) = pool.lock().await.pop_front() else {
            step.fail("no idle phone for an arrival".into());
            continue;
        };
        let agents = Arc::clone(agents);
        let pool = Arc::clone(pool);
        index += 1;
        sessions.spawn(async move {
            let outcome = session(&agents, index, &mut phone, None).await;
            pool.lock().await.push_back(phone);
            outcome
        });
    }
    while let Some(joined) = sessions.join_next().await {
        match joined {
            Ok(outcome) => step.record(outcome),
            Err(error) => step.fail(format!("session task: {error}")),
        }
    }
    step.elapsed = begin.elapsed();
    step
}

/// Proofs per second of `verify_batch` in this process, over the phones'
/// proofs in batches of `max_batch`, for about `length`.
fn in_process_batched(
    vk: &CircuitVerifyingKey,
    proofs: &[(Vec<u8>, Vec<[u8; 32]>)],
    max_batch: usize,
    length: Duration,
) -> f64 {
    let mut verifier = Verifier::new();
    verifier.register(vk);
    let begin = Instant::now();
    let mut verified = 0usize;
    while begin.elapsed() < length {
        for chunk in proofs.chunks(max_batch) {
            let items: Vec<BatchItem<'_>> = chunk
                .iter()
                .map(|(proof, inputs)| BatchItem {
                    key_id: &vk.key_id,
                    proof,
                    public_inputs: inputs,
                })
                .collect();
            let verdicts = verifier.verify_batch(&items);
            verified += verdicts.iter().filter(|v| v.is_accepted()).count();
        }
    }
    verified as f64 / begin.elapsed().as_secs_f64()
}

async fn agents(server: &Server, tenant: &Tenant) -> Result<Arc<Agents>> {
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(connect(server.addr).await?);
    }
    Ok(Arc::new(Agents {
        clients: channels
            .iter()
            .cloned()
            .map(VerificationClient::new)
            .collect(),
        channels,
        tokens: tenant.agents.clone(),
    }))
}

async fn customer_flow(
    args: &Args,
    key_dir: &std::path::Path,
    pk: &CircuitProvingKey,
) -> Result<()> {
    let server = Server::start(args, Some(key_dir), None).await?;
    let tenant = tenant(&server, 1).await?;
    let agents = agents(&server, &tenant).await?;
    let mut phone = enroll_phone(&server, &tenant, 0, pk, None).await?;
    let mut flows = Vec::new();
    for round in 0..args.flows {
        match session(&agents, round, &mut phone, Some(pk)).await? {
            (Outcome::Passed { .. }, Some(flow)) => flows.push(flow),
            (Outcome::Passed { .. }, None) => bail!("customer flow without a push time"),
            (Outcome::Shed, _) => bail!("a lone customer flow was shed"),
            (Outcome::Failed(why), _) => bail!("customer flow failed: {why}"),
        }
    }
    let mut proving = Vec::new();
    for round in 0..args.flows {
        let challenge = Fr::from(round as u64 + 1);
        let begin = Instant::now();
        prove(
            pk,
            PinKnowledge::new(&phone.pin, &phone.secret, challenge),
            &mut ChaCha20Rng::from_entropy(),
        )?;
        proving.push(begin.elapsed());
    }
    let flow = percentile(&flows, 0.5);
    let prove_ms = percentile(&proving, 0.5);
    println!("\n## Customer flow: push reaching the phone to PASSED at the agent ({} flows, real proofs, random challenges)\n", args.flows);
    println!("| measure | p50 ms | p99 ms |\n| --- | --- | --- |");
    println!(
        "| push to PASSED | {flow:.1} | {:.1} |",
        percentile(&flows, 0.99)
    );
    println!(
        "| proving alone | {prove_ms:.1} | {:.1} |",
        percentile(&proving, 0.99)
    );
    println!(
        "\nratio (p50): {:.2} x proving alone (target <= 1.5)",
        flow / prove_ms
    );
    server.stop().await
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(data_dir) = &args.serve_data_dir {
        zkid_server::name_verification_threads();
        return serve(&args, data_dir);
    }
    tokio::runtime::Runtime::new()?.block_on(load(args))
}

async fn load(args: Args) -> Result<()> {
    if args.phones == 0 || args.concurrency.is_empty() {
        bail!("need at least one phone and one concurrency step");
    }
    if let Some(&too_many) = args.concurrency.iter().find(|&&c| c > args.phones) {
        bail!(
            "concurrency {too_many} exceeds --phones {}: a phone answers one session at a time",
            args.phones
        );
    }
    let challenge = Fr::from(0x5eed_u64);
    eprintln!("starting the server (first start runs the Groth16 setup)...");
    let server = Server::start(&args, None, Some(field_to_bytes(&challenge))).await?;
    let key_dir = server.config.key_dir();
    let (pk_path, vk_path) = key_paths(&key_dir, &PinKnowledge::id());
    let pk = CircuitProvingKey::load(&pk_path)?;
    let vk = CircuitVerifyingKey::load(&vk_path)?;
    let tenant = tenant(&server, 32).await?;
    eprintln!(
        "enrolling {} phones and precomputing their proofs...",
        args.phones
    );
    let mut phones = VecDeque::with_capacity(args.phones);
    let mut statements = Vec::with_capacity(args.phones);
    for index in 0..args.phones {
        let phone = enroll_phone(&server, &tenant, index, &pk, Some(challenge)).await?;
        let commitment = device_commitment(&phone.pin, &phone.secret);
        statements.push((
            phone.proof.clone(),
            vec![field_to_bytes(&commitment), field_to_bytes(&challenge)],
        ));
        phones.push_back(phone);
    }
    let pool: Pool = Arc::new(Mutex::new(phones));
    let agents = agents(&server, &tenant).await?;
    let length = Duration::from_secs_f64(args.step_secs);

    eprintln!("measuring in-process verify_batch...");
    let batched = tokio::task::spawn_blocking({
        let max_batch = args.server.max_batch;
        move || in_process_batched(&vk, &statements, max_batch, length)
    })
    .await?;

    println!("# zkid-loadgen");
    println!(
        "\nphones {}, queue_capacity {}, max_batch {}, batch_window_micros {}, {} s per step, {} cores, rayon threads {}\n",
        args.phones,
        args.server.queue_capacity,
        args.server.max_batch,
        args.server.window_micros,
        args.step_secs,
        std::thread::available_parallelism().map_or(0, usize::from),
        rayon::current_num_threads(),
    );
    println!(
        "in-process verify_batch (batches of {}): {batched:.0} proofs/s\n",
        args.server.max_batch
    );
    let mut floor_check_ms = None;
    if args.floor_concurrency > 0 {
        let (rate, server_cpu, own_cpu) =
            transport_floor(&server, &agents, args.floor_concurrency, length).await?;
        floor_check_ms = Some((server_cpu + own_cpu).as_secs_f64() * 1e3);
        println!(
            "transport floor: {rate:.0} health checks/s at {} in flight; CPU per check: server {:.1} us, load generator {:.1} us\n",
            args.floor_concurrency,
            server_cpu.as_secs_f64() * 1e6,
            own_cpu.as_secs_f64() * 1e6,
        );
    }
    println!("Latency: SubmitProof to the outcome on the agent's watch; reply: SubmitProof to its reply (verdict verified and committed). CPU: per PASSED session, server process and load generator. Switches: the server's context switches per PASSED session. RSS: the server process's peak. WAL: the largest size of the server's SQLite write-ahead log so far.\n");
    println!("| step | sessions/s | p50 ms | p99 ms | p999 ms | reply p50 ms | reply p99 ms | shed | failed | server CPU ms | generator CPU ms | server switches | server peak RSS MiB | WAL MiB |");
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let mut peak = 0.0f64;
    let mut peak_cpu_ms = f64::NAN;
    let mut failures = Vec::new();
    let mut stage_rows = Vec::new();
    for &concurrency in &args.concurrency {
        let step = measured(&server, closed_loop(&agents, &pool, concurrency, length)).await;
        println!("{}", step.row());
        stage_rows.push(stages::row(&step.label, &step.stages));
        if let Some(why) = &step.first_failure {
            failures.push(format!("{}: {why}", step.label));
        }
        if step.throughput() > peak {
            peak = step.throughput();
            peak_cpu_ms = step.cpu_per_session_ms();
        }
    }
    let mut tails = Vec::new();
    for &share in &args.open_shares {
        let step = measured(&server, open_loop(&agents, &pool, share * peak, length)).await;
        println!("{}", step.row());
        stage_rows.push(stages::row(&step.label, &step.stages));
        if let Some(why) = &step.first_failure {
            failures.push(format!("{}: {why}", step.label));
        }
        if share <= 1.0 {
            tails.push((share, step.percentile_ms(0.99)));
        }
    }
    for (share, p99) in tails {
        // Printed after the table, so that the table stays one table.
        let target = if share == TARGET_SHARE {
            " (target <= 50)"
        } else {
            ""
        };
        println!(
            "\np99 at {:.0}% of saturation ({:.0}/s offered): {p99:.1} ms{target}",
            share * 100.0,
            share * peak,
        );
    }
    println!(
        "\nsaturation {peak:.0} sessions/s = {:.0}% of in-process batched ({batched:.0} proofs/s; target >= {:.0}%)",
        100.0 * peak / batched,
        THROUGHPUT_TARGET * 100.0,
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let budget = budget(cores, batched, floor_check_ms);
    println!(
        "CPU per session that {:.0} sessions/s leave on {cores} cores (server and generator together): {:.3} ms; \
         the proof at the in-process rate {:.3} ms, the transport (at least {SESSION_EXCHANGES} health checks' worth) {}, \
         leaving {:.3} ms for authentication, storage and audit; a session at saturation cost {peak_cpu_ms:.3} ms",
        THROUGHPUT_TARGET * batched,
        budget.allowed,
        budget.proof,
        budget
            .transport
            .map_or_else(|| "not measured".to_string(), |t| format!("{t:.3} ms")),
        budget.rest,
    );
    println!("\nThe server's own split of SubmitProof, from its metrics endpoint (p99 interpolated inside histogram buckets). engine: the engine's whole part, for submissions that reached a verdict; lookup: reading the device, session and customer; verify: handing the proofs to the verifier until the verdicts come back, which holds queue (waiting for a batch to start) and batch (the batch verification); record: committing the resolution, verdict and audit records, which holds write queue (waiting for a group commit to start; every write, of the session's start and push delivery too) and group commit (one group's transaction). Reply latency less engine is gRPC and authentication.\n");
    println!("{}", stages::header());
    for row in &stage_rows {
        println!("{row}");
    }
    for failure in &failures {
        println!("first failure of {failure}");
    }
    // The second server copies the first one's keys, so both must exist.
    let flow = customer_flow(&args, &key_dir, &pk).await;
    server.stop().await?;
    flow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_shares_default_to_the_targets_steps_and_refuse_non_rates() {
        let args = Args::try_parse_from(["zkid-loadgen"]).expect("defaults parse");
        assert_eq!(args.open_shares, [TARGET_SHARE, 1.5]);
        let args = Args::try_parse_from(["zkid-loadgen", "--open-shares", "0.6,0.7,0.8"])
            .expect("a list parses");
        assert_eq!(args.open_shares, [0.6, 0.7, 0.8]);
        for bad in ["0", "-0.5", "NaN", "inf", "11", "eighty"] {
            let flag = format!("--open-shares={bad}");
            let error = Args::try_parse_from(["zkid-loadgen", flag.as_str()])
                .expect_err(bad)
                .to_string();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn the_budget_divides_the_cores_time_at_the_target_rate() {
        // 2 cores, 4,000 proofs/s in-process: 70% is 2,800 sessions/s, so
        // 2,000 ms of CPU a second over 2,800 sessions.
        let with_floor = budget(2, 4_000.0, Some(0.035));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(with_floor.allowed, 2_000.0 / 2_800.0));
        assert!(close(with_floor.proof, 0.5));
        assert_eq!(with_floor.transport, Some(4.0 * 0.035));
        assert!(close(
            with_floor.rest,
            2_000.0 / 2_800.0 - 0.5 - 4.0 * 0.035
        ));
        let without = budget(2, 4_000.0, None);
        assert_eq!(without.transport, None);
        assert!(close(without.rest, 2_000.0 / 2_800.0 - 0.5));
    }

    fn main_thread_switches() -> u64 {
        status_switches(&std::fs::read_to_string("/proc/self/status").expect("status"))
    }

    #[test]
    fn the_switches_of_threads_other_than_the_main_one_are_counted() {
        const SLEEPS: u64 = 5;
        let (slept, after_sleeping) = std::sync::mpsc::channel();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        // The helper stays alive while it is counted: an exited thread's
        // switches leave /proc with it.
        let helper = std::thread::spawn(move || {
            for _ in 0..SLEEPS {
                std::thread::sleep(Duration::from_millis(2));
            }
            slept.send(()).expect("main waits");
            let _ = finished.recv();
        });
        after_sleeping.recv().expect("helper slept");
        // In this order, so that the main thread's count can only have
        // grown by the time all are summed.
        let main_only = main_thread_switches();
        let all = thread_switches("/proc/self");
        finish.send(()).expect("helper waits");
        helper.join().expect("helper");
        assert!(
            all >= main_only + SLEEPS,
            "{all} switches in all threads, {main_only} in the main one: \
             the helper's {SLEEPS} sleeps are missing"
        );
    }
}
