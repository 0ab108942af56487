//! Assurance policies end to end: levels 1 to 3 from the shipped default,
//! per-tenant policy files, step-up, the revert window after enrollment
//! and credential changes, and an administrator lifting a lock.

mod common;

use std::path::Path;

use ark_bn254::Fr;
use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tonic::{Code, Streaming};
use zkid_circuits::{
    credential::{AccountOwnership, AttributeCredential, Attributes},
    encoding::field_to_bytes,
    prove, CircuitProvingKey,
};
use zkid_proto::v1::{self as pb, SessionState};
use zkid_server::{admin, domain::Store};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn credential_for(account: &str, seed: u64) -> AttributeCredential {
    let attributes = Attributes {
        account_id: account.into(),
        date_of_birth: 7000,
        postcode: "10115".into(),
        phone_number: "+4930123456".into(),
        national_id_last4: "1234".into(),
    };
    AttributeCredential::issue(&attributes, &mut ChaCha20Rng::seed_from_u64(seed)).expect("issue")
}

/// Registers the customer's attribute commitment; returns an enrollment
/// code.
async fn register(
    server: &TestServer,
    tenant: &Tenant,
    customer_ref: &str,
    credential: &AttributeCredential,
) -> String {
    server
        .enrollment()
        .await
        .register_customer(authed(
            pb::RegisterCustomerRequest {
                customer_ref: customer_ref.into(),
                attributes: Some(pb::AttributeCommitment {
                    commitment: field_to_bytes(&credential.commitment()).to_vec(),
                    schema_version: 1,
                }),
            },
            &tenant.enroller,
        ))
        .await
        .expect("register customer")
        .into_inner()
        .enrollment_code
}

