//! @@crate@@'s own metrics, registered in the service's registry beside the kit's (served on /metrics).

use prometheus_client::metrics::counter::Counter;

pub mod names {
    pub const DEPLOYMENTS_HEARD: &str = "homestation_@@module@@_deployments_heard";
}

#[derive(Clone)]
pub struct Metrics {
    /// Deployment events recorded (a redelivery is not counted again).
    pub deployments_heard: Counter,
}

impl Metrics {
    pub fn new(registry: &service_kit::metrics::Metrics) -> Self {
        let this = Self {
            deployments_heard: Counter::default(),
        };
        registry.register(
            names::DEPLOYMENTS_HEARD,
            "Deployment events recorded",
            this.deployments_heard.clone(),
        );
        this
    }
}
