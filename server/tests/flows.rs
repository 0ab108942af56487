//! Every verification flow, through the generated clients, against the
//! real server in-process.

mod common;

use std::time::Duration;

use ark_bn254::Fr;
use common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use zkid_circuits::{pin::Pin, ProveError};
use zkid_proto::v1::{self as pb, device_event::Event, SessionState};
use zkid_server::domain::{
    model::{CustomerRef, TenantId},
    Store,
};

const STATE_PENDING: i32 = SessionState::Pending as i32;

#[tokio::test]
async fn happy_path_passes_and_both_sides_see_the_same_code() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;

    let session = server.start_session(&acme, "cust-1").await;
    assert_eq!(session.state, STATE_PENDING);
    assert_eq!(session.required_level, pb::AssuranceLevel::L1 as i32);
    assert_eq!(session.level_reached, pb::AssuranceLevel::None as i32);
    let mut watch = server
        .verification()
        .await
        .watch_verification(authed(
            pb::WatchVerificationRequest {
                session_id: session.session_id.clone(),
            },
            &acme.agent,
        ))
        .await
        .expect("watch")
        .into_inner();
    let first = watch.next().await.expect("snapshot").expect("ok");
    assert_eq!(first.state, STATE_PENDING);

    let request = next_request(&mut push).await;
    assert_eq!(request.session_id, session.session_id);
    assert_eq!(request.binding_code, session.binding_code);
    assert_eq!(request.organization, "Acme Bank");
    assert!(request.binding_message.contains("Acme Bank"));
    assert!(request.binding_message.contains("balance inquiry"));
    assert!(request.binding_message.contains(&session.binding_code));
    assert_eq!(request.challenge.len(), 32);
    assert_eq!(request.requirements.len(), 1);
    let requirement = &request.requirements[0];

    // The key the request names is the one the server lists.
    let listed = server
        .device()
        .await
        .list_proving_keys(authed(pb::ListProvingKeysRequest {}, &phone.token))
        .await
        .expect("list keys")
        .into_inner();
    assert!(listed.keys.iter().any(|k| k.key_id == requirement.key_id));

    let key = server.proving_key(&phone, &requirement.key_id).await;
    let proof = phone.prove(&key, &request);
    let answer = submit(
        &server,
        &phone,
        &session.session_id,
        &requirement.key_id,
        proof,
    )
    .await
    .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);
    assert_eq!(answer.level_reached, pb::AssuranceLevel::L1 as i32);

    let last = watch.next().await.expect("update").expect("ok");
    assert_eq!(last.state, SessionState::Passed as i32);
    assert_eq!(last.level_reached, pb::AssuranceLevel::L1 as i32);
    assert!(last.resolved_at.is_some());
    assert!(
        watch.next().await.is_none(),
        "the watch ends after the final state"
    );

    match next_event(&mut push).await {
        Event::Closed(closed) => {
            assert_eq!(closed.session_id, session.session_id);
            assert_eq!(closed.state, SessionState::Passed as i32);
        }
        other => panic!("expected closed, got {other:?}"),
    }
    let got = server.get(&acme, &session.session_id).await;
    assert_eq!(got.state, SessionState::Passed as i32);
    assert_eq!(got.binding_code, session.binding_code);
}

