//! The BPO operator second factor: operators enroll like customers, a
//! workstation login system begins a login, the operator's phone proves the
//! PIN and the device, and the login system receives an assertion it checks
//! offline. Lockout, role separation and audit records as for customers.

mod common;

use std::collections::HashMap;

use ark_bn254::Fr;
use common::*;
use tonic::{transport::Channel, Code, Streaming};
use zkid_circuits::CircuitProvingKey;
use zkid_proto::v1::{
    self as pb, keys_client::KeysClient, operator_enrollment_client::OperatorEnrollmentClient,
    operator_login_client::OperatorLoginClient, SessionState,
};
use zkid_server::{
    admin,
    assertion::{self, AssertionError},
    domain::model::Role,
};

const PASSED: i32 = SessionState::Passed as i32;
const FAILED: i32 = SessionState::Failed as i32;
const LOCKED: i32 = SessionState::Locked as i32;
const PENDING: i32 = SessionState::Pending as i32;
const AUDIENCE: &str = "workstation:ws-12";

/// A login system credential of `tenant`.
async fn login_token(server: &TestServer, tenant: &str) -> String {
    let store = admin::open_store(&server.config).await.expect("store");
    let keys = admin::signing_keys(&server.config).expect("keys");
    let (_, token) = admin::create_credential(&store, &keys, tenant, Role::Login, None, None)
        .await
        .expect("login credential");
    store.close().await;
    token.expose().to_owned()
}

async fn operator_enrollment(server: &TestServer) -> OperatorEnrollmentClient<Channel> {
    OperatorEnrollmentClient::new(server.channel().await)
}

async fn login_client(server: &TestServer) -> OperatorLoginClient<Channel> {
    OperatorLoginClient::new(server.channel().await)
}

/// Registers `operator_ref` as an operator and enrolls a phone for it.
async fn operator_phone(
    server: &TestServer,
    tenant: &Tenant,
    operator_ref: &str,
    pin: &str,
    seed: u64,
) -> Phone {
    let registered = operator_enrollment(server)
        .await
        .register_operator(authed(
            pb::RegisterOperatorRequest {
                operator_ref: operator_ref.into(),
            },
            &tenant.enroller,
        ))
        .await
        .expect("register operator")
        .into_inner();
    assert!(!registered.existing_operator);
    server
        .enroll(&registered.enrollment_code, operator_ref, pin, seed)
        .await
}

