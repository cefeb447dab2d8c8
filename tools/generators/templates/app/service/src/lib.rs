//! @@crate@@: a HomeStation service. It records the deployments it hears of on the bus
//! (`deploy.v1.*`) and serves them at `GET /v1/deployments`; replace that with what it is for.

pub mod api;
pub mod events;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::http::{Kit, service_router};
use service_kit::metrics::Metrics;
use service_kit::shutdown::Tasks;
use service_kit::{Authenticator, DatabaseSettings, HttpSettings, NatsSettings, Shutdown};
use tokio::net::TcpListener;

/// `HOMESTATION_@@env@@__…` variables and the files of `HOMESTATION_CONFIG_FILE` fill this.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub consumer: bus::ConsumerSettings,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8080),
            database: DatabaseSettings {
                url: SecretString::from("postgres://postgres@127.0.0.1:5432/@@module@@"),
                ..Default::default()
            },
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            consumer: bus::ConsumerSettings::default(),
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("binding http")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Database(#[from] service_kit::DatabaseError),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error(transparent)]
    Task(#[from] service_kit::shutdown::TaskError),
}

pub struct Application {
    http: TcpListener,
    pool: sqlx::PgPool,
    bus: bus::Connection,
    auth: Authenticator,
    config: Config,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "@@crate@@";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let auth = Authenticator::new(config.auth.clone()).map_err(Error::Config)?;
        let pool = config
            .database
            .migrated_pool(&sqlx::migrate!("./migrations"))
            .await?;
        let bus = bus::Connection::open(&config.nats, Self::NAME).await?;
        let http = config.http.bind().await.map_err(Error::Bind)?;
        Ok(Self {
            http,
            pool,
            bus,
            auth,
            config,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        tracing::info!(http = %self.http_addr(), "@@crate@@ listening");
        let metrics = Metrics::new(Self::NAME);
        let bus_metrics = bus::BusMetrics::new(&metrics);
        let kit = Kit::new(
            self.auth,
            metrics,
            self.pool.clone(),
            self.bus.client.clone(),
        );
        let router = service_router(api::router(self.pool.clone()), axum::Router::new(), kit);
        let spec = bus::ConsumerSpec::with_settings(
            Self::NAME,
            &[bus::Stream::Deploy],
            &self.config.consumer,
        );
        let mut tasks = Tasks::new();
        tasks.spawn(
            "http",
            service_kit::http::serve(self.http, router, shutdown.clone()),
        );
        tasks.spawn(
            "consumers",
            bus::run_consumers(
                self.bus.js.clone(),
                self.bus.namespace.clone(),
                spec,
                Arc::new(events::Recorder {
                    pool: self.pool.clone(),
                }),
                bus_metrics,
                shutdown.clone(),
            ),
        );
        tasks
            .run(
                shutdown,
                Duration::from_secs(self.config.shutdown_grace_secs),
            )
            .await?;
        self.pool.close().await;
        Ok(())
    }
}
