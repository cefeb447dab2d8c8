//! The lab at work, end to end with the real binaries: an enrolment (edge agent → edge-registry → NATS →
//! inventory), a backup and a drill (operator → backup → NATS → inventory) and a rotation (operator →
//! secrets-rotator → NATS → inventory) each make one trace, every span sent over OTLP to a real receiver;
//! and every metric a dashboard or rule queries is in a scrape of the running services.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use e2e::{Lab, Receiver};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// OTLP span kinds.
const SERVER: i64 = 2;
const CLIENT: i64 = 3;
const PRODUCER: i64 = 4;
const CONSUMER: i64 = 5;

fn kind(span: &Value) -> i64 {
    span["kind"].as_i64().unwrap_or_default()
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["value"]["stringValue"]
        .as_str()
}

fn describe(spans: &[&Value]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "  {} kind={} span={} parent={}",
                s["name"], s["kind"], s["spanId"], s["parentSpanId"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The spans of `trace` of `kind` whose name contains `name`.
fn all<'a>(trace: &[&'a Value], kind_wanted: i64, name: &str) -> Vec<&'a Value> {
    trace
        .iter()
        .copied()
        .filter(|s| kind(s) == kind_wanted && s["name"].as_str().is_some_and(|n| n.contains(name)))
        .collect()
}

/// The first span of `trace` of `kind` whose name contains `name`.
fn find<'a>(trace: &[&'a Value], kind_wanted: i64, name: &str) -> &'a Value {
    all(trace, kind_wanted, name)
        .first()
        .copied()
        .unwrap_or_else(|| {
            panic!(
                "no span of kind {kind_wanted} named like {name:?} in the trace:\n{}",
                describe(trace)
            )
        })
}

/// Inventory's consumer span of `subject` in `trace` continues the producer span of the same trace.
fn assert_nats_hop(trace: &[&Value], subject: &str) {
    let producer = find(trace, PRODUCER, subject);
    let in_inventory = all(trace, CONSUMER, subject)
        .into_iter()
        .find(|c| attribute(c, "messaging.consumer.group.name") == Some("inventory"))
        .unwrap_or_else(|| panic!("inventory did not consume {subject}:\n{}", describe(trace)));
    assert_eq!(
        in_inventory["parentSpanId"], producer["spanId"],
        "inventory's handling of {subject} continues the publisher's span"
    );
}

/// The trace an operator's tool started (`trace` = its trace id and span id): the service's `route` span
/// continues it, and each of `subjects` crosses NATS to inventory within it.
fn assert_operator_trace(
    spans: &[Value],
    trace: (&String, &String),
    route: &str,
    subjects: &[&str],
) {
    let (trace_id, parent) = trace;
    let members: Vec<&Value> = spans
        .iter()
        .filter(|s| s["traceId"] == trace_id.as_str())
        .collect();
    let server = find(&members, SERVER, route);
    assert_eq!(
        server["parentSpanId"],
        parent.as_str(),
        "{route} continued the operator's trace"
    );
    for subject in subjects {
        assert_nats_hop(&members, subject);
    }
}

/// The metric names a dashboard or rule file mentions (`homestation_…`; recorded series use `:`).
fn queried_metrics(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let files = std::fs::read_dir(dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("rules")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml"));
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("homestation_") {
            let before = rest[..at].chars().last();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(tail[..end].to_owned());
            }
            rest = &tail[end..];
        }
    }
    names
}

/// A `traceparent` an operator's tool would send, and the trace and span ids in it.
fn operator_trace() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace_id}-{span_id}-01"), trace_id, span_id)
}