#[tokio::test]
async fn a_wrong_pin_cannot_be_proven_and_a_proof_of_another_commitment_fails() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    let request = next_request(&mut push).await;
    let key_id = request.requirements[0].key_id.clone();
    let key = server.proving_key(&phone, &key_id).await;
    let challenge = field(&request.challenge);

    // The honest app cannot even produce a proof with a wrong PIN.
    let wrong = Pin::parse("4712").expect("pin");
    assert!(matches!(
        phone.prove_with_pin(&key, &wrong, challenge),
        Err(ProveError::Unsatisfied(_))
    ));

    // A tampered app could prove the wrong PIN against the commitment it
    // opens (Poseidon(wrong PIN, secret)) instead of the enrolled one:
    // that proof is valid for its own statement, and the server, which
    // verifies against the enrolled commitment, must fail the session.
    let impostor = Phone {
        pin: wrong,
        secret: phone.secret.clone(),
        commitment: Fr::from(0u64),
        token: phone.token.clone(),
        device_id: phone.device_id.clone(),
        seed: 9,
    };
    let proof = impostor.prove_challenge(&key, challenge);
    let answer = submit(&server, &phone, &session.session_id, &key_id, proof)
        .await
        .expect("submit");
    assert_eq!(answer.state, SessionState::Failed as i32);
    assert_eq!(answer.level_reached, pb::AssuranceLevel::None as i32);
    assert_eq!(
        server.get(&acme, &session.session_id).await.state,
        SessionState::Failed as i32
    );
}

#[tokio::test]
async fn replayed_and_cross_session_proofs_are_refused() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;

    let first = server.start_session(&acme, "cust-1").await;
    let first_request = next_request(&mut push).await;
    let second = server.start_session(&acme, "cust-1").await;
    let second_request = next_request(&mut push).await;
    assert_eq!(second_request.session_id, second.session_id);
    assert_ne!(first_request.challenge, second_request.challenge);
    let key_id = first_request.requirements[0].key_id.clone();
    let key = server.proving_key(&phone, &key_id).await;

    // A valid proof answering the first session's challenge fails the second.
    let proof_for_first = phone.prove(&key, &first_request);
    let answer = submit(
        &server,
        &phone,
        &second.session_id,
        &key_id,
        proof_for_first.clone(),
    )
    .await
    .expect("submit");
    assert_eq!(answer.state, SessionState::Failed as i32);

    // The first session is untouched and passes with that proof.
    let answer = submit(
        &server,
        &phone,
        &first.session_id,
        &key_id,
        proof_for_first.clone(),
    )
    .await
    .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);

    // Replaying it: the challenge is consumed, the session resolved.
    let status = assert_code(
        submit(&server, &phone, &first.session_id, &key_id, proof_for_first).await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("no longer pending"), "{status:?}");
    assert_eq!(
        server.get(&acme, &first.session_id).await.state,
        SessionState::Passed as i32
    );
}

#[tokio::test]
async fn malformed_proofs_are_invalid_arguments_and_leave_the_session_pending() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    let request = next_request(&mut push).await;
    let key_id = request.requirements[0].key_id.clone();

    let status = assert_code(
        submit(&server, &phone, &session.session_id, &key_id, vec![1; 10]).await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("256 bytes"), "{status:?}");
    let status = assert_code(
        submit(
            &server,
            &phone,
            &session.session_id,
            &key_id,
            vec![0xff; 256],
        )
        .await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().contains("proof 0 is malformed"),
        "{status:?}"
    );
    let status = assert_code(
        submit(&server, &phone, &session.session_id, &[7; 32], vec![0; 256]).await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("another key"), "{status:?}");
    let no_proofs = server
        .device()
        .await
        .submit_proof(authed(
            pb::SubmitProofRequest {
                session_id: session.session_id.clone(),
                proofs: vec![],
            },
            &phone.token,
        ))
        .await;
    assert_code(no_proofs, Code::InvalidArgument);
    let bad_id = submit(&server, &phone, "not-a-session", &key_id, vec![0; 256]).await;
    assert_code(bad_id, Code::InvalidArgument);

    assert_eq!(
        server.get(&acme, &session.session_id).await.state,
        STATE_PENDING
    );
    let key = server.proving_key(&phone, &key_id).await;
    let answer = submit(
        &server,
        &phone,
        &session.session_id,
        &key_id,
        phone.prove(&key, &request),
    )
    .await
    .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let session = server.start_session(&acme, "cust-1").await;
    let status = assert_code(
        submit(
            &server,
            &phone,
            &session.session_id,
            &[0; 32],
            vec![0; 64 * 1024],
        )
        .await,
        Code::OutOfRange,
    );
    assert!(status.message().contains("too large"), "{status:?}");
    let huge_ref = server
        .enrollment()
        .await
        .register_customer(authed(
            pb::RegisterCustomerRequest {
                customer_ref: "x".repeat(20_000),
                attributes: None,
            },
            &acme.enroller,
        ))
        .await;
    assert_code(huge_ref, Code::OutOfRange);
    assert_eq!(
        server.get(&acme, &session.session_id).await.state,
        STATE_PENDING
    );
}

