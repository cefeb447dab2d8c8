//! @@crate@@: a HomeStation service. It records the deployments it hears of on the bus
//! (`deploy.v1.*`) and serves them at `GET /v1/deployments`; replace that with what it is for.
//!
//! Its shape is every service's: `config.rs` (settings), `api.rs` (thin handlers), `domain.rs` (parsed
//! types and statuses), `store.rs` (all SQL), `events.rs` (what it handles from the bus), `metrics.rs`,
//! and one file per outside system it talks to.

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod metrics;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use service_core::Core;
use service_kit::Shutdown;

pub use config::Config;

/// Why it could not start; add variants for what this service opens beyond the core.
pub type Error = service_core::Error;

pub struct Application {
    core: Core,
    consumer: bus::ConsumerSettings,
    metrics: metrics::Metrics,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.core.http_addr()
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "@@crate@@";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let core = Core::open(
            Self::NAME,
            service_core::settings!(config),
            &sqlx::migrate!("./migrations"),
        )
        .await?;
        let metrics = metrics::Metrics::new(&core.metrics);
        Ok(Self {
            core,
            consumer: config.consumer,
            metrics,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        let pool = self.core.pool.clone();
        let mut running = self.core.serve(
            api::router(pool.clone()),
            service_kit::openapi::router(api::openapi()),
            &shutdown,
        );
        let spec = bus::ConsumerSpec::with_settings(Self::NAME, &[bus::Stream::Deploy], &self.consumer);
        let recorder = events::Recorder {
            pool,
            metrics: self.metrics,
        };
        running.consume("consumers", spec, Arc::new(recorder));
        running.until_stopped().await
    }
}
