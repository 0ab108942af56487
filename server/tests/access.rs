//! Every RPC against every kind of wrong caller: no credential, a malformed
//! or unknown one, a revoked one, the wrong role, another tenant's, another
//! customer's device.

mod common;

use common::*;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};
use zkid_proto::v1 as pb;
use zkid_server::{admin, domain::model::Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    RegisterCustomer,
    EnrollDevice,
    RevokeDevice,
    StartVerification,
    WatchVerification,
    GetVerification,
    CancelVerification,
    WatchRequests,
    SubmitProof,
    Decline,
    ListProvingKeys,
    GetProvingKey,
}

const ALL: [Rpc; 12] = [
    Rpc::RegisterCustomer,
    Rpc::EnrollDevice,
    Rpc::RevokeDevice,
    Rpc::StartVerification,
    Rpc::WatchVerification,
    Rpc::GetVerification,
    Rpc::CancelVerification,
    Rpc::WatchRequests,
    Rpc::SubmitProof,
    Rpc::Decline,
    Rpc::ListProvingKeys,
    Rpc::GetProvingKey,
];

/// What the calls address: resources of tenant acme.
struct Target {
    session_id: String,
    device_id: String,
    key_id: Vec<u8>,
}

fn request<T>(message: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(token) => authed(message, token),
        None => Request::new(message),
    }
}