#[tokio::test]
async fn decline_resolves_as_declined_and_records_a_fraud_signal() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    next_request(&mut push).await;
    let declined = server
        .device()
        .await
        .decline(authed(
            pb::DeclineRequest {
                session_id: session.session_id.clone(),
            },
            &phone.token,
        ))
        .await
        .expect("decline")
        .into_inner();
    assert_eq!(declined.state, SessionState::Declined as i32);
    assert_eq!(
        server.get(&acme, &session.session_id).await.state,
        SessionState::Declined as i32
    );
    let again = server
        .device()
        .await
        .decline(authed(
            pb::DeclineRequest {
                session_id: session.session_id.clone(),
            },
            &phone.token,
        ))
        .await;
    assert_code(again, Code::FailedPrecondition);

    let store = zkid_server::admin::open_store(&server.config)
        .await
        .expect("store");
    let tenant = TenantId::parse("acme").expect("id");
    let customer = CustomerRef::parse("cust-1").expect("ref");
    assert_eq!(
        store
            .fraud_signal_count(&tenant, &customer)
            .await
            .expect("count"),
        1
    );
    store.close().await;
}

#[tokio::test]
async fn sessions_expire_even_when_nobody_answers() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| c.session_ttl_secs = 1).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    let request = next_request(&mut push).await;
    let mut watch = server
        .verification()
        .await
        .watch_verification(authed(
            pb::WatchVerificationRequest {
                session_id: session.session_id.clone(),
            },
            &acme.agent,
        ))
        .await
        .expect("watch")
        .into_inner();
    let states: Vec<i32> = tokio::time::timeout(Duration::from_secs(10), async {
        let mut states = Vec::new();
        while let Some(update) = watch.next().await {
            states.push(update.expect("update").state);
        }
        states
    })
    .await
    .expect("watch ends");
    assert_eq!(states, vec![STATE_PENDING, SessionState::Expired as i32]);
    match next_event(&mut push).await {
        Event::Closed(closed) => assert_eq!(closed.state, SessionState::Expired as i32),
        other => panic!("expected closed, got {other:?}"),
    }
    let key_id = request.requirements[0].key_id.clone();
    let key = server.proving_key(&phone, &key_id).await;
    let late = submit(
        &server,
        &phone,
        &session.session_id,
        &key_id,
        phone.prove(&key, &request),
    )
    .await;
    let status = assert_code(late, Code::FailedPrecondition);
    assert!(status.message().contains("expired"), "{status:?}");
}

