//! The agent binary end to end: enrol with recorded facts of a real Orin, write the k3s config under a temp root,
//! send heartbeats; edge-registry and inventory follow it offline and back online. One trace spans it all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use opentelemetry::trace::{SpanKind, TraceContextExt};
use serde_json::json;
use tokio::process::{Child, Command};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agx-orin-jp6")
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hs-agent-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn agent(edge: &common::Edge, root: &Path, token: Option<&str>, once: bool) -> Command {
    agent_at(&edge.enrol, 5, root, token, once)
}

fn agent_at(
    registry: &str,
    max_wait_secs: u64,
    root: &Path,
    token: Option<&str>,
    once: bool,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_homestation-edge-agent"));
    command
        .arg("--registry")
        .arg(registry)
        .arg("--root")
        .arg(root)
        .arg("--state-dir")
        .arg(root.join("var/lib/homestation-edge-agent"))
        .arg("--recorded")
        .arg(fixtures())
        .arg("--max-wait-secs")
        .arg(max_wait_secs.to_string())
        .env_remove("HOMESTATION_JOIN_TOKEN")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("HOMESTATION_LOG_FORMAT", "json")
        .kill_on_drop(true);
    if once {
        command.arg("--once");
    }
    if let Some(token) = token {
        command.env("HOMESTATION_JOIN_TOKEN", token);
    }
    command
}

async fn enrol_requests(edge: &common::Edge) -> String {
    edge.metrics(&edge.registry)
        .await
        .lines()
        .filter(|l| l.starts_with("homestation_http_requests_total") && l.contains("/v1/enroll"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_agent_enrols_once_and_writes_the_k3s_config() {
    let edge = common::start().await;
    let (_, token) = edge
        .create_token(json!({"labels": {"site": "garage"}}))
        .await;
    let root = temp_dir();

    let output = agent(&edge, &root, Some(&token), true)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = std::fs::read_to_string(root.join("etc/rancher/k3s/config.yaml")).unwrap();
    assert!(
        config.contains(&format!("token: \"{}\"", edge.agent_token)),
        "{config}"
    );
    for line in [
        "server: \"https://100.64.0.1:6443\"",
        "node-ip: \"100.101.102.103\"",
        "flannel-iface: \"tailscale0\"",
        "  - \"homestation.io/jetpack=6.0\"",
        "  - \"homestation.io/cuda=12.2\"",
        "  - \"nvidia.com/gpu.present=true\"",
        "  - \"site=garage\"",
    ] {
        assert!(config.contains(line), "{line} in\n{config}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("etc/rancher/k3s/config.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the config holds the cluster token");

    let node = edge
        .inventory_node("jetson-orin-1", |n| n["kind"] == "edge")
        .await;
    assert_eq!(node["gpu"]["jetpack"], "6.0");
    assert_eq!(node["gpu"]["l4t"], "36.3.0");
    assert_eq!(node["gpu"]["model"], "NVIDIA Jetson AGX Orin Developer Kit");

    // A restart must not send the token again: no token given, yet it succeeds, and the registry saw one enrolment.
    let again = agent(&edge, &root, None, true).output().await.unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already enrolled"));
    let requests = enrol_requests(&edge).await;
    assert!(requests.ends_with("status=\"201\"} 1"), "{requests}");
    assert_eq!(requests.lines().count(), 1, "{requests}");
    std::fs::remove_dir_all(&root).unwrap();
    edge.stop().await;
}

/// Every file under `dir`, as text where it is text.
fn files_text(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.push_str(&files_text(&path));
        } else {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    all
}

#[tokio::test]
async fn the_server_token_never_reaches_an_enrolment_end_to_end() {
    // Vault holds the server token beside the agent token (common::start): a registry reading the
    // wrong key, or the whole secret, would leak it somewhere below.
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({})).await;
    let root = temp_dir();
    let output = agent(&edge, &root, Some(&token), true)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let server = edge.server_token.as_str();
    let secret_part = server.rsplit(':').next().unwrap();
    let mut places = vec![
        (
            "the agent's log",
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        ("the agent's files (k3s config, state)", files_text(&root)),
    ];
    // The registry's database, every table as text.
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&edge.registry_db)
            .await
            .unwrap();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM \"{table}\" t"
        )))
        .fetch_all(&edge.registry_db)
        .await
        .unwrap();
        places.push(("the registry's database", rows.join("\n")));
    }
    // Every event on the bus.
    for stream in bus::Stream::ALL {
        let events = edge.env.events_on(&edge.js, stream).await;
        places.push(("the bus", format!("{events:?}")));
    }
    for (place, text) in &places {
        assert!(
            !text.contains(secret_part),
            "the server token is in {place}"
        );
    }
    let config = std::fs::read_to_string(root.join("etc/rancher/k3s/config.yaml")).unwrap();
    assert!(
        config.contains(&edge.agent_token),
        "the agent token is what the node joins with"
    );
    std::fs::remove_dir_all(&root).unwrap();
    edge.stop().await;
}

