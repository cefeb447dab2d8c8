//! Logs (JSON when not on a terminal) and traces (OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).

use std::io::IsTerminal;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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
pub fn init(service: &'static str, version: &'static str) -> Telemetry {
    crate::install_crypto_provider();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = std::env::var_os(OTLP_ENDPOINT_VAR).and_then(|_| {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_resource(resource(service, version))
                    .with_batch_exporter(exporter)
                    .build(),
            ),
            Err(e) => {
                eprintln!("{service}: OTLP export disabled: {e}");
                None
            }
        }
    });
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing_opentelemetry::layer().with_tracer(p.tracer(service))
    });
    tracing_subscriber::registry()
        .with(log_layer())
        .with(otel)
        .init();
    Telemetry { provider }
}

/// `json` or `pretty`; unset, logs are pretty on a terminal and JSON otherwise.
pub const LOG_FORMAT_VAR: &str = "HOMESTATION_LOG_FORMAT";

/// Human-readable logs on a terminal, JSON lines otherwise (for Loki), both filtered by `RUST_LOG`.
pub fn log_layer() -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    }
}
