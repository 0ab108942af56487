//! The audit log: what the flows record, tamper evidence in the database,
//! and fail-closed verdicts.

mod common;

use std::sync::Arc;

use common::*;
use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection, SqliteConnection};
use tonic::Code;
use zkid_proto::v1::{self as pb, SessionState};
use zkid_server::{
    admin,
    config::Config,
    domain::audit::{AuditEvent, AuditFinding, AuditRecord},
    domain::model::{
        self, Actor, AssuranceLevel, CredentialId, CustomerRef, DeviceId, Resolution, Session,
        SessionId, TenantId, Timestamp,
    },
    domain::{AuditAppend, Store},
    store::{GroupCommitStats, SqliteStore},
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

    // The export holds every record with a proof against the newest head.
    let out = dir.path().join("export");
    let store = admin::open_store(&config).await.expect("store");
    let summary = admin::export_audit(&store, &keys, &out)
        .await
        .expect("export");
    store.close().await;
    assert_eq!(summary.records, log.len() as u64);
    let exported = std::fs::read_to_string(out.join("records.jsonl")).expect("records");
    let heads: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("heads.json")).expect("heads"))
            .expect("json");
    let newest = heads
        .as_array()
        .expect("array")
        .last()
        .expect("head")
        .clone();
    let root: [u8; 32] = hex::decode(newest["root_hash"].as_str().expect("root"))
        .expect("hex")
        .try_into()
        .expect("32");
    let root = ct_merkle::RootHash::<sha2_11::Sha256>::new(root.into(), summary.records);
    assert_eq!(exported.lines().count(), log.len());
    for line in exported.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("json");
        let leaf = hex::decode(record["leaf"].as_str().expect("leaf")).expect("hex");
        let proof =
            hex::decode(record["inclusion"]["proof"].as_str().expect("proof")).expect("hex");
        let proof = ct_merkle::InclusionProof::try_from_bytes(proof).expect("proof");
        let index = record["seq"].as_u64().expect("seq") - 1;
        assert!(root.verify_inclusion(&leaf, index, &proof).is_ok());
    }

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