#[tokio::test]
async fn cancelled_sessions_are_withdrawn_from_the_device() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    next_request(&mut push).await;
    let cancel = |id: String| {
        let server = &server;
        let token = acme.agent.clone();
        async move {
            server
                .verification()
                .await
                .cancel_verification(authed(
                    pb::CancelVerificationRequest { session_id: id },
                    &token,
                ))
                .await
        }
    };
    let cancelled = cancel(session.session_id.clone())
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state, SessionState::Cancelled as i32);
    match next_event(&mut push).await {
        Event::Closed(closed) => assert_eq!(closed.state, SessionState::Cancelled as i32),
        other => panic!("expected closed, got {other:?}"),
    }
    assert_code(
        cancel(session.session_id.clone()).await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn re_enrollment_notifies_the_earlier_device_and_revocation_locks_it_out() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let old = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut old_push = old.listen(&server).await;

    // An enrollment code works once.
    let code = server.enrollment_code(&acme, "cust-1").await;
    let new = server.enroll(&code, "cust-1", "9999", 2).await;
    let reuse = server
        .enrollment()
        .await
        .enroll_device(authed(
            pb::EnrollDeviceRequest {
                device_commitment: vec![0; 32],
            },
            &code,
        ))
        .await;
    assert_code(reuse, Code::Unauthenticated);

    match next_event(&mut old_push).await {
        Event::Notice(notice) => assert_eq!(notice.kind, pb::device_notice::Kind::Replaced as i32),
        other => panic!("expected a notice, got {other:?}"),
    }
    assert!(old_push.next().await.is_none(), "the old stream ends");
    // Reconnecting tells it again.
    let mut again = old.listen(&server).await;
    assert!(matches!(next_event(&mut again).await, Event::Notice(_)));

    // Requests go to the new device only; the old one cannot answer.
    let mut new_push = new.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    let request = next_request(&mut new_push).await;
    let key_id = request.requirements[0].key_id.clone();
    let key = server.proving_key(&new, &key_id).await;
    let proof = new.prove(&key, &request);
    assert_code(
        submit(&server, &old, &session.session_id, &key_id, proof.clone()).await,
        Code::PermissionDenied,
    );
    let answer = submit(&server, &new, &session.session_id, &key_id, proof)
        .await
        .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);
    assert!(matches!(next_event(&mut new_push).await, Event::Closed(_)));

    // Revocation: the stream is told and ends, the token stops working.
    let revoked = server
        .enrollment()
        .await
        .revoke_device(authed(
            pb::RevokeDeviceRequest {
                customer_ref: "cust-1".into(),
                device_id: new.device_id.clone(),
            },
            &acme.enroller,
        ))
        .await
        .expect("revoke");
    assert!(revoked.into_inner().revoked_at.is_some());
    match next_event(&mut new_push).await {
        Event::Notice(notice) => assert_eq!(notice.kind, pb::device_notice::Kind::Revoked as i32),
        other => panic!("expected a notice, got {other:?}"),
    }
    assert!(
        new_push.next().await.is_none(),
        "the revoked device's stream ends"
    );
    let status = assert_code(
        server
            .device()
            .await
            .list_proving_keys(authed(pb::ListProvingKeysRequest {}, &new.token))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("revoked"), "{status:?}");
    let start = server
        .verification()
        .await
        .start_verification(authed(
            pb::StartVerificationRequest {
                customer_ref: "cust-1".into(),
                operation: "balance_inquiry".into(),
                account_ref: None,
                step_up_from: None,
            },
            &acme.agent,
        ))
        .await;
    assert_code(start, Code::FailedPrecondition);
}

#[tokio::test]
async fn start_checks_operation_customer_and_references() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    server.phone(&acme, "cust-1", "4711", 1).await;
    let start = |customer: &str, operation: &str, account: Option<&str>| {
        let request = authed(
            pb::StartVerificationRequest {
                customer_ref: customer.into(),
                operation: operation.into(),
                account_ref: account.map(Into::into),
                step_up_from: None,
            },
            &acme.agent,
        );
        let server = &server;
        async move {
            server
                .verification()
                .await
                .start_verification(request)
                .await
        }
    };
    assert_code(
        start("cust-1", "wire_transfer_everything", None).await,
        Code::InvalidArgument,
    );
    assert_code(
        start("cust-2", "balance_inquiry", None).await,
        Code::NotFound,
    );
    assert_code(
        start("cust 1", "balance_inquiry", None).await,
        Code::InvalidArgument,
    );
    assert_code(
        start("cust-1", "balance_inquiry", Some("")).await,
        Code::InvalidArgument,
    );
    let ok = start("cust-1", "balance_inquiry", Some("acct-9"))
        .await
        .expect("start");
    assert_eq!(ok.into_inner().state, STATE_PENDING);
    // A customer without a device yet.
    server.enrollment_code(&acme, "cust-3").await;
    assert_code(
        start("cust-3", "balance_inquiry", None).await,
        Code::FailedPrecondition,
    );
}
