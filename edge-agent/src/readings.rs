//! The heartbeat's readings (load, GPU, temperature, free disk) as OTLP metrics, so the collector routes
//! the edge fleet's long series to InfluxDB (argocd/platform/opentelemetry-collector.yaml routes on the
//! agent's `service.name`). Exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; heartbeats over
//! NATS are what edge-registry needs either way.

use std::time::Duration;

use bus::NodeHeartbeat;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, MeterProvider as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

/// Metric names, as InfluxDB and Grafana see them.
pub mod names {
    pub const LOAD1: &str = "homestation.edge.load1";
    pub const GPU_UTILIZATION: &str = "homestation.edge.gpu.utilization";
    pub const TEMPERATURE: &str = "homestation.edge.temperature";
    pub const DISK_FREE: &str = "homestation.edge.disk.free";
}

struct Instruments {
    provider: SdkMeterProvider,
    load1: Gauge<f64>,
    gpu: Gauge<f64>,
    temperature: Gauge<f64>,
    disk_free: Gauge<u64>,
}

/// Records each heartbeat's readings for export; does nothing when export is off.
pub struct Readings {
    node: KeyValue,
    instruments: Option<Instruments>,
}

impl Readings {
    /// Exports every `every` (the heartbeat interval) to the OTLP endpoint of the environment, if any.
    pub fn from_env(
        service: &'static str,
        version: &'static str,
        node: &str,
        every: Duration,
    ) -> Self {
        let node = KeyValue::new("node", node.to_owned());
        if std::env::var_os(runtime::telemetry::OTLP_ENDPOINT_VAR).is_none() {
            return Self {
                node,
                instruments: None,
            };
        }
        let exporter = match opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => exporter,
            Err(e) => {
                tracing::warn!(error = %e, "OTLP metrics export disabled");
                return Self {
                    node,
                    instruments: None,
                };
            }
        };
        let provider = SdkMeterProvider::builder()
            .with_resource(runtime::telemetry::resource(service, version))
            .with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(every)
                    .build(),
            )
            .build();
        let meter = provider.meter(service);
        let instruments = Instruments {
            load1: meter
                .f64_gauge(names::LOAD1)
                .with_description("Load average over one minute")
                .build(),
            gpu: meter
                .f64_gauge(names::GPU_UTILIZATION)
                .with_unit("%")
                .with_description("GPU utilisation")
                .build(),
            temperature: meter
                .f64_gauge(names::TEMPERATURE)
                .with_unit("Cel")
                .with_description("The hottest thermal zone")
                .build(),
            disk_free: meter
                .u64_gauge(names::DISK_FREE)
                .with_unit("By")
                .with_description("Free bytes on the root file system")
                .build(),
            provider,
        };
        Self {
            node,
            instruments: Some(instruments),
        }
    }

    pub fn record(&self, beat: &NodeHeartbeat) {
        let Some(i) = &self.instruments else { return };
        let attributes = std::slice::from_ref(&self.node);
        i.load1.record(f64::from(beat.load1), attributes);
        if let Some(gpu) = beat.gpu_utilization_pct {
            i.gpu.record(f64::from(gpu), attributes);
        }
        if let Some(t) = beat.temperature_c {
            i.temperature.record(f64::from(t), attributes);
        }
        if let Some(free) = beat.disk_free_bytes {
            i.disk_free.record(free, attributes);
        }
    }

    /// Exports what is left; call it before the process ends.
    pub fn shutdown(self) {
        if let Some(i) = self.instruments
            && let Err(e) = i.provider.shutdown()
        {
            tracing::warn!(error = %e, "flushing the last readings failed");
        }
    }
}