async fn start(
    server: &TestServer,
    tenant: &Tenant,
    customer_ref: &str,
    operation: &str,
    account: Option<&str>,
    step_up_from: Option<&str>,
) -> Result<pb::VerificationSession, tonic::Status> {
    server
        .verification()
        .await
        .start_verification(authed(
            pb::StartVerificationRequest {
                customer_ref: customer_ref.into(),
                operation: operation.into(),
                account_ref: account.map(Into::into),
                step_up_from: step_up_from.map(Into::into),
            },
            &tenant.agent,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The next pushed request, past closings and notices.
async fn next_pushed(push: &mut Streaming<pb::DeviceEvent>) -> pb::VerificationRequest {
    loop {
        match next_event(push).await {
            pb::device_event::Event::Request(request) => return request,
            _ => continue,
        }
    }
}

/// The next notice, past requests and closings.
async fn next_notice(push: &mut Streaming<pb::DeviceEvent>) -> pb::DeviceNotice {
    loop {
        if let pb::device_event::Event::Notice(notice) = next_event(push).await {
            return notice;
        }
    }
}

/// Answers a pushed request honestly: pin-knowledge, or account ownership
/// with `credential`.
async fn answer(
    server: &TestServer,
    phone: &Phone,
    credential: &AttributeCredential,
    request: &pb::VerificationRequest,
) -> pb::SubmitProofResponse {
    let challenge = field(&request.challenge);
    let mut proofs = Vec::new();
    for requirement in &request.requirements {
        let key = server.proving_key(phone, &requirement.key_id).await;
        let proof = match requirement.circuit.as_str() {
            "pin-knowledge" => phone.prove_challenge(&key, challenge),
            "account-ownership" => {
                let circuit =
                    AccountOwnership::new(&phone.pin, &phone.secret, credential, challenge)
                        .expect("circuit");
                prove(
                    &key,
                    circuit,
                    &mut ChaCha20Rng::seed_from_u64(phone.seed + 9),
                )
                .expect("prove")
            }
            other => panic!("unexpected circuit {other}"),
        };
        proofs.push(pb::CircuitProof {
            key_id: requirement.key_id.clone(),
            proof,
        });
    }
    server
        .device()
        .await
        .submit_proof(authed(
            pb::SubmitProofRequest {
                session_id: request.session_id.clone(),
                proofs,
            },
            &phone.token,
        ))
        .await
        .expect("submit")
        .into_inner()
}

/// Answers a pushed pin-knowledge request with a valid proof of another
/// challenge: a failed attempt.
async fn answer_wrongly(server: &TestServer, phone: &Phone, request: &pb::VerificationRequest) {
    let key_id = &request.requirements[0].key_id;
    let key = server.proving_key(phone, key_id).await;
    let wrong = phone.prove_challenge(&key, Fr::from(1u64));
    let outcome = submit(server, phone, &request.session_id, key_id, wrong)
        .await
        .expect("submit");
    assert_eq!(outcome.state, SessionState::Failed as i32);
}

/// The organization revokes `phone`.
async fn revoke(server: &TestServer, tenant: &Tenant, customer_ref: &str, phone: &Phone) {
    server
        .enrollment()
        .await
        .revoke_device(authed(
            pb::RevokeDeviceRequest {
                customer_ref: customer_ref.into(),
                device_id: phone.device_id.clone(),
            },
            &tenant.enroller,
        ))
        .await
        .expect("revoke");
}

fn circuits(request: &pb::VerificationRequest) -> Vec<&str> {
    request
        .requirements
        .iter()
        .map(|r| r.circuit.as_str())
        .collect()
}

/// Moves a customer's credential issue and device enrollment `days` into
/// the past, as if they had been enrolled that long.
async fn age_customer(data_dir: &Path, customer_ref: &str, days: i64) {
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        data_dir.join("zkid.sqlite3").display()
    ))
    .await
    .expect("db");
    for sql in [
        "UPDATE customers SET attributes_at = attributes_at - ? WHERE customer_ref = ?",
        "UPDATE devices SET enrolled_at = enrolled_at - ? WHERE customer_ref = ?",
        "UPDATE credential_changes SET at = at - ?1, revert_until = revert_until - ?1 WHERE customer_ref = ?2",
    ] {
        sqlx::query(sql)
            .bind(days * DAY_MS)
            .bind(customer_ref)
            .execute(&pool)
            .await
            .expect("age");
    }
    pool.close().await;
}

async fn audit_actions(server: &TestServer) -> Vec<(String, String, String)> {
    let store = admin::open_store(&server.config).await.expect("store");
    let records = store.audit_records(None, 0, 10_000).await.expect("audit");
    store.close().await;
    records
        .into_iter()
        .map(|r| (r.event.action, r.event.outcome, r.event.detail))
        .collect()
}

#[tokio::test]
async fn levels_one_to_three_follow_the_shipped_policy() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let credential = credential_for("ACC-1", 1);
    let code = register(&server, &acme, "cust-1", &credential).await;
    let phone = server.enroll(&code, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;

    let l1 = start(&server, &acme, "cust-1", "balance_inquiry", None, None)
        .await
        .expect("L1");
    let request = next_pushed(&mut push).await;
    assert_eq!(circuits(&request), ["pin-knowledge"]);
    let outcome = answer(&server, &phone, &credential, &request).await;
    assert_eq!(outcome.state, SessionState::Passed as i32);
    assert_eq!(server.get(&acme, &l1.session_id).await.level_reached, 1);

    start(
        &server,
        &acme,
        "cust-1",
        "change_address",
        Some("ACC-1"),
        None,
    )
    .await
    .expect("L2");
    let request = next_pushed(&mut push).await;
    assert_eq!(circuits(&request), ["account-ownership"]);
    let outcome = answer(&server, &phone, &credential, &request).await;
    assert_eq!(outcome.state, SessionState::Passed as i32);
    assert_eq!(outcome.level_reached, 2);

    // A fresh credential and a fresh device do not reach level 3; the
    // agent is not told which condition failed, the audit log is.
    let refused = assert_code(
        start(
            &server,
            &acme,
            "cust-1",
            "account_recovery",
            Some("ACC-1"),
            None,
        )
        .await,
        Code::FailedPrecondition,
    );
    assert!(
        refused.message().contains("assurance policy"),
        "{refused:?}"
    );
    assert!(!refused.message().contains("younger"), "{refused:?}");
    let actions = audit_actions(&server).await;
    assert!(actions
        .iter()
        .any(|(action, outcome, detail)| action == "session.refused"
            && outcome == "refused"
            && detail.contains("operation=account_recovery")
            && detail.contains("younger than the minimum age")));

    // Thirty-one days on, with no change meanwhile, it does.
    age_customer(dir.path(), "cust-1", 31).await;
    let l3 = start(
        &server,
        &acme,
        "cust-1",
        "account_recovery",
        Some("ACC-1"),
        None,
    )
    .await
    .expect("L3");
    let request = next_pushed(&mut push).await;
    assert_eq!(circuits(&request), ["account-ownership"]);
    let outcome = answer(&server, &phone, &credential, &request).await;
    assert_eq!(outcome.state, SessionState::Passed as i32);
    assert_eq!(outcome.level_reached, 3);
    assert_eq!(server.get(&acme, &l3.session_id).await.level_reached, 3);

    // Agents name operations, never predicates.
    let unknown = assert_code(
        start(&server, &acme, "cust-1", "born_before_1990", None, None).await,
        Code::InvalidArgument,
    );
    assert!(unknown.message().contains("unknown operation"));
}

#[tokio::test]
async fn step_up_asks_only_for_what_is_missing() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let other_agent = server.tenant("other", "Other").await;
    let credential = credential_for("ACC-7", 2);
    let code = register(&server, &acme, "cust-7", &credential).await;
    let phone = server.enroll(&code, "cust-7", "2580", 2).await;
    let mut push = phone.listen(&server).await;
    age_customer(dir.path(), "cust-7", 40).await;

    let l1 = start(&server, &acme, "cust-7", "balance_inquiry", None, None)
        .await
        .expect("L1");
    let request = next_pushed(&mut push).await;
    answer(&server, &phone, &credential, &request).await;

    // L1 to L2: the device factor is established, account ownership is
    // asked for.
    let l2 = start(
        &server,
        &acme,
        "cust-7",
        "change_address",
        Some("ACC-7"),
        Some(&l1.session_id),
    )
    .await
    .expect("step up to L2");
    let request = next_pushed(&mut push).await;
    assert_eq!(request.session_id, l2.session_id);
    assert_eq!(circuits(&request), ["account-ownership"]);
    let outcome = answer(&server, &phone, &credential, &request).await;
    assert_eq!(outcome.level_reached, 2);

    // L2 to L3 for the same account: nothing is missing, so it passes at
    // once on the proof of a moment ago, and nothing is pushed.
    let l3 = start(
        &server,
        &acme,
        "cust-7",
        "account_recovery",
        Some("ACC-7"),
        Some(&l2.session_id),
    )
    .await
    .expect("step up to L3");
    assert_eq!(l3.state, SessionState::Passed as i32);
    assert_eq!(l3.level_reached, 3);
    assert!(l3.verdict.is_some(), "a signed verdict like any pass");

    // Another account is not covered by the earlier proof.
    start(
        &server,
        &acme,
        "cust-7",
        "change_address",
        Some("ACC-8"),
        Some(&l2.session_id),
    )
    .await
    .expect("step up for another account");
    let request = next_pushed(&mut push).await;
    assert_eq!(circuits(&request), ["account-ownership"]);

    // What cannot be stepped up from.
    let failed = start(&server, &acme, "cust-7", "balance_inquiry", None, None)
        .await
        .expect("L1");
    let request = next_pushed(&mut push).await;
    answer_wrongly(&server, &phone, &request).await;
    let not_passed = assert_code(
        start(
            &server,
            &acme,
            "cust-7",
            "change_address",
            Some("ACC-7"),
            Some(&failed.session_id),
        )
        .await,
        Code::FailedPrecondition,
    );
    assert!(not_passed.message().contains("PASSED"));
    assert_code(
        start(
            &server,
            &acme,
            "cust-8",
            "change_address",
            Some("ACC-7"),
            Some(&l1.session_id),
        )
        .await,
        Code::NotFound,
    );
    // Another tenant's agent cannot even see the session.
    assert_code(
        start(
            &server,
            &other_agent,
            "cust-7",
            "change_address",
            Some("ACC-7"),
            Some(&l1.session_id),
        )
        .await,
        Code::NotFound,
    );
    assert_code(
        start(
            &server,
            &acme,
            "cust-7",
            "change_address",
            Some("ACC-7"),
            Some("not-a-session"),
        )
        .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn a_tenant_policy_file_replaces_the_default_and_a_bad_one_stops_the_start() {
    let dir = data_dir();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).expect("dir");
    std::fs::write(
        policies.join("acme.toml"),
        "[operations.card_block]\ndisplay_name = \"blocking a card\"\nlevel = 1\nprove = [\"device\"]\n",
    )
    .expect("policy");
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let globex = server.tenant("globex", "Globex").await;
    let acme_phone = server.phone(&acme, "cust-1", "4711", 3).await;
    let globex_phone = server.phone(&globex, "cust-1", "4711", 4).await;
    let mut push = acme_phone.listen(&server).await;

    assert_code(
        start(&server, &acme, "cust-1", "balance_inquiry", None, None).await,
        Code::InvalidArgument,
    );
    start(&server, &acme, "cust-1", "card_block", None, None)
        .await
        .expect("acme's own operation");
    let request = next_pushed(&mut push).await;
    assert!(
        request.binding_message.contains("blocking a card"),
        "{request:?}"
    );
    start(&server, &globex, "cust-1", "balance_inquiry", None, None)
        .await
        .expect("the default for globex");
    drop(globex_phone);
    server.stop().await.expect("stop");

    std::fs::write(
        policies.join("acme.toml"),
        "[operations.card_block]\ndisplay_name = \"x\"\nlevel = 2\nprove = [\"device\"]\n",
    )
    .expect("policy");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = zkid_server::run(test_config(dir.path()), listener, std::future::pending())
        .await
        .expect_err("a bad policy stops the start");
    let message = error.to_string();
    assert!(message.contains("acme.toml"), "{message}");
    assert!(message.contains("card_block"), "{message}");
}

async fn revert(
    server: &TestServer,
    offer: &pb::RevertOffer,
    phone: &Phone,
    key: &CircuitProvingKey,
    challenge: Fr,
) -> Result<pb::RevertChangeResponse, tonic::Status> {
    let proof = phone.prove_challenge(key, challenge);
    server
        .device()
        .await
        // No credential: the proof is the credential.
        .revert_change(pb::RevertChangeRequest {
            change_id: offer.change_id.clone(),
            proof: Some(pb::CircuitProof {
                key_id: key.key_id.0.to_vec(),
                proof,
            }),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The pin-knowledge proving key, through `phone`'s credential.
async fn pin_key(server: &TestServer, phone: &Phone) -> CircuitProvingKey {
    let keys = server
        .device()
        .await
        .list_proving_keys(authed(pb::ListProvingKeysRequest {}, &phone.token))
        .await
        .expect("keys")
        .into_inner()
        .keys;
    let info = keys
        .iter()
        .find(|k| k.circuit == "pin-knowledge")
        .expect("pin key");
    server.proving_key(phone, &info.key_id).await
}

#[tokio::test]
async fn the_earlier_phone_reverts_a_re_enrollment_it_did_not_make() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let credential = credential_for("ACC-3", 3);
    let code = register(&server, &acme, "cust-3", &credential).await;
    let mine = server.enroll(&code, "cust-3", "1357", 5).await;
    let key = pin_key(&server, &mine).await;
    age_customer(dir.path(), "cust-3", 40).await;
    let mut my_push = mine.listen(&server).await;

    // Someone talks the organization into a new enrollment code (the
    // attribute credential stays as it is).
    let code = register(&server, &acme, "cust-3", &credential).await;
    let theirs = server.enroll(&code, "cust-3", "0000", 6).await;
    let notice = next_notice(&mut my_push).await;
    assert_eq!(notice.kind, pb::device_notice::Kind::Replaced as i32);
    let offer = notice.revert.expect("a revert offer");
    assert!(offer.until.is_some());

    // Meanwhile level 3 is refused, even after the quiet period would
    // otherwise be over.
    assert_code(
        start(
            &server,
            &acme,
            "cust-3",
            "account_recovery",
            Some("ACC-3"),
            None,
        )
        .await,
        Code::FailedPrecondition,
    );

    // The new phone's PIN does not open the earlier commitment, and a
    // proof for another challenge does not answer the offer.
    assert_code(
        revert(&server, &offer, &theirs, &key, field(&offer.challenge)).await,
        Code::Unauthenticated,
    );
    assert_code(
        revert(&server, &offer, &mine, &key, Fr::from(5u64)).await,
        Code::Unauthenticated,
    );
    let done = revert(&server, &offer, &mine, &key, field(&offer.challenge))
        .await
        .expect("revert");
    assert!(done.reverted_at.is_some());
    assert_code(
        revert(&server, &offer, &mine, &key, field(&offer.challenge)).await,
        Code::FailedPrecondition,
    );

    // The intruder's device is revoked; the customer's answers again.
    assert_code(
        server
            .device()
            .await
            .watch_requests(authed(pb::WatchRequestsRequest {}, &theirs.token))
            .await,
        Code::Unauthenticated,
    );
    let mut my_push = mine.listen(&server).await;
    start(&server, &acme, "cust-3", "balance_inquiry", None, None)
        .await
        .expect("start");
    let request = next_pushed(&mut my_push).await;
    let outcome = answer(&server, &mine, &credential, &request).await;
    assert_eq!(outcome.state, SessionState::Passed as i32);

    let actions = audit_actions(&server).await;
    let reverts: Vec<_> = actions
        .iter()
        .filter(|(action, _, _)| action == "change.revert")
        .map(|(_, outcome, _)| outcome.as_str())
        .collect();
    assert_eq!(reverts, ["rejected", "rejected", "reverted"]);
}

#[tokio::test]
async fn revocations_and_attribute_changes_are_revertible_and_guesses_are_capped() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let credential = credential_for("ACC-4", 4);
    let code = register(&server, &acme, "cust-4", &credential).await;
    let phone = server.enroll(&code, "cust-4", "2468", 7).await;
    let key = pin_key(&server, &phone).await;
    let mut push = phone.listen(&server).await;

    // A new attribute credential: the phone hears of it and keeps
    // answering; reverting restores the earlier commitment.
    let replacement = credential_for("ACC-4", 44);
    register(&server, &acme, "cust-4", &replacement).await;
    let notice = next_notice(&mut push).await;
    assert_eq!(
        notice.kind,
        pb::device_notice::Kind::CredentialChanged as i32
    );
    let offer = notice.revert.expect("offer");
    revert(&server, &offer, &phone, &key, field(&offer.challenge))
        .await
        .expect("revert the attribute change");
    start(
        &server,
        &acme,
        "cust-4",
        "change_address",
        Some("ACC-4"),
        None,
    )
    .await
    .expect("L2");
    let request = next_pushed(&mut push).await;
    let outcome = answer(&server, &phone, &credential, &request).await;
    assert_eq!(
        outcome.state,
        SessionState::Passed as i32,
        "the earlier credential opens the restored commitment"
    );

    // A revocation: the revoked phone has no credential left, and still
    // reverts with its proof.
    revoke(&server, &acme, "cust-4", &phone).await;
    let notice = next_notice(&mut push).await;
    assert_eq!(notice.kind, pb::device_notice::Kind::Revoked as i32);
    let offer = notice.revert.expect("offer");
    assert_code(
        server
            .device()
            .await
            .list_proving_keys(authed(pb::ListProvingKeysRequest {}, &phone.token))
            .await,
        Code::Unauthenticated,
    );
    // Five wrong guesses close the change for good.
    for attempt in 0..5u64 {
        assert_code(
            revert(&server, &offer, &phone, &key, Fr::from(100 + attempt)).await,
            Code::Unauthenticated,
        );
    }
    let closed = assert_code(
        revert(&server, &offer, &phone, &key, field(&offer.challenge)).await,
        Code::FailedPrecondition,
    );
    assert!(closed.message().contains("too many"), "{closed:?}");
}

#[tokio::test]
async fn a_second_revocation_revert_works_and_unknown_changes_are_not_found() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-5", "9753", 8).await;
    let key = pin_key(&server, &phone).await;
    let mut push = phone.listen(&server).await;
    revoke(&server, &acme, "cust-5", &phone).await;
    let offer = next_notice(&mut push).await.revert.expect("offer");
    revert(&server, &offer, &phone, &key, field(&offer.challenge))
        .await
        .expect("revert the revocation");
    // The phone's own credential works again.
    let mut push = phone.listen(&server).await;
    start(&server, &acme, "cust-5", "balance_inquiry", None, None)
        .await
        .expect("start");
    let request = next_pushed(&mut push).await;
    assert_eq!(request.requirements.len(), 1);

    let unknown = pb::RevertOffer {
        change_id: "c_000000000000000000000000".into(),
        ..offer.clone()
    };
    assert_code(
        revert(&server, &unknown, &phone, &key, field(&offer.challenge)).await,
        Code::NotFound,
    );
    let malformed = pb::RevertOffer {
        change_id: "nope".into(),
        ..offer
    };
    assert_code(
        revert(&server, &malformed, &phone, &key, Fr::from(1u64)).await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn an_administrator_lifts_a_lock_and_it_is_audited() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| c.lockout_max_failures = 2).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-6", "8642", 9).await;
    let mut push = phone.listen(&server).await;
    for _ in 0..2 {
        server.start_session(&acme, "cust-6").await;
        let request = next_pushed(&mut push).await;
        answer_wrongly(&server, &phone, &request).await;
    }
    let locked = server.start_session(&acme, "cust-6").await;
    assert_eq!(locked.state, SessionState::Locked as i32);

    let store = admin::open_store(&server.config).await.expect("store");
    let keys = admin::signing_keys(&server.config).expect("keys");
    admin::lift_lockout(&store, &keys, "acme", "cust-6")
        .await
        .expect("lift");
    assert!(
        admin::lift_lockout(&store, &keys, "acme", "cust-6")
            .await
            .is_err(),
        "nothing left to lift"
    );
    store.close().await;

    let session = server.start_session(&acme, "cust-6").await;
    assert_eq!(session.state, SessionState::Pending as i32);
    let actions = audit_actions(&server).await;
    assert!(actions
        .iter()
        .any(|(action, outcome, _)| action == "unlock" && outcome == "lifted"));
}
