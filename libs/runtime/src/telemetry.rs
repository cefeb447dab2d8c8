//! Logs (JSON with trace ids when not on a terminal) and traces (exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set).

use std::io::IsTerminal;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The variable that switches OTLP export on, as the OpenTelemetry specification names it.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes buffered spans (call it last).
#[must_use = "dropping the guard without shutdown loses buffered spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
    }
}

/// The resource every span of a service carries.
pub fn resource(service: &'static str, version: &'static str) -> Resource {
    Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", version))
        .with_attribute(KeyValue::new("service.namespace", "homestation"))
        .build()
}

/// Installs the global subscriber and the W3C trace-context propagator.
///
/// Spans always get trace ids (so logs carry them and the bus propagates them); they are exported
/// over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(service: &'static str, version: &'static str) -> Telemetry {
    crate::install_crypto_provider();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service, version));
    if std::env::var_os(OTLP_ENDPOINT_VAR).is_some() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("{service}: OTLP export disabled: {e}"),
        }
    }
    let provider = builder.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    // Spans are exported at the level logs are kept (`RUST_LOG`, default info): unfiltered, every debug and
    // trace callsite of hyper, sqlx and the AWS SDK would be built and recorded on each request and exported
    // as noise (dozens of SDK spans per backup). Under wrk (`make bench-api`) the gain was a few percent.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_filter(level_filter());
    // TraceIds first: it notes a span's ids before the log layer writes the event.
    tracing_subscriber::registry()
        .with(TraceIds::default().with_filter(level_filter()))
        .with(log_layer())
        .with(otel)
        .init();
    Telemetry {
        provider: Some(provider),
    }
}

/// What `RUST_LOG` keeps (default: info and above).
fn level_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// `json` or `pretty`; unset, logs are pretty on a terminal and JSON otherwise.
pub const LOG_FORMAT_VAR: &str = "HOMESTATION_LOG_FORMAT";

/// Human-readable logs on a terminal, JSON lines otherwise (for Loki), both filtered by `RUST_LOG`.
pub fn log_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let filter = level_filter();
    let pretty = match std::env::var(LOG_FORMAT_VAR).as_deref() {
        Ok("pretty") => true,
        Ok("json") => false,
        _ => std::io::stderr().is_terminal(),
    };
    if pretty {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        json_layer(std::io::stderr).with_filter(filter).boxed()
    }
}

/// One JSON object a line, starting with the `trace_id` and `span_id` of the span it was logged in, so
/// Grafana links a Loki line to its trace in Jaeger.
pub fn json_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let json = tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false);
    tracing_subscriber::fmt::layer()
        .json()
        .event_format(WithTraceIds(json))
        .with_writer(writer)
}

/// Notes the OpenTelemetry trace and span ids of the span an event is logged in, in the span itself,
/// where the JSON log format reads them. It must come before the log layer, and it asks at the first
/// event rather than when the span is made: asking starts the span, after which a remote parent (an
/// HTTP `traceparent`, a NATS header) can no longer be set.
#[derive(Default)]
pub struct TraceIds {
    dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

/// A span's ids as they are written in a log line.
struct Ids {
    trace_id: String,
    span_id: String,
}

impl<S> Layer<S> for TraceIds
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        if span.extensions().get::<Ids>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(|d| d.upgrade()) else {
            return;
        };
        let Some(context) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) else {
            return;
        };
        let otel_span = context.span();
        let ids = otel_span.span_context();
        if ids.is_valid() {
            span.extensions_mut().insert(Ids {
                trace_id: ids.trace_id().to_string(),
                span_id: ids.span_id().to_string(),
            });
        }
    }
}

/// Wraps a JSON event format: the line it writes gets the current span's trace and span ids in front.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let span = ctx.event_scope().and_then(|mut scope| scope.next());
        let extensions = span.as_ref().map(|s| s.extensions());
        match (
            extensions.as_ref().and_then(|e| e.get::<Ids>()),
            line.strip_prefix('{'),
        ) {
            (Some(ids), Some(rest)) => write!(
                writer,
                "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",{rest}",
                ids.trace_id, ids.span_id
            ),
            _ => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const CALLERS_TRACE: opentelemetry::trace::TraceId =
        opentelemetry::trace::TraceId::from_bytes(*b"a caller's trace");

    #[test]
    fn json_lines_carry_the_trace_and_span_ids_of_their_span() {
        let provider = SdkTracerProvider::builder().build();
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(TraceIds::default())
            .with(json_layer(move || writer.clone()))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let expected = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("enrol", node = "orin-1");
            // A caller's trace, as an HTTP `traceparent` brings it: setting it must still work.
            let remote = opentelemetry::trace::SpanContext::new(
                CALLERS_TRACE,
                opentelemetry::trace::SpanId::from_bytes(*b"caller's"),
                opentelemetry::trace::TraceFlags::SAMPLED,
                true,
                Default::default(),
            );
            span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
                .expect("the parent can still be set");
            let _entered = span.enter();
            tracing::info!(step = "validated", "inside the span");
            let context = span.context();
            let ids = context.span().span_context().clone();
            (ids.trace_id().to_string(), ids.span_id().to_string())
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect();
        assert_eq!(parsed.len(), 2, "{text}");
        assert!(
            parsed[0].get("trace_id").is_none(),
            "no span, no ids: {}",
            parsed[0]
        );
        assert_eq!(
            expected.0,
            CALLERS_TRACE.to_string(),
            "the caller's trace goes on"
        );
        assert_eq!(parsed[1]["trace_id"], expected.0.as_str());
        assert_eq!(parsed[1]["span_id"], expected.1.as_str());
        assert_eq!(parsed[1]["step"], "validated");
        assert_eq!(parsed[1]["span"]["name"], "enrol");
    }
}
