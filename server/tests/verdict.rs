//! Signed verdicts: checkable offline with the published keys, broken by
//! any alteration, and still checkable after a key rotation.

mod common;

use common::*;
use zkid_proto::v1::{self as pb, keys_client::KeysClient, SessionState};
use zkid_server::verdict::{verify, VerdictError};

async fn published_keys(server: &TestServer) -> Vec<pb::SigningKey> {
    // No credential: the keys are public.
    KeysClient::new(server.channel().await)
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .expect("keys")
        .into_inner()
        .keys
}

fn lookup(keys: &[pb::SigningKey]) -> impl Fn(&str) -> Option<[u8; 32]> + '_ {
    |id| {
        keys.iter()
            .find(|k| k.key_id == id)
            .and_then(|k| k.public_key.clone().try_into().ok())
    }
}

#[tokio::test]
async fn verdicts_check_offline_fail_when_altered_and_survive_rotation() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    assert!(session.verdict.is_none(), "no verdict while pending");
    let request = next_request(&mut push).await;
    let key_id = request.requirements[0].key_id.clone();
    let key = server.proving_key(&phone, &key_id).await;
    let proof = phone.prove(&key, &request);
    submit(&server, &phone, &session.session_id, &key_id, proof)
        .await
        .expect("submit");
    let resolved = server.get(&acme, &session.session_id).await;
    assert_eq!(resolved.state, SessionState::Passed as i32);
    let signed = resolved.verdict.expect("verdict");

    let keys = published_keys(&server).await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].current);
    let verdict = verify(&signed.encoded, &signed.signature, lookup(&keys)).expect("valid");
    assert_eq!(verdict.tenant, "acme");
    assert_eq!(verdict.session_id, session.session_id);
    assert_eq!(verdict.operation, "balance_inquiry");
    assert_eq!(verdict.state, "passed");
    assert_eq!(verdict.level, 1);
    assert_eq!(verdict.key_id, signed.key_id);
    assert_eq!(verdict.expires_at - verdict.issued_at, 600_000);
    let resolved_at = resolved.resolved_at.expect("resolved");
    assert_eq!(
        verdict.issued_at,
        resolved_at.seconds * 1000 + i64::from(resolved_at.nanos / 1_000_000)
    );

    // Any altered byte of the encoding or signature fails the check.
    for i in 0..signed.encoded.len() {
        let mut altered = signed.encoded.clone();
        altered[i] ^= 0x01;
        assert!(
            verify(&altered, &signed.signature, lookup(&keys)).is_err(),
            "byte {i}"
        );
    }
    let mut bad = signed.signature.clone();
    bad[10] ^= 0x80;
    assert_eq!(
        verify(&signed.encoded, &bad, lookup(&keys)),
        Err(VerdictError::BadSignature)
    );

    // Rotate: the new key signs, the old verdict still checks.
    let config = server.config.clone();
    server.stop().await.expect("stopped");
    let signing_dir = zkid_server::signing::signing_dir(&config.key_dir());
    let new_id = zkid_server::signing::rotate(&signing_dir).expect("rotate");
    let server = TestServer::start(config).await;
    let keys = published_keys(&server).await;
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(|k| k.key_id == new_id && k.current));
    assert!(verify(&signed.encoded, &signed.signature, lookup(&keys)).is_ok());
    let again = server
        .get(&acme, &session.session_id)
        .await
        .verdict
        .expect("verdict");
    assert_eq!(again.key_id, new_id);
    assert_eq!(
        verify(&again.encoded, &again.signature, lookup(&keys))
            .expect("valid")
            .state,
        "passed"
    );
}
