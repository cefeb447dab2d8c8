//! One trace crosses the NATS hop into inventory: its consumer span has the publisher's trace id and parent.

mod common;

use std::time::Duration;

use bus::Event;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[tokio::test]
async fn an_event_handled_by_inventory_continues_the_publishers_trace() {
    let capture = testkit::capture_spans();
    let app = common::spawn_inventory().await;
    let root = tracing::info_span!("deployer.sync");
    let trace_id = root.context().span().span_context().trace_id();
    let deployment = bus::Deployment {
        app: "traced".into(),
        namespace: "apps".into(),
        revision: "r1".into(),
        reason: None,
    };
    app.publisher("deployer")
        .publish(Event::DeployHealthy(deployment))
        .instrument(root)
        .await
        .unwrap();
    testkit::eventually("the event applied", Duration::from_secs(10), || async {
        (app.get("/v1/services/apps/traced", &app.tokens.viewer)
            .await
            .status()
            == 200)
            .then_some(())
    })
    .await;
    app.stop().await;

    let publish = capture
        .of_kind(SpanKind::Producer)
        .into_iter()
        .find(|s| s.name == "deploy.v1.healthy publish")
        .expect("the publish span");
    let consume = capture
        .of_kind(SpanKind::Consumer)
        .into_iter()
        .find(|s| s.span_context.trace_id() == trace_id)
        .expect("inventory's consumer span is in the publisher's trace");
    assert_eq!(publish.span_context.trace_id(), trace_id);
    assert_eq!(consume.parent_span_id, publish.span_context.span_id());
    // The HTTP request that read the result is a trace of its own, with a server span.
    assert!(
        capture
            .of_kind(SpanKind::Server)
            .iter()
            .any(|s| s.name == "GET /v1/services/{namespace}/{name}")
    );
}

#[tokio::test]
async fn an_http_request_continues_the_callers_traceparent() {
    let capture = testkit::capture_spans();
    let app = common::spawn_inventory().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .client
        .get(app.url("/v1/nodes"))
        .bearer_auth(&app.tokens.viewer)
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
    let server = capture
        .of_kind(SpanKind::Server)
        .into_iter()
        .find(|s| s.name == "GET /v1/nodes")
        .expect("a server span");
    assert_eq!(
        server.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
}

#[tokio::test]
async fn a_change_event_continues_the_trace_of_the_request_that_made_it() {
    let capture = testkit::capture_spans();
    let app = common::spawn_inventory().await;
    let response = app
        .client
        .post(app.url("/v1/nodes"))
        .bearer_auth(&app.tokens.developer)
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .json(&serde_json::json!({"name": "traced-node", "kind": "vm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let publish = testkit::eventually(
        "the change event published",
        Duration::from_secs(10),
        || async {
            capture
                .of_kind(SpanKind::Producer)
                .into_iter()
                .find(|s| s.name == "inventory.v1.changed publish")
        },
    )
    .await;
    // The relay published it later, on another task, yet in the request's trace.
    assert_eq!(
        publish.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    let server = capture
        .of_kind(SpanKind::Server)
        .into_iter()
        .find(|s| s.name == "POST /v1/nodes")
        .unwrap();
    assert_eq!(
        publish.span_context.trace_id(),
        server.span_context.trace_id()
    );
    app.stop().await;
}