#[tokio::test]
async fn an_auditor_checks_records_and_heads_offline_with_proofs() {
    use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
    type H = sha2_11::Sha256;

    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let globex = server.tenant("globex", "Globex").await;
    server.phone(&acme, "cust-1", "4711", 1).await;
    let mut audit = server.audit().await;
    let get_head = |token: String| {
        let mut client = audit.clone();
        async move {
            client
                .get_signed_tree_head(authed(pb::GetSignedTreeHeadRequest {}, &token))
                .await
                .expect("head")
                .into_inner()
        }
    };
    let old = get_head(acme.auditor.clone()).await;
    server.phone(&globex, "cust-9", "4711", 2).await;
    server.start_session(&acme, "cust-1").await;
    let new = get_head(acme.auditor.clone()).await;
    assert!(new.tree_size > old.tree_size && old.tree_size >= 2);

    // Heads are signed by the server's key.
    let keys = admin::signing_keys(&server.config).expect("keys");
    for head in [&old, &new] {
        let root: [u8; 32] = head.root_hash.clone().try_into().expect("32 bytes");
        let message = zkid_server::domain::audit::TreeHead::message(
            head.tree_size,
            &root,
            zkid_server::domain::model::Timestamp(head.at_unix_millis),
        );
        assert!(keys.verify(&head.key_id, &message, &head.signature));
    }
    let root_of = |head: &pb::SignedTreeHead| {
        RootHash::<H>::new(
            head.root_hash.as_slice().try_into().expect("32 bytes"),
            head.tree_size,
        )
    };

    // The log only grew between the two heads.
    let consistency = audit
        .get_consistency_proof(authed(
            pb::GetConsistencyProofRequest {
                old_size: old.tree_size,
                new_size: new.tree_size,
            },
            &acme.auditor,
        ))
        .await
        .expect("consistency")
        .into_inner();
    let proof = ConsistencyProof::<H>::try_from_bytes(consistency.proof.clone()).expect("proof");
    assert!(root_of(&new)
        .verify_consistency(&root_of(&old), &proof)
        .is_ok());
    let mut tampered = consistency.proof.clone();
    tampered[0] ^= 1;
    let tampered = ConsistencyProof::<H>::try_from_bytes(tampered).expect("proof");
    assert!(root_of(&new)
        .verify_consistency(&root_of(&old), &tampered)
        .is_err());

    // Every record the auditor lists is in the newest tree; only acme's.
    let records = audit
        .list_audit_records(authed(
            pb::ListAuditRecordsRequest {
                after_seq: 0,
                limit: 1000,
            },
            &acme.auditor,
        ))
        .await
        .expect("records")
        .into_inner()
        .records;
    assert!(records.iter().all(|r| r.tenant == "acme"));
    assert!(records.iter().any(|r| r.action == "session.start"));
    for record in records.iter().filter(|r| r.seq <= new.tree_size) {
        let inclusion = audit
            .get_inclusion_proof(authed(
                pb::GetInclusionProofRequest {
                    seq: record.seq,
                    tree_size: new.tree_size,
                },
                &acme.auditor,
            ))
            .await
            .expect("inclusion")
            .into_inner();
        let proof = InclusionProof::<H>::try_from_bytes(inclusion.proof).expect("proof");
        assert!(root_of(&new)
            .verify_inclusion(&record.leaf, inclusion.leaf_index, &proof)
            .is_ok());
        let mut altered = record.leaf.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(root_of(&new)
            .verify_inclusion(&altered, inclusion.leaf_index, &proof)
            .is_err());
    }

    // Globex's records are not acme's to prove; sizes are checked.
    let globex_seq = (1..=new.tree_size)
        .find(|seq| !records.iter().any(|r| r.seq == *seq))
        .expect("a globex record");
    let other = audit
        .get_inclusion_proof(authed(
            pb::GetInclusionProofRequest {
                seq: globex_seq,
                tree_size: new.tree_size,
            },
            &acme.auditor,
        ))
        .await;
    assert_code(other, Code::NotFound);
    let beyond = audit
        .get_inclusion_proof(authed(
            pb::GetInclusionProofRequest {
                seq: 1,
                tree_size: new.tree_size + 1000,
            },
            &acme.auditor,
        ))
        .await;
    assert_code(beyond, Code::InvalidArgument);
    let agent = audit
        .list_audit_records(authed(
            pb::ListAuditRecordsRequest {
                after_seq: 0,
                limit: 10,
            },
            &acme.agent,
        ))
        .await;
    assert_code(agent, Code::PermissionDenied);
}

