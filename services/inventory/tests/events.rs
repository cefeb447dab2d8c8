//! Events from the other services keep the unified view current, on the real nats-server and PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bus::{Envelope, Event, Stream};
use common::{TestInventory, spawn_inventory};
use futures_util::StreamExt;
use serde_json::Value;
use testkit::eventually;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

fn enrolled(node_id: Uuid, name: &str) -> Event {
    Event::NodeEnrolled(bus::NodeEnrolled {
        node_id,
        name: name.into(),
        tailnet_ip: "100.101.102.103".parse().unwrap(),
        dns_name: format!("{name}.tail1234.ts.net"),
        labels: BTreeMap::from([("homestation.io/jetpack".into(), "6.0".into())]),
        facts: bus::HardwareFacts {
            model: "NVIDIA Jetson AGX Orin Developer Kit".into(),
            jetpack: Some("6.0".into()),
            l4t: Some("36.3.0".into()),
            cuda: Some("12.2".into()),
            gpu_name: Some("Orin (nvgpu)".into()),
            memory_bytes: 64 << 30,
            architecture: "aarch64".into(),
        },
    })
}

fn deployment(app: &str, revision: &str) -> bus::Deployment {
    bus::Deployment {
        app: app.into(),
        namespace: "apps".into(),
        revision: revision.into(),
        reason: None,
    }
}

async fn node_when(app: &TestInventory, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("node {name} to match"), WAIT, || async {
        let response = app
            .get(&format!("/v1/nodes/{name}"), &app.tokens.viewer)
            .await;
        if response.status() != 200 {
            return None;
        }
        let node: Value = response.json().await.ok()?;
        check(&node).then_some(node)
    })
    .await
}

async fn count(app: &TestInventory, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn edge_events_build_the_node_and_its_health_history() {
    let app = spawn_inventory().await;
    let id = Uuid::new_v4();
    app.publish("edge-registry", enrolled(id, "jetson-orin-1"))
        .await;
    let node = node_when(&app, "jetson-orin-1", |n| n["health"] == "healthy").await;
    assert_eq!(node["id"], id.to_string());
    assert_eq!(node["kind"], "edge");
    assert_eq!(node["gpu"]["cuda"], "12.2");
    assert_eq!(node["addresses"][0], "100.101.102.103");

    let beat = Event::NodeHeartbeat(bus::NodeHeartbeat {
        node_id: id,
        load1: 1.25,
        gpu_utilization_pct: Some(40.0),
        temperature_c: Some(51.5),
        disk_free_bytes: Some(10 << 30),
    });
    app.publish("edge-registry", beat).await;
    node_when(&app, "jetson-orin-1", |n| {
        n["last_heartbeat"]["gpu_utilization_pct"] == 40.0
    })
    .await;

    let liveness = |reason: &str| bus::NodeLiveness {
        node_id: id,
        name: "jetson-orin-1".into(),
        last_seen: chrono::Utc::now(),
        reason: Some(reason.into()),
    };
    app.publish(
        "edge-registry",
        Event::NodeOffline(liveness("missed 3 heartbeats")),
    )
    .await;
    node_when(&app, "jetson-orin-1", |n| n["health"] == "offline").await;
    app.publish(
        "edge-registry",
        Event::NodeOnline(liveness("heartbeat resumed")),
    )
    .await;
    node_when(&app, "jetson-orin-1", |n| {
        n["health"] == "healthy" && n["health_reason"] == "heartbeat resumed"
    })
    .await;

    let history = app.get_json("/v1/nodes/jetson-orin-1/history").await;
    let states: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["health"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["healthy", "offline", "healthy"], "newest first");

    let summary = app.get_json("/v1/summary").await;
    assert_eq!(summary["edge"][0]["jetpack"], "6.0");
    assert_eq!(summary["nodes_by_kind"]["edge"], 1);
    app.stop().await;
}

#[tokio::test]
async fn deploy_backup_and_secret_events_reach_the_summary() {
    let app = spawn_inventory().await;
    app.publish(
        "deployer",
        Event::DeploySynced(deployment("shop", "abc123")),
    )
    .await;
    app.publish(
        "deployer",
        Event::DeployHealthy(deployment("shop", "abc123")),
    )
    .await;
    let run = bus::BackupRun {
        policy: "postgres-nightly".into(),
        run_id: Uuid::new_v4(),
        source: "postgres".into(),
        bytes: Some(123_456),
        reason: None,
    };
    app.publish("backup", Event::BackupRunStarted(run.clone()))
        .await;
    app.publish("backup", Event::BackupRunSucceeded(run)).await;
    let drill = bus::BackupDrill {
        policy: "postgres-nightly".into(),
        backup_id: Uuid::new_v4(),
        duration_ms: 4200,
        reason: None,
    };
    app.publish("backup", Event::BackupDrillPassed(drill)).await;
    app.publish(
        "secrets-rotator",
        Event::SecretRotated(bus::SecretRotated {
            path: "kv/apps/shop/db".into(),
            version: 7,
        }),
    )
    .await;

    let summary = eventually("the summary to show all four", WAIT, || async {
        let s = app.get_json("/v1/summary").await;
        let ready = s["deployments"][0]["status"] == "healthy"
            && s["backups"][0]["status"] == "succeeded"
            && s["drills"][0]["status"] == "passed"
            && s["secrets"][0]["detail"]["version"] == 7;
        ready.then_some(s)
    })
    .await;
    assert_eq!(summary["deployments"][0]["key"], "apps/shop");
    assert_eq!(summary["backups"][0]["detail"]["bytes"], 123_456);
    assert_eq!(summary["services"]["by_health"]["healthy"], 1, "{summary}");
    let service = app.get_json("/v1/services/apps/shop").await;
    assert_eq!(service["revision"], "abc123");
    assert_eq!(service["source"], "deployer");

    app.publish(
        "deployer",
        Event::DeployDegraded(deployment("shop", "def456")),
    )
    .await;
    eventually("the service to turn degraded", WAIT, || async {
        (app.get_json("/v1/services/apps/shop").await["health"] == "degraded").then_some(())
    })
    .await;

    // Back to healthy: the time since it degraded is the service's recovery (the recover-time SLO).
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.publish(
        "deployer",
        Event::DeployHealthy(deployment("shop", "def456")),
    )
    .await;
    // shop's recovery histogram exists (count 0) from the first refresh; wait for the observation.
    let sample = |text: &str, prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix) && l.contains("name=\"shop\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let metrics = eventually("the recovery to be measured", WAIT, || async {
        let text = app
            .get("/metrics", &app.tokens.viewer)
            .await
            .text()
            .await
            .ok()?;
        let count = sample(
            &text,
            "homestation_inventory_service_recovery_seconds_count",
        )?;
        (count == 1.0).then_some(text)
    })
    .await;
    let took = sample(
        &metrics,
        "homestation_inventory_service_recovery_seconds_sum",
    )
    .unwrap_or_else(|| panic!("no recovery sum for shop in:\n{metrics}"));
    assert!((0.3..5.0).contains(&took), "recovered after {took} s");
    let healthy = metrics
        .lines()
        .find(|l| {
            l.starts_with("homestation_inventory_services{") && l.contains("health=\"healthy\"")
        })
        .unwrap_or_else(|| panic!("no health gauge in:\n{metrics}"));
    assert!(healthy.ends_with(" 1"), "{healthy}");
    app.stop().await;
}

