//! The audit log: what the flows record, tamper evidence in the database,
//! and fail-closed verdicts.

mod common;

use common::*;
use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection, SqliteConnection};
use tonic::Code;
use zkid_proto::v1::{self as pb, SessionState};
use zkid_server::{
    admin,
    config::Config,
    domain::audit::{AuditFinding, AuditRecord},
    domain::Store,
};

async fn raw(config: &Config) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(config.database_path())
        .connect()
        .await
        .expect("connect")
}

async fn exec(conn: &mut SqliteConnection, sql: &str) {
    sqlx::query(sql).execute(&mut *conn).await.expect(sql);
}

async fn verify(config: &Config) -> Result<u64, AuditFinding> {
    let store = admin::open_store(config).await.expect("store");
    let keys = admin::signing_keys(config).expect("keys");
    let result = admin::verify_audit(&store, &keys)
        .await
        .expect("verify")
        .map(|s| s.records);
    store.close().await;
    result
}

async fn records(config: &Config) -> Vec<AuditRecord> {
    let store = admin::open_store(config).await.expect("store");
    let records = store.audit_records(None, 0, 1000).await.expect("records");
    store.close().await;
    records
}

/// Runs a pass, a failure and a decline, then stops the server.
async fn some_history(dir: &std::path::Path) -> Config {
    let server = TestServer::with_dir(dir, |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    for honest in [true, false] {
        let session = server.start_session(&acme, "cust-1").await;
        let request = loop {
            if let pb::device_event::Event::Request(r) = next_event(&mut push).await {
                break r;
            }
        };
        let key_id = request.requirements[0].key_id.clone();
        let key = server.proving_key(&phone, &key_id).await;
        let proof = if honest {
            phone.prove(&key, &request)
        } else {
            phone.prove_challenge(&key, ark_bn254::Fr::from(5u64))
        };
        submit(&server, &phone, &session.session_id, &key_id, proof)
            .await
            .expect("submit");
    }
    let session = server.start_session(&acme, "cust-1").await;
    server
        .device()
        .await
        .decline(authed(
            pb::DeclineRequest {
                session_id: session.session_id,
            },
            &phone.token,
        ))
        .await
        .expect("decline");
    let config = server.config.clone();
    server.stop().await.expect("stopped");
    config
}

#[tokio::test]
async fn flows_are_recorded_and_any_change_to_the_table_is_named() {
    let dir = data_dir();
    let config = some_history(dir.path()).await;
    let store = admin::open_store(&config).await.expect("store");
    let keys = admin::signing_keys(&config).expect("keys");
    admin::sign_tree_head(&store, &keys).await.expect("head");
    store.close().await;

    let log = records(&config).await;
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|r| (r.event.action.as_str(), r.event.outcome.as_str()))
        .collect();
    for expected in [
        ("customer.register", "code_issued"),
        ("device.enroll", "enrolled"),
        ("session.start", "pending"),
        ("push", "delivered"),
        ("verdict", "passed"),
        ("verdict", "failed"),
        ("decline", "declined"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    let verdict = log
        .iter()
        .find(|r| r.event.action == "verdict")
        .expect("verdict");
    assert!(
        verdict.event.detail.starts_with("pin-knowledge key="),
        "{verdict:?}"
    );
    assert_eq!(verdict.event.customer_ref, "cust-1");
    assert_eq!(verdict.event.actor_role, "device");
    assert_eq!(verify(&config).await, Ok(log.len() as u64));

    let mut db = raw(&config).await;
    // The table refuses changes...
    assert!(
        sqlx::query("UPDATE audit_log SET outcome = 'passed' WHERE seq = 3")
            .execute(&mut db)
            .await
            .is_err()
    );
    // ...but whoever owns the file can drop the triggers.
    exec(&mut db, "DROP TRIGGER audit_log_no_update").await;
    exec(&mut db, "DROP TRIGGER audit_log_no_delete").await;

    // Altered.
    let failed = log
        .iter()
        .find(|r| r.event.outcome == "failed")
        .expect("failure")
        .seq;
    exec(
        &mut db,
        &format!("UPDATE audit_log SET outcome = 'passed' WHERE seq = {failed}"),
    )
    .await;
    assert_eq!(
        verify(&config).await,
        Err(AuditFinding::Altered { seq: failed })
    );
    exec(
        &mut db,
        &format!("UPDATE audit_log SET outcome = 'failed' WHERE seq = {failed}"),
    )
    .await;
    assert!(verify(&config).await.is_ok());

    // Reordered: records 4 and 5 trade places.
    exec(&mut db, "UPDATE audit_log SET seq = 100000 WHERE seq = 5").await;
    exec(&mut db, "UPDATE audit_log SET seq = 5 WHERE seq = 4").await;
    exec(&mut db, "UPDATE audit_log SET seq = 4 WHERE seq = 100000").await;
    assert_eq!(
        verify(&config).await,
        Err(AuditFinding::Unlinked { seq: 4 })
    );
    exec(&mut db, "UPDATE audit_log SET seq = 100000 WHERE seq = 5").await;
    exec(&mut db, "UPDATE audit_log SET seq = 5 WHERE seq = 4").await;
    exec(&mut db, "UPDATE audit_log SET seq = 4 WHERE seq = 100000").await;
    assert!(verify(&config).await.is_ok());

    // Removed.
    exec(&mut db, "DELETE FROM audit_log WHERE seq = 6").await;
    assert_eq!(verify(&config).await, Err(AuditFinding::Missing { seq: 6 }));

    // The tail removed: the signed head still covers it.
    let last = log.len() as u64;
    exec(&mut db, "DELETE FROM audit_log WHERE seq >= 6").await;
    assert_eq!(
        verify(&config).await,
        Err(AuditFinding::Truncated {
            records: 5,
            size: last
        })
    );
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_verdict_whose_audit_record_cannot_be_written_is_not_released() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    let request = next_request(&mut push).await;
    let key_id = request.requirements[0].key_id.clone();
    let key = server.proving_key(&phone, &key_id).await;
    let proof = phone.prove(&key, &request);

    let mut db = raw(&server.config).await;
    exec(
        &mut db,
        "CREATE TRIGGER audit_full BEFORE INSERT ON audit_log WHEN NEW.action = 'verdict' \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .await;
    let refused = submit(&server, &phone, &session.session_id, &key_id, proof.clone()).await;
    let status = assert_code(refused, Code::Internal);
    assert_eq!(status.message(), "internal error");
    // Neither the verdict nor its side effects happened.
    let seen = server.get(&acme, &session.session_id).await;
    assert_eq!(seen.state, SessionState::Pending as i32);
    assert_eq!(seen.level_reached, pb::AssuranceLevel::None as i32);

    // Once the log is writable the same answer resolves the session.
    exec(&mut db, "DROP TRIGGER audit_full").await;
    db.close().await.expect("close");
    let answer = submit(&server, &phone, &session.session_id, &key_id, proof)
        .await
        .expect("submit");
    assert_eq!(answer.state, SessionState::Passed as i32);
    let config = server.config.clone();
    server.stop().await.expect("stopped");
    let log = records(&config).await;
    assert_eq!(
        log.iter().filter(|r| r.event.action == "verdict").count(),
        1
    );
    assert!(verify(&config).await.is_ok());
}
