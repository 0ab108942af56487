//! Start, restart and shutdown: keys on first start, persistence, health,
//! graceful shutdown.

mod common;

use std::time::Duration;

use common::*;
use tokio_stream::StreamExt;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use zkid_circuits::{pin::PinKnowledge, ZkCircuit};
use zkid_proto::v1::{self as pb, SessionState};
use zkid_server::{keys::key_paths, ServerError};

#[tokio::test]
async fn first_start_generates_keys_and_a_new_user_can_verify() {
    let dir = data_dir();
    // No keys installed: the server runs the setup itself.
    let server = TestServer::start(test_config(dir.path())).await;
    let (pk, vk) = key_paths(&dir.path().join("keys"), &PinKnowledge::id());
    assert!(pk.is_file() && vk.is_file());
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "20481024", 5).await;
    let mut keys = server
        .device()
        .await
        .list_proving_keys(authed(pb::ListProvingKeysRequest {}, &phone.token))
        .await
        .expect("list")
        .into_inner()
        .keys;
    // One key per circuit the shipped policy uses.
    let circuits = zkid_server::domain::catalog::Catalog::circuits_used(
        &zkid_server::domain::policy::Policies::uniform(
            zkid_server::domain::policy::Policy::shipped_default(),
        ),
    );
    assert_eq!(keys.len(), circuits.len());
    let pin_key = keys
        .iter()
        .position(|k| k.circuit == PinKnowledge::NAME)
        .expect("pin-knowledge key");
    keys.swap(0, pin_key);
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    let request = next_request(&mut push).await;
    let key = server.proving_key(&phone, &keys[0].key_id).await;
    let answer = submit(
        &server,
        &phone,
        &session.session_id,
        &keys[0].key_id,
        phone.prove(&key, &request),
    )
    .await
    .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn restart_keeps_sessions_enrollments_and_credentials() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let done = server.start_session(&acme, "cust-1").await;
    let done_request = next_request(&mut push).await;
    let key_id = done_request.requirements[0].key_id.clone();
    let key = server.proving_key(&phone, &key_id).await;
    submit(
        &server,
        &phone,
        &done.session_id,
        &key_id,
        phone.prove(&key, &done_request),
    )
    .await
    .expect("submit");
    let pending = server.start_session(&acme, "cust-1").await;
    drop(push);
    server.stop().await.expect("clean stop");

    let server = TestServer::start(test_config(dir.path())).await;
    assert_eq!(
        server.get(&acme, &done.session_id).await.state,
        SessionState::Passed as i32
    );
    let still = server.get(&acme, &pending.session_id).await;
    assert_eq!(still.state, SessionState::Pending as i32);
    assert_eq!(still.binding_code, pending.binding_code);
    let mut push = phone.listen(&server).await;
    let request = next_request(&mut push).await;
    assert_eq!(request.session_id, pending.session_id);
    let answer = submit(
        &server,
        &phone,
        &pending.session_id,
        &key_id,
        phone.prove(&key, &request),
    )
    .await
    .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_reports_not_serving_and_ends_open_streams() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |c| c.shutdown_grace_secs = 20).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    next_request(&mut push).await;
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
    watch.next().await.expect("snapshot").expect("ok");
    let mut health = HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest {
            service: "zkid.v1.Verification".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        health.next().await.expect("status").expect("ok").status,
        ServingStatus::Serving as i32
    );

    let stopped = tokio::spawn(server.stop());
    assert_eq!(
        health.next().await.expect("status").expect("ok").status,
        ServingStatus::NotServing as i32
    );
    drop(health);
    // The open streams end instead of holding shutdown up.
    let ends = async {
        while let Some(Ok(_)) = push.next().await {}
        while let Some(Ok(_)) = watch.next().await {}
    };
    tokio::time::timeout(Duration::from_secs(10), ends)
        .await
        .expect("streams end");
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("stops well within the grace period")
        .expect("task")
        .expect("clean stop");
}

#[tokio::test]
async fn a_corrupt_key_file_stops_the_server_with_a_clear_error() {
    let dir = data_dir();
    install_keys(dir.path());
    let (pk, _) = key_paths(&dir.path().join("keys"), &PinKnowledge::id());
    std::fs::write(&pk, b"not a key").expect("corrupt");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        zkid_server::run(test_config(dir.path()), listener, std::future::pending()),
    )
    .await
    .expect("fails promptly");
    let error = result.expect_err("corrupt key");
    assert!(matches!(error, ServerError::Keys(_)), "{error:?}");
    assert!(error.to_string().contains("pin-knowledge-v1.pk"), "{error}");
}
