//! Inventory: the system of record of the lab (nodes, services, health) and its unified view.

pub mod api;
pub mod domain;
mod events;
pub mod exports;
mod grpc;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bus::{BusMetrics, ConsumerSettings, ConsumerSpec, Stream};
use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::http::{Kit, service_router};
use service_kit::metrics::Metrics;
use service_kit::shutdown::Tasks;
use service_kit::{Authenticator, DatabaseSettings, HttpSettings, NatsSettings, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The durable consumer name inventory reads every other service's events with.
pub const CONSUMER: &str = "inventory";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub grpc: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub consumer: ConsumerSettings,
    /// How long in-flight requests and events may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8080),
            grpc: HttpSettings::with_port(8081),
            database: DatabaseSettings::default(),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            consumer: ConsumerSettings::default(),
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("binding {what}")]
    Bind {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] service_kit::DatabaseError),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error(transparent)]
    Task(#[from] service_kit::shutdown::TaskError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A built inventory: listeners bound, database migrated, streams ensured; [`Application::run_until_stopped`] serves.
pub struct Application {
    http: TcpListener,
    grpc: TcpListener,
    pool: sqlx::PgPool,
    bus: bus::Connection,
    auth: Authenticator,
    consumer: ConsumerSettings,
    grace: Duration,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
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
        let auth = Authenticator::new(config.auth).map_err(Error::Config)?;
        let pool = config
            .database
            .migrated_pool(&sqlx::migrate!("./migrations"))
            .await?;
        let bus = bus::Connection::open(&config.nats, Self::NAME).await?;
        let bind = |what, settings: HttpSettings| async move {
            settings
                .bind()
                .await
                .map_err(|source| Error::Bind { what, source })
        };
        Ok(Self {
            http: bind("http", config.http).await?,
            grpc: bind("grpc", config.grpc).await?,
            pool,
            bus,
            auth,
            consumer: config.consumer,
            grace: Duration::from_secs(config.shutdown_grace_secs),
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<()> {
        let metrics = Metrics::new(Self::NAME);
        let bus_metrics = BusMetrics::new(&metrics);
        let outbox = Arc::new(Notify::new());
        let kit = Kit::new(
            self.auth.clone(),
            metrics,
            self.pool.clone(),
            self.bus.client.clone(),
        );
        let state = api::AppState {
            pool: self.pool.clone(),
            outbox: outbox.clone(),
        };
        let router = service_router(api::router(state), api::public_router(), kit);
        tracing::info!(http = %self.http_addr(), grpc = %self.grpc_addr(), "inventory listening");

        let mut tasks = Tasks::new();
        tasks.spawn(
            "http",
            service_kit::http::serve(self.http, router, shutdown.clone()),
        );
        tasks.spawn(
            "grpc",
            service_kit::http::serve_grpc(
                self.grpc,
                grpc::routes(self.pool.clone(), self.auth).await,
                shutdown.clone(),
            ),
        );
        let spec = ConsumerSpec::with_settings(
            CONSUMER,
            &[
                Stream::Edge,
                Stream::Heartbeats,
                Stream::Deploy,
                Stream::Backup,
                Stream::Secrets,
            ],
            &self.consumer,
        );
        let applier = events::Applier {
            pool: self.pool.clone(),
            outbox: outbox.clone(),
        };
        tasks.spawn(
            "consumers",
            bus::run_consumers(
                self.bus.js.clone(),
                self.bus.namespace.clone(),
                spec,
                Arc::new(applier),
                bus_metrics.clone(),
                shutdown.clone(),
            ),
        );
        let publisher = self.bus.publisher(Self::NAME, bus_metrics);
        tasks.spawn(
            "outbox",
            bus::outbox::relay(self.pool.clone(), publisher, outbox, shutdown.clone()),
        );
        tasks.spawn(
            "ledger",
            events::prune_ledger(self.pool.clone(), shutdown.clone()),
        );
        tasks.run(shutdown, self.grace).await?;
        self.pool.close().await;
        Ok(())
    }
}
