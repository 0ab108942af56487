//! The whole flow with the real binaries, as a new user runs it: the
//! server (`zkid-server`), the customer's phone (`zkid-prover`) and the
//! agent desktop (`zkid-agent`). This is the README walkthrough, checked,
//! in plaintext and over TLS with an agent desk holding a client certificate.
//!
//! The server listens on 127.0.0.1:0 and the test reads the bound address
//! and readiness from its log (stderr): no fixed port, no sleeps.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

struct Server {
    child: Child,
    address: String,
    /// The CA behind the server's certificate, when it serves TLS.
    ca_cert: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> PathBuf {
    let prover = PathBuf::from(env!("CARGO_BIN_EXE_zkid-prover"));
    let server = prover.with_file_name(format!("zkid-server{}", std::env::consts::EXE_SUFFIX));
    if !server.exists() {
        // `cargo test --workspace` builds it; `cargo test -p zkid-prover`
        // alone does not, so build it on demand.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "zkid-server", "--bin", "zkid-server"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building zkid-server failed");
    }
    server
}

/// The server reads `ZKID_*` variables as configuration and refuses
/// unknown ones; whatever the test runner's environment holds must not
/// leak into it.
fn server_command() -> Command {
    let mut command = Command::new(server_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ZKID_") {
            command.env_remove(key);
        }
    }
    command
}

