//! edge-registry's API on the real PostgreSQL, nats-server and OpenBao: join tokens, refusals, the race, the flood.

mod common;

use std::time::Duration;

use common::Edge;
use serde_json::{Value, json};

async fn error(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"].clone(),
    )
}

async fn node_count(edge: &Edge) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM edge_nodes")
        .fetch_one(&edge.registry_db)
        .await
        .unwrap()
}

#[tokio::test]
async fn join_token_life_cycle() {
    let edge = common::start().await;
    // Only Admins make tokens.
    for token in [&edge.env.tokens.viewer, &edge.env.tokens.developer] {
        let refused = edge
            .client
            .post(format!("{}/v1/join-tokens", edge.registry))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
    let (id, token) = edge.create_token(json!({"ttl": "1h", "labels": {"site": "garage"}, "taints": ["nvidia.com/gpu=true:NoSchedule"]})).await;
    assert!(token.starts_with("hsj_"));
    let listed = edge.get(&edge.registry, "/v1/join-tokens").await;
    assert_eq!(listed[0]["status"], "active");
    assert!(
        !listed.to_string().contains(&token),
        "the token itself is never listed"
    );
    let stored: String = sqlx::query_scalar("SELECT sha256 FROM join_tokens")
        .fetch_one(&edge.registry_db)
        .await
        .unwrap();
    assert_ne!(stored, token, "only the hash is stored");

    let enrolled = edge.enroll(&Edge::enrolment(&token, "jetson-a")).await;
    assert_eq!(enrolled.status(), 201);
    let body: Value = enrolled.json().await.unwrap();
    assert_eq!(
        body["k3s"]["token"],
        edge.agent_token.as_str(),
        "the agent token comes from OpenBao"
    );
    assert_eq!(body["k3s"]["node_ip"], "100.101.102.103");
    assert_eq!(body["k3s"]["flannel_iface"], "tailscale0");
    let labels: Vec<&str> = body["k3s"]["node_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for expected in [
        "homestation.io/jetpack=6.0",
        "homestation.io/cuda=12.2",
        "nvidia.com/gpu.present=true",
        "site=garage",
    ] {
        assert!(labels.contains(&expected), "{expected} in {labels:?}");
    }
    assert_eq!(
        body["k3s"]["node_taints"],
        json!(["nvidia.com/gpu=true:NoSchedule"])
    );

    let (status, message, _) = error(edge.enroll(&Edge::enrolment(&token, "jetson-b")).await).await;
    assert_eq!(status, 403);
    assert!(message.contains("already used"), "{message}");
    let (status, message, _) = error(
        edge.client
            .delete(format!("{}/v1/join-tokens/{id}", edge.registry))
            .bearer_auth(&edge.env.tokens.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "a used token cannot be revoked: {message}");

    let (revoked_id, revoked) = edge.create_token(json!({})).await;
    let gone = edge
        .client
        .delete(format!("{}/v1/join-tokens/{revoked_id}", edge.registry))
        .bearer_auth(&edge.env.tokens.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let (status, message, _) =
        error(edge.enroll(&Edge::enrolment(&revoked, "jetson-c")).await).await;
    assert_eq!(
        (status, message.contains("revoked")),
        (403, true),
        "{message}"
    );

    let (_, short) = edge.create_token(json!({"ttl": "1s"})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, message, _) = error(edge.enroll(&Edge::enrolment(&short, "jetson-d")).await).await;
    assert_eq!(
        (status, message.contains("expired")),
        (403, true),
        "{message}"
    );

    let (status, message, _) = error(
        edge.enroll(&Edge::enrolment("hsj_forged0000", "jetson-e"))
            .await,
    )
    .await;
    assert_eq!(
        (status, message.contains("unknown join token")),
        (401, true),
        "{message}"
    );
    assert_eq!(
        node_count(&edge).await,
        1,
        "only the one good enrolment recorded a node"
    );
    edge.stop().await;
}

#[tokio::test]
async fn bad_enrolments_are_refused_with_the_reason_and_record_nothing() {
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({})).await;
    let mut outside = Edge::enrolment(&token, "jetson-x");
    outside["tailscale"]["ip"] = json!("192.168.1.50");
    let mut bad_facts = Edge::enrolment(&token, "jetson-x");
    bad_facts["facts"]["cuda"] = json!("twelve");
    let mut bad_name = Edge::enrolment(&token, "Jetson_X");
    bad_name["name"] = json!("Jetson_X");
    let mut extra = Edge::enrolment(&token, "jetson-x");
    extra["facts"]["colour"] = json!("green");
    // Signed for another name: the key's holder did not ask for this one.
    let mut unsigned = Edge::enrolment(&token, "jetson-y");
    unsigned["name"] = json!("jetson-x");
    let mut no_key = Edge::enrolment(&token, "jetson-x");
    no_key["public_key"] = json!("not-a-key");
    let cases = [
        (outside, "tailscale.ip"),
        (bad_facts, "facts.cuda"),
        (bad_name, "name"),
        (extra, "colour"),
        (unsigned, "proof"),
        (no_key, "public_key"),
    ];
    for (body, field) in cases {
        let (status, message, detail) = error(edge.enroll(&body).await).await;
        assert_eq!(status, 400, "{message}");
        assert!(
            detail["field"].as_str().is_some_and(|f| f.contains(field)) || message.contains(field),
            "{field}: {message}"
        );
    }
    let tokens = edge.get(&edge.registry, "/v1/join-tokens").await;
    assert_eq!(
        tokens[0]["status"], "active",
        "a refused enrolment does not spend the token"
    );
    assert_eq!(node_count(&edge).await, 0);
    edge.stop().await;
}

#[tokio::test]
async fn a_retried_enrolment_with_the_same_key_gets_the_same_answer_and_no_one_else_does() {
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({"labels": {"site": "shed"}})).await;
    let key = edge_agent::key::NodeKey::generate();
    let body = Edge::enrolment_with(&key, &token, "jetson-r");
    let first = edge.enroll(&body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // The answer was lost on the way: the agent sends the same request again.
    let again = edge.enroll(&body).await;
    assert_eq!(again.status(), 200, "answered again, not refused");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the same node, k3s config and bus credential");
    // Anyone else with the token (another key, even asking for the same name) is refused.
    let thief = Edge::enrolment(&token, "jetson-r");
    let (status, message, _) = error(edge.enroll(&thief).await).await;
    assert_eq!(status, 403);
    assert!(message.contains("already used"), "{message}");
    assert_eq!(node_count(&edge).await, 1);
    // The same key cannot enrol a second machine with another token.
    let (_, other) = edge.create_token(json!({})).await;
    let (status, message, _) = error(
        edge.enroll(&Edge::enrolment_with(&key, &other, "jetson-s"))
            .await,
    )
    .await;
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("key is enrolled already"), "{message}");
    edge.stop().await;
}

/// Connects to the test's nats-server as an enrolled node, without retrying.
async fn connect_as(edge: &Edge, credential: &Value) -> Result<async_nats::Client, String> {
    let user = credential["user"].as_str().unwrap();
    let password = credential["password"].as_str().unwrap();
    testkit::connect_once(&edge.env.bus.url(), Some((user, password))).await
}

#[tokio::test]
async fn removing_a_node_refuses_its_bus_credential_at_once_and_removes_it_from_inventory() {
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({})).await;
    let key = edge_agent::key::NodeKey::generate();
    let body = Edge::enrolment_with(&key, &token, "jetson-gone");
    let enrolled: Value = edge.enroll(&body).await.json().await.unwrap();
    let credential = enrolled["bus"].clone();
    connect_as(&edge, &credential)
        .await
        .expect("an enrolled node is admitted to the bus");
    edge.inventory_node("jetson-gone", |n| n["kind"] == "edge")
        .await;

    let remove = |token: &str| {
        edge.client
            .delete(format!("{}/v1/nodes/jetson-gone", edge.registry))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        remove(&edge.env.tokens.developer).await.unwrap().status(),
        403
    );
    let removed = remove(&edge.env.tokens.admin).await.unwrap();
    assert_eq!(removed.status(), 202);
    let removed: Value = removed.json().await.unwrap();
    assert_eq!(
        removed["state"], "removed",
        "no Kubernetes API here: nothing to drain"
    );
    assert!(
        connect_as(&edge, &credential).await.is_err(),
        "the removed node's credential is refused at once"
    );
    assert_eq!(node_count(&edge).await, 0);
    // The same enrolment retried is refused now: the token stays spent.
    let (status, _, _) = error(edge.enroll(&body).await).await;
    assert_eq!(status, 403);
    testkit::eventually(
        "inventory to drop the node",
        Duration::from_secs(15),
        || async {
            let status = edge
                .client
                .get(format!("{}/v1/nodes/jetson-gone", edge.inventory))
                .bearer_auth(&edge.env.tokens.viewer)
                .send()
                .await
                .ok()?
                .status();
            (status == 404).then_some(())
        },
    )
    .await;
    let (status, _, _) = error(remove(&edge.env.tokens.admin).await.unwrap()).await;
    assert_eq!(status, 404, "removed once");
    edge.stop().await;
}

