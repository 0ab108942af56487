//! The metrics endpoint against the real server in-process: what one
//! verification leaves in it, what it must never hold, and how a bad
//! `metrics_listen` fails.

mod common;

use ark_bn254::Fr;
use common::*;
use zkid_proto::v1::SessionState;

/// The value of the sample named exactly `name` (no labels).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn each_submission_is_timed_stage_by_stage_and_no_identifier_is_exposed() {
    let dir = data_dir();
    let (server, metrics) = TestServer::with_metrics(dir.path(), |_| {}).await;
    let (status, content_type, before) = http_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert_eq!(sample(&before, "zkid_submit_proof_seconds_count"), 0.0);

    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let mut session_ids = Vec::new();
    for honest in [true, false] {
        let session = server.start_session(&acme, "cust-1").await;
        let request = next_request(&mut push).await;
        let requirement = &request.requirements[0];
        let key = server.proving_key(&phone, &requirement.key_id).await;
        let proof = if honest {
            phone.prove(&key, &request)
        } else {
            // A valid proof of another challenge: verified, and rejected.
            phone.prove_challenge(&key, Fr::from(7u64))
        };
        let answer = submit(
            &server,
            &phone,
            &session.session_id,
            &requirement.key_id,
            proof,
        )
        .await
        .expect("submit");
        let expected = if honest {
            SessionState::Passed
        } else {
            SessionState::Failed
        };
        assert_eq!(answer.state, expected as i32);
        // The closing event of this session, before the next request.
        next_event(&mut push).await;
        session_ids.push(session.session_id);
    }

    let (_, _, text) = http_get(metrics, "/metrics").await;
    for stage in [
        "zkid_submit_proof_seconds",
        "zkid_submit_proof_lookup_seconds",
        "zkid_submit_proof_verify_seconds",
        "zkid_submit_proof_record_seconds",
        "zkid_proof_queue_wait_seconds",
    ] {
        assert_eq!(sample(&text, &format!("{stage}_count")), 2.0, "{stage}");
    }
    // One after the other, each proof was a batch of one.
    assert_eq!(sample(&text, "zkid_proof_batch_seconds_count"), 2.0);
    assert_eq!(sample(&text, "zkid_proof_batch_size_sum"), 2.0);
    assert_eq!(sample(&text, "zkid_proof_submissions_shed_total"), 0.0);
    // The stages lie inside the engine's whole part.
    let total = sample(&text, "zkid_submit_proof_seconds_sum");
    let parts: f64 = [
        "zkid_submit_proof_lookup_seconds_sum",
        "zkid_submit_proof_verify_seconds_sum",
        "zkid_submit_proof_record_seconds_sum",
    ]
    .iter()
    .map(|name| sample(&text, name))
    .sum();
    assert!(parts > 0.0 && parts <= total, "{parts} of {total}");
    // A proof's verification costs at least a pairing check: well over
    // 100 microseconds, on any machine.
    assert!(sample(&text, "zkid_proof_batch_seconds_sum") > 2e-4);

    for secret in [
        "acme",
        "Acme Bank",
        "cust-1",
        acme.agent.as_str(),
        phone.token.as_str(),
    ]
    .into_iter()
    .chain(session_ids.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "the metrics expose {secret:?}");
    }

    let (status, _, _) = http_get(metrics, "/sessions").await;
    assert_eq!(status, 404);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_metrics_address_in_use_stops_the_start_and_names_the_key() {
    let dir = data_dir();
    install_keys(dir.path());
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = test_config(dir.path());
    config.metrics_listen = Some(taken.local_addr().expect("addr"));
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = zkid_server::run(config, grpc, std::future::pending())
        .await
        .expect_err("the address is taken");
    let message = error.to_string();
    assert!(message.contains("metrics_listen"), "{message}");
}

#[tokio::test]
async fn the_server_serves_its_metrics_on_the_configured_address() {
    let dir = data_dir();
    install_keys(dir.path());
    // A port that was free a moment ago; the run below binds it itself.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut config = test_config(dir.path());
    config.metrics_listen = Some(free);
    let server = TestServer::start(config).await;
    let (status, _, text) = http_get(free, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "{text}");
    server.stop().await.expect("clean stop");
}
