//! Chaos, bounded to seconds each: services killed with SIGKILL while they work, nats-server (JetStream on
//! file storage) restarted under load, PostgreSQL restarted under load. After each, nothing acknowledged is
//! lost, nothing is applied twice, and no backup or secret is left half-done. Everything here is real: the
//! service binaries under supervisors (started again at once, as a kubelet would), nats-server, PostgreSQL,
//! OpenBao and SeaweedFS.
//!
//! "Acknowledged" means: an event whose JetStream publish was acked, a node whose POST answered 201 (or 409
//! on a retry, when the first attempt committed but its answer was lost to the kill), a backup or rotation
//! the service reported started.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Deployment, Envelope, Event, Namespace};
use e2e::{Lab, Launch, Supervisor};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// Where inventory runs and what it runs against.
struct Target {
    base: String,
    token: String,
    /// deployer's bus settings: the load publishes deploy events as deployer, the only one who may.
    deployer: service_kit::NatsSettings,
    /// The test nats-server's harness user, reading inventory's stream for the check.
    harness: service_kit::NatsSettings,
    ns: Namespace,
    database: String,
}

/// What the load had acknowledged when it stopped.
#[derive(Default)]
struct Acknowledged {
    events: Vec<Uuid>,
    nodes: Vec<String>,
}

