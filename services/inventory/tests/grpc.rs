//! The gRPC read API and grpc.health.v1, with the same identities as REST.

mod common;

use proto::inventory::v1::inventory_client::InventoryClient;
use proto::inventory::v1::{GetNodeRequest, GetSummaryRequest, ListNodesRequest};
use serde_json::json;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::test]
async fn reads_nodes_and_summary_over_grpc() {
    let app = common::spawn_inventory().await;
    let body = json!({"name": "jetson-1", "kind": "edge", "addresses": ["100.64.1.1"],
        "gpu": {"model": "Orin Nano", "jetpack": "6.1", "cuda": "12.6", "memory_bytes": 8589934592u64, "architecture": "aarch64"}});
    assert_eq!(
        app.post("/v1/nodes", &app.tokens.developer, body)
            .await
            .status(),
        201
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = InventoryClient::new(channel.clone());
    let node = client
        .get_node(authed(
            GetNodeRequest {
                id_or_name: "jetson-1".into(),
            },
            &app.tokens.viewer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node.kind, "edge");
    assert_eq!(node.gpu.unwrap().jetpack, "6.1");

    let listed = client
        .list_nodes(authed(
            ListNodesRequest {
                kind: "edge".into(),
            },
            &app.tokens.viewer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.nodes.len(), 1);
    let bad = client
        .list_nodes(authed(
            ListNodesRequest {
                kind: "toaster".into(),
            },
            &app.tokens.viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let missing = client
        .get_node(authed(
            GetNodeRequest {
                id_or_name: "nope".into(),
            },
            &app.tokens.viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let summary = client
        .get_summary(authed(GetSummaryRequest {}, &app.tokens.viewer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.nodes, summary.edge_nodes), (1, 1));

    let anonymous = client
        .get_summary(tonic::Request::new(GetSummaryRequest {}))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: "homestation.inventory.v1.Inventory".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    app.stop().await;
}