fn admin(data_dir: &Path, args: &[&str]) -> String {
    let out = server_command()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("zkid-server runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn start_server(data_dir: &Path) -> Server {
    start_server_with(data_dir, &[])
}

/// The server with extra `ZKID_*` settings.
fn start_server_with(data_dir: &Path, settings: &[(&str, &str)]) -> Server {
    let mut child = server_command()
        .envs(settings.iter().copied())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    // The server logs to stderr.
    let log = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut address = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("server logs readiness within two minutes");
        if let Some(rest) = line.split("127.0.0.1:").nth(1) {
            if address.is_none() && line.contains("listening") {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                address = Some(format!("http://127.0.0.1:{port}"));
            }
        }
        if line.contains("ready") {
            break;
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Server {
        child,
        address: address.expect("server logged its address"),
        ca_cert: None,
    }
}

struct Phone<'a> {
    dir: PathBuf,
    server: &'a Server,
}

/// The CA file a client must trust to reach `server` over TLS, if it
/// serves TLS.
fn tls_env(server: &Server) -> Vec<(&'static str, &Path)> {
    server
        .ca_cert
        .as_deref()
        .map(|ca| vec![("ZKID_CA_CERT", ca)])
        .unwrap_or_default()
}

impl Phone<'_> {
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_zkid-prover"));
        command
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--stdin")
            .env("ZKID_PASSPHRASE", "correct horse battery staple")
            .env("ZKID_SERVER", &self.server.address)
            .envs(tls_env(self.server));
        command
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("zkid-prover starts");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(stdin.as_bytes())
            .expect("answers written");
        child.wait_with_output().expect("zkid-prover finishes")
    }

    fn enroll(&self, code: &str, pin: &str) {
        let out = self.run(
            &["enroll", "--server", &self.server.address, "--code", code],
            &format!("{pin}\n"),
        );
        assert!(out.status.success(), "{}", text(&out));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn agent(server: &Server, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zkid-agent"));
    command
        .args(["--server", &server.address])
        .args(args)
        .env("ZKID_TOKEN", token)
        .envs(tls_env(server))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn enrollment_code(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    text(out)
        .lines()
        .find_map(|l| l.strip_prefix("enrollment code ").map(str::to_owned))
        .expect("code printed")
}

fn binding_code(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("binding code").map(str::trim))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a binding code is shown")
        .to_owned()
}

/// The agent starts a verification; the phone answers with `answers`.
fn verify(
    server: &Server,
    agent_token: &str,
    phone: &Phone<'_>,
    answers: &str,
) -> (Output, Output) {
    verify_op(
        server,
        agent_token,
        phone,
        answers,
        &["--operation", "balance_inquiry"],
    )
}

fn verify_op(
    server: &Server,
    agent_token: &str,
    phone: &Phone<'_>,
    answers: &str,
    operation: &[&str],
) -> (Output, Output) {
    let mut args = vec!["verify", "--customer", "cust-0042"];
    args.extend_from_slice(operation);
    let agent_run = agent(server, agent_token, &args)
        .spawn()
        .expect("zkid-agent starts");
    let phone_out = phone.run(&["listen", "--once", "--timeout", "60"], answers);
    let agent_out = agent_run.wait_with_output().expect("zkid-agent finishes");
    (agent_out, phone_out)
}

#[test]
fn enroll_verify_l1_l2_fail_decline_and_reenroll_with_the_real_binaries() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("server");
    admin(&data, &["tenant", "create", "acme", "--name", "Acme Bank"]);
    let enroller = admin(
        &data,
        &[
            "credential",
            "create",
            "--tenant",
            "acme",
            "--role",
            "enroller",
        ],
    );
    let agent_token = admin(
        &data,
        &[
            "credential",
            "create",
            "--tenant",
            "acme",
            "--role",
            "agent",
        ],
    );
    let server = start_server(&data);

    // The bank registers the customer and hands the code to their phone.
    let out = agent(
        &server,
        &enroller,
        &["enroll-customer", "--customer", "cust-0042"],
    )
    .output()
    .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    let code = enrollment_code(&out);
    let phone = Phone {
        dir: root.path().join("phone"),
        server: &server,
    };
    phone.enroll(&code, "4711");

    // The right PIN: PASSED at level L1, same binding code on both screens.
    let (agent_out, phone_out) = verify(&server, &agent_token, &phone, "y\n4711\n");
    assert!(agent_out.status.success(), "{}", text(&agent_out));
    assert!(
        text(&agent_out).contains("outcome PASSED level L1"),
        "{}",
        text(&agent_out)
    );
    assert!(phone_out.status.success(), "{}", text(&phone_out));
    assert_eq!(
        binding_code(&text(&agent_out)),
        binding_code(&text(&phone_out))
    );
    // The server's signed verdict, checked offline against its
    // published key.
    let shown = text(&agent_out);
    let key = shown
        .lines()
        .find_map(|l| l.strip_prefix("verdict: "))
        .and_then(|rest| rest.split_once(" (key "))
        .map(|(token, key)| {
            let (encoded, signature) = token.split_once('.').expect("encoded.signature");
            assert!(!encoded.is_empty() && !signature.is_empty(), "{shown}");
            key.trim_end_matches(')').to_owned()
        })
        .expect("the verdict is printed");
    assert!(
        shown.contains(&format!("verdict signature checked against key {key}")),
        "{shown}"
    );
    // The agent sees no commitment, challenge or proof: only these lines.
    for line in shown.lines() {
        assert!(
            line.starts_with("binding code")
                || line.starts_with("waiting")
                || line.starts_with("PASSED")
                || line.starts_with("outcome")
                || line.starts_with("verdict"),
            "unexpected agent output: {line}"
        );
    }

    // A wrong PIN: FAILED, and the agent exits non-zero.
    let (agent_out, phone_out) = verify(&server, &agent_token, &phone, "y\n1234\n");
    assert_eq!(agent_out.status.code(), Some(1), "{}", text(&agent_out));
    assert!(
        text(&agent_out).contains("outcome FAILED"),
        "{}",
        text(&agent_out)
    );
    assert!(
        text(&phone_out).contains("outcome FAILED"),
        "{}",
        text(&phone_out)
    );

    // "I did not call": DECLINED.
    let (agent_out, phone_out) = verify(&server, &agent_token, &phone, "n\n");
    assert_eq!(agent_out.status.code(), Some(1));
    assert!(
        text(&agent_out).contains("outcome DECLINED"),
        "{}",
        text(&agent_out)
    );
    assert!(
        text(&phone_out).contains("declined: DECLINED"),
        "{}",
        text(&phone_out)
    );

    // A wrong vault passphrase is a clear error and destroys nothing.
    let out = phone
        .command()
        .arg("status")
        .env("ZKID_PASSPHRASE", "wrong")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
    let out = phone.command().arg("status").output().expect("runs");
    assert!(
        out.status.success() && text(&out).contains("cust-0042"),
        "{}",
        text(&out)
    );

    // L2: the bank issues the customer's attribute credential; it registers
    // only the commitment; the phone imports the file into its vault.
    let credential = root.path().join("credential.json");
    let out = agent(
        &server,
        "",
        &[
            "issue-credential",
            "--account",
            "ACC-1001",
            "--date-of-birth",
            "1990-01-31",
            "--postcode",
            "SW1A1AA",
            "--phone",
            "+447700900123",
            "--national-id-last4",
            "1234",
            "--out",
        ],
    )
    .arg(&credential)
    .output()
    .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    let out = agent(
        &server,
        &enroller,
        &["enroll-customer", "--customer", "cust-0042", "--credential"],
    )
    .arg(&credential)
    .output()
    .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    let code = enrollment_code(&out);
    // Registering again issues a new code: the phone re-enrolls with it.
    let phone = Phone {
        dir: root.path().join("phone-l2"),
        server: &server,
    };
    phone.enroll(&code, "4711");
    let out = phone.run(
        &["import-credential", credential.to_str().expect("utf-8")],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let l2 = ["--operation", "change_address", "--account", "ACC-1001"];
    let (agent_out, phone_out) = verify_op(&server, &agent_token, &phone, "y\n4711\n", &l2);
    assert!(
        text(&agent_out).contains("outcome PASSED level L2"),
        "{}\n{}",
        text(&agent_out),
        text(&phone_out)
    );
    // Another account: the phone proves its own account, which is not the
    // one asked about, so the proof fails and the agent learns nothing more.
    let other = ["--operation", "change_address", "--account", "ACC-2002"];
    let (agent_out, _) = verify_op(&server, &agent_token, &phone, "y\n4711\n", &other);
    assert!(
        text(&agent_out).contains("outcome FAILED"),
        "{}",
        text(&agent_out)
    );
    // No account reference for an operation that needs one: refused at once.
    let out = agent(
        &server,
        &agent_token,
        &[
            "verify",
            "--customer",
            "cust-0042",
            "--operation",
            "change_address",
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("needs an account reference"),
        "{}",
        text(&out)
    );

    // Re-enrollment on a new phone: the old phone is told.
    let out = agent(
        &server,
        &enroller,
        &["enroll-customer", "--customer", "cust-0042"],
    )
    .output()
    .expect("runs");
    let new_code = enrollment_code(&out);
    let new_phone = Phone {
        dir: root.path().join("new-phone"),
        server: &server,
    };
    new_phone.enroll(&new_code, "8080");
    let out = phone.run(&["listen", "--timeout", "30"], "");
    let shown = text(&out);
    assert!(shown.contains("another device was enrolled"), "{shown}");
    // ...with the way to undo it, which the phone keeps in its vault.
    assert!(shown.contains("undo it before"), "{shown}");
    let hint = format!("zkid-prover --data-dir {} revert", phone.dir.display());
    assert!(shown.contains(&hint), "{shown}");
    // And the new phone answers.
    let (agent_out, _) = verify(&server, &agent_token, &new_phone, "y\n8080\n");
    assert!(agent_out.status.success(), "{}", text(&agent_out));

    // The customer did not enroll it: the earlier phone undoes the change.
    // A wrong PIN does not, and leaves the offer for another attempt.
    let out = phone.run(&["revert"], "0000\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Unauthenticated"), "{}", text(&out));
    let out = phone.run(&["revert"], "4711\n");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("change undone"), "{}", text(&out));
    let out = phone.run(&["revert"], "4711\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no change to undo"), "{}", text(&out));
    // The earlier phone answers again; the intruder's is shut out.
    let (agent_out, phone_out) = verify(&server, &agent_token, &phone, "y\n4711\n");
    assert!(
        text(&agent_out).contains("outcome PASSED level L1"),
        "{}\n{}",
        text(&agent_out),
        text(&phone_out)
    );
    let out = new_phone.run(&["listen", "--timeout", "10"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Unauthenticated"), "{}", text(&out));
}

#[test]
fn wrong_pins_lock_the_customer_and_the_agent_is_told_with_the_real_binaries() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("server");
    admin(&data, &["tenant", "create", "acme", "--name", "Acme Bank"]);
    let create = |role: &str| {
        admin(
            &data,
            &["credential", "create", "--tenant", "acme", "--role", role],
        )
    };
    let enroller = create("enroller");
    let agent_token = create("agent");
    let server = start_server_with(&data, &[("ZKID_LOCKOUT_MAX_FAILURES", "2")]);
    let out = agent(
        &server,
        &enroller,
        &["enroll-customer", "--customer", "cust-0042"],
    )
    .output()
    .expect("runs");
    let phone = Phone {
        dir: root.path().join("phone"),
        server: &server,
    };
    phone.enroll(&enrollment_code(&out), "4711");

    for _ in 0..2 {
        let (agent_out, _) = verify(&server, &agent_token, &phone, "y\n1234\n");
        assert_eq!(agent_out.status.code(), Some(1), "{}", text(&agent_out));
        assert!(
            text(&agent_out).contains("outcome FAILED"),
            "{}",
            text(&agent_out)
        );
    }
    // Locked: refused at once, before anything reaches the phone, with a
    // signed verdict that says so.
    let out = agent(
        &server,
        &agent_token,
        &[
            "verify",
            "--customer",
            "cust-0042",
            "--operation",
            "balance_inquiry",
        ],
    )
    .output()
    .expect("runs");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("outcome LOCKED"), "{shown}");
    assert!(shown.contains("verdict signature checked"), "{shown}");
}