/// Calls `rpc` with `token` and returns the status (OK as `Ok(())`). For
/// streams, the first message is awaited too.
async fn call(
    server: &TestServer,
    rpc: Rpc,
    token: Option<&str>,
    t: &Target,
) -> Result<(), Status> {
    let session_id = t.session_id.clone();
    match rpc {
        Rpc::RegisterCustomer => server
            .enrollment()
            .await
            .register_customer(request(
                pb::RegisterCustomerRequest {
                    customer_ref: "cust-new".into(),
                    attributes: None,
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::EnrollDevice => server
            .enrollment()
            .await
            .enroll_device(request(
                pb::EnrollDeviceRequest {
                    device_commitment: vec![1; 32],
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::RevokeDevice => server
            .enrollment()
            .await
            .revoke_device(request(
                pb::RevokeDeviceRequest {
                    customer_ref: "cust-1".into(),
                    device_id: t.device_id.clone(),
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::StartVerification => server
            .verification()
            .await
            .start_verification(request(
                pb::StartVerificationRequest {
                    customer_ref: "cust-1".into(),
                    operation: "balance_inquiry".into(),
                    account_ref: None,
                    step_up_from: None,
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::WatchVerification => {
            let mut stream = server
                .verification()
                .await
                .watch_verification(request(pb::WatchVerificationRequest { session_id }, token))
                .await?
                .into_inner();
            stream.next().await.transpose().map(drop)
        }
        Rpc::GetVerification => server
            .verification()
            .await
            .get_verification(request(pb::GetVerificationRequest { session_id }, token))
            .await
            .map(drop),
        Rpc::CancelVerification => server
            .verification()
            .await
            .cancel_verification(request(pb::CancelVerificationRequest { session_id }, token))
            .await
            .map(drop),
        Rpc::WatchRequests => {
            let mut stream = server
                .device()
                .await
                .watch_requests(request(pb::WatchRequestsRequest {}, token))
                .await?
                .into_inner();
            stream.next().await.transpose().map(drop)
        }
        Rpc::SubmitProof => server
            .device()
            .await
            .submit_proof(request(
                pb::SubmitProofRequest {
                    session_id,
                    proofs: vec![pb::CircuitProof {
                        key_id: t.key_id.clone(),
                        proof: vec![0; 256],
                    }],
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::Decline => server
            .device()
            .await
            .decline(request(pb::DeclineRequest { session_id }, token))
            .await
            .map(drop),
        Rpc::ListProvingKeys => server
            .device()
            .await
            .list_proving_keys(request(pb::ListProvingKeysRequest {}, token))
            .await
            .map(drop),
        Rpc::GetProvingKey => {
            let mut stream = server
                .device()
                .await
                .get_proving_key(request(
                    pb::GetProvingKeyRequest {
                        key_id: t.key_id.clone(),
                    },
                    token,
                ))
                .await?
                .into_inner();
            stream.next().await.transpose().map(drop)
        }
    }
}

fn expect(result: Result<(), Status>, code: Code, rpc: Rpc, who: &str) {
    match result {
        Ok(()) => panic!("{rpc:?} by {who}: expected {code:?}, got OK"),
        Err(status) => assert_eq!(status.code(), code, "{rpc:?} by {who}: {status:?}"),
    }
}

#[tokio::test]
async fn every_rpc_refuses_every_wrong_caller() {
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let acme = server.tenant("acme", "Acme Bank").await;
    let globex = server.tenant("globex", "Globex").await;
    let phone = server.phone(&acme, "cust-1", "4711", 1).await;
    let neighbour = server.phone(&acme, "cust-2", "1234", 2).await;
    let foreign_phone = server.phone(&globex, "cust-1", "4711", 3).await;
    let unused_code = server.enrollment_code(&acme, "cust-9").await;

    let mut push = phone.listen(&server).await;
    let session = server.start_session(&acme, "cust-1").await;
    let pushed = next_request(&mut push).await;
    let target = Target {
        session_id: session.session_id.clone(),
        device_id: phone.device_id.clone(),
        key_id: pushed.requirements[0].key_id.clone(),
    };

    // The one credential each RPC admits, in acme.
    let allowed = |rpc: Rpc| -> &str {
        match rpc {
            Rpc::RegisterCustomer | Rpc::RevokeDevice => &acme.enroller,
            Rpc::EnrollDevice => &unused_code,
            Rpc::StartVerification
            | Rpc::WatchVerification
            | Rpc::GetVerification
            | Rpc::CancelVerification => &acme.agent,
            _ => &phone.token,
        }
    };
    let everyone: [(&str, &str); 6] = [
        ("agent", &acme.agent),
        ("enroller", &acme.enroller),
        ("auditor", &acme.auditor),
        ("admin", &acme.admin),
        ("device", &phone.token),
        ("enrollment code", &unused_code),
    ];

    for rpc in ALL {
        // No credential, a malformed one, one that was never issued.
        expect(
            call(&server, rpc, None, &target).await,
            Code::Unauthenticated,
            rpc,
            "nobody",
        );
        expect(
            call(&server, rpc, Some("hunter2"), &target).await,
            Code::Unauthenticated,
            rpc,
            "garbage",
        );
        let last = if acme.agent.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &acme.agent[..acme.agent.len() - 1]);
        expect(
            call(&server, rpc, Some(&forged), &target).await,
            Code::Unauthenticated,
            rpc,
            "forged",
        );
        // Every other role.
        for (who, token) in everyone {
            if token != allowed(rpc) {
                expect(
                    call(&server, rpc, Some(token), &target).await,
                    Code::PermissionDenied,
                    rpc,
                    who,
                );
            }
        }
    }

    // Another tenant's credential of the right role reaches none of acme's
    // resources. (Customer references are per tenant: globex's agent
    // starting "cust-1" addresses globex's own customer of that name.)
    for rpc in [
        Rpc::WatchVerification,
        Rpc::GetVerification,
        Rpc::CancelVerification,
    ] {
        expect(
            call(&server, rpc, Some(&globex.agent), &target).await,
            Code::PermissionDenied,
            rpc,
            "globex agent",
        );
    }
    for rpc in [Rpc::SubmitProof, Rpc::Decline] {
        expect(
            call(&server, rpc, Some(&foreign_phone.token), &target).await,
            Code::PermissionDenied,
            rpc,
            "globex device",
        );
        expect(
            call(&server, rpc, Some(&neighbour.token), &target).await,
            Code::PermissionDenied,
            rpc,
            "other customer's device",
        );
    }
    expect(
        call(&server, Rpc::RevokeDevice, Some(&globex.enroller), &target).await,
        Code::PermissionDenied,
        Rpc::RevokeDevice,
        "globex enroller",
    );
    // Nothing of the above touched the session.
    assert_eq!(
        server.get(&acme, &session.session_id).await.state,
        pb::SessionState::Pending as i32
    );

    // Revoked credentials: revoke a fresh credential of every role.
    let store = admin::open_store(&server.config).await.expect("store");
    let keys = admin::signing_keys(&server.config).expect("keys");
    let mut revoked = Vec::new();
    for role in [Role::Agent, Role::Enroller] {
        let (record, token) = admin::create_credential(&store, &keys, "acme", role, None, None)
            .await
            .expect("credential");
        admin::revoke_credential(&store, &keys, record.id.as_str())
            .await
            .expect("revoke");
        revoked.push((role, token.expose().to_owned()));
    }
    store.close().await;
    let doomed = server.phone(&acme, "cust-3", "4711", 4).await;
    server
        .enrollment()
        .await
        .revoke_device(authed(
            pb::RevokeDeviceRequest {
                customer_ref: "cust-3".into(),
                device_id: doomed.device_id.clone(),
            },
            &acme.enroller,
        ))
        .await
        .expect("revoke device");
    // Registering again supersedes an unused code.
    let superseded = server.enrollment_code(&acme, "cust-8").await;
    server.enrollment_code(&acme, "cust-8").await;
    for rpc in ALL {
        let token = match allowed(rpc) {
            t if t == acme.agent => revoked[0].1.clone(),
            t if t == acme.enroller => revoked[1].1.clone(),
            t if t == unused_code => superseded.clone(),
            _ => doomed.token.clone(),
        };
        let status = call(&server, rpc, Some(&token), &target)
            .await
            .expect_err("revoked");
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{rpc:?} revoked: {status:?}"
        );
        assert!(status.message().contains("revoked"), "{rpc:?}: {status:?}");
    }

    // And the right caller gets through, for the record.
    for rpc in [
        Rpc::GetVerification,
        Rpc::ListProvingKeys,
        Rpc::GetProvingKey,
        Rpc::WatchVerification,
    ] {
        call(&server, rpc, Some(allowed(rpc)), &target)
            .await
            .expect("allowed");
    }
}

#[tokio::test]
async fn health_and_reflection_are_public() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let dir = data_dir();
    let server = TestServer::with_dir(dir.path(), |_| {}).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "zkid.v1.Enrollment",
        "zkid.v1.Verification",
        "zkid.v1.Device",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "zkid.v1.Enrollment",
        "zkid.v1.Verification",
        "zkid.v1.Device",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
}