async fn begin(
    server: &TestServer,
    token: &str,
    operator_ref: &str,
) -> Result<pb::OperatorLoginSession, tonic::Status> {
    login_client(server)
        .await
        .begin_login(authed(
            pb::BeginLoginRequest {
                operator_ref: operator_ref.into(),
                audience: AUDIENCE.into(),
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(server: &TestServer, token: &str, session_id: &str) -> pb::OperatorLoginSession {
    login_client(server)
        .await
        .get_login(authed(
            pb::GetLoginRequest {
                session_id: session_id.into(),
            },
            token,
        ))
        .await
        .expect("get login")
        .into_inner()
}

/// The server's public keys by id, as a login system fetches them.
async fn public_keys(server: &TestServer) -> HashMap<String, [u8; 32]> {
    KeysClient::new(server.channel().await)
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .expect("keys")
        .into_inner()
        .keys
        .into_iter()
        .map(|k| (k.key_id, k.public_key.try_into().expect("32 bytes")))
        .collect()
}

fn now_secs() -> i64 {
    zkid_server::domain::model::Timestamp::now().0 / 1000
}

/// Begins a login, lets the phone answer (honestly or for another
/// challenge), and returns the resolved login.
async fn login(
    server: &TestServer,
    token: &str,
    operator_ref: &str,
    phone: &Phone,
    push: &mut Streaming<pb::DeviceEvent>,
    key: &CircuitProvingKey,
    honest: bool,
) -> pb::OperatorLoginSession {
    let login = begin(server, token, operator_ref).await.expect("begin");
    assert_eq!(login.state, PENDING);
    let request = loop {
        match next_event(push).await {
            pb::device_event::Event::Request(r) => break r,
            pb::device_event::Event::Closed(_) => continue,
            other => panic!("expected a request, got {other:?}"),
        }
    };
    assert_eq!(request.session_id, login.session_id);
    let proof = if honest {
        phone.prove(key, &request)
    } else {
        phone.prove_challenge(key, Fr::from(99u64))
    };
    submit(
        server,
        phone,
        &login.session_id,
        &request.requirements[0].key_id,
        proof,
    )
    .await
    .expect("submit");
    get(server, token, &login.session_id).await
}

#[tokio::test]
async fn a_passed_login_yields_an_assertion_that_checks_offline() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let bpo = server.tenant("bpo", "Acme BPO").await;
    let token = login_token(&server, "bpo").await;
    let phone = operator_phone(&server, &bpo, "op-7", "2580", 7).await;
    let mut push = phone.listen(&server).await;

    // The phone sees the push, with the login's binding code.
    let login = begin(&server, &token, "op-7").await.expect("begin");
    assert_eq!(login.state, PENDING);
    assert_eq!(login.operator_ref, "op-7");
    assert_eq!(login.audience, AUDIENCE);
    assert!(login.assertion.is_empty(), "no assertion before PASSED");
    let request = next_request(&mut push).await;
    assert_eq!(request.session_id, login.session_id);
    assert_eq!(request.binding_code, login.binding_code);
    assert_eq!(request.operation, "workstation_login");
    assert_eq!(request.level, pb::AssuranceLevel::L1 as i32);
    assert!(request.binding_message.contains("Acme BPO"));
    let key = server
        .proving_key(&phone, &request.requirements[0].key_id)
        .await;

    // The watch ends with PASSED and the assertion.
    let mut watch = login_client(&server)
        .await
        .watch_login(authed(
            pb::WatchLoginRequest {
                session_id: login.session_id.clone(),
            },
            &token,
        ))
        .await
        .expect("watch")
        .into_inner();
    let proof = phone.prove(&key, &request);
    let submitted = submit(
        &server,
        &phone,
        &login.session_id,
        &request.requirements[0].key_id,
        proof,
    )
    .await
    .expect("submit");
    assert_eq!(submitted.state, PASSED);
    let mut last = None;
    while let Some(update) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_stream::StreamExt::next(&mut watch),
    )
    .await
    .expect("update in time")
    {
        last = Some(update.expect("update"));
    }
    let passed = last.expect("a final snapshot");
    assert_eq!(passed.state, PASSED);
    assert_eq!(passed.level_reached, pb::AssuranceLevel::L1 as i32);
    assert!(!passed.assertion.is_empty());
    // Reading again gives the same assertion (deterministic signature).
    assert_eq!(
        get(&server, &token, &login.session_id).await.assertion,
        passed.assertion
    );

    let keys = public_keys(&server).await;
    let lookup = |id: &str| keys.get(id).copied();
    let now = now_secs();
    let claims =
        assertion::verify(&passed.assertion, AUDIENCE, now, lookup).expect("assertion checks");
    assert_eq!(claims.sub, "op-7");
    assert_eq!(claims.tenant, "bpo");
    assert_eq!(claims.aud, AUDIENCE);
    assert_eq!(claims.jti, login.session_id);
    assert_eq!(claims.iss, "zkid");
    assert_eq!(claims.level, 1);
    assert_eq!(claims.exp - claims.iat, 60, "the default lifetime");
    assert!(claims.iat <= now && now < claims.exp);

    // Another audience, a later time, an altered token: refused.
    assert!(matches!(
        assertion::verify(&passed.assertion, "workstation:ws-13", now, lookup),
        Err(AssertionError::WrongAudience(_))
    ));
    assert_eq!(
        assertion::verify(&passed.assertion, AUDIENCE, claims.exp, lookup),
        Err(AssertionError::Expired)
    );
    let parts: Vec<&str> = passed.assertion.split('.').collect();
    let payload = base64_url(parts[1]).replace("\"op-7\"", "\"op-8\"");
    let altered = format!("{}.{}.{}", parts[0], encode_url(&payload), parts[2]);
    assert_eq!(
        assertion::verify(&altered, AUDIENCE, now, lookup),
        Err(AssertionError::BadSignature)
    );
    server.stop().await.expect("clean stop");
}

fn base64_url(part: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url"),
    )
    .expect("json")
}

fn encode_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn wrong_pins_fail_and_lock_the_operator_out() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| {
        c.lockout_max_failures = 2;
        c.lockout_base_secs = 60;
        c.device_sessions_per_minute = 100;
    })
    .await;
    let bpo = server.tenant("bpo", "Acme BPO").await;
    let token = login_token(&server, "bpo").await;
    let phone = operator_phone(&server, &bpo, "op-7", "2580", 7).await;
    let mut push = phone.listen(&server).await;
    let first = begin(&server, &token, "op-7").await.expect("begin");
    let request = next_request(&mut push).await;
    let key = server
        .proving_key(&phone, &request.requirements[0].key_id)
        .await;
    // A proof for another challenge is what a wrong PIN amounts to: the
    // statement (commitment, challenge) does not hold.
    let proof = phone.prove_challenge(&key, Fr::from(99u64));
    submit(
        &server,
        &phone,
        &first.session_id,
        &request.requirements[0].key_id,
        proof,
    )
    .await
    .expect("submit");
    let failed = get(&server, &token, &first.session_id).await;
    assert_eq!(failed.state, FAILED);
    assert!(failed.assertion.is_empty(), "no assertion for a failure");

    let second = login(&server, &token, "op-7", &phone, &mut push, &key, false).await;
    assert_eq!(second.state, FAILED);
    // Locked now: even the right PIN is not asked for.
    let locked = begin(&server, &token, "op-7").await.expect("begin");
    assert_eq!(locked.state, LOCKED);
    assert!(locked.assertion.is_empty());

    // The auditor sees the lock as a fraud event of the operator.
    let events = server
        .audit()
        .await
        .list_fraud_events(authed(
            pb::ListFraudEventsRequest {
                after_id: 0,
                limit: 100,
            },
            &bpo.auditor,
        ))
        .await
        .expect("fraud events")
        .into_inner()
        .events;
    assert!(events
        .iter()
        .any(|e| e.kind == "locked" && e.customer_ref == "op-7"));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn roles_stay_apart_and_operators_are_not_customers() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let bpo = server.tenant("bpo", "Acme BPO").await;
    let token = login_token(&server, "bpo").await;
    let _phone = operator_phone(&server, &bpo, "op-7", "2580", 7).await;
    let _customer = server.phone(&bpo, "cust-1", "1234", 8).await;

    // An agent cannot begin operator logins.
    assert_code(
        begin(&server, &bpo.agent, "op-7").await,
        Code::PermissionDenied,
    );
    // A login system cannot verify customers, nor register anyone.
    let verify = server
        .verification()
        .await
        .start_verification(authed(
            pb::StartVerificationRequest {
                customer_ref: "cust-1".into(),
                operation: "balance_inquiry".into(),
                account_ref: None,
                step_up_from: None,
            },
            &token,
        ))
        .await;
    assert_code(verify, Code::PermissionDenied);
    let register = operator_enrollment(&server)
        .await
        .register_operator(authed(
            pb::RegisterOperatorRequest {
                operator_ref: "op-9".into(),
            },
            &token,
        ))
        .await;
    assert_code(register, Code::PermissionDenied);

    // An operator is no customer, a customer no operator.
    let as_customer = server
        .verification()
        .await
        .start_verification(authed(
            pb::StartVerificationRequest {
                customer_ref: "op-7".into(),
                operation: "balance_inquiry".into(),
                account_ref: None,
                step_up_from: None,
            },
            &bpo.agent,
        ))
        .await;
    assert_code(as_customer, Code::NotFound);
    assert_code(begin(&server, &token, "cust-1").await, Code::NotFound);
    // And one reference cannot become the other kind.
    let reregister = server
        .enrollment()
        .await
        .register_customer(authed(
            pb::RegisterCustomerRequest {
                customer_ref: "op-7".into(),
                attributes: None,
            },
            &bpo.enroller,
        ))
        .await;
    assert_code(reregister, Code::AlreadyExists);
    let as_operator = operator_enrollment(&server)
        .await
        .register_operator(authed(
            pb::RegisterOperatorRequest {
                operator_ref: "cust-1".into(),
            },
            &bpo.enroller,
        ))
        .await;
    assert_code(as_operator, Code::AlreadyExists);

    // An agent does not read operator logins; another login system does
    // not read this one's; a login system from another tenant neither.
    let login = begin(&server, &token, "op-7").await.expect("begin");
    let agent_read = server
        .verification()
        .await
        .get_verification(authed(
            pb::GetVerificationRequest {
                session_id: login.session_id.clone(),
            },
            &bpo.agent,
        ))
        .await;
    assert_code(agent_read, Code::PermissionDenied);
    let other = login_token(&server, "bpo").await;
    let other_read = login_client(&server)
        .await
        .get_login(authed(
            pb::GetLoginRequest {
                session_id: login.session_id.clone(),
            },
            &other,
        ))
        .await;
    assert_code(other_read, Code::PermissionDenied);
    let _rival = server.tenant("rival", "Rival BPO").await;
    let rival = login_token(&server, "rival").await;
    assert_code(begin(&server, &rival, "op-7").await, Code::NotFound);
    // A bad audience is refused with a reason.
    let bad = login_client(&server)
        .await
        .begin_login(authed(
            pb::BeginLoginRequest {
                operator_ref: "op-7".into(),
                audience: "two words".into(),
            },
            &token,
        ))
        .await;
    let status = assert_code(bad, Code::InvalidArgument);
    assert!(status.message().contains("audience"));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn operator_logins_are_audited_and_cancellable() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| {
        c.device_sessions_per_minute = 100;
    })
    .await;
    let bpo = server.tenant("bpo", "Acme BPO").await;
    let token = login_token(&server, "bpo").await;
    let phone = operator_phone(&server, &bpo, "op-7", "2580", 7).await;
    let mut push = phone.listen(&server).await;
    let first = begin(&server, &token, "op-7").await.expect("begin");
    let request = next_request(&mut push).await;
    let key = server
        .proving_key(&phone, &request.requirements[0].key_id)
        .await;
    let cancelled = login_client(&server)
        .await
        .cancel_login(authed(
            pb::CancelLoginRequest {
                session_id: first.session_id.clone(),
            },
            &token,
        ))
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state, SessionState::Cancelled as i32);
    let passed = login(&server, &token, "op-7", &phone, &mut push, &key, true).await;
    assert_eq!(passed.state, PASSED);

    let records = server
        .audit()
        .await
        .list_audit_records(authed(
            pb::ListAuditRecordsRequest {
                after_seq: 0,
                limit: 1000,
            },
            &bpo.auditor,
        ))
        .await
        .expect("records")
        .into_inner()
        .records;
    let of = |session: &str, action: &str| {
        records
            .iter()
            .filter(|r| r.session_id == session && r.action == action)
            .count()
    };
    assert!(records
        .iter()
        .any(|r| r.action == "operator.register" && r.customer_ref == "op-7"));
    let start = records
        .iter()
        .find(|r| r.session_id == passed.session_id && r.action == "session.start")
        .expect("start record");
    assert_eq!(start.actor_role, "login");
    assert_eq!(start.customer_ref, "op-7");
    assert!(start.detail.contains("operation=workstation_login"));
    assert!(start.detail.contains(AUDIENCE));
    assert_eq!(of(&passed.session_id, "verdict"), 1);
    assert_eq!(of(&first.session_id, "cancel"), 1);
    // No assertion, token or proof ever reaches the log.
    assert!(records.iter().all(|r| !r.detail.contains(&passed.assertion)
        && !r.detail.contains(&token)
        && !r.detail.contains("eyJ")));
    server.stop().await.expect("clean stop");
}