/// Runs `disruption` while nodes are created through inventory's API and deploy events are published to it,
/// then keeps the load on for a second and checks that everything acknowledged arrived exactly once.
async fn under_load<F: Future<Output = ()>>(target: &Target, disruption: F) {
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let nodes = tokio::spawn(create_nodes(
        target.base.clone(),
        target.token.clone(),
        acked.clone(),
        stop.clone(),
    ));
    let events = tokio::spawn(publish_events(
        target.deployer.clone(),
        target.ns.clone(),
        acked.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    disruption.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    nodes.await.expect("the node load");
    events.await.expect("the event load");
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    assert!(
        acked.events.len() >= 20 && acked.nodes.len() >= 10,
        "the load ran ({} events, {} nodes acknowledged)",
        acked.events.len(),
        acked.nodes.len()
    );
    check_applied_once(target, &acked).await;
    println!(
        "acknowledged under load: {} events, {} nodes; each applied once",
        acked.events.len(),
        acked.nodes.len()
    );
}

async fn create_nodes(
    base: String,
    token: String,
    acked: Arc<Mutex<Acknowledged>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let client = testkit::http_client();
    let mut i = 0;
    while !stop.is_cancelled() {
        let name = format!("chaos-{i:05}");
        let answer = client
            .post(format!("{base}/v1/nodes"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(5))
            .json(&json!({"name": name, "kind": "vm"}))
            .send()
            .await;
        match answer.map(|r| r.status().as_u16()) {
            Ok(201 | 409) => {
                acked.lock().expect("lock").nodes.push(name);
                i += 1;
            }
            // Down or restarting: the same node again, as a client with retries would.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn publish_events(
    deployer: service_kit::NatsSettings,
    ns: Namespace,
    acked: Arc<Mutex<Acknowledged>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let client = deployer.connect("deployer").await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut i = 0;
    while !stop.is_cancelled() {
        let envelope = Envelope::new(
            "chaos",
            Event::DeploySynced(Deployment {
                app: format!("app-{i:05}"),
                namespace: "chaos".into(),
                revision: "r1".into(),
                reason: None,
            }),
        );
        // Until the stream acks it, with the same id each time, as the bus's outbox relay retries.
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", envelope.id.to_string().as_str());
            let sent = js
                .publish_with_headers(
                    ns.subject(&envelope.event.subject()),
                    headers,
                    envelope.to_bytes().into(),
                )
                .await;
            let stored = match sent {
                Ok(ack) => matches!(
                    tokio::time::timeout(Duration::from_secs(2), ack).await,
                    Ok(Ok(_))
                ),
                Err(_) => false,
            };
            if stored {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        acked.lock().expect("lock").events.push(envelope.id);
        i += 1;
    }
}

/// Every acknowledged event applied exactly once, every acknowledged node present once, the outbox drained
/// and each node's creation announced exactly once.
async fn check_applied_once(target: &Target, acked: &Acknowledged) {
    let mut db = sqlx::PgConnection::connect(&target.database)
        .await
        .expect("inventory's database");
    let applied: i64 = testkit::eventually("every acknowledged event to be applied", WAIT, || {
        let db_url = target.database.clone();
        let ids = acked.events.clone();
        async move {
            let mut db = sqlx::PgConnection::connect(&db_url).await.ok()?;
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM processed_events WHERE event_id = ANY($1)",
            )
            .bind(&ids)
            .fetch_one(&mut db)
            .await
            .ok()?;
            (n == ids.len() as i64).then_some(n)
        }
    })
    .await;
    let twice: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT event_id, count(*) FROM activity WHERE event_id = ANY($1) GROUP BY event_id HAVING count(*) <> 1",
    )
    .bind(&acked.events)
    .fetch_all(&mut db)
    .await
    .expect("activity");
    assert!(
        twice.is_empty(),
        "events applied other than once: {twice:?}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM activity WHERE event_id = ANY($1)")
        .bind(&acked.events)
        .fetch_one(&mut db)
        .await
        .expect("activity");
    assert_eq!(rows, applied, "one activity row per acknowledged event");
    let present: Vec<String> = sqlx::query_scalar("SELECT name FROM nodes WHERE name = ANY($1)")
        .bind(&acked.nodes)
        .fetch_all(&mut db)
        .await
        .expect("nodes");
    assert_eq!(
        present.len(),
        acked.nodes.len(),
        "every acknowledged node is there"
    );
    testkit::eventually("the outbox to drain", WAIT, || {
        let db_url = target.database.clone();
        async move {
            let mut db = sqlx::PgConnection::connect(&db_url).await.ok()?;
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&mut db)
                .await
                .ok()?;
            (left == 0).then_some(())
        }
    })
    .await;
    let created = node_creations(&target.harness, &target.ns).await;
    for name in &acked.nodes {
        assert_eq!(
            created.iter().filter(|n| *n == name).count(),
            1,
            "node {name} announced exactly once"
        );
    }
}

/// The names in the node-created events on inventory's stream.
async fn node_creations(harness: &service_kit::NatsSettings, ns: &Namespace) -> Vec<String> {
    let js = async_nats::jetstream::new(harness.connect("harness").await.expect("nats"));
    let mut stream = js
        .get_stream(bus::Stream::Inventory.name(ns))
        .await
        .expect("inventory's stream");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut names = Vec::new();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.expect("a message");
        if let Ok(Envelope {
            event: Event::InventoryChanged(c),
            ..
        }) = Envelope::parse(ns, &message.subject, &message.payload)
            && c.entity == bus::Entity::Node
            && c.change == bus::Change::Created
        {
            names.push(c.name);
        }
    }
    names
}

/// inventory alone under a supervisor, on `database` and the test's nats-server `bus`.
fn inventory(
    dir: &std::path::Path,
    database: &str,
    bus: &testkit::TestBus,
) -> (Supervisor, Target) {
    let (token, sha256) = testkit::token();
    let config = dir.join("inventory.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{database}\"\n[nats]\n{}[grpc]\nport = 0\n\
             [consumer]\nack_wait_secs = 5\n\
             [[auth.service_tokens]]\nname = \"admin\"\nsha256 = \"{sha256}\"\nrole = \"admin\"\n",
            bus.toml("inventory")
        ),
    )
    .expect("config");
    let port = testkit::free_port();
    let supervisor = Supervisor::start(Launch {
        program: e2e::binary("inventory"),
        args: Vec::new(),
        env: vec![
            (
                "HOMESTATION_CONFIG_FILE".into(),
                config.display().to_string(),
            ),
            ("HOMESTATION_INVENTORY__HTTP__PORT".into(), port.to_string()),
            ("HOMESTATION_LOG_FORMAT".into(), "json".into()),
        ],
        log: dir.join("inventory.log"),
    });
    let target = Target {
        base: format!("http://127.0.0.1:{port}"),
        token,
        deployer: bus.settings("deployer"),
        harness: bus.harness_settings(),
        ns: bus.namespace.clone(),
        database: database.to_owned(),
    };
    (supervisor, target)
}

fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hs-chaos-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test]
async fn nats_server_restarted_under_load_loses_no_acknowledged_event() {
    // The lab's authorization on: every client comes back as itself after the restart.
    let mut bus = testkit::TestBus::start(testkit::fresh_namespace()).await;
    let db = testkit::database().await;
    let dir = scratch();
    let (inventory, target) = inventory(&dir, &db.url, &bus);
    e2e::ready(&testkit::http_client(), &target.base).await;
    under_load(&target, bus.server.restart(Duration::from_millis(500))).await;
    println!(
        "inventory restarts during the nats-server restart: {}",
        inventory.restarts()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_restarted_under_load_loses_nothing_acknowledged() {
    let mut postgres = testkit::Restartable::postgres().await;
    let bus = testkit::TestBus::start(testkit::fresh_namespace()).await;
    let dir = scratch();
    let (inventory, target) = inventory(&dir, &postgres.url, &bus);
    e2e::ready(&testkit::http_client(), &target.base).await;
    under_load(&target, postgres.restart(Duration::from_millis(500))).await;
    println!(
        "inventory restarts during the PostgreSQL restart: {}",
        inventory.restarts()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn inventory_killed_while_events_and_requests_are_in_flight_loses_none_and_applies_none_twice()
 {
    let lab = Lab::start(None).await;
    let service = &lab.services[0];
    assert_eq!(service.name, "inventory");
    let target = Target {
        base: service.base.clone(),
        token: lab.admin.clone(),
        deployer: lab.env.bus.settings("deployer"),
        harness: lab.env.bus.harness_settings(),
        ns: lab.env.namespace.clone(),
        database: service.database.clone(),
    };
    under_load(&target, async {
        for _ in 0..2 {
            service.supervisor.kill();
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    })
    .await;
    assert_eq!(service.supervisor.restarts(), 2);
}

/// The lab bucket's listing for `query` (SeaweedFS without identities answers unsigned requests).
async fn bucket_listing(lab: &Lab, query: &str) -> String {
    lab.client
        .get(format!("{}/lab-backups?{query}", lab.s3.endpoint))
        .send()
        .await
        .expect("SeaweedFS answers")
        .text()
        .await
        .expect("a listing")
}

#[tokio::test]
async fn backup_killed_mid_upload_leaves_no_half_backup_and_the_next_run_succeeds() {
    let lab = Lab::start(None).await;
    // Incompressible, so the upload takes long enough to be killed in the middle.
    let mut noise = vec![0u8; 96 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(lab.data.join("noise.bin"), noise).expect("a large file to back up");
    let backup = lab
        .services
        .iter()
        .find(|s| s.name == "backup")
        .expect("backup");
    let list = || lab.get_json("backup", "/v1/backups");
    let started = lab
        .post("backup", "/v1/policies/lab-files/runs")
        .send()
        .await
        .expect("backup answers");
    assert_eq!(started.status(), 202);
    testkit::eventually("the run to be uploading", WAIT, || async {
        let runs = list().await?;
        runs.as_array()?
            .iter()
            .any(|b| b["status"] == "running")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    backup.supervisor.kill();
    e2e::ready(&lab.client, &backup.base).await;

    let runs = testkit::eventually("the interrupted run to be failed", WAIT, || async {
        let runs = list().await?;
        let all = runs.as_array()?.clone();
        all.iter().all(|b| b["status"] == "failed").then_some(all)
    })
    .await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{runs:?}"
    );
    let uploads = bucket_listing(&lab, "uploads").await;
    assert!(
        !uploads.contains("<Upload>"),
        "a multipart upload was left open: {uploads}"
    );
    let objects = bucket_listing(&lab, "list-type=2").await;
    assert!(
        !objects.contains("<Key>"),
        "an object of the killed run is in the bucket: {objects}"
    );

    let again = lab
        .post("backup", "/v1/policies/lab-files/runs")
        .send()
        .await
        .expect("backup answers");
    assert_eq!(again.status(), 202);
    let done = testkit::eventually("the next run to succeed", WAIT, || async {
        let runs = list().await?;
        runs.as_array()?
            .iter()
            .find(|b| b["status"] == "succeeded")
            .cloned()
    })
    .await;
    let id = done["id"].as_str().expect("an id");
    let verified = lab
        .post("backup", &format!("/v1/backups/{id}/verify"))
        .send()
        .await
        .expect("verify answers");
    assert!(
        verified.status().is_success(),
        "{}",
        verified.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn rotator_killed_mid_rotation_leaves_every_rotation_finished_and_vault_accounted_for() {
    let lab = Lab::start(None).await;
    let rotator = lab
        .services
        .iter()
        .find(|s| s.name == "secrets-rotator")
        .expect("rotator");
    let stop = tokio_util::sync::CancellationToken::new();
    let rotating = {
        let (client, base, token, stop) = (
            lab.client.clone(),
            rotator.base.clone(),
            lab.admin.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let _ = client
                    .post(format!("{base}/v1/rotations"))
                    .bearer_auth(&token)
                    .json(&json!({"path": e2e::ROTATED}))
                    .send()
                    .await;
            }
        })
    };
    for pause in [150, 90, 230] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        rotator.supervisor.kill();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    rotating.await.expect("the rotations");
    e2e::ready(&lab.client, &rotator.base).await;

    let history = testkit::eventually("every rotation to reach a final phase", WAIT, || async {
        let history = lab
            .get_json("secrets-rotator", "/v1/rotations?limit=1000")
            .await?;
        let all = history.as_array()?.clone();
        all.iter()
            .all(|r| {
                ["done", "rolled_back", "failed"].contains(&r["phase"].as_str().unwrap_or_default())
            })
            .then_some(all)
    })
    .await;
    assert!(history.len() >= 3, "rotations ran: {}", history.len());
    let phases: std::collections::BTreeMap<&str, usize> =
        history.iter().fold(Default::default(), |mut count, r| {
            *count
                .entry(r["phase"].as_str().unwrap_or_default())
                .or_default() += 1;
            count
        });
    println!("rotations after three kills: {phases:?}");
    let highest = history
        .iter()
        .flat_map(|r| ["from_version", "to_version", "restored_version"].map(|k| r[k].as_i64()))
        .flatten()
        .max()
        .expect("versions recorded");
    let metadata: Value = lab
        .client
        .get(format!(
            "{}/v1/secret/metadata/{}",
            lab.bao.address,
            e2e::ROTATED
        ))
        .header("X-Vault-Token", &lab.bao.root_token)
        .send()
        .await
        .expect("OpenBao answers")
        .json()
        .await
        .expect("metadata");
    assert_eq!(
        metadata["data"]["current_version"].as_i64(),
        Some(highest),
        "Vault's current version is one the audit trail accounts for"
    );
}