#[tokio::test]
async fn every_change_is_published_as_inventory_changed() {
    let app = spawn_inventory().await;
    let client = app.bus.harness().await;
    let mut changes = client
        .subscribe(app.namespace.subject("inventory.v1.changed"))
        .await
        .unwrap();
    client.flush().await.unwrap();

    let made = app
        .post(
            "/v1/nodes",
            &app.tokens.developer,
            serde_json::json!({"name": "vm-1", "kind": "vm"}),
        )
        .await;
    assert_eq!(made.status(), 201);
    app.publish("edge-registry", enrolled(Uuid::new_v4(), "jetson-2"))
        .await;

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = tokio::time::timeout(WAIT, changes.next())
            .await
            .expect("a change event")
            .unwrap();
        let envelope = Envelope::parse(&app.namespace, &message.subject, &message.payload).unwrap();
        let Event::InventoryChanged(change) = envelope.event else {
            panic!("wrong event")
        };
        assert_eq!(envelope.source, "inventory");
        seen.push((change.name, change.change));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("jetson-2".to_owned(), bus::Change::Created),
            ("vm-1".to_owned(), bus::Change::Created)
        ]
    );
    eventually("the outbox to drain", WAIT, || async {
        (count(&app, "SELECT count(*) FROM outbox").await == 0).then_some(())
    })
    .await;
    app.stop().await;
}