#[tokio::test]
async fn the_agent_reports_refusals_and_an_absent_registry() {
    let edge = common::start().await;
    let root = temp_dir();
    let forged = agent(&edge, &root, Some("hsj_forged"), true)
        .output()
        .await
        .unwrap();
    assert_eq!(forged.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&forged.stderr).contains("unknown join token"));
    assert!(!root.join("etc/rancher/k3s/config.yaml").exists());
    assert!(
        !root
            .join("var/lib/homestation-edge-agent/state.json")
            .exists(),
        "a refused agent stays unenrolled"
    );

    let none = agent(&edge, &root, None, true).output().await.unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no join token"));

    let mut away = agent_at("http://127.0.0.1:9", 2, &root, Some("hsj_x"), true);
    let started = std::time::Instant::now();
    let unreachable = away.output().await.unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("gave up reaching the registry"), "{stderr}");
    assert!(
        stderr.contains("retrying"),
        "it retried with backoff first: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    std::fs::remove_dir_all(&root).unwrap();
    edge.stop().await;
}

fn heartbeating(edge: &common::Edge, root: &Path) -> Child {
    agent(edge, root, None, false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn heartbeats_then_silence_then_heartbeats_show_in_inventory() {
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({})).await;
    let root = temp_dir();
    let enrolled = agent(&edge, &root, Some(&token), true)
        .output()
        .await
        .unwrap();
    assert!(enrolled.status.success());

    let mut running = heartbeating(&edge, &root);
    let node = edge
        .inventory_node("jetson-orin-1", |n| {
            n["last_heartbeat"]["gpu_utilization_pct"] == 37.0
        })
        .await;
    assert_eq!(node["health"], "healthy");
    assert_eq!(node["last_heartbeat"]["temperature_c"], 47.5);

    running.start_kill().unwrap();
    running.wait().await.unwrap();
    let offline = edge
        .inventory_node("jetson-orin-1", |n| n["health"] == "offline")
        .await;
    assert!(
        offline["health_reason"]
            .as_str()
            .unwrap()
            .starts_with("missed"),
        "{offline}"
    );
    let registry_view = edge.get(&edge.registry, "/v1/nodes/jetson-orin-1").await;
    assert_eq!(registry_view["state"], "offline");

    let mut back = heartbeating(&edge, &root);
    let online = edge
        .inventory_node("jetson-orin-1", |n| n["health"] == "healthy")
        .await;
    assert_eq!(online["health_reason"], "heartbeats resumed");
    let history = edge
        .get(&edge.inventory, "/v1/nodes/jetson-orin-1/history")
        .await;
    let states: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["health"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["healthy", "offline", "healthy"]);
    back.start_kill().unwrap();
    let _ = back.wait().await;
    std::fs::remove_dir_all(&root).unwrap();
    edge.stop().await;
}

#[tokio::test]
async fn one_trace_from_the_agents_enrolment_through_the_registry_to_inventory() {
    let capture = testkit::capture_spans();
    let edge = common::start().await;
    let (_, token) = edge.create_token(json!({})).await;
    let probe = edge_agent::probe::RecordedProbe::new(fixtures());
    let (facts, tailnet) = edge_agent::collect_facts(&probe).unwrap();
    let root_span = tracing::info_span!("operator.enrol-jetson");
    let trace_id = root_span.context().span().span_context().trace_id();
    let key_dir = temp_dir();
    let key = edge_agent::key::NodeKey::load_or_create(&key_dir).unwrap();
    edge_agent::enroll(&edge_agent::Enrolment {
        registry: &edge.enrol,
        token: &token,
        name: "traced-orin",
        facts: &facts,
        tailnet: &tailnet,
        key: &key,
        max_wait: Duration::from_secs(5),
    })
    .instrument(root_span)
    .await
    .unwrap();
    edge.inventory_node("traced-orin", |n| n["kind"] == "edge")
        .await;
    edge.stop().await;
    std::fs::remove_dir_all(&key_dir).unwrap();

    let in_trace: Vec<_> = capture
        .spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect();
    let find = |kind: SpanKind, name: &str| {
        in_trace
            .iter()
            .find(|s| s.span_kind == kind && s.name.contains(name))
            .unwrap_or_else(|| {
                panic!(
                    "no {kind:?} span {name} in the trace: {:?}",
                    in_trace
                        .iter()
                        .map(|s| (&s.name, &s.span_kind))
                        .collect::<Vec<_>>()
                )
            })
    };
    let client = find(SpanKind::Client, "edge-agent.enroll");
    let server = find(SpanKind::Server, "POST /v1/enroll");
    let publish = find(SpanKind::Producer, "edge.v1.node.enrolled");
    let consume = find(SpanKind::Consumer, "edge.v1.node.enrolled");
    assert_eq!(
        server.parent_span_id,
        client.span_context.span_id(),
        "the registry continued the agent's request"
    );
    assert_eq!(
        consume.parent_span_id,
        publish.span_context.span_id(),
        "inventory continued the registry's event"
    );
    // The agent's span is the root of the part that ran outside the test's own span.
    assert!(in_trace.iter().any(|s| s.name == "operator.enrol-jetson"));
}
