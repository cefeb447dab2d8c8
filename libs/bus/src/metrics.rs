//! The bus's metrics, registered into the service's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
#[cfg(feature = "server")]
use service_kit::metrics::Metrics;

pub mod names {
    pub const EVENTS_PUBLISHED: &str = "homestation_bus_events_published";
    pub const EVENTS_CONSUMED: &str = "homestation_bus_events_consumed";
    pub const EVENT_HANDLE_DURATION: &str = "homestation_bus_event_handle_duration_seconds";
    pub const EVENT_LAG: &str = "homestation_bus_event_lag_seconds";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumeLabels {
    pub consumer: String,
    pub kind: String,
    /// ack, retry or dead_letter
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

#[derive(Clone)]
pub struct BusMetrics {
    pub published: Family<KindLabels, Counter>,
    pub consumed: Family<ConsumeLabels, Counter>,
    pub handle_duration: Family<ConsumerLabels, Histogram>,
    /// Time from publish to the end of handling: the consumer's lag.
    pub lag: Family<ConsumerLabels, Histogram>,
}

#[cfg(feature = "server")]
fn latency_histogram() -> Histogram {
    Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0])
}

impl BusMetrics {
    /// The bus's metric families, registered in the service's registry.
    #[cfg(feature = "server")]
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            published: Family::default(),
            consumed: Family::default(),
            handle_duration: Family::new_with_constructor(latency_histogram),
            lag: Family::new_with_constructor(latency_histogram),
        };
        metrics.register(
            names::EVENTS_PUBLISHED,
            "Events published",
            this.published.clone(),
        );
        metrics.register(
            names::EVENTS_CONSUMED,
            "Events consumed, by outcome",
            this.consumed.clone(),
        );
        metrics.register(
            names::EVENT_HANDLE_DURATION,
            "Time spent handling one event",
            this.handle_duration.clone(),
        );
        metrics.register(
            names::EVENT_LAG,
            "Time from publish to handled",
            this.lag.clone(),
        );
        this
    }
}