#[tokio::test]
async fn the_enrolment_port_serves_enrolment_only_and_the_api_port_does_not_enrol() {
    let edge = common::start().await;
    for path in [
        "/v1/join-tokens",
        "/v1/nodes",
        "/v1/nodes/x",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
    ] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
        ] {
            let status = edge
                .client
                .request(method.clone(), format!("{}{path}", edge.enrol))
                .bearer_auth(&edge.env.tokens.admin)
                .header("Remote-User", "ana")
                .header("Remote-Groups", "admins")
                .header(service_kit::auth::PROXY_PROOF, &edge.env.tokens.proxy_proof)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 404, "{method} {path} on the enrolment port");
        }
    }
    let (_, token) = edge.create_token(json!({})).await;
    let on_api_port = edge
        .client
        .post(format!("{}/v1/enroll", edge.registry))
        .json(&Edge::enrolment(&token, "jetson-door"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        on_api_port.status(),
        404,
        "enrolment is not on the API port"
    );
    assert_eq!(
        edge.enroll(&Edge::enrolment(&token, "jetson-door"))
            .await
            .status(),
        201
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_name_another_machine_has_in_inventory_is_refused_at_enrolment() {
    let edge = common::start().await;
    let added = edge
        .client
        .post(format!("{}/v1/nodes", edge.inventory))
        .bearer_auth(&edge.env.tokens.admin)
        .json(&json!({"name": "control-1", "kind": "control", "addresses": ["100.64.0.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let (_, token) = edge.create_token(json!({})).await;
    let (status, message, _) =
        error(edge.enroll(&Edge::enrolment(&token, "control-1")).await).await;
    assert_eq!(status, 409, "{message}");
    assert!(
        message.contains("control-1 is a control node's"),
        "{message}"
    );
    assert_eq!(node_count(&edge).await, 0);
    // An edge node an admin added ahead of the enrolment is the node's to take.
    let placeholder = edge
        .client
        .post(format!("{}/v1/nodes", edge.inventory))
        .bearer_auth(&edge.env.tokens.admin)
        .json(&json!({"name": "jetson-planned", "kind": "edge"}))
        .send()
        .await
        .unwrap();
    assert_eq!(placeholder.status(), 201);
    assert_eq!(
        edge.enroll(&Edge::enrolment(&token, "jetson-planned"))
            .await
            .status(),
        201
    );
    edge.stop().await;
}

#[tokio::test]
async fn two_agents_racing_with_one_token_exactly_one_wins() {
    let edge = common::start().await;
    for round in 0..5 {
        let (_, token) = edge.create_token(json!({})).await;
        let (first, second) = (
            Edge::enrolment(&token, &format!("racer-a{round}")),
            Edge::enrolment(&token, &format!("racer-b{round}")),
        );
        let (a, b) = tokio::join!(edge.enroll(&first), edge.enroll(&second));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 403], "round {round}");
    }
    assert_eq!(node_count(&edge).await, 5);
    edge.stop().await;
}

#[tokio::test]
async fn without_the_agent_token_in_vault_nothing_is_recorded_and_the_token_survives() {
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({})).await;
    // The control-plane playbook has not written the K3s token yet: an empty secret at the path.
    edge.bao
        .kv_put("homestation/k3s", json!({"other": "x"}))
        .await;
    let (status, message, _) =
        error(edge.enroll(&Edge::enrolment(&token, "early-bird")).await).await;
    assert_eq!(status, 503);
    assert!(message.contains("not in Vault"), "{message}");
    assert_eq!(node_count(&edge).await, 0);
    edge.bao
        .kv_put("homestation/k3s", json!({"agent_token": edge.agent_token}))
        .await;
    assert_eq!(
        edge.enroll(&Edge::enrolment(&token, "early-bird"))
            .await
            .status(),
        201,
        "the same token works once Vault has it"
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_server_token_where_the_agent_token_belongs_is_never_handed_out() {
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({})).await;
    // An operator stored server/node-token under the agent token's key.
    edge.bao
        .kv_put("homestation/k3s", json!({"agent_token": edge.server_token}))
        .await;
    let response = edge.enroll(&Edge::enrolment(&token, "jetson-x")).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("server token"), "{body}");
    assert!(!body.contains(&edge.server_token), "{body}");
    assert_eq!(
        node_count(&edge).await,
        0,
        "nothing recorded, the join token kept"
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_flood_of_heartbeats_from_unknown_nodes_is_dropped_and_counted() {
    let edge = common::start().await;
    // The test's harness user may publish any node's subject (the bus refuses that to nodes, libs/bus/tests/
    // access.rs); the registry must still drop heartbeats of nodes it does not know.
    let publisher = bus::Publisher::new(edge.js.clone(), edge.env.namespace.clone(), "intruder");
    const FLOOD: usize = 2000;
    let beats = (0..FLOOD).map(|_| {
        let beat = bus::NodeHeartbeat {
            node_id: uuid::Uuid::new_v4(),
            load1: 9.9,
            gpu_utilization_pct: None,
            temperature_c: None,
            disk_free_bytes: None,
        };
        let publisher = publisher.clone();
        async move {
            publisher
                .publish(bus::Event::NodeHeartbeat(beat))
                .await
                .unwrap()
        }
    });
    futures_util::future::join_all(beats).await;
    let metrics = testkit::eventually("every heartbeat counted", Duration::from_secs(15), || async {
        let text = edge.metrics(&edge.registry).await;
        text.contains(&format!(r#"homestation_edge_heartbeats_total{{service="edge-registry",outcome="unknown_node"}} {FLOOD}"#)).then_some(text)
    })
    .await;
    assert!(
        metrics.contains(r#"homestation_edge_nodes{service="edge-registry",state="online"} 0"#),
        "{metrics}"
    );
    assert_eq!(node_count(&edge).await, 0);
    edge.stop().await;
}
