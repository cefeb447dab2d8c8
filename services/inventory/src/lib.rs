//! Inventory: the system of record of the lab (nodes, services, health) and its unified view.

pub mod api;
pub mod config;
pub mod domain;
mod events;
pub mod exports;
mod grpc;
pub mod metrics;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bus::{ConsumerSettings, ConsumerSpec, Stream};
use service_core::Core;
use service_kit::Shutdown;
use tokio::net::TcpListener;

/// The durable consumer name inventory reads every other service's events with.
pub const CONSUMER: &str = "inventory";

pub use config::Config;

pub type Error = service_core::Error;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A built inventory: listeners bound, database migrated, streams ensured; [`Application::run_until_stopped`] serves.
pub struct Application {
    core: Core,
    grpc: TcpListener,
    consumer: ConsumerSettings,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.core.http_addr()
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("bound listener has an address")
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "inventory";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self> {
        let core = Core::open(
            Self::NAME,
            service_core::settings!(config),
            &sqlx::migrate!("./migrations"),
        )
        .await?;
        Ok(Self {
            core,
            grpc: service_core::bind("grpc", &config.grpc).await?,
            consumer: config.consumer,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<()> {
        let core = self.core;
        let (pool, outbox, auth) = (core.pool.clone(), core.outbox.clone(), core.auth.clone());
        let inventory_metrics = metrics::InventoryMetrics::new(&core.metrics);
        let state = api::AppState {
            pool: pool.clone(),
            outbox: outbox.clone(),
        };
        tracing::info!(grpc = %self.grpc.local_addr().expect("bound"), "inventory serving gRPC");
        let mut running = core.serve(
            api::router(state),
            service_kit::openapi::router(api::openapi()),
            &shutdown,
        );
        running.spawn(
            "grpc",
            service_kit::http::serve_grpc(
                self.grpc,
                grpc::routes(pool.clone(), auth).await,
                shutdown.clone(),
            ),
        );
        let streams = [
            Stream::Edge,
            Stream::Heartbeats,
            Stream::Deploy,
            Stream::Backup,
            Stream::Secrets,
        ];
        let spec = ConsumerSpec::with_settings(CONSUMER, &streams, &self.consumer);
        let applier = events::Applier {
            pool: pool.clone(),
            outbox,
            metrics: inventory_metrics.clone(),
        };
        running.consume("consumers", spec, Arc::new(applier));
        running.spawn(
            "health-gauges",
            inventory_metrics.refresh_every(
                pool.clone(),
                Duration::from_secs(10),
                shutdown.clone(),
            ),
        );
        running.spawn("ledger", events::prune_ledger(pool, shutdown));
        running.until_stopped().await
    }
}