#[test]
fn a_revoked_phone_undoes_its_revocation_with_the_real_binaries() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("server");
    admin(&data, &["tenant", "create", "acme", "--name", "Acme Bank"]);
    let create = |role: &str| {
        admin(
            &data,
            &["credential", "create", "--tenant", "acme", "--role", role],
        )
    };
    let enroller = create("enroller");
    let agent_token = create("agent");
    let server = start_server(&data);
    let out = agent(
        &server,
        &enroller,
        &["enroll-customer", "--customer", "cust-0042"],
    )
    .output()
    .expect("runs");
    let phone = Phone {
        dir: root.path().join("phone"),
        server: &server,
    };
    let out = phone.run(
        &[
            "enroll",
            "--server",
            &server.address,
            "--code",
            &enrollment_code(&out),
        ],
        "4711\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let device = text(&out)
        .split_whitespace()
        .find(|w| w.starts_with("d_"))
        .expect("the device id is printed")
        .to_owned();

    // The phone listens (and so caches the key a revert needs) when the
    // organization revokes it, which someone talked it into.
    let mut listening = phone
        .command()
        .args(["listen", "--timeout", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zkid-prover starts");
    let mut lines = BufReader::new(listening.stdout.take().expect("piped")).lines();
    let mut shown = String::new();
    for line in lines.by_ref().map_while(Result::ok) {
        shown.push_str(&line);
        shown.push('\n');
        if line.starts_with("listening") {
            break;
        }
    }
    let out = agent(
        &server,
        &enroller,
        &[
            "revoke-device",
            "--customer",
            "cust-0042",
            "--device",
            &device,
        ],
    )
    .output()
    .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    for line in lines.map_while(Result::ok) {
        shown.push_str(&line);
        shown.push('\n');
    }
    let status = listening.wait().expect("zkid-prover finishes");
    assert_eq!(status.code(), Some(1), "{shown}");
    assert!(shown.contains("this device was revoked"), "{shown}");
    assert!(shown.contains("revert"), "{shown}");

    // Revoked, its token is refused, yet it undoes the revocation with the
    // proof alone, and answers again.
    let out = phone.run(&["listen", "--timeout", "10"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Unauthenticated"), "{}", text(&out));
    let out = phone.run(&["revert"], "4711\n");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("change undone"), "{}", text(&out));
    let (agent_out, phone_out) = verify(&server, &agent_token, &phone, "y\n4711\n");
    assert!(
        text(&agent_out).contains("outcome PASSED level L1"),
        "{}\n{}",
        text(&agent_out),
        text(&phone_out)
    );
}

#[test]
fn operator_login_with_the_real_binaries_yields_an_assertion_checked_offline() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("server");
    admin(&data, &["tenant", "create", "bpo", "--name", "Acme BPO"]);
    let create = |role: &str| {
        admin(
            &data,
            &["credential", "create", "--tenant", "bpo", "--role", role],
        )
    };
    let enroller = create("enroller");
    let login_token = create("login");
    let server = start_server(&data);

    let out = agent(
        &server,
        &enroller,
        &["enroll-operator", "--operator", "op-0007"],
    )
    .output()
    .expect("zkid-agent runs");
    let code = enrollment_code(&out);
    let phone = Phone {
        dir: root.path().join("operator-phone"),
        server: &server,
    };
    phone.enroll(&code, "2580");

    let login = |answers: &str| {
        let run = agent(
            &server,
            &login_token,
            &[
                "operator-login",
                "--operator",
                "op-0007",
                "--audience",
                "workstation:ws-12",
            ],
        )
        .spawn()
        .expect("zkid-agent starts");
        let phone_out = phone.run(&["listen", "--once", "--timeout", "60"], answers);
        (
            run.wait_with_output().expect("zkid-agent finishes"),
            phone_out,
        )
    };
    let (agent_out, phone_out) = login("y\n2580\n");
    let shown = text(&agent_out);
    assert!(agent_out.status.success(), "{shown}\n{}", text(&phone_out));
    assert_eq!(binding_code(&shown), binding_code(&text(&phone_out)));
    assert!(text(&phone_out).contains("workstation_login"));
    assert!(shown.contains("outcome PASSED level L1"), "{shown}");
    assert!(shown.contains("assertion eyJ"), "{shown}");
    assert!(
        shown.contains(
            "assertion checked offline: operator op-0007 tenant bpo audience workstation:ws-12 level L1"
        ),
        "{shown}"
    );

    // A wrong PIN fails, with exit code 1 and no assertion.
    let (agent_out, _) = login("y\n0000\n");
    let shown = text(&agent_out);
    assert_eq!(agent_out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("outcome FAILED"), "{shown}");
    assert!(!shown.contains("assertion"), "{shown}");

    // An enroller token cannot begin operator logins: exit code 2.
    let out = agent(
        &server,
        &enroller,
        &["operator-login", "--operator", "op-0007"],
    )
    .output()
    .expect("zkid-agent runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("PermissionDenied"), "{}", text(&out));
}

/// A throwaway PKI for the TLS test: a CA, the server's certificate for
/// 127.0.0.1, and an agent desk's client certificate, as PEM files.
struct TestPki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    desk_cert: PathBuf,
    desk_key: PathBuf,
}

impl TestPki {
    fn create(dir: &Path) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair,
        };
        std::fs::create_dir_all(dir).expect("pki dir");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "zkid end-to-end CA");
        let ca = write("ca.pem", &ca_params.self_signed(&ca_key).expect("CA").pem());
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: &[&str], purpose, stem: &str| {
            let key = KeyPair::generate().expect("leaf key");
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, stem);
            params.extended_key_usages = vec![purpose];
            let cert = params.signed_by(&key, &issuer).expect("leaf");
            (
                write(&format!("{stem}.pem"), &cert.pem()),
                write(&format!("{stem}.key"), &key.serialize_pem()),
            )
        };
        let (server_cert, server_key) = leaf(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        let (desk_cert, desk_key) = leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, "desk7");
        Self {
            ca,
            server_cert,
            server_key,
            desk_cert,
            desk_key,
        }
    }
}

