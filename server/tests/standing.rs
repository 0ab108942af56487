//! The store's combined reads on the path that starts a session: each must
//! read exactly what the single reads it stands for read.

mod common;

use common::*;
use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection};
use zkid_proto::v1 as pb;
use zkid_server::domain::{
    model::{CredentialId, CustomerRef, DeviceId, SessionId, TenantId, Timestamp},
    StandingQuery, Store,
};

#[tokio::test]
async fn start_standing_reads_what_the_single_reads_read() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let one = server.phone(&acme, "cust-1", "4711", 1).await;
    let two = server.phone(&acme, "cust-2", "4711", 2).await;
    for customer in ["cust-1", "cust-1", "cust-2"] {
        server.start_session(&acme, customer).await;
    }
    let config = server.config.clone();
    server.stop().await.expect("stopped");
    let mut db = SqliteConnectOptions::new()
        .filename(config.database_path())
        .connect()
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO lockouts (tenant_id, customer_ref, failures, locks, locked_until) \
         VALUES ('acme', 'cust-1', 3, 2, 12345)",
    )
    .execute(&mut db)
    .await
    .expect("lockout row");
    db.close().await.expect("close");

    let store = zkid_server::admin::open_store(&config)
        .await
        .expect("store");
    let tenant = TenantId::parse("acme").expect("tenant");
    let agent = CredentialId::parse(&acme.agent_id).expect("agent");
    let now = Timestamp::now();
    for (customer, phone) in [("cust-1", &one), ("cust-2", &two)] {
        let subject = CustomerRef::parse(customer).expect("customer");
        let device = DeviceId::parse(&phone.device_id).expect("device");
        // Windows that hold every session, and windows that hold none.
        for (minute_ago, day_ago) in [
            (Timestamp(0), Timestamp(0)),
            (Timestamp(now.0 + 60_000), Timestamp(0)),
            (Timestamp(0), Timestamp(now.0 + 60_000)),
        ] {
            let standing = store
                .start_standing(&StandingQuery {
                    credential: &agent,
                    tenant: &tenant,
                    subject_ref: &subject,
                    device: &device,
                    minute_ago,
                    day_ago,
                })
                .await
                .expect("standing");
            assert_eq!(
                standing.started_by_credential,
                store
                    .sessions_by_agent_since(&agent, minute_ago)
                    .await
                    .expect("count")
            );
            assert_eq!(
                standing.pushed_to_subject,
                store
                    .sessions_for_customer_since(&tenant, &subject, day_ago)
                    .await
                    .expect("count")
            );
            assert_eq!(
                standing.asked_of_device,
                store
                    .sessions_for_device_since(&device, minute_ago)
                    .await
                    .expect("count")
            );
            assert_eq!(
                standing.lockout,
                store.lockout(&tenant, &subject).await.expect("lockout")
            );
        }
    }
    // The figures themselves, so that the comparison above compares
    // something.
    let subject = CustomerRef::parse("cust-1").expect("customer");
    let standing = store
        .start_standing(&StandingQuery {
            credential: &agent,
            tenant: &tenant,
            subject_ref: &subject,
            device: &DeviceId::parse(&one.device_id).expect("device"),
            minute_ago: Timestamp(0),
            day_ago: Timestamp(0),
        })
        .await
        .expect("standing");
    assert_eq!(standing.started_by_credential, 3);
    assert_eq!(standing.pushed_to_subject, 2);
    assert_eq!(standing.asked_of_device, 2);
    assert_eq!(standing.lockout.failures, 3);
    assert_eq!(standing.lockout.locks, 2);
    assert_eq!(standing.lockout.locked_until, Some(Timestamp(12345)));
    store.close().await;
}

#[tokio::test]
async fn subject_with_device_reads_the_subject_and_its_active_device_only() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let first = server.phone(&acme, "cust-1", "4711", 1).await;
    // A second phone replaces the first.
    let second = server.phone(&acme, "cust-1", "4711", 2).await;
    let revoked = server.phone(&acme, "cust-2", "4711", 3).await;
    server
        .enrollment()
        .await
        .revoke_device(authed(
            pb::RevokeDeviceRequest {
                customer_ref: "cust-2".into(),
                device_id: revoked.device_id.clone(),
            },
            &acme.enroller,
        ))
        .await
        .expect("revoke");
    let config = server.config.clone();
    server.stop().await.expect("stopped");

    let store = zkid_server::admin::open_store(&config)
        .await
        .expect("store");
    let tenant = TenantId::parse("acme").expect("tenant");
    for customer in ["cust-1", "cust-2", "cust-3"] {
        let subject = CustomerRef::parse(customer).expect("customer");
        let combined = store
            .subject_with_device(&tenant, &subject)
            .await
            .expect("read");
        let single = match store.customer(&tenant, &subject).await.expect("read") {
            Some(found) => Some((
                found,
                store
                    .active_device(&tenant, &subject)
                    .await
                    .expect("device"),
            )),
            None => None,
        };
        assert_eq!(combined, single, "{customer}");
    }
    let subject = CustomerRef::parse("cust-1").expect("customer");
    let (_, device) = store
        .subject_with_device(&tenant, &subject)
        .await
        .expect("read")
        .expect("cust-1 exists");
    let device = device.expect("an active device");
    assert_eq!(device.id.as_str(), second.device_id);
    assert_ne!(device.id.as_str(), first.device_id);
    let subject = CustomerRef::parse("cust-2").expect("customer");
    let (_, device) = store
        .subject_with_device(&tenant, &subject)
        .await
        .expect("read")
        .expect("cust-2 exists");
    assert!(device.is_none(), "a revoked device is not active");
    store.close().await;
}

#[tokio::test]
async fn session_with_subject_reads_the_session_and_its_customer() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    server.phone(&acme, "cust-1", "4711", 1).await;
    let started = server.start_session(&acme, "cust-1").await;
    let config = server.config.clone();
    server.stop().await.expect("stopped");

    let store = zkid_server::admin::open_store(&config)
        .await
        .expect("store");
    let id = SessionId::parse(&started.session_id).expect("session id");
    let (session, subject) = store
        .session_with_subject(&id)
        .await
        .expect("read")
        .expect("the session exists");
    assert_eq!(
        Some(&session),
        store.session(&id).await.expect("read").as_ref()
    );
    let tenant = TenantId::parse("acme").expect("tenant");
    let customer = CustomerRef::parse("cust-1").expect("customer");
    assert_eq!(
        subject,
        store.customer(&tenant, &customer).await.expect("read")
    );
    assert!(subject.is_some_and(|s| s.attributes.is_some()));
    let unknown = SessionId::parse(&format!("s_{:032x}", 7)).expect("session id");
    assert!(store
        .session_with_subject(&unknown)
        .await
        .expect("read")
        .is_none());
    store.close().await;
}