/// Every metric family the running services export, by the series names a query would use.
async fn scrape(lab: &Lab) -> BTreeSet<String> {
    let mut exposed = BTreeSet::new();
    for service in &lab.services {
        let text = lab
            .client
            .get(format!("{}/metrics", service.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for declared in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let mut parts = declared.split(' ');
            let (family, kind) = (parts.next().unwrap(), parts.next().unwrap_or_default());
            let series: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            exposed.extend(series.iter().map(|suffix| format!("{family}{suffix}")));
        }
    }
    exposed
}

#[tokio::test]
async fn the_lab_at_work_traces_each_operation_across_services_and_feeds_every_dashboard_metric() {
    let tap_dir =
        std::env::temp_dir().join(format!("hs-e2e-tap-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tap_dir).unwrap();
    let receiver = Receiver::start(&tap_dir).await;
    let mut lab = Lab::start(Some(&receiver.endpoint)).await;
    let client = lab.client.clone();
    let inventory = lab.base("inventory").to_owned();

    // Enrolment: a join token, then the agent binary, as on a Jetson.
    let created: Value = lab
        .post("edge-registry", "/v1/join-tokens")
        .json(&serde_json::json!({"ttl": "10m"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().expect("a join token").to_owned();
    let fixtures = e2e::root().join("edge-agent/tests/fixtures/agx-orin-jp6");
    let agent = tokio::process::Command::new(e2e::binary("homestation-edge-agent"))
        .args(["--registry", &lab.enrol, "--name", "e2e-orin", "--once"])
        .arg("--root")
        .arg(lab.dir.join("jetson"))
        .arg("--state-dir")
        .arg(lab.dir.join("agent-state"))
        .arg("--recorded")
        .arg(&fixtures)
        .env("HOMESTATION_JOIN_TOKEN", &token)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .env("HOMESTATION_LOG_FORMAT", "json")
        .output()
        .await
        .expect("the agent runs");
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );
    testkit::eventually("inventory to know the Jetson", WAIT, || async {
        let r = client
            .get(format!("{inventory}/v1/nodes/e2e-orin"))
            .bearer_auth(&lab.admin)
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    // The enrolled agent's heartbeats: over NATS to edge-registry, and its readings over OTLP (for InfluxDB).
    let mut heartbeating = tokio::process::Command::new(e2e::binary("homestation-edge-agent"))
        .args(["--registry", &lab.enrol])
        .arg("--state-dir")
        .arg(lab.dir.join("agent-state"))
        .arg("--recorded")
        .arg(&fixtures)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .env("HOMESTATION_LOG_FORMAT", "json")
        .kill_on_drop(true)
        .spawn()
        .expect("the agent starts");
    testkit::eventually("the agent's readings over OTLP", WAIT, || async {
        let names: BTreeSet<String> = receiver
            .metrics()
            .iter()
            .filter_map(|m| m["name"].as_str().map(str::to_owned))
            .collect();
        names
            .contains(edge_agent::readings::names::GPU_UTILIZATION)
            .then_some(())
    })
    .await;
    let pid = heartbeating.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(
        heartbeating.wait().await.unwrap().success(),
        "the agent stops cleanly on SIGTERM"
    );

    // An operator records a service by hand.
    let made = lab
        .post("inventory", "/v1/services")
        .json(&serde_json::json!({"name": "grafana", "namespace": "observability"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);

    // A backup, then a restore drill, asked for by an operator whose tool started the trace.
    let (traceparent, backup_trace, backup_parent) = operator_trace();
    let started = lab
        .post("backup", "/v1/policies/lab-files/runs")
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.status(),
        202,
        "{}",
        started.text().await.unwrap_or_default()
    );
    let summary_has = |section: &'static str, status: &'static str| {
        let lab = &lab;
        move || async move {
            let summary = lab.get_json("inventory", "/v1/summary").await?;
            summary[section]
                .as_array()?
                .iter()
                .any(|b| b["status"] == status)
                .then_some(())
        }
    };
    testkit::eventually(
        "the backup in inventory's summary",
        WAIT,
        summary_has("backups", "succeeded"),
    )
    .await;
    let drill = lab
        .post("backup", "/v1/policies/lab-files/drills")
        .send()
        .await
        .unwrap();
    assert!(
        drill.status().is_success(),
        "{}",
        drill.text().await.unwrap_or_default()
    );
    testkit::eventually(
        "the drill in inventory's summary",
        WAIT,
        summary_has("drills", "passed"),
    )
    .await;

    // A rotation, likewise traced from the operator's tool.
    let (traceparent, rotation_trace, rotation_parent) = operator_trace();
    let rotated: Value = lab
        .post("secrets-rotator", "/v1/rotations")
        .header("traceparent", traceparent)
        .json(&serde_json::json!({"path": e2e::ROTATED}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["phase"], "done", "{rotated}");

    // Every metric a dashboard or rule queries is now in a scrape (the health gauges refresh every 10 s).
    let queried = queried_metrics(&e2e::root().join("dashboards"));
    assert!(
        queried.len() >= 20,
        "the dashboards and rules query these: {queried:?}"
    );
    let missing = testkit::eventually("every queried metric to be exported", WAIT, || async {
        let exposed = scrape(&lab).await;
        let missing: Vec<_> = queried
            .iter()
            .filter(|q| !exposed.contains(*q))
            .cloned()
            .collect();
        missing.is_empty().then_some(missing)
    })
    .await;
    assert!(missing.is_empty());

    // SIGTERM everything: each flushes its spans before it exits.
    lab.stop();
    let spans = testkit::eventually("the spans of every trace", WAIT, || async {
        let spans = receiver.spans();
        let consumed = spans.iter().filter(|s| kind(s) == CONSUMER).count();
        (consumed >= 4).then_some(spans)
    })
    .await;

    // The enrolment: agent → edge-registry → NATS → inventory, one trace id.
    let enrol = spans
        .iter()
        .find(|s| kind(s) == CLIENT && s["name"] == "edge-agent.enroll")
        .unwrap_or_else(|| panic!("the agent's span never arrived; {} spans", spans.len()));
    let trace: Vec<&Value> = spans
        .iter()
        .filter(|s| s["traceId"] == enrol["traceId"])
        .collect();
    let server = find(&trace, SERVER, "POST /v1/enroll");
    assert_eq!(
        server["parentSpanId"], enrol["spanId"],
        "edge-registry continued the agent's request"
    );
    assert_nats_hop(&trace, "edge.v1.node.enrolled");

    // The backup and the rotation: operator → service → NATS → inventory, the operator's trace throughout.
    let (backup, rotation) = (
        (&backup_trace, &backup_parent),
        (&rotation_trace, &rotation_parent),
    );
    let backup_route = "POST /v1/policies/{policy}/runs";
    let backup_events = ["backup.v1.run.started", "backup.v1.run.succeeded"];
    assert_operator_trace(&spans, backup, backup_route, &backup_events);
    assert_operator_trace(
        &spans,
        rotation,
        "POST /v1/rotations",
        &["secrets.v1.rotated"],
    );
    let _ = std::fs::remove_dir_all(&tap_dir);
}