#[test]
fn the_real_binaries_work_over_tls_and_an_agent_desk_needs_only_its_certificate() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("server");
    let pki = TestPki::create(&root.path().join("pki"));
    admin(&data, &["tenant", "create", "acme", "--name", "Acme Bank"]);
    let enroller = admin(
        &data,
        &[
            "credential",
            "create",
            "--tenant",
            "acme",
            "--role",
            "enroller",
        ],
    );
    // The agent desk's credential is its client certificate: no token.
    let registered = admin(
        &data,
        &[
            "credential",
            "create",
            "--tenant",
            "acme",
            "--role",
            "agent",
            "--client-cert",
            pki.desk_cert.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        registered.contains("client certificate SHA-256"),
        "{registered}"
    );
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let mut server = start_server_with(
        &data,
        &[
            ("ZKID_TLS__CERT", &path(&pki.server_cert)),
            ("ZKID_TLS__KEY", &path(&pki.server_key)),
            ("ZKID_TLS__CLIENT_CA", &path(&pki.ca)),
        ],
    );
    let plaintext_address = server.address.clone();
    server.address = server.address.replacen("http://", "https://", 1);
    server.ca_cert = Some(pki.ca.clone());

    let out = agent(
        &server,
        &enroller,
        &["enroll-customer", "--customer", "cust-0042"],
    )
    .output()
    .expect("runs");
    let phone = Phone {
        dir: root.path().join("phone"),
        server: &server,
    };
    phone.enroll(&enrollment_code(&out), "4711");

    // The desk verifies the caller with its certificate alone.
    let desk = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_zkid-agent"));
        command
            .args(["--server", &server.address])
            .env_remove("ZKID_TOKEN")
            .env("ZKID_CA_CERT", &pki.ca)
            .env("ZKID_CLIENT_CERT", &pki.desk_cert)
            .env("ZKID_CLIENT_KEY", &pki.desk_key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let agent_run = desk()
        .args([
            "verify",
            "--customer",
            "cust-0042",
            "--operation",
            "balance_inquiry",
        ])
        .spawn()
        .expect("zkid-agent starts");
    let phone_out = phone.run(&["listen", "--once", "--timeout", "60"], "y\n4711\n");
    let agent_out = agent_run.wait_with_output().expect("zkid-agent finishes");
    assert!(phone_out.status.success(), "{}", text(&phone_out));
    assert!(
        text(&agent_out).contains("outcome PASSED level L1"),
        "{}",
        text(&agent_out)
    );

    // Without the CA the phone refuses to go on, with a clear message; a
    // plaintext client cannot talk to the TLS server.
    let out = phone
        .command()
        .env_remove("ZKID_CA_CERT")
        .args(["listen", "--once", "--timeout", "5"])
        .stdin(Stdio::null())
        .output()
        .expect("zkid-prover runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("ZKID_CA_CERT"), "{}", text(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_zkid-agent"))
        .args(["--server", &plaintext_address])
        .args([
            "verify",
            "--customer",
            "cust-0042",
            "--operation",
            "balance_inquiry",
        ])
        .env("ZKID_TOKEN", &enroller)
        .output()
        .expect("zkid-agent runs");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    // A certificate the server never registered is no credential, even
    // from the trusted CA: here the server's own.
    let out = desk()
        .env("ZKID_CLIENT_CERT", &pki.server_cert)
        .env("ZKID_CLIENT_KEY", &pki.server_key)
        .args([
            "verify",
            "--customer",
            "cust-0042",
            "--operation",
            "balance_inquiry",
        ])
        .output()
        .expect("zkid-agent runs");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
}
