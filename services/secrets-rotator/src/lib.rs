//! secrets-rotator: rotates Vault KV v2 secrets and PostgreSQL logins on schedule or on demand, tells
//! consumers (`secrets.v1.rotated`, never the value), rolls Deployments, waits for acknowledgements,
//! verifies, and restores the previous value when verification fails. See `engine` for the state machine.

pub mod api;
pub mod config;
pub mod database;
pub mod engine;
pub mod generator;
pub mod kv;
pub mod metrics;
pub mod policy;
pub mod rollout;
pub mod vault_policy;

use std::net::SocketAddr;
use std::sync::Arc;

use bus::{ConsumerSettings, ConsumerSpec, Stream};
use service_core::Core;
use service_kit::Shutdown;

use crate::engine::{AckHandler, Rotator};

const CONSUMER: &str = "secrets-rotator";

pub use config::{Config, KubeSettings};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] service_core::Error),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("reading the audit trail")]
    Audit(#[source] sqlx::Error),
    #[error("recovering interrupted rotations")]
    Recover(#[from] engine::RotateError),
    #[error("connecting to the Kubernetes API (kube.enabled is set)")]
    Kube(#[source] kube::Error),
}

pub struct Application {
    core: Core,
    /// Built here, put to work (with the service's shutdown) in `run_until_stopped`.
    rotator: Rotator,
    consumer: ConsumerSettings,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.core.http_addr()
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "secrets-rotator";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let policies = policy::parse_all(&config.policies)?;
        let vault = config
            .vault
            .client()
            .map_err(|e| Error::Config(e.to_string()))?;
        let core = Core::open(
            Self::NAME,
            service_core::settings!(config),
            &sqlx::migrate!("./migrations"),
        )
        .await?;
        let kube = if config.kube.enabled {
            Some(kube::Client::try_default().await.map_err(Error::Kube)?)
        } else {
            None
        };
        let rotator_metrics = metrics::RotatorMetrics::new(&core.metrics);
        let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        rotator_metrics
            .load(&core.pool, &names)
            .await
            .map_err(Error::Audit)?;
        let rotator = Rotator {
            pool: core.pool.clone(),
            kv: kv::Kv::new(Arc::new(vault), &config.vault.kv_mount),
            policies: policies
                .into_iter()
                .map(|p| (p.name.as_str().to_owned(), p))
                .collect(),
            outbox: core.outbox.clone(),
            http: reqwest::Client::new(),
            kube,
            metrics: rotator_metrics,
            // Replaced by the service's own in `run_until_stopped`.
            shutdown: Shutdown::new(),
        };
        Ok(Self {
            core,
            rotator,
            consumer: config.consumer,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        tracing::info!(
            policies = self.rotator.policies.len(),
            "rotation policies loaded"
        );
        let rotator = Arc::new(Rotator {
            shutdown: shutdown.clone(),
            ..self.rotator
        });
        // What is unfinished before the API opens was interrupted; what starts after is this process's own.
        let serving_from: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&rotator.pool)
            .await
            .map_err(Error::Audit)?;
        let mut running = self.core.serve(
            api::router(rotator.clone()),
            service_kit::openapi::router(api::openapi()),
            &shutdown,
        );
        let acks = AckHandler {
            pool: rotator.pool.clone(),
        };
        let spec = ConsumerSpec::with_settings(CONSUMER, &[Stream::Secrets], &self.consumer);
        running.consume("acks", spec, Arc::new(acks));
        // Acknowledgements and the outbox run first: resuming a published rotation may wait for them.
        let recovered = rotator.recover(serving_from).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "rotations interrupted by the last stop were finished or undone"
            );
        }
        running.spawn("scheduler", rotator.schedule());
        Ok(running.until_stopped().await?)
    }
}
