//! SIGKILL inventory (the real binary) while events flow, start it again: nothing lost, nothing applied twice.

mod common;

use std::process::Stdio;
use std::time::Duration;

use bus::{Event, Publisher};
use secrecy::ExposeSecret;
use testkit::eventually;
use tokio::process::{Child, Command};
use uuid::Uuid;

const EVENTS: usize = 400;

fn start_binary(config: &inventory::Config) -> Child {
    let output = || {
        if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        }
    };
    Command::new(env!("CARGO_BIN_EXE_inventory"))
        .env(
            "HOMESTATION_INVENTORY__DATABASE__URL",
            config.database.url.expose_secret(),
        )
        .env("HOMESTATION_INVENTORY__NATS__URL", &config.nats.url)
        .env(
            "HOMESTATION_INVENTORY__NATS__NAMESPACE",
            &config.nats.namespace,
        )
        .env("HOMESTATION_INVENTORY__NATS__USER", "inventory")
        .env(
            "HOMESTATION_INVENTORY__NATS__PASSWORD",
            config.nats.password.as_ref().unwrap().expose_secret(),
        )
        .env("HOMESTATION_INVENTORY__HTTP__PORT", "0")
        .env("HOMESTATION_INVENTORY__GRPC__PORT", "0")
        // A killed consumer's unacked events come back after ack_wait; keep the test short.
        .env("HOMESTATION_INVENTORY__CONSUMER__ACK_WAIT_SECS", "2")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .expect("inventory binary starts")
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0)
}

#[tokio::test]
async fn sigkill_while_events_flow_loses_nothing_and_applies_nothing_twice() {
    let env = testkit::TestEnv::new().await;
    let config = common::config_for(&env);
    let (db, namespace) = (env.db, env.namespace);
    let mut child = start_binary(&config);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // The streams exist once the binary has started; wait for its schema as the sign.
    eventually("inventory to migrate", Duration::from_secs(30), || async {
        sqlx::query("SELECT 1 FROM processed_events LIMIT 1")
            .execute(&pool)
            .await
            .ok()
            .map(drop)
    })
    .await;

    // The publisher is backup, as itself; like every service it ensures the streams it publishes into
    // (idempotent) rather than racing inventory's start.
    let js = bus::Connection::open(&env.bus.settings("backup"), "backup")
        .await
        .unwrap()
        .js;
    let backup_stream = bus::Stream::Backup.name(&namespace);
    let publisher = Publisher::new(js.clone(), namespace, "backup");
    let sender = tokio::spawn(async move {
        for i in 0..EVENTS {
            let run = bus::BackupRun {
                policy: format!("policy-{}", i % 7),
                run_id: Uuid::new_v4(),
                source: "postgres".into(),
                bytes: Some(i as u64),
                reason: None,
            };
            publisher
                .publish(Event::BackupRunSucceeded(run))
                .await
                .expect("publish");
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    eventually(
        "some events applied before the kill",
        Duration::from_secs(30),
        || async {
            (scalar(&pool, "SELECT count(*) FROM processed_events").await >= 50).then_some(())
        },
    )
    .await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.unwrap();
    let at_kill = scalar(&pool, "SELECT count(*) FROM processed_events").await;
    assert!(
        at_kill < EVENTS as i64,
        "the kill came while events were still flowing ({at_kill})"
    );
    // Events the dead process had been handed but not acknowledged: they come back after restart,
    // some already applied, which is what makes "none applied twice" a real check.
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream(inventory::CONSUMER, &backup_stream)
        .await
        .unwrap();
    let in_flight = consumer.info().await.unwrap().num_ack_pending;
    assert!(
        in_flight > 0,
        "the kill left delivered, unacknowledged events"
    );

    let mut child = start_binary(&config);
    sender.await.unwrap();
    eventually(
        "every event applied after restart",
        Duration::from_secs(60),
        || async {
            (scalar(&pool, "SELECT count(*) FROM processed_events").await == EVENTS as i64)
                .then_some(())
        },
    )
    .await;
    // Redeliveries of events applied just before the kill arrive after ack_wait; let them come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let applied = scalar(&pool, "SELECT count(*) FROM activity WHERE kind = 'backup'").await;
    let distinct = scalar(&pool, "SELECT count(DISTINCT event_id) FROM activity").await;
    assert_eq!(applied, EVENTS as i64, "every event applied exactly once");
    assert_eq!(distinct, EVENTS as i64);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