/// Publishes raw bytes on a subject, as a buggy or hostile publisher would.
async fn publish_raw(app: &TestInventory, relative_subject: &str, payload: &'static [u8]) {
    app.js
        .publish(app.namespace.subject(relative_subject), payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_enrolment_never_takes_the_name_of_a_control_node_or_another_enrolled_node() {
    let app = spawn_inventory().await;
    let made = app
        .post(
            "/v1/nodes",
            &app.tokens.admin,
            serde_json::json!({"name": "control-1", "kind": "control", "addresses": ["100.64.0.1"]}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let first = Uuid::new_v4();
    app.publish("edge-registry", enrolled(first, "jetson-a"))
        .await;
    node_when(&app, "jetson-a", |n| n["id"] == first.to_string()).await;
    app.publish("edge-registry", enrolled(Uuid::new_v4(), "control-1"))
        .await;
    app.publish("edge-registry", enrolled(Uuid::new_v4(), "jetson-a"))
        .await;
    // Both refused (dead-lettered): the control node and the first Jetson are as they were.
    let dead = app
        .js
        .get_stream(Stream::DeadLetter.name(&app.namespace))
        .await
        .unwrap();
    eventually("two dead letters", WAIT, || async {
        (dead.get_info().await.ok()?.state.messages == 2).then_some(())
    })
    .await;
    let control = app.get_json("/v1/nodes/control-1").await;
    assert_eq!(control["kind"], "control");
    assert_eq!(control["addresses"][0], "100.64.0.1");
    assert_eq!(
        app.get_json("/v1/nodes/jetson-a").await["id"],
        first.to_string()
    );
    let reason = dead.get_raw_message(1).await.unwrap().headers;
    let reason = reason.get(bus::DEAD_LETTER_REASON).unwrap().as_str();
    assert!(
        reason.contains("belongs to another node (control"),
        "{reason}"
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_impossible_events_are_dead_lettered_and_the_consumer_goes_on() {
    let app = spawn_inventory().await;
    publish_raw(&app, "deploy.v1.synced", b"{this is not json").await;
    publish_raw(&app, "deploy.v1.healthy", br#"{"id":"00000000-0000-0000-0000-000000000001","occurred_at":"2026-01-01T00:00:00Z","source":"x","data":{"app":"shop"}}"#).await;
    // Well-formed, but names a node inventory never heard of: rejected by the handler, not retried.
    let ghost = bus::NodeLiveness {
        node_id: Uuid::new_v4(),
        name: "ghost".into(),
        last_seen: chrono::Utc::now(),
        reason: None,
    };
    app.publish("edge-registry", Event::NodeOffline(ghost))
        .await;
    // A valid event behind them is still applied.
    app.publish("deployer", Event::DeployHealthy(deployment("after", "r1")))
        .await;
    eventually("the valid event to be applied", WAIT, || async {
        (app.get("/v1/services/apps/after", &app.tokens.viewer)
            .await
            .status()
            == 200)
            .then_some(())
    })
    .await;

    let dead = app
        .js
        .get_stream(Stream::DeadLetter.name(&app.namespace))
        .await
        .unwrap();
    let letters = eventually("three dead letters", WAIT, || async {
        let info = dead.get_info().await.ok()?;
        (info.state.messages == 3).then_some(info.state.messages)
    })
    .await;
    assert_eq!(letters, 3);
    let mut reasons = BTreeMap::new();
    for seq in 1..=3 {
        let message = dead.get_raw_message(seq).await.unwrap();
        let headers = message.headers;
        let subject = headers
            .get(bus::DEAD_LETTER_SUBJECT)
            .unwrap()
            .as_str()
            .to_owned();
        let reason = headers
            .get(bus::DEAD_LETTER_REASON)
            .unwrap()
            .as_str()
            .to_owned();
        assert_eq!(
            message.subject.as_str(),
            app.namespace.subject("deadletter.v1.inventory")
        );
        reasons.insert(subject, reason);
    }
    let reason_for = |s: &str| reasons[&app.namespace.subject(s)].clone();
    assert!(
        reason_for("deploy.v1.synced").contains("does not parse"),
        "{reasons:?}"
    );
    assert!(
        reason_for("deploy.v1.healthy").contains("missing field `namespace`"),
        "names the missing field: {reasons:?}"
    );
    assert!(
        reason_for("edge.v1.node.offline").contains("not in inventory"),
        "{reasons:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let app = spawn_inventory().await;
    let envelope = Envelope::new(
        "backup",
        Event::BackupRunSucceeded(bus::BackupRun {
            policy: "vault-hourly".into(),
            run_id: Uuid::new_v4(),
            source: "vault".into(),
            bytes: Some(42),
            reason: None,
        }),
    );
    // The same event sent three times with different Nats-Msg-Ids, so JetStream cannot drop the copies:
    // what a publisher retrying after a lost ack, or a redelivery after a crash, looks like to the handler.
    for attempt in 0..3 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("copy-{attempt}").as_str());
        app.js
            .publish_with_headers(
                app.namespace.subject(&envelope.event.subject()),
                headers,
                envelope.to_bytes().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let marker = deployment("marker", "m1");
    app.publish("deployer", Event::DeployHealthy(marker)).await;
    eventually("all four deliveries handled", WAIT, || async {
        let handled: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
            .fetch_one(&app.pool)
            .await
            .ok()?;
        let marker_done = app
            .get("/v1/services/apps/marker", &app.tokens.viewer)
            .await
            .status()
            == 200;
        (handled == 2 && marker_done).then_some(())
    })
    .await;
    // Give any (wrongly) reapplied copy time to land before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM activity WHERE kind = 'backup'").await,
        1
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"homestation_bus_events_consumed_total{service="inventory",consumer="inventory",kind="backup.v1.run.succeeded",outcome="ack"} 3"#),
        "all three copies were acked: {metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn duplicate_publishes_of_one_envelope_are_stored_once() {
    let app = spawn_inventory().await;
    let publisher = app.publisher("deployer");
    let envelope = Envelope::new("deployer", Event::DeploySynced(deployment("twice", "r1")));
    publisher.publish_envelope(&envelope).await.unwrap();
    publisher.publish_envelope(&envelope).await.unwrap();
    let stream = app
        .js
        .get_stream(Stream::Deploy.name(&app.namespace))
        .await
        .unwrap();
    assert_eq!(
        stream.get_info().await.unwrap().state.messages,
        1,
        "Nats-Msg-Id dropped the retry"
    );
    app.stop().await;
}
