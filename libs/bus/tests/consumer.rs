//! The consumer loop against the real nats-server: retries with backoff, then dead-letter; trace context across the hop.
//! The handlers here are test handlers that fail on purpose; the server, streams and consumers are real.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bus::{
    BusMetrics, ConsumerSpec, Envelope, Event, HandleError, Handler, Namespace, Publisher, Stream,
};
use opentelemetry::trace::TraceContextExt;
use service_kit::Shutdown;
use service_kit::metrics::Metrics;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Fails with `Retry` until it has seen `fail_times` deliveries, then succeeds.
struct Flaky {
    fail_times: u32,
    seen: AtomicU32,
    done: mpsc::UnboundedSender<(Envelope, opentelemetry::trace::SpanContext)>,
}

impl Handler for Flaky {
    async fn handle(&self, envelope: Envelope) -> Result<(), HandleError> {
        let attempt = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt <= self.fail_times {
            return Err(HandleError::Retry(format!("database hiccup #{attempt}")));
        }
        let span = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .clone();
        let _ = self.done.send((envelope, span));
        Ok(())
    }
}

struct Setup {
    /// The test's own nats-server (authentication on); the test reads and writes as its harness user.
    _bus: testkit::TestBus,
    ns: Namespace,
    js: async_nats::jetstream::Context,
    shutdown: Shutdown,
    metrics: Metrics,
}

async fn setup() -> Setup {
    let ns = testkit::fresh_namespace();
    let test_bus = testkit::TestBus::start(ns.clone()).await;
    let js = test_bus.jetstream().await;
    for service in bus::access::service_names() {
        bus::ensure_streams(&js, &ns, service, &bus::StreamLimits::default())
            .await
            .unwrap();
    }
    Setup {
        _bus: test_bus,
        ns,
        js,
        shutdown: Shutdown::new(),
        metrics: Metrics::new("bus-test"),
    }
}

fn spec() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new("flaky", &[Stream::Secrets]);
    spec.max_attempts = 3;
    spec.backoff = Duration::from_millis(20);
    spec
}

fn rotated(version: u64) -> Event {
    Event::SecretRotated(bus::SecretRotated {
        path: "kv/apps/x".into(),
        version,
    })
}

fn start(s: &Setup, handler: Arc<Flaky>) -> tokio::task::JoinHandle<bus::Result<()>> {
    let metrics = BusMetrics::new(&s.metrics);
    tokio::spawn(bus::run_consumers(
        s.js.clone(),
        s.ns.clone(),
        spec(),
        handler,
        metrics,
        s.shutdown.clone(),
    ))
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_it_succeeds() {
    let s = setup().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = Arc::new(Flaky {
        fail_times: 2,
        seen: AtomicU32::new(0),
        done: tx,
    });
    let consumer = start(&s, handler.clone());
    let sent = Publisher::new(s.js.clone(), s.ns.clone(), "test")
        .publish(rotated(1))
        .await
        .unwrap();
    let (got, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, sent);
    assert_eq!(
        handler.seen.load(Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    let text = s.metrics.encode();
    assert!(
        text.contains(r#"consumer="flaky",kind="secrets.v1.rotated",outcome="retry"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"consumer="flaky",kind="secrets.v1.rotated",outcome="ack"} 1"#),
        "{text}"
    );
    s.shutdown.trigger();
    consumer.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_failure_that_persists_is_dead_lettered_after_max_attempts() {
    let s = setup().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = Arc::new(Flaky {
        fail_times: u32::MAX,
        seen: AtomicU32::new(0),
        done: tx,
    });
    let consumer = start(&s, handler.clone());
    Publisher::new(s.js.clone(), s.ns.clone(), "test")
        .publish(rotated(2))
        .await
        .unwrap();
    let dead =
        s.js.get_stream(Stream::DeadLetter.name(&s.ns))
            .await
            .unwrap();
    let mut waited = Duration::ZERO;
    while dead.get_info().await.unwrap().state.messages == 0 {
        assert!(waited < Duration::from_secs(10), "nothing dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let letter = dead.get_raw_message(1).await.unwrap();
    let reason = letter
        .headers
        .get(bus::DEAD_LETTER_REASON)
        .unwrap()
        .as_str()
        .to_owned();
    assert_eq!(reason, "gave up after 3 attempts: database hiccup #3");
    assert_eq!(
        handler.seen.load(Ordering::SeqCst),
        3,
        "exactly max_attempts deliveries"
    );
    // Terminated, so never delivered again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handler.seen.load(Ordering::SeqCst), 3);
    assert!(rx.try_recv().is_err());
    s.shutdown.trigger();
    consumer.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_consumer_span_continues_the_publishers_trace() {
    let capture = testkit::capture_spans();
    let s = setup().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer = start(
        &s,
        Arc::new(Flaky {
            fail_times: 0,
            seen: AtomicU32::new(0),
            done: tx,
        }),
    );
    let publisher = Publisher::new(s.js.clone(), s.ns.clone(), "test");
    let root = tracing::info_span!("test.root");
    let root_context = root.context().span().span_context().clone();
    publisher
        .publish(rotated(3))
        .instrument(root)
        .await
        .unwrap();
    let (_, consumer_context) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consumer_context.trace_id(), root_context.trace_id());

    s.shutdown.trigger();
    consumer.await.unwrap().unwrap();
    use opentelemetry::trace::SpanKind;
    let publish = capture
        .of_kind(SpanKind::Producer)
        .pop()
        .expect("a publish span");
    let consume = capture
        .of_kind(SpanKind::Consumer)
        .pop()
        .expect("a consume span");
    assert_eq!(publish.name, "secrets.v1.rotated publish");
    assert_eq!(publish.span_context.trace_id(), root_context.trace_id());
    assert_eq!(
        consume.span_context.trace_id(),
        publish.span_context.trace_id()
    );
    assert_eq!(
        consume.parent_span_id,
        publish.span_context.span_id(),
        "the publish span is the consumer's parent"
    );
}
