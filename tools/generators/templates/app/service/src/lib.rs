//! @@crate@@: a HomeStation service. It records the deployments it hears of on the bus
//! (`deploy.v1.*`) and serves them at `GET /v1/deployments`; replace that with what it is for.

pub mod api;
pub mod events;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use service_core::Core;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings, Shutdown};

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
            database: DatabaseSettings::local("@@module@@"),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            consumer: bus::ConsumerSettings::default(),
            shutdown_grace_secs: 10,
        }
    }
}

/// Why it could not start; add variants for what this service opens beyond the core.
pub type Error = service_core::Error;

pub struct Application {
    core: Core,
    consumer: bus::ConsumerSettings,
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
        Ok(Self {
            core,
            consumer: config.consumer,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        let pool = self.core.pool.clone();
        let mut running = self
            .core
            .serve(api::router(pool.clone()), axum::Router::new(), &shutdown);
        let spec = bus::ConsumerSpec::with_settings(Self::NAME, &[bus::Stream::Deploy], &self.consumer);
        running.consume("consumers", spec, Arc::new(events::Recorder { pool }));
        running.until_stopped().await
    }
}
