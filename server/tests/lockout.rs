//! Throttling and lockout: consecutive failures lock a customer with a
//! growing backoff, a success resets it, agents and devices are rate
//! limited, declines and locks are fraud events an auditor can list.

mod common;

use std::time::Duration;

use ark_bn254::Fr;
use common::*;
use tonic::{transport::Channel, Code, Streaming};
use zkid_circuits::CircuitProvingKey;
use zkid_proto::v1::{self as pb, SessionState};
use zkid_server::domain::{
    model::{CustomerRef, LockoutState, TenantId, Timestamp},
    Store,
};

const PENDING: i32 = SessionState::Pending as i32;
const LOCKED: i32 = SessionState::Locked as i32;

async fn start(
    server: &TestServer,
    tenant: &Tenant,
    customer_ref: &str,
) -> Result<pb::VerificationSession, tonic::Status> {
    server
        .verification()
        .await
        .start_verification(authed(
            pb::StartVerificationRequest {
                customer_ref: customer_ref.into(),
                operation: "balance_inquiry".into(),
                account_ref: None,
                step_up_from: None,
            },
            &tenant.agent,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The next request pushed, past the notices of closed requests.
async fn next_pushed(push: &mut Streaming<pb::DeviceEvent>) -> pb::VerificationRequest {
    loop {
        match next_event(push).await {
            pb::device_event::Event::Request(request) => return request,
            pb::device_event::Event::Closed(_) => continue,
            other => panic!("expected a request, got {other:?}"),
        }
    }
}

/// Starts a session that must be pushed, and answers it: honestly, or with
/// a valid proof of another challenge (which fails).
async fn answer(
    server: &TestServer,
    tenant: &Tenant,
    phone: &Phone,
    push: &mut Streaming<pb::DeviceEvent>,
    key: &CircuitProvingKey,
    honest: bool,
) -> i32 {
    let session = start(server, tenant, "cust-1").await.expect("start");
    assert_eq!(session.state, PENDING);
    let request = next_pushed(push).await;
    assert_eq!(
        request.session_id, session.session_id,
        "nothing else pushed"
    );
    let proof = if honest {
        phone.prove(key, &request)
    } else {
        phone.prove_challenge(key, Fr::from(424_242u64))
    };
    let key_id = &request.requirements[0].key_id;
    submit(server, phone, &session.session_id, key_id, proof)
        .await
        .expect("submit")
        .state
}

async fn standing(server: &TestServer) -> LockoutState {
    let store = zkid_server::admin::open_store(&server.config)
        .await
        .expect("store");
    let state = store
        .lockout(
            &TenantId::parse("acme").expect("id"),
            &CustomerRef::parse("cust-1").expect("ref"),
        )
        .await
        .expect("lockout");
    store.close().await;
    state
}

async fn fraud_events(
    client: &mut zkid_proto::v1::audit_client::AuditClient<Channel>,
    token: &str,
) -> Vec<pb::FraudEvent> {
    client
        .list_fraud_events(authed(
            pb::ListFraudEventsRequest {
                after_id: 0,
                limit: 100,
            },
            token,
        ))
        .await
        .expect("list fraud events")
        .into_inner()
        .events
}

async fn wait_unlocked(server: &TestServer) {
    let until = standing(server).await.locked_until.expect("locked");
    tokio::time::sleep(until.remaining() + Duration::from_millis(50)).await;
}

#[tokio::test]
async fn failures_lock_with_growing_backoff_and_a_success_resets() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| {
        c.lockout_max_failures = 2;
        c.lockout_base_secs = 1;
        c.lockout_max_secs = 60;
        c.device_sessions_per_minute = 100;
    })
    .await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let probe = start(&server, &acme, "cust-1").await.expect("start");
    let request = next_request(&mut push).await;
    assert_eq!(request.session_id, probe.session_id);
    let key = server
        .proving_key(&phone, &request.requirements[0].key_id)
        .await;

    // One failure (the probe's) does not lock; the second does.
    let failed = SessionState::Failed as i32;
    let proof = phone.prove_challenge(&key, Fr::from(1u64));
    let key_id = request.requirements[0].key_id.clone();
    let probe_state = submit(&server, &phone, &probe.session_id, &key_id, proof)
        .await
        .expect("submit")
        .state;
    assert_eq!(probe_state, failed);
    assert_eq!(standing(&server).await.failures, 1);
    assert_eq!(
        answer(&server, &acme, &phone, &mut push, &key, false).await,
        failed
    );
    let first = standing(&server).await;
    assert_eq!((first.failures, first.locks), (0, 1));
    let first_lock = first.locked_until.expect("locked").0 - Timestamp::now().0;
    assert!((0..=1000).contains(&first_lock), "{first_lock}");

    // Locked: the agent gets LOCKED at once, and the phone nothing.
    let locked = start(&server, &acme, "cust-1").await.expect("start");
    assert_eq!(locked.state, LOCKED);
    assert_eq!(locked.level_reached, pb::AssuranceLevel::None as i32);
    assert!(locked.resolved_at.is_some());

    // After the lock, two more failures lock for twice as long.
    wait_unlocked(&server).await;
    assert_eq!(
        answer(&server, &acme, &phone, &mut push, &key, false).await,
        failed
    );
    assert_eq!(
        answer(&server, &acme, &phone, &mut push, &key, false).await,
        failed
    );
    let second = standing(&server).await;
    assert_eq!(second.locks, 2);
    let second_lock = second.locked_until.expect("locked").0 - Timestamp::now().0;
    assert!((1000..=2000).contains(&second_lock), "{second_lock}");
    assert_eq!(
        start(&server, &acme, "cust-1").await.expect("start").state,
        LOCKED
    );

    // A success resets failures and the doubling.
    wait_unlocked(&server).await;
    let passed = SessionState::Passed as i32;
    assert_eq!(
        answer(&server, &acme, &phone, &mut push, &key, true).await,
        passed
    );
    assert_eq!(standing(&server).await, LockoutState::default());

    // Each lock is a fraud event the tenant's auditor sees.
    let mut audit = server.audit().await;
    let events = fraud_events(&mut audit, &acme.auditor).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["locked", "locked"]);
    assert!(events.iter().all(|e| e.customer_ref == "cust-1"));

    // Each lock and each lock's end is in the audit log.
    let store = zkid_server::admin::open_store(&server.config)
        .await
        .expect("store");
    let log = store.audit_records(None, 0, 1000).await.expect("records");
    store.close().await;
    let count = |action: &str| log.iter().filter(|r| r.event.action == action).count();
    assert_eq!((count("lock"), count("unlock")), (2, 2));
    let refused = log
        .iter()
        .filter(|r| r.event.action == "session.start" && r.event.outcome == "locked")
        .count();
    assert_eq!(refused, 2);
}

