//! The real binary exports its spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set,
//! and flushes them on SIGTERM. The receiver here is the test's own: a plain HTTP server that keeps
//! what is POSTed to /v1/traces (OTLP protobuf), not an OpenTelemetry Collector.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn spans_reach_an_otlp_receiver_and_are_flushed_on_sigterm() {
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let store = received.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| async move {
            store.lock().unwrap().push(body);
            ""
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let env = testkit::TestEnv::new().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_inventory"))
        .env("HOMESTATION_INVENTORY__DATABASE__URL", &env.db.url)
        .envs(env.bus.env_vars("inventory"))
        .env("HOMESTATION_INVENTORY__HTTP__PORT", "0")
        .env("HOMESTATION_INVENTORY__GRPC__PORT", "0")
        .env("HOMESTATION_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The service logs where it listens; port 0 means we learn it from there.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let http = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
            if log["message"] == "inventory listening" {
                return log["http"].as_str().unwrap().to_owned();
            }
        }
        panic!("inventory exited before listening");
    })
    .await
    .expect("inventory listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let client = testkit::http_client();
    let response = client
        .get(format!("http://{http}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let pid = child.id().unwrap().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("drains in time")
        .unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");

    let bodies = received.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "spans were exported before exit");
    let all: Vec<u8> = bodies.concat();
    assert!(
        contains(&all, b"inventory"),
        "service.name is on the resource"
    );
    assert!(
        contains(&all, b"GET /healthz"),
        "the request's server span was exported"
    );
}