/// Enrolls `customers` phones on a server, stops it, and opens its store
/// directly (the server is gone, so nothing else writes).
async fn enrolled_store(
    dir: &std::path::Path,
    customers: usize,
) -> (Config, SqliteStore, Tenant, Vec<Phone>) {
    let server = TestServer::with_dir(dir, |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let mut phones = Vec::new();
    for i in 0..customers {
        phones.push(
            server
                .phone(&acme, &format!("cust-{i}"), "4711", i as u64)
                .await,
        );
    }
    let config = server.config.clone();
    server.stop().await.expect("stopped");
    let store = admin::open_store(&config).await.expect("store");
    (config, store, acme, phones)
}

fn pending_session(tenant: &Tenant, phone: &Phone, customer: usize, n: usize) -> Session {
    let now = Timestamp::now();
    Session {
        id: SessionId::parse(&format!("s_{n:032x}")).expect("session id"),
        tenant: TenantId::parse(&tenant.id).expect("tenant"),
        customer_ref: CustomerRef::parse(&format!("cust-{customer}")).expect("customer"),
        account_ref: None,
        device: DeviceId::parse(&phone.device_id).expect("device"),
        agent_credential: CredentialId::parse(&tenant.agent_id).expect("agent"),
        operation: "balance_inquiry".into(),
        required_level: AssuranceLevel::L1,
        level_reached: AssuranceLevel::None,
        circuits: vec!["pin-knowledge".into()],
        challenge: [0; 32],
        binding_code: format!("{n:06}"),
        state: model::SessionState::Pending,
        created_at: now,
        expires_at: Timestamp(now.0 + 60_000),
        resolved_at: None,
        step_up_of: None,
    }
}

fn event(session: &Session, action: &str) -> AuditEvent {
    AuditEvent::for_session(
        &Actor::server(),
        action,
        session,
        "ok",
        String::new(),
        Timestamp::now(),
    )
}

/// Holds SQLite's write lock from another connection until released, so
/// that writes queue behind it.
async fn hold_write_lock(config: &Config) -> SqliteConnection {
    let mut db = raw(config).await;
    exec(&mut db, "BEGIN IMMEDIATE").await;
    db
}

/// Waits until `n` writes since `before` are with the group-commit writer:
/// queued, or already taken into the group it is trying to commit (the
/// writer drains what is queued before it begins, so a group stuck behind a
/// held lock may hold several). Returns how many that group holds.
async fn until_queued(store: &SqliteStore, before: &GroupCommitStats, n: u64) -> u64 {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let now = store.group_commit_stats();
            let taken = now.writes - before.writes;
            if now.queued + taken >= n {
                break taken;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("writes queued in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_share_transactions_and_keep_the_chain_intact() {
    const SESSIONS: usize = 48;
    let dir = data_dir();
    let (config, store, acme, phones) = enrolled_store(dir.path(), 4).await;
    let keys = Arc::new(admin::signing_keys(&config).expect("keys"));
    let before = store.group_commit_stats();
    let records_before = records(&config).await.len();

    // Every session's three writes (start, push, verdict), from concurrent
    // tasks, while another connection holds the write lock: they queue, and
    // the writer takes them together once it is released.
    let mut lock = hold_write_lock(&config).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..SESSIONS {
        let customer = n % phones.len();
        let session = pending_session(&acme, &phones[customer], customer, n);
        let (store, keys) = (store.clone(), Arc::clone(&keys));
        tasks.spawn(async move {
            let start = event(&session, "session.start");
            store
                .insert_session(
                    &session,
                    AuditAppend {
                        events: &[start],
                        keys: &keys,
                    },
                )
                .await?;
            let push = event(&session, "push");
            store
                .append_audit(AuditAppend {
                    events: &[push],
                    keys: &keys,
                })
                .await?;
            let resolution = Resolution {
                state: model::SessionState::Passed,
                level_reached: AssuranceLevel::L1,
                at: Timestamp::now(),
                fraud_signal: None,
                lockout: None,
                actor: Actor::server(),
                detail: String::new(),
            };
            store.resolve_session(&session.id, &resolution, &keys).await
        });
    }
    // The writer took the first writes to arrive (one, or a few when
    // they arrived together) before it found the lock held; the rest
    // queued behind them.
    let stuck = until_queued(&store, &before, SESSIONS as u64).await;
    exec(&mut lock, "COMMIT").await;
    let mut passed = 0;
    while let Some(joined) = tasks.join_next().await {
        let resolved = joined.expect("task").expect("write");
        assert_eq!(
            resolved.expect("resolved once").session.state,
            model::SessionState::Passed
        );
        passed += 1;
    }
    assert_eq!(passed, SESSIONS);

    let after = store.group_commit_stats();
    let writes = after.writes - before.writes;
    let transactions = after.transactions - before.transactions;
    assert_eq!(writes, 3 * SESSIONS as u64);
    assert!(
        transactions < writes,
        "{transactions} transactions for {writes} writes"
    );
    assert!(
        after.largest_group >= SESSIONS as u64 - stuck,
        "{stuck} writes stuck first; {after:?}"
    );
    assert_eq!(after.groups_retried, before.groups_retried);
    store.close().await;

    // Every write's records are there, once, in one intact chain.
    let log = records(&config).await;
    assert_eq!(log.len() - records_before, 3 * SESSIONS);
    for (i, record) in log.iter().enumerate() {
        assert_eq!(record.seq, i as u64 + 1);
    }
    assert_eq!(verify(&config).await, Ok(log.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_in_a_group_fails_alone_and_the_others_commit() {
    const WRITES: usize = 16;
    let dir = data_dir();
    let (config, store, acme, phones) = enrolled_store(dir.path(), 1).await;
    let keys = Arc::new(admin::signing_keys(&config).expect("keys"));
    let before = store.group_commit_stats();
    let records_before = records(&config).await.len();
    let mut db = raw(&config).await;
    exec(
        &mut db,
        "CREATE TRIGGER poisoned BEFORE INSERT ON audit_log WHEN NEW.action = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .await;
    exec(&mut db, "BEGIN IMMEDIATE").await;
    let session = pending_session(&acme, &phones[0], 0, 0);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..WRITES {
        let action = if n == WRITES / 2 { "poison" } else { "push" };
        let event = event(&session, action);
        let (store, keys) = (store.clone(), Arc::clone(&keys));
        tasks.spawn(async move {
            let result = store
                .append_audit(AuditAppend {
                    events: &[event],
                    keys: &keys,
                })
                .await;
            (n, result)
        });
    }
    until_queued(&store, &before, WRITES as u64).await;
    exec(&mut db, "COMMIT").await;
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.expect("task");
        if n == WRITES / 2 {
            let error = result.expect_err("the poisoned write fails");
            assert!(error.to_string().contains("disk full"), "{error}");
        } else {
            result.expect("the other writes commit");
        }
    }
    let after = store.group_commit_stats();
    assert_eq!(after.writes - before.writes, WRITES as u64);
    assert!(after.groups_retried > before.groups_retried, "{after:?}");
    store.close().await;
    exec(&mut db, "DROP TRIGGER poisoned").await;
    db.close().await.expect("close");
    let log = records(&config).await;
    assert_eq!(log.len() - records_before, WRITES - 1);
    assert!(log.iter().all(|r| r.event.action != "poison"));
    assert_eq!(verify(&config).await, Ok(log.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_over_grpc_leave_a_verifiable_log() {
    const CUSTOMERS: usize = 12;
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let mut phones = Vec::new();
    for i in 0..CUSTOMERS {
        phones.push(
            server
                .phone(&acme, &format!("cust-{i}"), "4711", i as u64)
                .await,
        );
    }
    let key = {
        let mut push = phones[0].listen(&server).await;
        let session = server.start_session(&acme, "cust-0").await;
        let request = next_request(&mut push).await;
        let key_id = request.requirements[0].key_id.clone();
        let key = server.proving_key(&phones[0], &key_id).await;
        let proof = phones[0].prove(&key, &request);
        submit(&server, &phones[0], &session.session_id, &key_id, proof)
            .await
            .expect("submit");
        Arc::new((key, key_id))
    };
    let server = Arc::new(server);
    let acme = Arc::new(acme);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, phone) in phones.into_iter().enumerate() {
        let (server, acme, key) = (Arc::clone(&server), Arc::clone(&acme), Arc::clone(&key));
        tasks.spawn(async move {
            let mut push = phone.listen(&server).await;
            let session = server.start_session(&acme, &format!("cust-{i}")).await;
            let request = next_request(&mut push).await;
            assert_eq!(request.session_id, session.session_id);
            let proof = phone.prove(&key.0, &request);
            submit(&server, &phone, &session.session_id, &key.1, proof)
                .await
                .expect("submit")
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let answer = joined.expect("session");
        assert_eq!(answer.state, SessionState::Passed as i32);
    }
    let config = server.config.clone();
    Arc::into_inner(server)
        .expect("sole owner")
        .stop()
        .await
        .expect("stopped");
    let log = records(&config).await;
    let verdicts = log.iter().filter(|r| r.event.action == "verdict").count();
    assert_eq!(verdicts, CUSTOMERS + 1);
    assert_eq!(verify(&config).await, Ok(log.len() as u64));
}