#[tokio::test]
async fn agents_and_devices_are_rate_limited() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| {
        c.agent_sessions_per_minute = 3;
        c.device_sessions_per_minute = 2;
    })
    .await;
    let acme = server.tenant("acme", "Acme Bank").await;
    server.phone(&acme, "cust-1", "4711", 1).await;
    server.phone(&acme, "cust-2", "4711", 2).await;
    assert_eq!(
        start(&server, &acme, "cust-1").await.expect("1").state,
        PENDING
    );
    assert_eq!(
        start(&server, &acme, "cust-1").await.expect("2").state,
        PENDING
    );
    // The device was asked twice this minute: the third request is LOCKED.
    assert_eq!(
        start(&server, &acme, "cust-1").await.expect("3").state,
        LOCKED
    );
    // The agent started three: a fourth is refused, whoever it is for.
    let status = assert_code(
        start(&server, &acme, "cust-2").await,
        Code::ResourceExhausted,
    );
    assert!(status.message().contains("retry"), "{status:?}");
    // Another agent of the tenant is not affected.
    let store = zkid_server::admin::open_store(&server.config)
        .await
        .expect("store");
    let keys = zkid_server::admin::signing_keys(&server.config).expect("keys");
    let (_, token) = zkid_server::admin::create_credential(
        &store,
        &keys,
        "acme",
        zkid_server::domain::model::Role::Agent,
        None,
        None,
    )
    .await
    .expect("agent");
    store.close().await;
    let other = Tenant {
        agent: token.expose().to_owned(),
        ..server.tenant("acme-2", "Other").await
    };
    assert_eq!(
        start(&server, &other, "cust-2").await.expect("other").state,
        PENDING
    );
}

#[tokio::test]
async fn a_decline_is_a_fraud_event_for_the_tenants_auditors_only() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let globex = server.tenant("globex", "Globex").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = start(&server, &acme, "cust-1").await.expect("start");
    next_request(&mut push).await;
    server
        .device()
        .await
        .decline(authed(
            pb::DeclineRequest {
                session_id: session.session_id.clone(),
            },
            &phone.token,
        ))
        .await
        .expect("decline");

    let mut audit = server.audit().await;
    let events = fraud_events(&mut audit, &acme.auditor).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "declined");
    assert_eq!(events[0].session_id, session.session_id);
    assert_eq!(events[0].customer_ref, "cust-1");
    // Paging past it: nothing more.
    let next = audit
        .list_fraud_events(authed(
            pb::ListFraudEventsRequest {
                after_id: events[0].id,
                limit: 10,
            },
            &acme.auditor,
        ))
        .await
        .expect("page")
        .into_inner();
    assert!(next.events.is_empty());
    // Another tenant's auditor sees none of it; agents may not ask.
    assert!(fraud_events(&mut audit, &globex.auditor).await.is_empty());
    let denied = audit
        .list_fraud_events(authed(
            pb::ListFraudEventsRequest {
                after_id: 0,
                limit: 10,
            },
            &acme.agent,
        ))
        .await;
    assert_code(denied, Code::PermissionDenied);
    let bad_limit = audit
        .list_fraud_events(authed(
            pb::ListFraudEventsRequest {
                after_id: 0,
                limit: 0,
            },
            &acme.auditor,
        ))
        .await;
    assert_code(bad_limit, Code::InvalidArgument);
}

#[tokio::test]
async fn a_customers_daily_budget_caps_verifications() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| {
        c.customer_verifications_per_day = 2;
        c.device_sessions_per_minute = 100;
    })
    .await;
    let acme = server.tenant("acme", "Acme Bank").await;
    server.phone(&acme, "cust-1", "4711", 1).await;
    server.phone(&acme, "cust-2", "4711", 2).await;
    for _ in 0..2 {
        assert_eq!(
            start(&server, &acme, "cust-1").await.expect("start").state,
            PENDING
        );
    }
    // The budget is spent: whatever the operation, LOCKED, and refused
    // attempts do not push the budget further out.
    for _ in 0..2 {
        assert_eq!(
            start(&server, &acme, "cust-1").await.expect("start").state,
            LOCKED
        );
    }
    let store = zkid_server::admin::open_store(&server.config)
        .await
        .expect("store");
    let spent = store
        .sessions_for_customer_since(
            &TenantId::parse("acme").expect("id"),
            &CustomerRef::parse("cust-1").expect("ref"),
            Timestamp(0),
        )
        .await
        .expect("count");
    store.close().await;
    assert_eq!(spent, 2);
    // Another customer has their own budget.
    assert_eq!(
        start(&server, &acme, "cust-2").await.expect("start").state,
        PENDING
    );
}
